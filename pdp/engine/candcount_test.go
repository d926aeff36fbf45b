package engine

import (
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/test/scale"
)

var candidateCounts = flag.Bool("hints.counts", false, "run TestCandidateCounts (scale M: candidates and OPA events per decision by rules fired)")

type countTracer struct{ n int }

func (c *countTracer) Enabled() bool               { return true }
func (c *countTracer) TraceEvent(topdown.Event)    { c.n++ }
func (c *countTracer) Config() topdown.TraceConfig { return topdown.TraceConfig{} }

// TestCandidateCounts reports, for scale M's corpus by the number of
// violations (0, 1, 2, 3+): candidate policies per decision, the rules of
// those policies (what the generated modules evaluate), candidate rules
// (adapter.Hinter.CandidateRules: what a rule-level path evaluates), and
// OPA trace events of the engine's hinted query. A measurement, run with
// -hints.counts -v.
func TestCandidateCounts(t *testing.T) {
	if !*candidateCounts {
		t.Skip("a measurement: -hints.counts")
	}
	s := scale.M()
	e := loadScale(t, s, Config{CacheSize: 20000, Timeout: 5 * time.Second})
	rulesOf := map[string]int{} // tenant/agent/name → rules
	for _, tp := range s.Tenants {
		for _, p := range tp.Policies {
			rulesOf[tp.TenantID+"/"+p.AgentID+"/"+p.Name] = len(p.Rules)
		}
	}
	type sums struct{ n, policies, policyRules, rules, events int }
	by := map[string]*sums{}
	for _, a := range s.Actions {
		d, err := e.Evaluate(t.Context(), a)
		if err != nil {
			t.Fatal(err)
		}
		k := fmt.Sprint(min(len(d.Violations), 3))
		if k == "3" {
			k = "3+"
		}
		if by[k] == nil {
			by[k] = &sums{}
		}
		sm := by[k]
		sm.n++
		text, err := actionText(a.Name, a.Params)
		if err != nil {
			t.Fatal(err)
		}
		pq, err := e.entry(t.Context(), noop.Span{}, a.TenantID, a.AgentID)
		if err != nil {
			t.Fatal(err)
		}
		agent, tenant := pq.hinter.Candidates(a.AgentID, a.StepType, foldText(text))
		sm.policies += len(agent) + len(tenant)
		for _, n := range agent {
			sm.policyRules += rulesOf[a.TenantID+"/"+a.AgentID+"/"+n]
		}
		for _, n := range tenant {
			sm.policyRules += rulesOf[a.TenantID+"//"+n]
		}
		sm.rules += countRules(pq, a, foldText(text))
		wrapped, ok := hintedOf(t.Context(), pq.hinter, a)
		if !ok {
			t.Fatal("no hinted input")
		}
		var c countTracer
		if _, err := wrapped.eval(t.Context(), *pq.hinted, rego.EvalQueryTracer(&c)); err != nil {
			t.Fatal(err)
		}
		sm.events += c.n
	}
	t.Logf("scale M, %d actions; per decision, means:", len(s.Actions))
	t.Logf("%-7s %8s %18s %24s %16s %12s", "fired", "actions", "candidate policies", "rules of those policies", "candidate rules", "OPA events")
	for _, k := range []string{"0", "1", "2", "3+"} {
		if sm := by[k]; sm != nil {
			f := func(x int) float64 { return float64(x) / float64(sm.n) }
			t.Logf("%-7s %8d %18.2f %24.2f %16.2f %12.1f", k, sm.n, f(sm.policies), f(sm.policyRules), f(sm.rules), f(sm.events))
		}
	}
}

// countRules is the number of candidate rules of a's view.
func countRules(pq *prepared, a pdp.Action, folded string) int {
	agent, tenant := pq.hinter.CandidateRules(a.AgentID, a.StepType, folded)
	n := 0
	for _, m := range []map[string][]int{agent, tenant} {
		for _, idx := range m {
			n += len(idx)
		}
	}
	return n
}

// BenchmarkHintedInput measures building the hinted evaluation (the
// action text, folding, the candidates, the built-ins' facts) over scale
// M's corpus; the decision input included (its params lazy).
func BenchmarkHintedInput(b *testing.B) {
	s := scale.M()
	e := loadScale(b, s, Config{CacheSize: 20000, Timeout: 5 * time.Second})
	type prep struct {
		pq *prepared
		a  pdp.Action
	}
	var ps []prep
	for _, a := range s.Actions {
		pq, err := e.entry(b.Context(), noop.Span{}, a.TenantID, a.AgentID)
		if err != nil {
			b.Fatal(err)
		}
		ps = append(ps, prep{pq, a})
	}
	i := 0
	ctx := b.Context()
	done := reportCPU(b)
	for b.Loop() {
		p := ps[i%len(ps)]
		text, err := actionText(p.a.Name, p.a.Params)
		if err != nil {
			b.Fatal(err)
		}
		hintedEval(ctx, p.pq.hinter, p.a, text)
		i++
	}
	done()
}
