package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/test/scale"
)

// hitOutcome is what the hit answer (hit.go) does with an action.
type hitOutcome int

const (
	hitNotTried  hitOutcome = iota // no plan: evaluated (or answered by the no-hit answer)
	hitNone                        // planned, no rule fired: the view's allowed
	hitOne                         // planned, one rule fired: the template filled
	hitEvaluated                   // planned, but evaluated (a rule, template or composition not reproduced)
	hitMany                        // planned, two to four hits: composed in Go (composeHits; _composed's n = 2, 3, 4 bodies)
	hitMore                        // planned, five hits or more: composed in Go (composeHits; _composed's n > 4 body)
	hitOutcomes
)

// hitAnswerOf is what Evaluate's hit answer decides for a, without a
// slot: the outcome, the decision (hitNone, hitOne), and for hitOne the
// rule that fired, its match and the view's allowed term.
func hitAnswerOf(t testing.TB, e *Engine, a pdp.Action) (out hitOutcome, d *pdp.Decision, rule *ast.Term, m string, allowed *ast.Term) {
	t.Helper()
	allowedNoHit, pq := noHitAnswer(t, e, a)
	if allowedNoHit != nil {
		return hitNotTried, nil, nil, "", nil
	}
	text, err := actionText(a.Name, a.Params)
	if err != nil || pq.hinted == nil || pq.hinter == nil {
		return hitNotTried, nil, nil, "", nil
	}
	hs := hintsOf(pq.hinter, a, text)
	pq.noHitTerm(&hs)
	plan, ok := pq.hitPlanOf(&hs)
	if !ok {
		return hitNotTried, nil, nil, "", nil
	}
	d, ok, err = pq.hitDecision(&hs, &plan)
	if err != nil {
		t.Fatalf("%+v: %v", a, err)
	}
	if !ok {
		return hitEvaluated, nil, nil, "", nil
	}
	fired := hitsFired(pq, &hs, &plan)
	switch len(fired) {
	case 0:
		return hitNone, d, nil, "", plan.allowed
	case 1:
		return hitOne, d, fired[0].rule, fired[0].match, plan.allowed
	case 2, 3, 4:
		return hitMany, d, nil, "", plan.allowed
	}
	return hitMore, d, nil, "", plan.allowed
}

// hitsFired are the hits of plan on hs's text, FinancialSafety's first.
func hitsFired(pq *prepared, hs *hintSet, plan *hitPlan) []firedHit {
	var fired []firedHit
	if plan.financial {
		fired = append(fired, firedHit{approvalKey, hs.keyword})
	}
	for _, r := range plan.rules[:plan.n] {
		if match, ok := pq.hits.program(r).fire(hs.textStr, hs.foldedStr, hs.ascii); ok {
			fired = append(fired, firedHit{r, match})
		}
	}
	return fired
}

// checkHitAnswer: when the hit answer decides a, its decision is the one
// the hinted evaluation it replaces decodes, field by field; for one hit
// composeHit builds the very result term the evaluation computes; and
// Evaluate's decision equals it. It returns the outcome.
func checkHitAnswer(t testing.TB, e *Engine, a pdp.Action) hitOutcome {
	t.Helper()
	got, err := e.Evaluate(context.Background(), a)
	if err != nil {
		t.Fatalf("%+v: %v", a, err)
	}
	out, d, rule, m, allowed := hitAnswerOf(t, e, a)
	if out == hitNotTried || out == hitEvaluated {
		return out
	}
	_, pq := noHitAnswer(t, e, a)
	w, ok := hintedOf(context.Background(), pq.hinter, a)
	if !ok {
		t.Fatalf("%+v: answered, but the text does not compute", a)
	}
	rs, err := w.eval(context.Background(), *pq.hinted)
	if err != nil {
		t.Fatalf("%+v: the hinted evaluation: %v", a, err)
	}
	term, err := resultTerm(rs)
	if err != nil {
		t.Fatalf("%+v: the hinted evaluation: %v", a, err)
	}
	want, err := decodeAST(term.Value)
	if err != nil {
		t.Fatal(err)
	}
	if !sameDecision(d, want) {
		t.Fatalf("%+v (outcome %d):\nanswered  %+v\nevaluated %+v", a, out, d, want)
	}
	if !sameDecision(got, want) {
		t.Fatalf("%+v (outcome %d):\nEvaluate  %+v\nevaluated %+v", a, out, got, want)
	}
	switch out {
	case hitNone:
		if term.Value.Compare(allowed.Value) != 0 {
			t.Fatalf("%+v: answered the view's allowed %v, the evaluation computes %v", a, allowed, term)
		}
	case hitOne:
		if rule == approvalKey {
			break // FinancialSafety's approval: the decision is compared above
		}
		composed, err := composeHit(allowed, rule, m)
		if err != nil {
			t.Fatal(err)
		}
		if composed.Compare(term.Value) != 0 {
			t.Fatalf("%+v: composed %v, the evaluation computes %v", a, composed, term)
		}
		if len(d.Violations) != 1 || d.Violations[0].Match != m {
			t.Fatalf("%+v: one hit with match %q, decided %+v", a, m, d)
		}
	case hitMany, hitMore:
		// composeHits builds the very result term the evaluation computes.
		text, _ := actionText(a.Name, a.Params)
		hs := hintsOf(pq.hinter, a, text)
		pq.noHitTerm(&hs)
		plan, _ := pq.hitPlanOf(&hs)
		fired := hitsFired(pq, &hs, &plan)
		composed, ok := composeHits(allowed, fired, pq.approval[0])
		if !ok {
			t.Fatalf("%+v: answered, but not composed", a)
		}
		if composed.Value.Compare(term.Value) != 0 {
			t.Fatalf("%+v: composed %v, the evaluation computes %v", a, composed, term)
		}
		if len(d.Violations) != len(fired) {
			t.Fatalf("%+v: %d hits, decided %+v", a, len(fired), d)
		}
	}
	return out
}

// TestHitAnswer: for every action Evaluate decides with the hit answer,
// the answer is the hinted evaluation's result field by field (and for
// one hit, the same result term); over the M corpus and the differential
// test's generated tenants. Both corpora must have one-hit answers, the
// M corpus composed ones too, of two to four hits and of five or more.
func TestHitAnswer(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 31))
	mActions := 0
	if testing.Short() {
		mActions = 1000
	}
	for _, c := range hintCorpora(r, mActions, hintCount(t)) {
		t.Run(c.name, func(t *testing.T) {
			e := engineWith(t, c.tenants)
			var n [hitOutcomes]int
			for _, a := range c.actions {
				n[checkHitAnswer(t, e, a)]++
			}
			t.Logf("%d actions: hit answer with no hit %d, with one hit %d, with 2-4 hits composed %d, with 5+ composed %d, planned but evaluated %d; not planned %d",
				len(c.actions), n[hitNone], n[hitOne], n[hitMany], n[hitMore], n[hitEvaluated], n[hitNotTried])
			if n[hitOne] < len(c.actions)/50 {
				t.Fatalf("too few one-hit answers: %d of %d", n[hitOne], len(c.actions))
			}
			// The M corpus (fixed) has some 40% of them; the generated
			// tenants' views mostly have shadow policies or whitelists
			// (not planned), so there they are checked when they occur
			// (and required by TestHintsDifferential's longer run).
			if c.name == "M" && n[hitMany] < len(c.actions)/50 {
				t.Fatalf("too few composed (2-4 hit) answers: %d of %d", n[hitMany], len(c.actions))
			}
			// Some 5% of the M corpus (50 of its 1,000 decisions).
			if c.name == "M" && n[hitMore] < len(c.actions)/100 {
				t.Fatalf("too few composed (5+ hit) answers: %d of %d", n[hitMore], len(c.actions))
			}
		})
	}
}

// hitTenant is a tenant for the hit answer's adversarial cases: a
// tenant-wide policy whose rule is an alternation of literals ("alts"),
// one with a context, one regex rule with a costly-looking nested
// quantifier.
func hitTenant() pdp.TenantPolicies {
	pol := func(name, match, context string) pdp.Policy {
		return pdp.Policy{Name: name, StepTypes: []string{"ACTION"}, Enabled: true, Version: 1,
			Rules: []pdp.Rule{{Match: match, ContextRequires: context, Severity: pdp.SeverityHigh, OnViolation: pdp.OutcomeBlock, Confidence: 0.9}}}
	}
	return pdp.TenantPolicies{TenantID: "hits", Revision: 1, Mode: pdp.ModeEnforcement, Policies: []pdp.Policy{
		pol("tie", "ab|abc|zz", ""),
		pol("ctx", "deploy", "(prod|live)"),
		pol("nested", "(x+x+)+y", ""),
	}}
}

func hitAction(text string) pdp.Action {
	return pdp.Action{TenantID: "hits", AgentID: "a1", Name: "slack.send_message", Params: map[string]any{"text": text}, StepType: "ACTION"}
}

// TestHitAnswerAdversarial: texts where the Go side could drift from the
// Rego — alternatives that tie at one position, a non-ASCII text (the
// regex instead of the literals), a context, a long text against a
// nested quantifier (the pattern compiled is the rule's own, as OPA
// compiles it) — each answered and equal to the evaluation; two hits are
// evaluated.
func TestHitAnswerAdversarial(t *testing.T) {
	e := engineWith(t, []pdp.TenantPolicies{hitTenant()})
	cases := []struct {
		text  string
		want  hitOutcome
		match string
	}{
		{"say abc now", hitOne, "ab"},                                                      // tie: ab and abc at the same position, ab listed first
		{"say ABC now", hitOne, "AB"},                                                      // the match is the text's, not the folded text's
		{"say \u00e9 ABC now", hitOne, "AB"},                                               // non-ASCII: the regex
		{"\u212a zz", hitOne, "zz"},                                                        // non-ASCII (Kelvin sign) before the match
		{"deploy to prod", hitOne, "deploy"},                                               // context
		{"deploy to staging", hitNone, ""},                                                 // context absent
		{strings.Repeat("x", 20000) + "y", hitOne, ""},                                     // nested quantifier, long text
		{strings.Repeat("x", 20000) + "!", hitNone, ""},                                    // ... without a match
		{"please Refund it", hitOne, "Refund"},                                             // FinancialSafety's approval beside one candidate that does not fire
		{"please R\u00e9fund, no: REFUND it", hitOne, "REFUND"},                            // ... its keyword found on a non-ASCII text
		{"please refund abc", hitMany, ""},                                                 // approval beside two candidates, one fires: two hits composed
		{"please refund " + strings.Repeat("x", 50) + "y", hitMany, ""},                    // approval and a rule: two hits composed
		{"abc and deploy to prod", hitMany, ""},                                            // two hits composed
		{"please refund abc, deploy to prod " + strings.Repeat("x", 9) + "y", hitMany, ""}, // approval and three rules: four hits
		{"nothing here", hitNone, ""},                                                      // the nested quantifier has no literal: always a candidate
	}
	for _, c := range cases {
		a := hitAction(c.text)
		got := checkHitAnswer(t, e, a)
		if got != c.want {
			t.Fatalf("%.40q: outcome %d, want %d", c.text, got, c.want)
		}
		if c.match != "" {
			d := evaluate(t, e, a)
			if len(d.Violations) != 1 || d.Violations[0].Match != c.match {
				t.Fatalf("%.40q: match %q, want %q", c.text, d.Violations[0].Match, c.match)
			}
		}
	}
	// The nested quantifier's program is the rule's pattern, compiled as is.
	_, pq := noHitAnswer(t, e, hitAction("x"))
	rule := pq.tenant.Get(ast.StringTerm("tenant")).Value.(ast.Object).Get(ast.StringTerm("nested")).Value.(ast.Object).
		Get(keyRules).Value.(*ast.Array).Elem(0)
	want, _ := stringAt(rule.Value.(ast.Object), "pattern")
	if got := pq.hits.program(rule).pattern.re.String(); got != want {
		t.Fatalf("compiled %q, the rule's pattern is %q", got, want)
	}
}

// TestHitAnswerRefuses: rule data the Go side does not reproduce is left
// to the evaluation: a pattern or context that does not compile (OPA's
// strict built-in error fails the decision there), an unknown kind, an
// empty or non-ASCII alternative, non-string reason parts, a key not of
// five elements.
func TestHitAnswerRefuses(t *testing.T) {
	e := engineWith(t, []pdp.TenantPolicies{hitTenant()})
	a := hitAction("deploy to prod")
	if checkHitAnswer(t, e, a) != hitOne {
		t.Fatal("the action should be a one-hit answer")
	}
	_, pq := noHitAnswer(t, e, a)
	text, _ := actionText(a.Name, a.Params)
	hs := hintsOf(pq.hinter, a, text)
	pq.noHitTerm(&hs)
	plan, ok := pq.hitPlanOf(&hs)
	if !ok || plan.n != 2 {
		t.Fatalf("plan %+v, %v", plan, ok)
	}
	if kind, _ := stringAt(plan.rules[0].Value.(ast.Object), "kind"); !strings.HasSuffix(kind, "_context") {
		plan.rules[0], plan.rules[1] = plan.rules[1], plan.rules[0]
	}
	good := plan.rules[0].Value.(ast.Object)
	with := func(key string, v *ast.Term) *ast.Term {
		obj := good.Copy()
		obj.Insert(ast.StringTerm(key), v)
		return ast.NewTerm(obj)
	}
	cases := map[string]*ast.Term{
		"pattern does not compile": with("pattern", ast.StringTerm("(?i)deploy(")),
		"context does not compile": with("context", ast.StringTerm("(prod")),
		"unknown kind":             with("kind", ast.StringTerm("glob")),
		"no pattern":               with("pattern", ast.NumberTerm("1")),
	}
	alts := func(lits ...string) *ast.Term {
		t := with("kind", ast.StringTerm("alts_context"))
		obj := t.Value.(ast.Object)
		terms := make([]*ast.Term, len(lits))
		for i, l := range lits {
			terms[i] = ast.StringTerm(l)
		}
		obj.Insert(ast.StringTerm("alts"), ast.ArrayTerm(terms...))
		return t
	}
	cases["empty alternative"] = alts("deploy", "")
	cases["non-ASCII alternative"] = alts("d\u00e9ploy")
	for name, r := range cases {
		p := plan
		p.rules[0] = r
		if d, ok, err := pq.hitDecision(&hs, &p); ok || err != nil || d != nil {
			t.Errorf("%s: answered %+v, %v, %v; want the evaluation", name, d, ok, err)
		}
	}
	// Template refusals: the rule fires, but its result is not composed in Go.
	for name, r := range map[string]*ast.Term{
		"reason parts not strings": with("reason_parts", ast.ArrayTerm(ast.NumberTerm("1"))),
		"key of four":              with("key", ast.ArrayTerm(ast.IntNumberTerm(1), ast.IntNumberTerm(2), ast.IntNumberTerm(3), ast.IntNumberTerm(4))),
		"patch not an object":      with("patch", ast.StringTerm("x")),
	} {
		p := plan
		p.rules[0] = r
		if d, ok, err := pq.hitDecision(&hs, &p); ok || err != nil || d != nil {
			t.Errorf("%s: answered %+v, %v, %v; want the evaluation", name, d, ok, err)
		}
	}
}

// TestHitAnswerFailsClosed: a hit answer fails as an evaluation does —
// past the timeout, with the caller's context ended, without a slot.
func TestHitAnswerFailsClosed(t *testing.T) {
	tp := hitTenant()
	a := hitAction("deploy to prod")
	check := func(t *testing.T, e *Engine, ctx context.Context, want error) {
		t.Helper()
		d, err := e.Evaluate(ctx, a)
		if d != nil || !errors.Is(err, pdp.ErrEvaluationFailed) && !errors.Is(err, ErrOverloaded) || !errors.Is(err, want) {
			t.Fatalf("got %+v, %v; want no decision and an error wrapping %v", d, err, want)
		}
	}
	e := engineWith(t, []pdp.TenantPolicies{tp})
	if checkHitAnswer(t, e, a) != hitOne {
		t.Fatal("the action should be a one-hit answer")
	}
	t.Run("timeout", func(t *testing.T) {
		e := newEngine(t, Config{Timeout: time.Nanosecond})
		e.SetTenant(tp)
		check(t, e, t.Context(), context.DeadlineExceeded)
	})
	t.Run("cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		check(t, e, ctx, context.Canceled)
	})
	t.Run("overloaded", func(t *testing.T) {
		e := newEngine(t, Config{MaxConcurrent: 2, MaxConcurrentPerTenant: 1, Timeout: 50 * time.Millisecond})
		e.SetTenant(tp)
		evaluate(t, e, a)
		release, err := e.slots.admit(t.Context(), tp.TenantID)
		if err != nil {
			t.Fatal(err)
		}
		check(t, e, t.Context(), ErrOverloaded)
		release()
		evaluate(t, e, a)
		if e.slots.running != 0 {
			t.Fatalf("%d slots still held after the answers", e.slots.running)
		}
	})
	t.Run("extended library", func(t *testing.T) {
		e := newEngine(t, Config{}, WithModules(map[string]string{"extra.rego": "package gatehouse.extra\n\nx := 1\n"}))
		e.SetTenant(tp)
		evaluate(t, e, a)
		if out, _, _, _, _ := hitAnswerOf(t, e, a); out != hitNotTried {
			t.Fatal("an engine with modules of its own answered without evaluating")
		}
	})
}

// TestHitTemplateFill: a filled template shares nothing a caller could
// change with the template or another fill.
func TestHitTemplateFill(t *testing.T) {
	e := engineWith(t, []pdp.TenantPolicies{{TenantID: "acme", Revision: 1, Mode: pdp.ModeEnforcement, Policies: scale.SeedPolicies()}})
	a := pdp.Action{TenantID: "acme", AgentID: "billing-bot", Name: "slack.send_message", Params: map[string]any{"text": "my email"}}
	out, d1, rule, m, allowed := hitAnswerOf(t, e, a)
	if out != hitOne {
		t.Fatalf("outcome %d, want a one-hit answer", out)
	}
	_, pq := noHitAnswer(t, e, a)
	tmpl := pq.hits.template(allowed, rule, pq.approval)
	d2 := tmpl.fill(m)
	if !sameDecision(d1, d2) {
		t.Fatalf("fills differ: %+v, %+v", d1, d2)
	}
	*d1.Reason = "changed"
	*d1.TriggeredPolicy = "changed"
	*d1.Severity = "changed"
	d1.Violations[0].Match = "changed"
	d1.PoliciesEvaluated[0] = "changed"
	if d3 := tmpl.fill(m); !sameDecision(d2, d3) {
		t.Fatalf("a caller's change reached the template: %+v", d3)
	}
}

// TestHitAnswerConcurrent: callers racing on a fresh entry's first hit
// answers (its programs and templates built concurrently) all get the
// decision a sequential engine gives (run with -race).
func TestHitAnswerConcurrent(t *testing.T) {
	texts := []string{"say abc now", "deploy to prod", "please Refund it", "say \u00e9 ABC now", "deploy to staging",
		"abc and deploy to prod", "please refund abc"}
	want := map[string]*pdp.Decision{}
	seq := engineWith(t, []pdp.TenantPolicies{hitTenant()})
	for _, s := range texts {
		want[s] = evaluate(t, seq, hitAction(s))
	}
	e := engineWith(t, []pdp.TenantPolicies{hitTenant()})
	evaluate(t, e, hitAction("warm up the entry"))
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			var err error
			for i := range 50 {
				s := texts[(g+i)%len(texts)]
				d, e2 := e.Evaluate(context.Background(), hitAction(s))
				if e2 != nil {
					err = e2
					break
				}
				if !sameDecision(d, want[s]) {
					err = fmt.Errorf("%q: %+v, want %+v", s, d, want[s])
					break
				}
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// composeTenant is a tenant for the composed answer's adversarial cases:
// an agent-scoped policy and a tenant-wide one whose "orchid" rules tie in
// outcome and severity (the scope decides the order, before the names,
// which sort the other way), two rules of one policy, warn-only rules
// (whose hits are the warnings) beside blocking ones (whose patches
// override the warnings with []); "kestrel" warns at critical severity in
// both scopes (a tie the scope breaks), "heron" requires approval at
// gamma's "ledger" severity (a tie the policy name breaks).
func composeTenant() pdp.TenantPolicies {
	rule := func(match string, sev pdp.Severity, out pdp.Outcome, conf float64) pdp.Rule {
		return pdp.Rule{Match: match, Severity: sev, OnViolation: out, Confidence: conf}
	}
	pol := func(name, agent string, rules ...pdp.Rule) pdp.Policy {
		return pdp.Policy{Name: name, AgentID: agent, StepTypes: []string{"ACTION"}, Enabled: true, Version: 1, Rules: rules}
	}
	return pdp.TenantPolicies{TenantID: "compose", Revision: 1, Mode: pdp.ModeEnforcement, Policies: []pdp.Policy{
		pol("zeta", "a1",
			rule("orchid", pdp.SeverityHigh, pdp.OutcomeBlock, 0.9),
			rule("walrus", pdp.SeverityHigh, pdp.OutcomeBlock, 0.9),
			rule("kestrel", pdp.SeverityCritical, pdp.OutcomeWarn, 0.8)),
		pol("alpha", "",
			rule("orchid", pdp.SeverityHigh, pdp.OutcomeBlock, 0.9),
			rule("note", pdp.SeverityLow, pdp.OutcomeWarn, 0.5)),
		pol("beta", "",
			rule("note", pdp.SeverityMedium, pdp.OutcomeWarn, 1),
			rule("memo", pdp.SeverityLow, pdp.OutcomeWarn, 0.3)),
		pol("gamma", "",
			rule("ledger", pdp.SeverityHigh, pdp.OutcomeRequireApproval, 0.9)),
		pol("delta", "",
			rule("kestrel", pdp.SeverityCritical, pdp.OutcomeWarn, 0.7),
			rule("falcon", pdp.SeverityLow, pdp.OutcomeBlock, 0.6),
			rule("heron", pdp.SeverityHigh, pdp.OutcomeRequireApproval, 0.9)),
	}}
}

// TestComposedAnswerAdversarial: decisions with two hits or more composed
// in Go, each equal to the hinted evaluation field by field and as a
// result term (checkHitAnswer): ties across scopes, two rules of one
// policy, warn-only hits, warnings beside patches that override them,
// FinancialSafety's approval among them, four hits (the last of
// _composed's n = 2, 3, 4 bodies, whose warnings are the patches'), five,
// six, seven, eight and twelve hits (its n > 4 body, whose warnings are
// the warn hits' violations) with warn hits among blocking ones and ties,
// and more candidate rules than the four the hit answer once planned.
func TestComposedAnswerAdversarial(t *testing.T) {
	e := engineWith(t, []pdp.TenantPolicies{composeTenant()})
	act := func(agent, text string) pdp.Action {
		return pdp.Action{TenantID: "compose", AgentID: agent, Name: "slack.send_message", Params: map[string]any{"text": text}, StepType: "ACTION"}
	}
	cases := []struct {
		agent, text string
		want        hitOutcome
		hits        int
		warnings    int
	}{
		{"a1", "a orchid", hitMany, 2, 0},                                                    // tie in outcome and severity: agent zeta before tenant alpha
		{"a1", "orchid walrus", hitMany, 3, 0},                                               // two rules of zeta, and alpha's
		{"a2", "orchid note", hitMany, 3, 2},                                                 // no agent policies: alpha's two rules and beta's; block first, warnings kept
		{"a2", "note memo", hitMany, 3, 3},                                                   // warn-only: every hit a warning, in rank order
		{"a2", "memo only", hitOne, 1, 1},                                                    // one warn hit
		{"a2", "ledger note", hitMany, 3, 2},                                                 // require_approval before the warnings
		{"a1", "refund the orchid", hitMany, 3, 0},                                           // FinancialSafety's approval after two blocking hits
		{"a2", "refund the memo", hitMany, 2, 1},                                             // ... before a warning
		{"a2", "refund a ledger note", hitMany, 4, 2},                                        // approval and three rules: four hits
		{"a1", "orchid walrus ledger", hitMany, 4, 0},                                        // four rule hits
		{"a2", "refund a orchid note memo", hitMore, 5, 3},                                   // approval and four rules: five hits, the n > 4 body
		{"a1", "orchid walrus note memo ledger", hitMore, 7, 3},                              // seven candidates, seven hits
		{"a2", "kestrel orchid falcon note", hitMore, 5, 3},                                  // a critical warn first in the text, blocks of two severities
		{"a2", "kestrel orchid falcon note heron", hitMore, 6, 3},                            // six hits
		{"a2", "note kestrel heron orchid falcon ledger", hitMore, 7, 3},                     // heron and ledger tie: delta before gamma
		{"a1", "kestrel orchid falcon note", hitMore, 7, 4},                                  // kestrel in both scopes: zeta's (agent) first
		{"a1", "refund heron kestrel orchid walrus ledger", hitMore, 8, 2},                   // eight hits
		{"a1", "refund orchid walrus note memo ledger kestrel falcon heron", hitMore, 12, 5}, // every rule, and the approval
	}
	for _, c := range cases {
		a := act(c.agent, c.text)
		got := checkHitAnswer(t, e, a)
		if got != c.want {
			t.Fatalf("%s %q: outcome %d, want %d", c.agent, c.text, got, c.want)
		}
		if c.hits == 0 {
			continue
		}
		d := evaluate(t, e, a)
		if len(d.Violations) != c.hits || len(d.Warnings) != c.warnings {
			t.Fatalf("%s %q: %d violations, %d warnings; want %d, %d: %+v", c.agent, c.text, len(d.Violations), len(d.Warnings), c.hits, c.warnings, d)
		}
	}
}

// TestComposeHitsRefuses: compositions the Go side does not reproduce
// are left to the evaluation: one rule's hit twice (the set _hits holds
// it once), a patch without a risk score or with warnings that are not
// an array (array.concat fails in OPA), one hit. Five hits compose, as
// the reference does (the n > 4 body).
func TestComposeHitsRefuses(t *testing.T) {
	e := engineWith(t, []pdp.TenantPolicies{composeTenant()})
	a := pdp.Action{TenantID: "compose", AgentID: "a2", Name: "slack.send_message", Params: map[string]any{"text": "orchid note memo"}, StepType: "ACTION"}
	if out := checkHitAnswer(t, e, a); out != hitMany {
		t.Fatalf("outcome %d, want a composed answer", out)
	}
	_, pq := noHitAnswer(t, e, a)
	text, _ := actionText(a.Name, a.Params)
	hs := hintsOf(pq.hinter, a, text)
	pq.noHitTerm(&hs)
	plan, ok := pq.hitPlanOf(&hs)
	if !ok {
		t.Fatal("not planned")
	}
	fired := hitsFired(pq, &hs, &plan)
	if len(fired) != 4 {
		t.Fatalf("%d hits, want 4", len(fired))
	}
	if _, ok := pq.hits.compose(plan.allowed, fired, pq.approval); !ok {
		t.Fatal("four hits not composed")
	}
	five := append(append([]firedHit{}, fired...), firedHit{approvalKey, "refund"})
	checkComposed(t, pq, plan.allowed, five)
	withPatch := func(r *ast.Term, key string, v *ast.Term) *ast.Term {
		obj := r.Value.(ast.Object).Copy()
		patch := obj.Get(ast.StringTerm("patch")).Value.(ast.Object).Copy()
		if v == nil {
			patch = ast.NewObject()
			patch.Insert(ast.StringTerm("status"), ast.StringTerm("blocked"))
		} else {
			patch.Insert(ast.StringTerm(key), v)
		}
		obj.Insert(ast.StringTerm("patch"), ast.NewTerm(patch))
		return ast.NewTerm(obj)
	}
	for name, hits := range map[string][]firedHit{
		"one rule twice":        {fired[0], fired[1], fired[0]},
		"no risk score":         {{withPatch(fired[0].rule, "", nil), fired[0].match}, fired[1]},
		"warnings not an array": {{withPatch(fired[1].rule, "warnings", ast.StringTerm("x")), fired[1].match}, fired[0]},
		"one hit":               fired[:1],
	} {
		if d, ok := pq.hits.compose(plan.allowed, hits, pq.approval); ok {
			t.Errorf("%s: composed %+v; want the evaluation", name, d)
		}
		if x, ok := composeHits(plan.allowed, hits, pq.approval[0]); ok {
			t.Errorf("%s: the reference composed %v", name, x)
		}
	}
}

// checkComposed: hitMemo.compose composes fired, to the decision the
// reference composeHits's term decodes to, field by field.
func checkComposed(t *testing.T, pq *prepared, allowed *ast.Term, fired []firedHit) {
	t.Helper()
	d, ok := pq.hits.compose(allowed, fired, pq.approval)
	if !ok {
		t.Fatalf("%d hits not composed", len(fired))
	}
	x, ok := composeHits(allowed, fired, pq.approval[0])
	if !ok {
		t.Fatalf("%d hits: the reference does not compose them", len(fired))
	}
	want, err := decodeAST(x.Value)
	if err != nil {
		t.Fatal(err)
	}
	if !sameDecision(d, want) {
		t.Fatalf("%d hits:\ncomposed  %+v\nreference %+v", len(fired), d, want)
	}
}

// boundTenant has maxHitCandidates+1 tenant-wide policies, each with one
// rule for its own word (boundWord), every other one a warning.
func boundTenant() pdp.TenantPolicies {
	tp := pdp.TenantPolicies{TenantID: "bound", Revision: 1, Mode: pdp.ModeEnforcement}
	for i := range maxHitCandidates + 1 {
		out := pdp.OutcomeBlock
		if i%2 == 1 {
			out = pdp.OutcomeWarn
		}
		tp.Policies = append(tp.Policies, pdp.Policy{Name: fmt.Sprintf("p%02d", i), StepTypes: []string{"ACTION"}, Enabled: true, Version: 1,
			Rules: []pdp.Rule{{Match: boundWord(i), Severity: pdp.SeverityMedium, OnViolation: out, Confidence: 0.5}}})
	}
	return tp
}

func boundWord(i int) string { return fmt.Sprintf("quill%02dz", i) }

// TestHitPlanBound: a decision with maxHitCandidates candidate rules is
// planned, all its hits (and FinancialSafety's approval) composed in Go as
// the evaluation computes them; with one candidate more it is not planned
// (no rule runs in Go; the evaluation decides, the same), and compose
// refuses more hits than maxComposedHits.
func TestHitPlanBound(t *testing.T) {
	e := engineWith(t, []pdp.TenantPolicies{boundTenant()})
	act := func(n int) pdp.Action {
		words := []string{"refund"}
		for i := range n {
			words = append(words, boundWord(i))
		}
		return pdp.Action{TenantID: "bound", Name: "slack.send_message", Params: map[string]any{"text": strings.Join(words, " ")}, StepType: "ACTION"}
	}
	if out := checkHitAnswer(t, e, act(maxHitCandidates)); out != hitMore {
		t.Fatalf("%d candidates: outcome %d, want %d", maxHitCandidates, out, hitMore)
	}
	if d := evaluate(t, e, act(maxHitCandidates)); len(d.Violations) != maxComposedHits || len(d.Warnings) != maxHitCandidates/2 {
		t.Fatalf("%d candidates: %d violations, %d warnings", maxHitCandidates, len(d.Violations), len(d.Warnings))
	}
	a := act(maxHitCandidates + 1)
	if out := checkHitAnswer(t, e, a); out != hitNotTried {
		t.Fatalf("%d candidates: outcome %d, want not planned", maxHitCandidates+1, out)
	}
	if d := evaluate(t, e, a); len(d.Violations) != maxComposedHits+1 {
		t.Fatalf("%d candidates: %d violations", maxHitCandidates+1, len(d.Violations))
	}
	// Every rule of the tenant and the approval: one hit too many.
	_, pq := noHitAnswer(t, e, a)
	policies, _ := termObject(pq.tenant.Get(keyTenantScope))
	fired := []firedHit{{approvalKey, "refund"}}
	for i := range maxHitCandidates + 1 {
		pol, _ := termObject(policies.Get(ast.StringTerm(fmt.Sprintf("p%02d", i))))
		rules, _ := termArray(pol.Get(keyRules))
		fired = append(fired, firedHit{rules.Elem(0), boundWord(i)})
	}
	text, _ := actionText(a.Name, a.Params)
	hs := hintsOf(pq.hinter, a, text)
	pq.noHitTerm(&hs)
	allowed := hs.found.allowed
	if allowed == nil {
		t.Fatal("no view")
	}
	checkComposed(t, pq, allowed, fired[:maxComposedHits])
	if d, ok := pq.hits.compose(allowed, fired, pq.approval); ok {
		t.Fatalf("%d hits composed: %+v", len(fired), d)
	}
}

// composeHits is the reference for hitMemo.compose as terms: _composed(n) for the n = len(fired) hits (2 ..
// maxComposedHits) in the view whose no-hit result is allowed
// (decision.rego): the hits x = _fire(r.kind, r) (approvalKey:
// FinancialSafety's approval hit for its keyword, approvalA with markerA
// replaced by the keyword, as _approval_of builds it) sorted as sort(_hits)
// sorts the set (ast.Compare on the whole hit), then
// object.union_n([allowed, a[6], {"risk_score": max of the patches' risk
// scores, "violations": [a[5], b[5], ...], "warnings": ...}]), the
// warnings for n = 2, 3, 4 the patches' warnings concatenated in rank
// order, for n > 4 [x[5] | some x in _ranked_hits; x[0] == -1]. ok false
// when the Go side does not reproduce it: two equal hits (the set would
// hold one; keys name the policy and the rule, so this needs a rule
// hinted twice), a patch that is not an object or lacks a risk score,
// warnings that are not an array (n <= 4: OPA's array.concat fails), more
// hits than maxComposedHits.
func composeHits(allowed *ast.Term, fired []firedHit, approvalA *ast.Term) (*ast.Term, bool) {
	n := len(fired)
	if n < 2 || n > maxComposedHits {
		return nil, false
	}
	hits := make([]*ast.Term, n)
	for i, f := range fired {
		var x *ast.Term
		if f.rule == approvalKey {
			if approvalA == nil {
				return nil, false
			}
			x = replaceString(approvalA, markerA, f.match)
		} else {
			var err error
			if x, err = ruleHit(f.rule, f.match); err != nil {
				return nil, false
			}
		}
		if arr, ok := termArray(x); !ok || arr.Len() != 7 {
			return nil, false
		}
		hits[i] = x
	}
	// Insertion sort by ast.Compare: sort(_hits) orders the set's elements.
	for i := 1; i < n; i++ {
		for j := i; j > 0; j-- {
			c := hits[j-1].Value.Compare(hits[j].Value)
			if c == 0 {
				return nil, false // one element of the set
			}
			if c < 0 {
				break
			}
			hits[j-1], hits[j] = hits[j], hits[j-1]
		}
	}
	var risk ast.Value
	violations := make([]*ast.Term, n)
	var warnings []*ast.Term
	var first *ast.Term
	for i, x := range hits[:n] {
		arr := x.Value.(*ast.Array)
		patch, ok := termObject(arr.Elem(6))
		if !ok {
			return nil, false
		}
		if i == 0 {
			first = arr.Elem(6)
		}
		rs := patch.Get(keyRiskScore)
		if rs == nil {
			return nil, false
		}
		// max([...]): the last of the greatest (topdown's builtinMax).
		if risk == nil || risk.Compare(rs.Value) <= 0 {
			risk = rs.Value
		}
		violations[i] = arr.Elem(5)
		if n > 4 {
			// [x[5] | some x in _ranked_hits; x[0] == -1]
			if arr.Elem(0).Value.Compare(ast.Number("-1")) == 0 {
				warnings = append(warnings, arr.Elem(5))
			}
			continue
		}
		w, ok := termArray(patch.Get(keyWarnings))
		if !ok {
			return nil, false
		}
		w.Foreach(func(t *ast.Term) { warnings = append(warnings, t) })
	}
	if warnings == nil {
		warnings = []*ast.Term{}
	}
	out, err := objectUnion(allowed, first)
	if err != nil {
		return nil, false
	}
	out, err = objectUnion(out, ast.ObjectTerm(
		[2]*ast.Term{keyRiskScore, ast.NewTerm(risk)},
		[2]*ast.Term{keyViolations, ast.ArrayTerm(violations...)},
		[2]*ast.Term{keyWarnings, ast.ArrayTerm(warnings...)},
	))
	if err != nil {
		return nil, false
	}
	return out, true
}

// replaceString is t with every string equal to from (anywhere in its
// arrays and objects, keys included) replaced by to.
func replaceString(t *ast.Term, from, to string) *ast.Term {
	switch v := t.Value.(type) {
	case ast.String:
		if string(v) == from {
			return ast.StringTerm(to)
		}
	case *ast.Array:
		elems := make([]*ast.Term, v.Len())
		for i := range elems {
			elems[i] = replaceString(v.Elem(i), from, to)
		}
		return ast.ArrayTerm(elems...)
	case ast.Object:
		kvs := make([][2]*ast.Term, 0, v.Len())
		v.Foreach(func(k, x *ast.Term) {
			kvs = append(kvs, [2]*ast.Term{replaceString(k, from, to), replaceString(x, from, to)})
		})
		return ast.ObjectTerm(kvs...)
	}
	return t
}
