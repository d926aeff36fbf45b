package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// checkSlots verifies the slots' invariants: running within the total and
// equal to the slots held per tenant, each tenant within its share, the
// queue as long as waiting and linked both ways, and the hand-off's
// promise — while a slot is free, no queued waiter may take it.
func (s *slots) check() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running < 0 || s.running > s.total {
		return fmt.Errorf("running %d of %d", s.running, s.total)
	}
	sum := 0
	for tenant, n := range s.byTenant {
		if n <= 0 || (s.perTenant > 0 && n > s.perTenant) {
			return fmt.Errorf("tenant %q holds %d (share %d)", tenant, n, s.perTenant)
		}
		sum += n
	}
	if sum != s.running {
		return fmt.Errorf("running %d, tenants hold %d", s.running, sum)
	}
	n := 0
	var prev *waiter
	for w := s.head; w != nil; prev, w = w, w.next {
		n++
		if w.prev != prev || w.granted {
			return fmt.Errorf("queue corrupt at waiter %d (granted %v)", n, w.granted)
		}
		if s.running < s.total && (s.perTenant <= 0 || s.byTenant[w.tenant] < s.perTenant) {
			return fmt.Errorf("a slot is free (%d of %d running) while waiter %d of tenant %q could take it", s.running, s.total, n, w.tenant)
		}
	}
	if s.tail != prev || n != s.waiting {
		return fmt.Errorf("queue of %d, waiting %d", n, s.waiting)
	}
	return nil
}

// state is running, waiting and the slots tenant holds, read under the
// lock.
func (s *slots) state(tenant string) (running, waiting, held int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running, s.waiting, s.byTenant[tenant]
}

// queued is a goroutine waiting in admit: err receives admit's error,
// or nil once it holds a slot; then it holds it until done is closed.
type queued struct {
	err    chan error
	done   chan struct{}
	cancel context.CancelFunc
}

// enqueueWaiter starts admit(tenant) on s and returns once it is queued
// (s.waiting has grown by one), so waiters started one after the other
// queue in that order.
func enqueueWaiter(t *testing.T, s *slots, tenant string) *queued {
	t.Helper()
	_, before, _ := s.state(tenant)
	ctx, cancel := context.WithCancel(context.Background())
	q := &queued{err: make(chan error, 1), done: make(chan struct{}), cancel: cancel}
	go func() {
		release, err := s.admit(ctx, tenant)
		q.err <- err
		if err == nil {
			<-q.done
			release()
		}
	}()
	waitFor(t, func() bool { _, n, _ := s.state(tenant); return n == before+1 })
	return q
}

// admitted waits for q to hold its slot.
func (q *queued) admitted(t *testing.T, what string) {
	t.Helper()
	select {
	case err := <-q.err:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: not admitted in 30 s", what)
	}
}

// pending says whether q is still waiting (it has neither a slot nor an
// error).
func (q *queued) pending() bool { return len(q.err) == 0 }

// mustAdmit takes a slot that must be free now.
func mustAdmit(t *testing.T, s *slots, tenant string) func() {
	t.Helper()
	r, err := s.admit(context.Background(), tenant)
	if err != nil {
		t.Fatalf("admit %s: %v", tenant, err)
	}
	return r
}

// allFree checks that nothing is held or queued and that every slot can
// be taken again (none leaked), then gives them back.
func allFree(t *testing.T, s *slots) {
	t.Helper()
	if err := s.check(); err != nil {
		t.Fatal(err)
	}
	if running, waiting, _ := s.state(""); running != 0 || waiting != 0 || len(s.byTenant) != 0 {
		t.Fatalf("running %d, waiting %d, byTenant %v; want all free", running, waiting, s.byTenant)
	}
	var held []func()
	for i := range s.total {
		// Spread over tenants so the share does not stop us.
		r, err := s.admit(context.Background(), fmt.Sprint("t", i))
		if err != nil {
			t.Fatalf("slot %d of %d not takeable: %v", i+1, s.total, err)
		}
		held = append(held, r)
	}
	for _, r := range held {
		r()
	}
}

// TestSlotsRefusedAtOnce: the cases decided without waiting, as a table.
func TestSlotsRefusedAtOnce(t *testing.T) {
	for _, c := range []struct {
		name             string
		total, perTenant int
		wait             time.Duration
		maxWaiters       int // -1: the default
		hold             []string
		tenant           string
		want             string // "": admitted; else a part of the error
	}{
		{"free slot", 2, -1, 0, -1, []string{"a"}, "a", ""},
		{"full, no wait", 2, -1, 0, -1, []string{"a", "b"}, "c", "2 running"},
		{"at its share, no wait", 4, 2, 0, -1, []string{"a", "a"}, "a", "its share"},
		{"other tenant beside a full share", 4, 2, 0, -1, []string{"a", "a"}, "b", ""},
		{"full, no waiters allowed", 2, -1, time.Minute, 0, []string{"a", "b"}, "c", "2 running"},
		{"share bound off", 2, -1, 0, -1, []string{"a"}, "a", ""},
		{"share above the total is the total", 2, 5, 0, -1, []string{"a", "a"}, "a", "2 running"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSlots(c.total, c.perTenant).withWait(c.wait)
			if c.maxWaiters >= 0 {
				s.maxWaiters = c.maxWaiters
			}
			for _, tenant := range c.hold {
				defer mustAdmit(t, s, tenant)()
			}
			start := time.Now()
			r, err := s.admit(context.Background(), c.tenant)
			if c.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				r()
				return
			}
			if !errors.Is(err, ErrOverloaded) || !errors.Is(err, pdp.ErrEvaluationFailed) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v; want ErrOverloaded and pdp.ErrEvaluationFailed, %q", err, c.want)
			}
			if d := time.Since(start); d > 30*time.Second {
				t.Fatalf("refused after %v, not at once", d)
			}
			if _, waiting, _ := s.state(""); waiting != 0 {
				t.Fatalf("a refused evaluation left %d waiting", waiting)
			}
		})
	}
	if s := newSlots(0, 1); s != nil {
		t.Fatal("0 slots: want nil (unbounded)")
	}
	var none *slots
	if r, err := none.withWait(time.Second).admit(context.Background(), "a"); err != nil {
		t.Fatal(err)
	} else {
		r()
	}
}

// TestSlotsFIFO: waiters are served in arrival order, each release hands
// its slot straight to the first waiter (counted as its before it wakes,
// and nobody else woken), and a newcomer finds no free slot meanwhile: it
// queues behind the waiters instead of barging past them.
func TestSlotsFIFO(t *testing.T) {
	s := newSlots(1, -1).withWait(time.Minute)
	hold := mustAdmit(t, s, "a")
	var qs []*queued
	for i := range 4 {
		qs = append(qs, enqueueWaiter(t, s, fmt.Sprint("w", i)))
	}
	hold()
	// Handed over in release itself: the first waiter holds the slot.
	if running, waiting, held := s.state("w0"); running != 1 || waiting != 3 || held != 1 {
		t.Fatalf("after a release: running %d, waiting %d, w0 holds %d; want the slot handed to w0", running, waiting, held)
	}
	// A newcomer does not barge: it finds no free slot (here, with its
	// context already ended, it gives up instead of queueing).
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.admit(ctx, "newcomer"); !errors.Is(err, ErrOverloaded) || !errors.Is(err, context.Canceled) {
		t.Fatalf("newcomer while a slot is handed over: %v; want it refused", err)
	}
	qs[0].admitted(t, "first waiter")
	// One that arrives now queues behind the others.
	qs = append(qs, enqueueWaiter(t, s, "late"))
	for i := range qs {
		if i > 0 {
			qs[i].admitted(t, fmt.Sprint("waiter ", i))
		}
		for _, later := range qs[i+1:] {
			if !later.pending() {
				t.Fatalf("a later waiter was served before waiter %d", i)
			}
		}
		if err := s.check(); err != nil {
			t.Fatal(err)
		}
		close(qs[i].done)
	}
	waitFor(t, func() bool { running, _, _ := s.state(""); return running == 0 })
	allFree(t, s)
}

// TestSlotsShareBurst: one tenant's burst queues past its share while
// another tenant is admitted at once; a waiter of another tenant queued
// behind the burst gets the first slot that frees up that the burst may
// not take; and a slot the bursting tenant gives back goes to its own
// first waiter.
func TestSlotsShareBurst(t *testing.T) {
	s := newSlots(4, 2).withWait(time.Minute)
	hog := []func(){mustAdmit(t, s, "hog"), mustAdmit(t, s, "hog")}
	var burst []*queued
	for range 6 {
		burst = append(burst, enqueueWaiter(t, s, "hog"))
	}
	// Another tenant is admitted at once, twice: the server is now full.
	b1 := mustAdmit(t, s, "b")
	b2 := mustAdmit(t, s, "b")
	c := enqueueWaiter(t, s, "c")
	if err := s.check(); err != nil {
		t.Fatal(err)
	}
	// b gives back a slot: the hog is at its share, so c, behind six of its
	// waiters, gets it.
	b1()
	c.admitted(t, "c behind the burst")
	for _, q := range burst {
		if !q.pending() {
			t.Fatal("the burst went past its share")
		}
	}
	// The hog gives back a slot: its first waiter takes it.
	hog[0]()
	burst[0].admitted(t, "the hog's first waiter")
	if running, waiting, held := s.state("hog"); running != 4 || waiting != 5 || held != 2 {
		t.Fatalf("running %d, waiting %d, hog holds %d; want 4, 5, 2", running, waiting, held)
	}
	// With the hog at its share and a slot free, b is still admitted at once.
	b2()
	b3 := mustAdmit(t, s, "b")
	if err := s.check(); err != nil {
		t.Fatal(err)
	}
	for _, q := range burst[1:] {
		q.cancel()
		if err := <-q.err; !errors.Is(err, ErrOverloaded) || !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled waiter: %v", err)
		}
	}
	close(burst[0].done)
	close(c.done)
	hog[1]()
	b3()
	waitFor(t, func() bool { running, _, _ := s.state(""); return running == 0 })
	allFree(t, s)
}

// TestSlotsLeaveQueue: a waiter whose wait runs out, or whose context ends,
// leaves the queue — from its head, middle or tail — and the next release
// goes to the next waiter still there; no slot is lost.
func TestSlotsLeaveQueue(t *testing.T) {
	for _, leaving := range []int{0, 1, 2} {
		t.Run(fmt.Sprint("cancel waiter ", leaving), func(t *testing.T) {
			s := newSlots(1, -1).withWait(time.Minute)
			hold := mustAdmit(t, s, "a")
			var qs []*queued
			for i := range 3 {
				qs = append(qs, enqueueWaiter(t, s, fmt.Sprint("w", i)))
			}
			qs[leaving].cancel()
			if err := <-qs[leaving].err; !errors.Is(err, ErrOverloaded) || !errors.Is(err, pdp.ErrEvaluationFailed) || !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled waiter: %v", err)
			}
			if err := s.check(); err != nil {
				t.Fatal(err)
			}
			hold()
			for i, q := range qs {
				if i == leaving {
					continue
				}
				q.admitted(t, fmt.Sprint("waiter ", i))
				close(q.done)
			}
			waitFor(t, func() bool { running, _, _ := s.state(""); return running == 0 })
			allFree(t, s)
		})
	}
	t.Run("wait runs out", func(t *testing.T) {
		s := newSlots(2, -1).withWait(time.Millisecond)
		a, b := mustAdmit(t, s, "a"), mustAdmit(t, s, "b")
		_, err := s.admit(context.Background(), "c")
		if !errors.Is(err, ErrOverloaded) || !errors.Is(err, pdp.ErrEvaluationFailed) || !strings.Contains(err.Error(), "for 1ms") {
			t.Fatalf("after the wait: %v; want ErrOverloaded for 1ms", err)
		}
		a()
		b()
		allFree(t, s)
	})
}

// TestSlotsMaxWaiters: at most maxWaiters queue; the next is refused at
// once and not queued; a place freed in the queue is taken again.
func TestSlotsMaxWaiters(t *testing.T) {
	s := newSlots(1, -1).withWait(time.Minute)
	s.maxWaiters = 2
	hold := mustAdmit(t, s, "a")
	q1, q2 := enqueueWaiter(t, s, "a"), enqueueWaiter(t, s, "b")
	if _, err := s.admit(context.Background(), "c"); !errors.Is(err, ErrOverloaded) || !errors.Is(err, pdp.ErrEvaluationFailed) {
		t.Fatalf("past maxWaiters: %v; want ErrOverloaded at once", err)
	}
	if _, waiting, _ := s.state(""); waiting != 2 {
		t.Fatalf("waiting %d after a refusal, want 2", waiting)
	}
	q1.cancel()
	<-q1.err
	q3 := enqueueWaiter(t, s, "c")
	hold()
	q2.admitted(t, "second waiter")
	close(q2.done)
	q3.admitted(t, "third waiter")
	close(q3.done)
	waitFor(t, func() bool { running, _, _ := s.state(""); return running == 0 })
	allFree(t, s)
}

// TestSlotsStress: many goroutines of a few tenants take and give back
// slots with waits short enough to run out as slots are handed over, and
// contexts cancelled at random moments (so releases race with waiters
// leaving: a slot handed to a waiter that is leaving must be passed on, not
// lost). The invariants hold throughout — never more running than the
// total or than a tenant's share, never a free slot a queued waiter could
// take — and afterwards every slot is back.
func TestSlotsStress(t *testing.T) {
	s := newSlots(4, 2).withWait(100 * time.Microsecond)
	const goroutines, rounds = 24, 400
	var holding atomic.Int64
	var admitted, refused atomic.Int64
	var failure atomic.Value
	fail := func(err error) { failure.CompareAndSwap(nil, err) }
	// Until both outcomes were seen (a quiet run may never contend), within
	// a bound.
	for pass := 0; admitted.Load() == 0 || refused.Load() == 0; pass++ {
		if pass == 20 {
			t.Fatalf("%d admitted, %d refused in 20 passes: the stress did not contend", admitted.Load(), refused.Load())
		}
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				tenant := fmt.Sprint("t", g%3)
				rng := rand.New(rand.NewPCG(uint64(g), uint64(pass)))
				for range rounds {
					ctx, cancel := context.WithCancel(context.Background())
					if rng.IntN(3) == 0 {
						go func() {
							runtime.Gosched()
							cancel()
						}()
					}
					release, err := s.admit(ctx, tenant)
					if err != nil {
						if !errors.Is(err, ErrOverloaded) || !errors.Is(err, pdp.ErrEvaluationFailed) {
							fail(fmt.Errorf("admit: %v", err))
						}
						refused.Add(1)
						cancel()
						continue
					}
					admitted.Add(1)
					if n := holding.Add(1); n > int64(s.total) {
						fail(fmt.Errorf("%d evaluations hold a slot, of %d", n, s.total))
					}
					if err := s.check(); err != nil {
						fail(err)
					}
					runtime.Gosched() // hold the slot a moment, let others queue
					holding.Add(-1)
					release()
					cancel()
				}
			})
		}
		wg.Wait()
		if err, _ := failure.Load().(error); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d admitted, %d refused", admitted.Load(), refused.Load())
	allFree(t, s)
}

// TestSlotsHandOffRace: a slot handed to a waiter at the moment it leaves
// is not lost. Whose context ends as it is handed a slot passes it on to
// the next waiter (or, if it saw the slot first, holds it); whose wait
// runs out as it is handed a slot keeps it. The release is made while the
// waiter is already leaving: its context has ended (or its wait run out)
// with s.mu held, so it can only learn of it after the hand-off.
func TestSlotsHandOffRace(t *testing.T) {
	t.Run("cancelled", func(t *testing.T) {
		passedOn := 0
		for range 50 {
			s := newSlots(1, -1).withWait(time.Minute)
			mustAdmit(t, s, "a") // released below, under the lock
			a, b := enqueueWaiter(t, s, "a"), enqueueWaiter(t, s, "b")
			s.mu.Lock()
			a.cancel()
			s.releaseLocked("a") // hands the slot to a
			s.mu.Unlock()
			select {
			case err := <-a.err:
				if err == nil { // a saw the slot before its context: it holds it
					close(a.done)
					b.admitted(t, "b after a")
				} else {
					if !errors.Is(err, ErrOverloaded) || !errors.Is(err, context.Canceled) {
						t.Fatalf("cancelled waiter: %v", err)
					}
					passedOn++
					b.admitted(t, "b, passed the slot a no longer wanted")
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the cancelled waiter did not return in 30 s")
			}
			close(b.done)
			waitFor(t, func() bool { running, _, _ := s.state(""); return running == 0 })
			allFree(t, s)
		}
		if passedOn == 0 {
			t.Fatal("in 50 rounds no cancelled waiter passed its slot on: the race was not exercised")
		}
		t.Logf("%d of 50 passed on", passedOn)
	})
	t.Run("wait ran out", func(t *testing.T) {
		const wait = 20 * time.Millisecond
		for round := 0; ; round++ {
			if round == 100 {
				t.Fatal("in 100 rounds the waiter never was still queued when its wait ran out")
			}
			s := newSlots(1, -1).withWait(wait)
			hold := mustAdmit(t, s, "a")
			start := time.Now()
			a := enqueueWaiter(t, s, "a")
			s.mu.Lock()
			if s.waiting != 1 { // too slow: it timed out already
				s.mu.Unlock()
				<-a.err
				hold()
				continue
			}
			for time.Since(start) < 2*wait { // its timer fires meanwhile
			}
			s.releaseLocked("a")
			s.mu.Unlock()
			a.admitted(t, "a waiter handed a slot as its wait ran out")
			close(a.done)
			waitFor(t, func() bool { running, _, _ := s.state(""); return running == 0 })
			allFree(t, s)
			return
		}
	})
}
