package engine

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// TestDecisionSpanTracingOff: with a no-op tracer, a decision starts no
// span (no allocation, the context as it was), and with an incoming span
// context its span carries that context, as noop's Start gives it.
func TestDecisionSpanTracingOff(t *testing.T) {
	e := newEngine(t, Config{}, WithTracerProvider(noop.NewTracerProvider()))
	a := pdp.Action{TenantID: "acme", Name: "x"}
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		sctx, span := e.startDecisionSpan(ctx, "engine.Evaluate", a)
		if sctx != ctx || span.IsRecording() {
			t.Fatal("a span was started with tracing off")
		}
		endDecisionSpan(span, nil, nil)
	})
	if allocs != 0 {
		t.Fatalf("a decision's span costs %v allocations with tracing off", allocs)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled})
	parent := trace.ContextWithRemoteSpanContext(ctx, sc)
	sctx, span := e.startDecisionSpan(parent, "engine.Evaluate", a)
	if span.IsRecording() || span.SpanContext().TraceID() != sc.TraceID() || trace.SpanContextFromContext(sctx).TraceID() != sc.TraceID() {
		t.Fatalf("the decision span lost the incoming trace: %v", span.SpanContext())
	}
}
