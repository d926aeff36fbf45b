package engine

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
)

// noMetrics makes an Eval record into OPA's no-op metrics instead of a
// fresh set of maps per evaluation (nothing reads them).
var noMetrics = rego.EvalMetrics(metrics.NoOp())

// watch bounds one evaluation: it is the topdown.Cancel the Eval checks
// at every step, set when Config.Timeout passes (a timer) or the caller's
// context ends (context.AfterFunc), and it holds the Eval's option slice.
// Watches are pooled with their timer, their bound Cancel and their
// cancel option, so an evaluation allocates none of them, nor the
// context.WithTimeout and topdown.NewCancel it replaces. A watch goes back
// to the pool only when neither callback ran or can still run, so a late
// callback never cancels another evaluation.
type watch struct {
	cancelled atomic.Bool
	deadline  time.Time
	timer     *time.Timer
	cancelFn  func()
	cancelOpt rego.EvalOption
	parent    func() bool // stops the AfterFunc on the caller's context; nil: none
	opts      []rego.EvalOption
}

func (w *watch) Cancel()         { w.cancelled.Store(true) }
func (w *watch) Cancelled() bool { return w.cancelled.Load() }

var watches = sync.Pool{New: func() any {
	w := &watch{opts: make([]rego.EvalOption, 0, 4)}
	w.cancelFn = w.Cancel
	w.cancelOpt = rego.EvalExternalCancel(w)
	w.timer = time.AfterFunc(time.Hour, w.cancelFn)
	w.timer.Stop()
	return w
}}

// startWatch returns a watch that cancels an evaluation once timeout has
// passed or ctx ends.
func startWatch(ctx context.Context, timeout time.Duration) *watch {
	w := watches.Get().(*watch)
	w.deadline = time.Now().Add(timeout)
	w.timer.Reset(timeout)
	if ctx.Done() != nil {
		w.parent = context.AfterFunc(ctx, w.cancelFn)
	}
	return w
}

// stop ends the watch and says why the evaluation's result cannot be
// trusted: context.DeadlineExceeded once the deadline has passed (by the
// clock, even if the timer has not run yet), the context's error once it
// has ended; nil if neither. The watch is not used after stop.
func (w *watch) stop(ctx context.Context) error {
	timerStopped := w.timer.Stop()
	parentStopped := w.parent == nil || w.parent()
	var err error
	switch {
	case !timerStopped || !time.Now().Before(w.deadline):
		err = context.DeadlineExceeded
	case ctx.Err() != nil:
		err = context.Cause(ctx)
	}
	clear(w.opts) // drop the input
	w.opts = w.opts[:0]
	w.parent = nil
	if timerStopped && parentStopped {
		w.cancelled.Store(false)
		watches.Put(w)
	}
	return err
}
