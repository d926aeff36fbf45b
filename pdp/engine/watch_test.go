package engine

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestWatch: a watch cancels its evaluation when the timeout passes or the
// caller's context ends, stop reports either (the deadline by the clock,
// whether or not the timer has run), and a watch reused from the pool
// starts uncancelled.
func TestWatch(t *testing.T) {
	t.Run("in time", func(t *testing.T) {
		w := startWatch(t.Context(), time.Hour)
		if w.Cancelled() {
			t.Fatal("cancelled at start")
		}
		if err := w.stop(t.Context()); err != nil {
			t.Fatalf("stop: %v", err)
		}
	})
	t.Run("deadline by the clock", func(t *testing.T) {
		w := startWatch(t.Context(), time.Millisecond)
		for start := time.Now(); time.Since(start) < 2*time.Millisecond; {
			// past the deadline; the timer may or may not have run
		}
		if err := w.stop(t.Context()); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("stop past the deadline: %v", err)
		}
	})
	t.Run("timer cancels", func(t *testing.T) {
		w := startWatch(t.Context(), time.Millisecond)
		waitFor(t, w.Cancelled)
		if err := w.stop(t.Context()); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("stop after the timer: %v", err)
		}
	})
	t.Run("caller gives up", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		w := startWatch(ctx, time.Hour)
		cancel()
		waitFor(t, w.Cancelled)
		if err := w.stop(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("stop after the caller gave up: %v", err)
		}
	})
	t.Run("pooled watches start clean", func(t *testing.T) {
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for i := range 2000 {
					ctx, cancel := context.WithCancel(t.Context())
					w := startWatch(ctx, time.Hour)
					if w.Cancelled() || len(w.opts) != 0 {
						t.Error("a watch from the pool is cancelled or holds options")
					}
					if i%3 == 0 {
						cancel() // some are cancelled and never pooled again
					}
					w.stop(ctx)
					cancel()
				}
			})
		}
		wg.Wait()
	})
}
