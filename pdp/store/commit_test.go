package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// TestCommitterAfterBatch checks that the hook runs between batches:
// after every caller of a batch is answered (the hook waits for the
// caller's Do to return, so a hook that ran before answering would never
// see it) and before the next batch is attempted.
func TestCommitterAfterBatch(t *testing.T) {
	var (
		returned = make(chan int, 8)  // a caller's Do returned
		after    = make(chan int, 8)  // the hook ran, after the batch of the op it names
		attempts = make(chan int, 16) // the ops each attempt held
		last     int                  // the last op attempted (committer goroutine only)
	)
	attempt := func(_ context.Context, ops []*store.Op[*int], live []int) ([]error, int, error) {
		for _, i := range live {
			_ = ops[i].Run(&last)
		}
		attempts <- last
		return make([]error, len(ops)), -1, nil
	}
	deadline := time.After(time.Minute)
	c := store.NewCommitter(4, nil, attempt, nil, store.WithAfterBatch(func() {
		select {
		case n := <-returned:
			after <- n
		case <-deadline:
			after <- -1
		}
	}))
	defer c.Close()
	for i := 1; i <= 3; i++ {
		go func() {
			if err := c.Do(t.Context(), "t", func(p *int) error { *p = i; return nil }); err != nil {
				t.Error(err)
			}
			returned <- i
		}()
		if got := <-attempts; got != i {
			t.Fatalf("attempt %d held op %d", i, got)
		}
		if got := <-after; got != i {
			t.Fatalf("the hook after batch %d saw caller %d return (-1: none within a minute)", i, got)
		}
	}
}

// TestCommitterAfterBatchOrder queues writes faster than batches of one
// commit them: the hook still runs once after every batch, never two
// batches in a row without it.
func TestCommitterAfterBatchOrder(t *testing.T) {
	var events []string // the committer goroutine's only
	attempt := func(_ context.Context, ops []*store.Op[*int], live []int) ([]error, int, error) {
		events = append(events, "batch")
		return make([]error, len(ops)), -1, nil
	}
	c := store.NewCommitter(1, nil, attempt, nil, store.WithAfterBatch(func() { events = append(events, "after") }))
	done := make(chan struct{})
	for range 20 {
		go func() {
			defer func() { done <- struct{}{} }()
			if err := c.Do(t.Context(), "t", func(*int) error { return nil }); err != nil {
				t.Error(err)
			}
		}()
	}
	for range 20 {
		<-done
	}
	c.Close() // the committer has exited: events is ours
	if len(events) != 40 {
		t.Fatalf("%d events, want 20 batches and 20 hooks: %v", len(events), events)
	}
	for i, e := range events {
		if want := []string{"batch", "after"}[i%2]; e != want {
			t.Fatalf("event %d is %q, want %q: %v", i, e, want, events)
		}
	}
}
