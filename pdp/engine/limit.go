package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// ErrOverloaded is returned, wrapped together with pdp.ErrEvaluationFailed
// (so a caller that only knows the latter still fails closed), when
// Config.MaxConcurrent evaluations are already running (or the tenant holds
// its share of them) and none frees up within a fifth of the evaluation
// timeout: the
// action is refused instead of queueing without bound.
var ErrOverloaded = errors.New("too many concurrent evaluations")

// maxMaxConcurrent bounds Config.MaxConcurrent.
const maxMaxConcurrent = 1 << 16

// DefaultMaxConcurrent is 4 × GOMAXPROCS, the default of
// Config.MaxConcurrent. Evaluation is CPU work, so more at once than there
// are processors only queue inside the Go scheduler and make every
// decision late; the factor 4 leaves room for evaluations a moment of
// contention (a GC assist, a preemption) holds up, so a bound that is hit
// means real overload. Measured with the FIFO hand-off (the load tool,
// scale M, 16 clients, GOMAXPROCS=1, on a busy machine), 2 × GOMAXPROCS
// did no better — 479 requests/s, p99 135 ms, 7 errors against 4×'s 510,
// 118 ms, 6 in the same run — and below 2× one tenant's share (half the
// slots) could not keep every processor busy, so the factor stays 4.
func DefaultMaxConcurrent() int { return 4 * runtime.GOMAXPROCS(0) }

// slots bounds the evaluations running at once: a token per evaluation,
// and at most perTenant of them held by one tenant. It covers the query's
// Eval only — compiling on a miss and waiting for another caller's compile
// do not take a slot, so the burst of requests that follows a policy write
// waits for its one compile instead of being refused. A nil *slots is
// unbounded.
//
// Waiting: an evaluation that finds no slot for it (the server is full, or
// its tenant holds its share) waits for one up to wait (a fifth of the
// engine's evaluation timeout: 10 ms by default), then fails with
// ErrOverloaded; so a moment of
// contention — sixteen clients of one tenant on a two-core server — queues
// for a few milliseconds instead of turning into 503s, and only sustained
// overload is refused. At most maxWaiters evaluations wait at once; past
// that they are refused at once, so a flood cannot pile up goroutines.
//
// The waiters form a FIFO queue, and a slot is handed over, not fought
// for: a release gives its slot directly to the first waiter in arrival
// order whose tenant is under its share (skipping only waiters of tenants
// at their share, so those never hold up other tenants behind them) and
// wakes that one goroutine alone. The slot is counted as the waiter's
// before it runs again, so an evaluation that arrives meanwhile finds no
// free slot and queues behind it: no newcomer barges past a waiter that
// could take a slot (whenever a slot is free, no queued waiter may take
// it). A waiter whose wait runs out or whose context ends leaves the
// queue; one that is handed a slot just as its wait runs out keeps it (it
// was first in line), and one whose context ended passes it on to the
// next, so no slot is lost to a race.
//
// Fairness: a tenant that sends more concurrent evaluations than its share
// (expensive ones, say: every pattern at the adapter's cost bound) waits,
// and is refused, past perTenant, and the total−perTenant slots it cannot
// take stay free for every other tenant, which is admitted at once. So one
// tenant's burst turns only its own decisions into 503s; other tenants
// wait only when the server as a whole is overloaded by several tenants at
// once. The default share is half the slots (Config.MaxConcurrentPerTenant).
type slots struct {
	total, perTenant int // perTenant <= 0: no per-tenant bound
	wait             time.Duration
	maxWaiters       int

	mu         sync.Mutex
	running    int            // slots held, including those handed to a waiter not yet awake
	waiting    int            // waiters in the queue
	byTenant   map[string]int // slots held per tenant
	head, tail *waiter        // the queue, in arrival order
}

// waiter is an evaluation queued for a slot. Its fields but ready and
// timer are guarded by slots.mu.
type waiter struct {
	tenant     string
	granted    bool          // a release handed it a slot (it is no longer queued)
	ready      chan struct{} // capacity 1: sent to once, when granted
	timer      *time.Timer   // its wait
	prev, next *waiter
}

// waiters recycles waiters (their channel and timer): a waiter is put back
// only with an empty channel and a stopped timer.
var waiters = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &waiter{ready: make(chan struct{}, 1), timer: t}
}}

func newSlots(n, perTenant int) *slots {
	if n <= 0 {
		return nil
	}
	if perTenant > n {
		perTenant = n
	}
	return &slots{total: n, perTenant: perTenant, maxWaiters: 4 * n, byTenant: map[string]int{}}
}

// withWait makes s wait up to d for a slot before refusing (0: refuse at
// once). It returns s; a nil s stays nil.
func (s *slots) withWait(d time.Duration) *slots {
	if s != nil {
		s.wait = d
	}
	return s
}

// admit is acquire with the release as a function (tests).
func (s *slots) admit(ctx context.Context, tenant string) (release func(), err error) {
	if err := s.acquire(ctx, tenant); err != nil {
		return nil, err
	}
	return func() { s.release(tenant) }, nil
}

// acquire takes a slot for tenant, waiting for one in the queue up to
// s.wait or until ctx ends, else fails with ErrOverloaded (wrapped with
// pdp.ErrEvaluationFailed). The caller gives it back with
// s.release(tenant) (no function value per evaluation to allocate).
func (s *slots) acquire(ctx context.Context, tenant string) error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	why := s.blocked(tenant)
	if why == "" {
		// A free slot: by the hand-off, no queued waiter may take it.
		s.take(tenant)
		s.mu.Unlock()
		return nil
	}
	if s.wait <= 0 || s.waiting >= s.maxWaiters {
		s.mu.Unlock()
		return fmt.Errorf("%w: %w (%s)", pdp.ErrEvaluationFailed, ErrOverloaded, why)
	}
	w := waiters.Get().(*waiter)
	w.tenant = tenant
	s.enqueue(w)
	s.mu.Unlock()

	w.timer.Reset(s.wait)
	select {
	case <-w.ready:
		w.timer.Stop()
		s.recycle(w)
		return nil
	case <-w.timer.C:
		s.mu.Lock()
		if w.granted {
			// Handed a slot as the wait ran out: it was first in line, keep it.
			s.mu.Unlock()
			<-w.ready
			s.recycle(w)
			return nil
		}
		s.dequeue(w)
		s.mu.Unlock()
		s.recycle(w)
		return fmt.Errorf("%w: %w (%s, for %v)", pdp.ErrEvaluationFailed, ErrOverloaded, why, s.wait)
	case <-ctx.Done():
		w.timer.Stop()
		s.mu.Lock()
		if w.granted {
			// Handed a slot it no longer wants: pass it on.
			s.releaseLocked(tenant)
			s.mu.Unlock()
			<-w.ready
		} else {
			s.dequeue(w)
			s.mu.Unlock()
		}
		s.recycle(w)
		return fmt.Errorf("%w: %w (%s): %w", pdp.ErrEvaluationFailed, ErrOverloaded, why, context.Cause(ctx))
	}
}

// blocked says why tenant may not take a slot now, or "". s.mu is held.
func (s *slots) blocked(tenant string) string {
	if s.running >= s.total {
		return fmt.Sprintf("%d running", s.total)
	}
	if s.perTenant > 0 && s.byTenant[tenant] >= s.perTenant {
		return fmt.Sprintf("the tenant holds %d of %d evaluation slots, its share", s.perTenant, s.total)
	}
	return ""
}

// take counts a slot as tenant's. s.mu is held.
func (s *slots) take(tenant string) {
	s.running++
	s.byTenant[tenant]++
}

// release gives back a slot acquire took for tenant; a nil *slots has
// none.
func (s *slots) release(tenant string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.releaseLocked(tenant)
	s.mu.Unlock()
}

// releaseLocked gives back tenant's slot and hands every slot now free to
// the first queued waiters that may take it. s.mu is held.
func (s *slots) releaseLocked(tenant string) {
	s.running--
	if s.byTenant[tenant]--; s.byTenant[tenant] == 0 {
		delete(s.byTenant, tenant)
	}
	// Waiters skipped stay unable to take a slot as later ones are
	// granted (granting only raises the counts), so one pass suffices.
	for w := s.head; w != nil && s.running < s.total; {
		next := w.next
		if s.perTenant <= 0 || s.byTenant[w.tenant] < s.perTenant {
			s.dequeue(w)
			s.take(w.tenant)
			w.granted = true
			w.ready <- struct{}{}
		}
		w = next
	}
}

// enqueue appends w to the queue. s.mu is held.
func (s *slots) enqueue(w *waiter) {
	w.prev, w.next = s.tail, nil
	if s.tail != nil {
		s.tail.next = w
	} else {
		s.head = w
	}
	s.tail = w
	s.waiting++
}

// dequeue removes w from the queue. s.mu is held.
func (s *slots) dequeue(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		s.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		s.tail = w.prev
	}
	w.prev, w.next = nil, nil
	s.waiting--
}

// recycle puts w, out of the queue with an empty channel and a stopped
// timer, back for reuse.
func (s *slots) recycle(w *waiter) {
	w.tenant, w.granted = "", false
	waiters.Put(w)
}
