package engine

import (
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// Observer is told about every decision and every compilation as it
// finishes; pdp/metrics implements it. Its methods run on the evaluating
// goroutine, so they must be fast (a few atomic adds) and safe for
// concurrent use. The cache counters are not pushed through it: Stats
// holds them and a metrics collector reads them when scraped.
type Observer interface {
	// ObserveDecision is called once per Evaluate: d is the decision, or
	// nil when err (always wrapping pdp.ErrEvaluationFailed) is not; took
	// is the whole call, compilation on a miss included.
	ObserveDecision(tenantID string, d *pdp.Decision, err error, took time.Duration)
	// ObserveCompile is called once per compilation of a tenant's policies
	// (a cache miss that prepared a query, or a loaded bundle), failed
	// ones included.
	ObserveCompile(took time.Duration)
}

// WithObserver sets who is told about decisions and compilations
// (default: nobody).
func WithObserver(o Observer) Option {
	return func(e *Engine) error {
		e.obs = o
		return nil
	}
}

// observeDecision reports one Evaluate to the observer, if any.
func (e *Engine) observeDecision(tenantID string, d *pdp.Decision, err error, took time.Duration) {
	if e.obs != nil {
		e.obs.ObserveDecision(tenantID, d, err, took)
	}
}

// recordCompile counts one compilation in Stats and reports it to the
// observer, if any. Every compilation goes through it.
func (e *Engine) recordCompile(took time.Duration) {
	e.compiles.Add(1)
	e.compileNanos.Add(int64(took))
	if e.obs != nil {
		e.obs.ObserveCompile(took)
	}
}
