package adapter

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// TestCandidatesTerm: the object CandidatesTerm hands to the library names
// the same policies as Candidates, in the same order, whether built or
// remembered, and a view remembers at most maxCandidateObjects objects.
func TestCandidatesTerm(t *testing.T) {
	tp := &pdp.TenantPolicies{TenantID: "t", Revision: 1, Mode: pdp.ModeEnforcement}
	const n = 12 // 2^12 sets of candidates: far past the bound
	for i := range n {
		tp.Policies = append(tp.Policies, pdp.Policy{Name: fmt.Sprintf("p%02d", i), StepTypes: []string{"ACTION"}, Enabled: true, Version: 1,
			Rules: []pdp.Rule{{Match: fmt.Sprintf("word%02dx", i), Severity: pdp.SeverityLow, OnViolation: pdp.OutcomeWarn, Confidence: 0.5}}})
	}
	tp.Policies = append(tp.Policies, pdp.Policy{Name: "p00", AgentID: "bot", StepTypes: []string{"ACTION"}, Enabled: true, Version: 1,
		Rules: []pdp.Rule{{Match: "word00x", Severity: pdp.SeverityHigh, OnViolation: pdp.OutcomeBlock, Confidence: 0.5}}})
	h := NewHinter(tp)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		var words []string
		for j := range n {
			if r.IntN(2) == 0 {
				words = append(words, fmt.Sprintf("word%02dx", j))
			}
		}
		if i%10 == 0 {
			words = nil // the shared empty object
		}
		text := strings.Join(words, " ")
		agent := []string{"", "bot", "other"}[i%3]
		wantA, wantT := h.Candidates(agent, "action", text)
		for range 2 { // built, then (below the bound) remembered
			obj, ok := h.CandidatesTerm(agent, "action", text).Value.(ast.Object)
			if !ok {
				t.Fatalf("%q: not an object", text)
			}
			if gotA, gotT := names(t, obj.Get(candidatesAgent)), names(t, obj.Get(candidatesTenant)); !slices.Equal(gotA, wantA) || !slices.Equal(gotT, wantT) {
				t.Fatalf("agent %q text %q: CandidatesTerm %v %v, Candidates %v %v", agent, text, gotA, gotT, wantA, wantT)
			}
		}
	}
	for agent, byStep := range h.views {
		for step, v := range byStep {
			if m := v.objects.Load(); m != nil && len(*m) > maxCandidateObjects {
				t.Errorf("view %q/%q remembers %d objects", agent, step, len(*m))
			}
		}
	}
	if h.CandidatesTerm("", "NO_SUCH_STEP", "word01x") != noCandidates {
		t.Error("a step without a view does not get the shared empty object")
	}
}

func names(t *testing.T, term *ast.Term) []string {
	t.Helper()
	arr, ok := term.Value.(*ast.Array)
	if !ok {
		t.Fatalf("%v is not an array", term)
	}
	var out []string
	for i := range arr.Len() {
		out = append(out, string(arr.Elem(i).Value.(ast.String)))
	}
	return out
}
