package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/test/scale"
)

// decisionEvents counts the trace events of a's decision as Evaluate runs
// it (the hinted query): a noise-free measure of the Rego work, ~0.37 µs
// of CPU per event on a 2-core machine.
func decisionEvents(tb testing.TB, e *Engine, a pdp.Action) int {
	return decisionEventsWith(tb, e, a, nil)
}

// decisionEventsWith is decisionEvents with the hinted input changed by
// edit (nil: as Evaluate makes it).
func decisionEventsWith(tb testing.TB, e *Engine, a pdp.Action, edit func(ast.Value) ast.Value) int {
	tb.Helper()
	pq, err := e.entry(tb.Context(), noop.Span{}, a.TenantID, a.AgentID)
	if err != nil {
		tb.Fatal(err)
	}
	input, params, err := inputAndParams(a)
	if err != nil {
		tb.Fatal(err)
	}
	wrapped, ok := hintedInput(pq.hinter, a, input, params)
	if !ok || pq.hinted == nil {
		tb.Fatalf("%+v: not hinted", a)
	}
	if edit != nil {
		wrapped = edit(wrapped)
	}
	buf := topdown.NewBufferTracer()
	if _, err := pq.hinted.Eval(tb.Context(), rego.EvalParsedInput(wrapped), rego.EvalQueryTracer(buf)); err != nil {
		tb.Fatal(err)
	}
	return len(*buf)
}

// TestDecisionEvents logs the mean trace events of scale M's decisions by
// the number of violations (BenchmarkDecisionFired's buckets); run with -v.
func TestDecisionEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("a measurement")
	}
	s := scale.M()
	e := loadScale(t, s, Config{CacheSize: 20000, Timeout: 10 * time.Second})
	events, count, ruled := map[string]int{}, map[string]int{}, map[string]int{}
	total, totalRuled := 0, 0
	tenants := map[string]*pdp.TenantPolicies{}
	for i := range s.Tenants {
		tenants[s.Tenants[i].TenantID] = &s.Tenants[i]
	}
	for _, a := range s.Actions {
		d, err := e.Evaluate(t.Context(), a)
		if err != nil {
			t.Fatal(err)
		}
		k := fmt.Sprint(min(len(d.Violations), 3))
		n := decisionEvents(t, e, a)
		events[k] += n
		count[k]++
		total += n
		n = decisionEventsWith(t, e, a, func(v ast.Value) ast.Value { return ruleHints(tenants[a.TenantID], a, v) })
		ruled[k] += n
		totalRuled += n
	}
	for _, k := range []string{"0", "1", "2", "3"} {
		if count[k] > 0 {
			t.Logf("fired=%s: %d decisions, %.0f events per decision (%.0f with rule hints, test-built)", k, count[k],
				float64(events[k])/float64(count[k]), float64(ruled[k])/float64(count[k]))
		}
	}
	t.Logf("all: %.0f events per decision (%.0f with rule hints)", float64(total)/float64(len(s.Actions)), float64(totalRuled)/float64(len(s.Actions)))
}
