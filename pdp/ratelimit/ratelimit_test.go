package ratelimit

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestBucket(t *testing.T) {
	l := New(0)
	lim := Limit{RequestsPerSecond: 2, Burst: 3}
	steps := []struct {
		at         time.Duration
		allowed    bool
		current    int
		retryAfter time.Duration
		resetIn    time.Duration
	}{
		{0, true, 1, 0, 500 * time.Millisecond},
		{0, true, 2, 0, time.Second},
		{0, true, 3, 0, 1500 * time.Millisecond},
		{0, false, 3, 500 * time.Millisecond, 1500 * time.Millisecond},
		{250 * time.Millisecond, false, 3, 250 * time.Millisecond, 1250 * time.Millisecond},
		{500 * time.Millisecond, true, 3, 0, 1500 * time.Millisecond}, // one token refilled, taken
		{500 * time.Millisecond, false, 3, 500 * time.Millisecond, 1500 * time.Millisecond},
		{10 * time.Second, true, 1, 0, 500 * time.Millisecond}, // refilled to Burst, not beyond
	}
	for i, st := range steps {
		now := t0.Add(st.at)
		r := l.Allow("k", lim, now)
		if r.Allowed != st.allowed || r.Current != st.current || r.Limit != 3 || r.RetryAfter != st.retryAfter || !r.ResetAt.Equal(now.Add(st.resetIn)) {
			t.Errorf("step %d at %v: %+v (reset in %v); want allowed %v current %d retry %v reset in %v",
				i, st.at, r, r.ResetAt.Sub(now), st.allowed, st.current, st.retryAfter, st.resetIn)
		}
	}
}

func TestKeysAreIndependent(t *testing.T) {
	l := New(0)
	lim := Limit{RequestsPerSecond: 1, Burst: 1}
	if !l.Allow("a", lim, t0).Allowed || l.Allow("a", lim, t0).Allowed {
		t.Fatal("a: want one request, then a refusal")
	}
	if !l.Allow("b", lim, t0).Allowed {
		t.Error("b was limited by a's bucket")
	}
}

func TestUnlimitedKeepsNothing(t *testing.T) {
	l := New(0)
	for _, lim := range []Limit{{}, {RequestsPerSecond: 0, Burst: 5}, {RequestsPerSecond: 5, Burst: 0}} {
		for range 100 {
			if r := l.Allow("k", lim, t0); !r.Allowed {
				t.Fatalf("%+v: refused", lim)
			}
		}
	}
	if n := l.Len(); n != 0 {
		t.Errorf("%d buckets kept for unlimited requests", n)
	}
}

// TestLimitChange: a key whose limit shrinks keeps its bucket capped at
// the new size; one whose limit grows refills towards the new size.
func TestLimitChange(t *testing.T) {
	l := New(0)
	big, small := Limit{RequestsPerSecond: 1, Burst: 10}, Limit{RequestsPerSecond: 1, Burst: 2}
	l.Allow("k", big, t0)              // 9 left
	for want := 1; want <= 2; want++ { // 9 left, capped at 2
		if r := l.Allow("k", small, t0); !r.Allowed || r.Current != want {
			t.Errorf("after shrinking, request %d: %+v; want allowed, current %d", want, r, want)
		}
	}
	if r := l.Allow("k", small, t0); r.Allowed {
		t.Errorf("shrunk bucket still allowed: %+v", r)
	}
	if r := l.Allow("k", big, t0.Add(5*time.Second)); !r.Allowed || r.Current != 6 {
		t.Errorf("after growing: %+v; want 5 refilled of 10, one taken: current 6", r)
	}
}

// TestBounded: the table never holds more than its bound, and a full
// bucket dropped to make room behaves exactly like the one it replaces.
func TestBounded(t *testing.T) {
	l := New(shards * 4)
	lim := Limit{RequestsPerSecond: 1, Burst: 1}
	for i := range 10_000 {
		l.Allow(fmt.Sprint("key", i), lim, t0)
		if n := l.Len(); n > shards*4 {
			t.Fatalf("after %d keys: %d buckets, bound %d", i+1, n, shards*4)
		}
	}
	// A sweep drops refilled buckets and keeps the ones in use.
	lim = Limit{RequestsPerSecond: 1, Burst: 2}
	sh := &shard{max: 4, buckets: map[string]*bucket{
		"refilled": {tokens: 0, last: t0.Add(-time.Hour)},
		"full":     {tokens: 2, last: t0},
		"busy":     {tokens: 0.5, last: t0},
	}}
	sh.sweep(lim, t0.Add(time.Second))
	if _, ok := sh.buckets["busy"]; !ok || len(sh.buckets) != 1 {
		t.Errorf("after sweep: %v; want only busy", sh.buckets)
	}
	// When too few buckets have refilled, the shard starts over.
	sh = &shard{max: 4, buckets: map[string]*bucket{"a": {last: t0}, "b": {last: t0}, "c": {last: t0}, "d": {last: t0}}}
	sh.sweep(lim, t0)
	if len(sh.buckets) != 0 {
		t.Errorf("after a sweep that freed nothing: %d buckets, want 0", len(sh.buckets))
	}
}

func TestConcurrent(t *testing.T) {
	l := New(0)
	lim := Limit{RequestsPerSecond: 1, Burst: 100}
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if l.Allow("k", lim, t0).Allowed {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if allowed != 100 {
		t.Errorf("%d of 400 simultaneous requests allowed, want exactly the burst of 100", allowed)
	}
}

func BenchmarkAllow(b *testing.B) {
	l := New(0)
	lim := Limit{RequestsPerSecond: 1e6, Burst: 1000}
	keys := make([]string, 64)
	for i := range keys {
		keys[i] = fmt.Sprintf("%064x", i)
	}
	now := t0
	i := 0
	for b.Loop() {
		now = now.Add(time.Microsecond)
		l.Allow(keys[i%len(keys)], lim, now)
		i++
	}
}
