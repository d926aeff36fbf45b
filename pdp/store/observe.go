package store

import (
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// OpObserver is told how long each store call took, by the wrapper Traced
// returns (main passes the metrics with WithOpObserver). op is the method
// name, e.g. "InsertAction": a fixed set, never data. Implementations must
// be fast and safe for concurrent use.
type OpObserver interface {
	ObserveStoreOp(op string, took time.Duration)
}

// AuditBatchObserver is told the size of every group commit of audit
// appends (see AuditLog): how many writes shared one transaction. Drivers
// that group-commit take one as an option and call it once per batch,
// after it is answered (committed, or failed as a whole), from the
// committer; pdp/metrics implements it
// as the histogram gatehouse_audit_append_batch_size. Implementations must
// be fast and safe for concurrent use.
type AuditBatchObserver interface {
	ObserveAuditBatch(size int)
}

// TraceOption configures the wrapper Traced returns.
type TraceOption func(*traced)

// WithOpObserver makes the wrapper report every call's duration to o,
// under the span's name without "store." (the same names, so a slow
// operation on a dashboard is the span to look for in a trace).
func WithOpObserver(o OpObserver) TraceOption {
	return func(t *traced) { t.obs = o }
}

// newTraced is the one constructor of traced, for Traced and the wrappers
// built on it.
func newTraced(s Store, tp trace.TracerProvider, opts ...TraceOption) *traced {
	_, off := tp.(noop.TracerProvider)
	t := &traced{s: s, tr: tp.Tracer("github.com/gatehouse-pdp/gatehouse/pdp/store"), off: off}
	for _, o := range opts {
		o(t)
	}
	return t
}
