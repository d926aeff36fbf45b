package adapter

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/test/scale"
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

// TestRulesTerm: RulesTerm names the rules CandidateRules finds, ascending,
// whether built or remembered, in views small enough to remember and in
// views of more than maxMemoRules rules; a view remembers at most
// maxCandidateObjects objects; concurrent callers agree (run with -race).
// Literal-free rules are candidates only when their conditions hold.
func TestRulesTerm(t *testing.T) {
	patterns := []string{`\d{3}-\d{2}-\d{4}`, `\d{4}[ -]?\d{4}[ -]?\d{4}`, `[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}`, `word%02dx`, `(alpha|beta)\s+\d`}
	build := func(policies, rules int) *Hinter {
		tp := &pdp.TenantPolicies{TenantID: "t", Revision: 1, Mode: pdp.ModeEnforcement}
		for i := range policies {
			p := pdp.Policy{Name: fmt.Sprintf("p%02d", i), StepTypes: []string{"ACTION"}, Enabled: true, Version: 1}
			for j := range rules {
				m := patterns[(i+j)%len(patterns)]
				if strings.Contains(m, "%") && !strings.Contains(m, "%+") {
					m = fmt.Sprintf(m, (i*rules+j)%20)
				}
				r := pdp.Rule{Match: m, Severity: pdp.SeverityLow, OnViolation: pdp.OutcomeWarn, Confidence: 0.5}
				if j%4 == 3 {
					r.ContextRequires = `\d{2}:\d{2}`
				}
				p.Rules = append(p.Rules, r)
			}
			if i%3 == 2 {
				p.AgentID = "bot"
			}
			tp.Policies = append(tp.Policies, p)
		}
		return NewHinter(tp)
	}
	pieces := []string{"123-45-6789", "4111 1111 1111 1111", "a@b.co", "alpha 7", "12:30", "١٢٣-٤٥-٦٧٨٩", "＠", "1234", "-", "x"}
	for _, h := range []*Hinter{build(6, 4), build(30, 12)} {
		r := rand.New(rand.NewPCG(1, 3))
		for i := range 2000 {
			var words []string
			for range r.IntN(5) {
				words = append(words, pieces[r.IntN(len(pieces))])
			}
			for j := range 20 {
				if r.IntN(8) == 0 {
					words = append(words, fmt.Sprintf("word%02dx", j))
				}
			}
			text := Fold(strings.Join(words, " "))
			agent := []string{"", "bot", "other"}[i%3]
			wantA, wantT := h.CandidateRules(agent, "action", text)
			policiesA, policiesT := h.Candidates(agent, "action", text)
			for range 2 {
				obj := h.RulesTerm(agent, "action", text).Value.(ast.Object)
				if !sameRules(t, obj.Get(candidatesAgent), wantA) || !sameRules(t, obj.Get(candidatesTenant), wantT) {
					t.Fatalf("agent %q text %q: RulesTerm %v, CandidateRules %v %v", agent, text, obj, wantA, wantT)
				}
			}
			if len(wantA) != len(policiesA) || len(wantT) != len(policiesT) {
				t.Fatalf("text %q: candidate rules %v %v, candidate policies %v %v", text, wantA, wantT, policiesA, policiesT)
			}
		}
		for _, byStep := range h.views {
			for _, v := range byStep {
				if m := v.ruleObjects.Load(); m != nil && (len(*m) > maxCandidateObjects || v.nrules > maxMemoRules) {
					t.Errorf("a view of %d rules remembers %d objects", v.nrules, len(*m))
				}
			}
		}
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := range 200 {
					text := pieces[(g+i)%len(pieces)] + " " + pieces[i%len(pieces)]
					a, tn := h.CandidateRules("", "ACTION", text)
					obj := h.RulesTerm("", "ACTION", text).Value.(ast.Object)
					if !sameRules(t, obj.Get(candidatesAgent), a) || !sameRules(t, obj.Get(candidatesTenant), tn) {
						t.Errorf("concurrent RulesTerm %v, CandidateRules %v %v", obj, a, tn)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	h := build(1, 2) // p00: the SSN rule, the card rule
	if a, tn := h.CandidateRules("", "ACTION", Fold(`{"action":"send","params":{"note":"ticket 4821 - 2 days"}}`)); len(a)+len(tn) != 0 {
		t.Errorf("no SSN or card number, yet candidates %v %v", a, tn)
	}
	if _, tn := h.CandidateRules("", "ACTION", Fold(`{"note":"ssn ١٢٣-٤٥-٦٧٨٩"}`)); !slices.Equal(tn["p00"], []int{0}) {
		t.Errorf("an SSN in Arabic-Indic digits: candidates %v, want p00 rule 0", tn)
	}
	if _, tn := h.CandidateRules("", "ACTION", Fold("card １２３４-５６７８-９０１２-３４５６")); !slices.Equal(tn["p00"], []int{1}) {
		t.Errorf("a full-width card number: candidates %v, want p00 rule 1", tn)
	}
	if h.RulesTerm("", "NO_SUCH_STEP", "x") != noRules || h.RulesTerm("", "ACTION", "nothing") != noRules {
		t.Error("no candidates: not the shared empty object")
	}
}

// sameRules: term is the object {name: [indexes]} of want.
func sameRules(t *testing.T, term *ast.Term, want map[string][]int) bool {
	t.Helper()
	obj, ok := term.Value.(ast.Object)
	if !ok || obj.Len() != len(want) {
		return false
	}
	for name, idx := range want {
		v := obj.Get(ast.StringTerm(name))
		if v == nil {
			return false
		}
		arr := v.Value.(*ast.Array)
		if arr.Len() != len(idx) {
			return false
		}
		for i, j := range idx {
			if arr.Elem(i).Value.Compare(ast.InternedTerm(j).Value) != 0 {
				return false
			}
		}
	}
	return true
}

// hinterItem is one action of scale M with its tenant's Hinter.
type hinterItem struct {
	h             *Hinter
	agent, folded string
}

// hinterCorpus is scale M's actions with their tenants' Hinters and their
// texts (action and params as JSON, folded).
func hinterCorpus(b *testing.B) []hinterItem {
	s := scale.M()
	hinters := map[string]*Hinter{}
	for i := range s.Tenants {
		hinters[s.Tenants[i].TenantID] = NewHinter(&s.Tenants[i])
	}
	var items []hinterItem
	for _, a := range s.Actions {
		j, err := json.Marshal(map[string]any{"action": a.Name, "params": a.Params})
		if err != nil {
			b.Fatal(err)
		}
		items = append(items, hinterItem{hinters[a.TenantID], a.AgentID, Fold(string(j))})
	}
	return items
}

// BenchmarkHinterTerms: CandidatesTerm and RulesTerm over scale M's
// tenants and action texts (~500 bytes, as JSON, folded): the literal
// pass, the conditions' pass when a rule needs it, the remembered object.
func BenchmarkHinterTerms(b *testing.B) {
	items := hinterCorpus(b)
	for _, bc := range []struct {
		name string
		f    func(h *Hinter, agent, folded string) *ast.Term
	}{
		{"CandidatesTerm", func(h *Hinter, agent, folded string) *ast.Term { return h.CandidatesTerm(agent, "ACTION", folded) }},
		{"RulesTerm", func(h *Hinter, agent, folded string) *ast.Term { return h.RulesTerm(agent, "ACTION", folded) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				it := items[i%len(items)]
				bc.f(it.h, it.agent, it.folded)
				i++
			}
		})
	}
}

// BenchmarkHinterMatch: the literal pass alone (Hinter.match) over scale
// M's tenants and folded action texts, cycling through the tenants as a
// server does.
func BenchmarkHinterMatch(b *testing.B) {
	items := hinterCorpus(b)
	var buf [256]bool
	i := 0
	for b.Loop() {
		it := items[i%len(items)]
		it.h.match(it.folded, buf[:0])
		i++
	}
}
