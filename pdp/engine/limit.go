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
// means real overload.
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
// Each release wakes every waiter to re-check (the waiters are bounded).
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

	mu       sync.Mutex
	running  int
	waiting  int
	byTenant map[string]int
	freed    chan struct{} // closed (and replaced) by every release
}

func newSlots(n, perTenant int) *slots {
	if n <= 0 {
		return nil
	}
	if perTenant > n {
		perTenant = n
	}
	return &slots{total: n, perTenant: perTenant, maxWaiters: 4 * n, byTenant: map[string]int{}, freed: make(chan struct{})}
}

// withWait makes s wait up to d for a slot before refusing (0: refuse at
// once). It returns s; a nil s stays nil.
func (s *slots) withWait(d time.Duration) *slots {
	if s != nil {
		s.wait = d
	}
	return s
}

// admit takes a slot for tenant, waiting for one up to s.wait or until
// ctx ends, else fails with ErrOverloaded (wrapped with
// pdp.ErrEvaluationFailed).
func (s *slots) admit(ctx context.Context, tenant string) (release func(), err error) {
	if s == nil {
		return func() {}, nil
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	s.mu.Lock()
	for {
		if why := s.blocked(tenant); why == "" {
			s.running++
			s.byTenant[tenant]++
			s.mu.Unlock()
			return func() { s.release(tenant) }, nil
		} else if s.wait <= 0 || (timer == nil && s.waiting >= s.maxWaiters) {
			s.mu.Unlock()
			return nil, fmt.Errorf("%w: %w (%s)", pdp.ErrEvaluationFailed, ErrOverloaded, why)
		} else {
			if timer == nil {
				timer = time.NewTimer(s.wait)
				s.waiting++
				defer func() { s.mu.Lock(); s.waiting--; s.mu.Unlock() }()
			}
			freed := s.freed
			s.mu.Unlock()
			select {
			case <-freed:
			case <-timer.C:
				return nil, fmt.Errorf("%w: %w (%s, for %v)", pdp.ErrEvaluationFailed, ErrOverloaded, why, s.wait)
			case <-ctx.Done():
				return nil, fmt.Errorf("%w: %w (%s): %w", pdp.ErrEvaluationFailed, ErrOverloaded, why, context.Cause(ctx))
			}
			s.mu.Lock()
		}
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

func (s *slots) release(tenant string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running--
	if s.byTenant[tenant]--; s.byTenant[tenant] == 0 {
		delete(s.byTenant, tenant)
	}
	close(s.freed)
	s.freed = make(chan struct{})
}
