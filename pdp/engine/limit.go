package engine

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// ErrOverloaded is returned, wrapped together with pdp.ErrEvaluationFailed
// (so a caller that only knows the latter still fails closed), when
// Config.MaxConcurrent evaluations are already running: the action is
// refused at once instead of queueing behind them.
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
// Fairness: a tenant that sends more concurrent evaluations than its
// share (expensive ones, say: every pattern at the adapter's cost bound)
// is refused past perTenant, at once, like an overloaded server, and the
// total−perTenant slots it cannot take stay free for every other tenant.
// So one tenant's burst turns only its own decisions into 503s; other
// tenants are refused only when the server as a whole is overloaded by
// several tenants at once. The default share is half the slots
// (Config.MaxConcurrentPerTenant).
type slots struct {
	total, perTenant int // perTenant <= 0: no per-tenant bound

	mu       sync.Mutex
	running  int
	byTenant map[string]int
}

func newSlots(n, perTenant int) *slots {
	if n <= 0 {
		return nil
	}
	if perTenant > n {
		perTenant = n
	}
	return &slots{total: n, perTenant: perTenant, byTenant: map[string]int{}}
}

// admit takes a slot for tenant, or fails at once with ErrOverloaded.
func (s *slots) admit(tenant string) (release func(), err error) {
	if s == nil {
		return func() {}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running >= s.total {
		return nil, fmt.Errorf("%w: %w (%d running)", pdp.ErrEvaluationFailed, ErrOverloaded, s.total)
	}
	if s.perTenant > 0 && s.byTenant[tenant] >= s.perTenant {
		return nil, fmt.Errorf("%w: %w (the tenant holds %d of %d evaluation slots, its share)", pdp.ErrEvaluationFailed, ErrOverloaded, s.perTenant, s.total)
	}
	s.running++
	s.byTenant[tenant]++
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.running--
		if s.byTenant[tenant]--; s.byTenant[tenant] == 0 {
			delete(s.byTenant, tenant)
		}
	}, nil
}
