package engine

import (
	"errors"
	"fmt"
	"runtime"

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

// slots bounds the evaluations running at once: a token per evaluation.
// It covers the query's Eval only — compiling on a miss and waiting for
// another caller's compile do not take a slot, so the burst of requests
// that follows a policy write waits for its one compile instead of being
// refused. A nil slots is unbounded.
type slots chan struct{}

func newSlots(n int) slots {
	if n <= 0 {
		return nil
	}
	return make(slots, n)
}

// admit takes a slot, or fails at once with ErrOverloaded.
func (s slots) admit() (release func(), err error) {
	if s == nil {
		return func() {}, nil
	}
	select {
	case s <- struct{}{}:
		return func() { <-s }, nil
	default:
		return nil, fmt.Errorf("%w: %w (%d running)", pdp.ErrEvaluationFailed, ErrOverloaded, cap(s))
	}
}
