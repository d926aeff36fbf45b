package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/pdp"
	library "github.com/gatehouse-pdp/gatehouse/rego"
	"github.com/gatehouse-pdp/gatehouse/test/scale"
)

// hintActions is how many generated actions the differential test decides
// with and without hints; `make test-hints` runs 200,000.
var hintActions = flag.Int("hints.actions", 0, "actions for TestHintsDifferential (default 3000, 600 with -short)")

var hintSeed = flag.Uint64("hints.seed", 0, "seed for TestHintsDifferential (default: the time)")

func hintCount(t *testing.T) int {
	switch {
	case *hintActions > 0:
		return *hintActions
	case testing.Short():
		return 600
	}
	return 3000
}

// Words the generated rules and texts share, so rules fire, almost fire
// (one literal of two) and do not.
var hintWords = []string{
	"email", "phone", "ssn", "passport", "password", "secret", "token", "salary", "invoice",
	"external", "public", "customer", "channel", "share", "delete", "drop", "internal only",
	"straße", "kelvin", "ıd", "ſecret", "ΣΣ", "café", "send", "export", "upload", "key",
}

var hintPatterns = []string{
	`(email|phone|address)`, `(ssn|passport|routing)`, `(password|secret|token)`,
	`(?:^|\W)\d{3}-\d{2}-\d{4}(?:\W|\Z)`, `[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}`,
	`\d{4}[ -]?\d{4}[ -]?\d{4}`, `(external|public)\s+(channel|share)`, `internal only`,
	`straße|kelvin`, `sal+ary`, `x`, `[0-9a-f]{8}`, `café|naïve`, `delete\s+\w+`, `.`,
	`\d{3}(?:-|\.)\d{3}`, `\W\d\d\W`, `k\d{2}`, `(?:\d{3}-){2}\d{4}`, `\d{2,5}`,
}

var hintSteps = []string{"ACTION", "THOUGHT", "OUTPUT", "OBSERVATION"}

// hintWorld generates tenants with tenant-wide and agent-scoped policies,
// several step types, whitelists, the tenant's shadow mode, policies in
// shadow mode (issue 16; at both scopes, so shadow agent copies beside
// enforcing or shadow tenant-wide ones) and disabled policies.
func hintWorld(r *rand.Rand, tenants int) []pdp.TenantPolicies {
	var out []pdp.TenantPolicies
	sev := []pdp.Severity{pdp.SeverityCritical, pdp.SeverityHigh, pdp.SeverityMedium, pdp.SeverityLow}
	outcomes := []pdp.Outcome{pdp.OutcomeBlock, pdp.OutcomeRequireApproval, pdp.OutcomeWarn}
	policy := func(name, agent string) pdp.Policy {
		p := pdp.Policy{Name: name, AgentID: agent, Enabled: r.IntN(8) != 0, Version: 1,
			StepTypes: []string{hintSteps[r.IntN(2)]}}
		if r.IntN(3) == 0 {
			p.StepTypes = append(p.StepTypes, hintSteps[2+r.IntN(2)])
		}
		if r.IntN(5) == 0 {
			p.WhitelistedDomains = []string{"example.com"}
		}
		if r.IntN(4) == 0 {
			p.Mode = pdp.PolicyShadow
		}
		for i := range 1 + r.IntN(3) {
			rule := pdp.Rule{Match: hintPatterns[r.IntN(len(hintPatterns))], Severity: sev[r.IntN(4)],
				OnViolation: outcomes[r.IntN(3)], Confidence: float64(r.IntN(100)+1) / 100}
			switch r.IntN(4) {
			case 0:
				rule.ContextRequires = `(external|public|customer)`
			case 1:
				rule.Reason = fmt.Sprintf("%s rule %d: {match}", name, i)
			case 2:
				rule.Reason = fmt.Sprintf("%s rule %d fired", name, i)
			}
			p.Rules = append(p.Rules, rule)
		}
		return p
	}
	for t := range tenants {
		tp := pdp.TenantPolicies{TenantID: fmt.Sprintf("h-%03d", t), Revision: 1, Mode: pdp.ModeEnforcement}
		if r.IntN(4) == 0 {
			tp.Mode = pdp.ModeShadow
		}
		for i := range r.IntN(5) {
			tp.Policies = append(tp.Policies, policy(fmt.Sprintf("p%d", i), ""))
		}
		for a := range 2 {
			for i := range r.IntN(3) {
				tp.Policies = append(tp.Policies, policy(fmt.Sprintf("p%d", i+r.IntN(2)), fmt.Sprintf("agent-%d", a)))
			}
		}
		seen := map[string]bool{}
		tp.Policies = slices.DeleteFunc(tp.Policies, func(p pdp.Policy) bool {
			k := p.AgentID + "/" + p.Name
			dup := seen[k]
			seen[k] = true
			return dup
		})
		for i := range tp.Policies {
			if err := adapter.Validate(&tp.Policies[i]); err != nil {
				panic(fmt.Sprintf("generated policy %+v: %v", tp.Policies[i], err))
			}
		}
		out = append(out, tp)
	}
	return out
}

// composingPatterns fire on most action texts (the text is the action's
// JSON: `{"action":...,"params":{...}}`) or on the shared words, so
// several rules of a view fire on one action.
var composingPatterns = []string{
	`.`, `"action"`, `params`, `[a-z]{4}`, `\d{2,5}`, `e`, `(email|phone|address)`, `(password|secret|token)`,
	`(send|export|upload|share|delete)`, `x`, `[a-z]+_[a-z]+`, `\W\d\d\W`, `(ssn|passport|routing|invoice)`,
}

// composingWorld generates tenants whose views the hit answer decides in
// Go (hit.go's hitView): the tenant enforces, every policy enforces and
// none has whitelisted domains, and the policies share step types (every
// one lists ACTION) and draw most rules from composingPatterns, so two,
// three, four and five or more hits fire together on one action. Outcomes
// and severities are mixed and confidences few (risk scores tie), and the
// agent-scoped policies' names differ from the tenant-wide ones (an
// enforcing agent copy would override its tenant-wide namesake), so hits
// of one outcome and severity tie across the agent and tenant scopes
// and are ordered by scope, then policy and rule. Some policies are
// disabled (outside the views), and the views' candidate rules may
// exceed maxHitCandidates (then evaluated).
func composingWorld(r *rand.Rand, tenants int) []pdp.TenantPolicies {
	var out []pdp.TenantPolicies
	sev := []pdp.Severity{pdp.SeverityCritical, pdp.SeverityHigh, pdp.SeverityMedium, pdp.SeverityLow}
	outcomes := []pdp.Outcome{pdp.OutcomeBlock, pdp.OutcomeRequireApproval, pdp.OutcomeWarn}
	confidences := []float64{1, 0.9, 0.5}
	policy := func(name, agent string) pdp.Policy {
		p := pdp.Policy{Name: name, AgentID: agent, Enabled: r.IntN(10) != 0, Version: 1, StepTypes: []string{"ACTION"}}
		if r.IntN(3) == 0 {
			p.StepTypes = append(p.StepTypes, hintSteps[1+r.IntN(3)])
		}
		for i := range 1 + r.IntN(3) {
			rule := pdp.Rule{Match: composingPatterns[r.IntN(len(composingPatterns))], Severity: sev[r.IntN(4)],
				OnViolation: outcomes[r.IntN(3)], Confidence: confidences[r.IntN(3)]}
			if r.IntN(4) == 0 {
				rule.Match = hintPatterns[r.IntN(len(hintPatterns))]
			}
			switch r.IntN(5) {
			case 0:
				rule.ContextRequires = `(action|params|external|public|customer)`
			case 1:
				rule.Reason = fmt.Sprintf("%s rule %d: {match}", name, i)
			case 2:
				rule.Reason = fmt.Sprintf("%s rule %d fired", name, i)
			}
			p.Rules = append(p.Rules, rule)
		}
		return p
	}
	for t := range tenants {
		tp := pdp.TenantPolicies{TenantID: fmt.Sprintf("c-%03d", t), Revision: 1, Mode: pdp.ModeEnforcement}
		for i := range 2 + r.IntN(4) {
			tp.Policies = append(tp.Policies, policy(fmt.Sprintf("t%d", i), ""))
		}
		for a := range 2 {
			for i := range r.IntN(4) {
				tp.Policies = append(tp.Policies, policy(fmt.Sprintf("a%d", i), fmt.Sprintf("agent-%d", a)))
			}
		}
		for i := range tp.Policies {
			if err := adapter.Validate(&tp.Policies[i]); err != nil {
				panic(fmt.Sprintf("generated policy %+v: %v", tp.Policies[i], err))
			}
		}
		out = append(out, tp)
	}
	return out
}

// genText returns a short text mixing the shared words, built-in anchors,
// destinations, digits and characters JSON escapes or case folding treats
// specially.
func genText(r *rand.Rand) string {
	pieces := []string{
		"AKIAIOSFODNN7EXAMPLE", "ghp_" + strings.Repeat("a1B2", 9), "gh", "xoxb-1234567890-abc",
		"-----BEGIN RSA PRIVATE KEY-----", `password="hunter2hunter2"`, "api_key: abcdefghij",
		"send the secrets", "export all credentials", "refund", "wire", "PURCHASE",
		"https://example.com/x", "https://evil.io/y", "ops@example.com", "10.0.0.1", "a@b.co",
		"123-45-6789", "4111 1111 1111 1111", "٣٤٥٦٧٨٩٠", "１２３４", "deadbeef",
		"<tag>&amp;", "\u2028", "\u2029", `\u003c`, "\\", "\"", "\n", "\t", "\x01", "\x7f",
		"İ", "ı", "ſ", "\u212a", "ß", "ẞ", "é", "ǅ", "😀", "  ", ".", "-", "_",
		// Stressing the rules' necessary conditions (adapter/conditions.go):
		// Unicode and full-width digits, separators, '@' variants, long runs.
		"١٢٣-٤٥-٦٧٨٩", "１２３-４５-６７８９", "4111-1111-1111-1111", "411111111111", "4111 1111-1111",
		"12-34", "1234 5678", "٠١٢٣٤٥٦٧٨٩٠١", "۱۲۳۴ ۵۶۷۸ ۹۰۱۲", "＠", "﹫", "a@", "@b.c", "x@y.zz",
		"K@K.ıı", "ſ@ſ.ſſ", "deadbeefcafe", "external channel", "public　share",
		strings.Repeat("1", 40), strings.Repeat("7-", 30), strings.Repeat("ab@", 20),
	}
	var b strings.Builder
	for range r.IntN(8) {
		if r.IntN(2) == 0 {
			b.WriteString(hintWords[r.IntN(len(hintWords))])
		} else {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		b.WriteString([]string{" ", "", "\n", ",", " delete "}[r.IntN(5)])
	}
	s := b.String()
	if r.IntN(3) == 0 {
		s = strings.ToUpper(s)
	}
	return s
}

func hintValue(r *rand.Rand, depth int) any {
	switch r.IntN(9) {
	case 0:
		return json.Number([]string{"0", "5", "20000", "150000", "-3.5", "1e3", "12345678901234567890"}[r.IntN(7)])
	case 1:
		return r.IntN(2) == 0
	case 2:
		return nil
	case 3:
		if depth < 2 {
			m := map[string]any{}
			for range r.IntN(3) {
				m[hintKey(r)] = hintValue(r, depth+1)
			}
			return m
		}
	case 4:
		if depth < 2 {
			var a []any
			for range r.IntN(3) {
				a = append(a, hintValue(r, depth+1))
			}
			return a
		}
	}
	return genText(r)
}

func hintKey(r *rand.Rand) string {
	keys := []string{"text", "to", "url", "amount", "value", "Total", "body", "note", "hints", "candidates", "b", "ä", "Z", "key"}
	return keys[r.IntN(len(keys))]
}

func hintAction(r *rand.Rand, tenants []pdp.TenantPolicies) pdp.Action {
	tp := tenants[r.IntN(len(tenants))]
	names := []string{"http.post", "slack.send_message", "export_data", "wire_transfer", "db.dump", "sync_users", "files.upload", "ſync", "noop"}
	a := pdp.Action{TenantID: tp.TenantID, Name: names[r.IntN(len(names))], Params: map[string]any{}}
	if r.IntN(5) == 0 {
		a.Name += " " + genText(r)
	}
	for range r.IntN(4) {
		a.Params[hintKey(r)] = hintValue(r, 0)
	}
	a.AgentID = []string{"", "agent-0", "agent-1", "agent-9"}[r.IntN(4)]
	a.StepType = []string{"", "ACTION", "action", "thought", "Output", "observation", "error", "bogus"}[r.IntN(8)]
	return a
}

// unhinted evaluates the plain decision query, as a stock OPA and the Data
// API do, and decodes it as Evaluate does.
func unhinted(t testing.TB, e *Engine, a pdp.Action) (*pdp.Decision, error) {
	in := Input(a)
	if a.AgentID == "" && len(a.Params)%2 == 0 {
		delete(in, "agent_id") // absent, as a Data API client may send it
	}
	r, ok, err := e.Query(t.Context(), a.TenantID, in)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("undefined")
	}
	return decode(r)
}

// computedViews evaluates the plain query on data without the adapter's
// precomputed views: the library's own _computed_view decides.
type computedViews struct {
	queries map[string]rego.PreparedEvalQuery
}

func (c *computedViews) decide(t testing.TB, e *Engine, a pdp.Action) (*pdp.Decision, error) {
	pq, ok := c.queries[a.TenantID]
	if !ok {
		e.mu.RLock()
		st := e.tenants[a.TenantID]
		e.mu.RUnlock()
		data := adapter.TenantData(st.policies, "", true)
		delete(data, "views")
		store := inmem.NewFromObjectWithOpts(map[string]any{adapter.Root: map[string]any{
			"config": e.data, "tenants": map[string]any{a.TenantID: data},
		}}, inmem.OptRoundTripOnWrite(true), inmem.OptReturnASTValuesOnRead(true))
		var err error
		pq, err = e.prepareQuery(t.Context(), st.unit.compiler, store)
		if err != nil {
			t.Fatal(err)
		}
		c.queries[a.TenantID] = pq
	}
	// Converted as Query converts it (rego.EvalInput would round-trip it
	// through JSON, which turns a Go nil slice into null, not []).
	in, err := ast.InterfaceToValue(Input(a))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := pq.Eval(t.Context(), rego.EvalParsedInput(in))
	if err != nil {
		return nil, err
	}
	return decisionOf(rs, time.Now())
}

func sameDecision(a, b *pdp.Decision) bool {
	x, y := *a, *b
	x.EvaluationTimeMS, y.EvaluationTimeMS = 0, 0
	return reflect.DeepEqual(x, y)
}

// TestHintsDifferential decides generated actions three ways — with the
// engine's hints (Evaluate), without (the plain query, as stock OPA), and
// without hints or the precomputed views (the library computing the views
// itself, every 8th action) — and requires the same decision field by field, or the same
// failure. It also checks that every rule that fires was a candidate. The
// hinted decisions include those Evaluate answers without evaluating
// (nohit.go; required to occur) and those the hit answer decides (hit.go;
// one-hit answers required to occur, and composed ones of two to four
// hits and of five or more, in proportion to the actions: composingWorld's
// tenants make them).
func TestHintsDifferential(t *testing.T) {
	seed := *hintSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d, %d actions", seed, hintCount(t))
	r := rand.New(rand.NewPCG(seed, 17))
	// A third of the actions go to the composing tenants (the hit
	// answer's views), the rest to hintWorld's.
	world := append(hintWorld(r, 40), composingWorld(r, 20)...)
	e, err := New(Config{CacheSize: 1000, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range world {
		if err := e.SetTenant(tp); err != nil {
			t.Fatal(err)
		}
	}
	cv := &computedViews{queries: map[string]rego.PreparedEvalQuery{}}
	fired := map[int]int{}
	shadowed, shadowOnly := 0, 0
	failures, answered := 0, 0
	var hitAnswers [hitOutcomes]int // by hitOutcome
	scopeTies := 0                  // composed in Go, with hits of one outcome and severity in both scopes
	for i := range hintCount(t) {
		a := hintAction(r, world)
		hinted, herr := e.Evaluate(t.Context(), a)
		plain, perr := unhinted(t, e, a)
		// The library's own views on every 8th action (a third
		// evaluation; the views are per scope and step, not per action).
		computed, cerr := plain, perr
		if i%8 == 0 {
			computed, cerr = cv.decide(t, e, a)
		}
		switch {
		case (herr != nil) != (perr != nil) || (perr != nil) != (cerr != nil):
			t.Fatalf("action %d %+v: errors differ: hinted %v, unhinted %v, computed views %v", i, a, herr, perr, cerr)
		case herr != nil:
			failures++
			continue
		case !sameDecision(hinted, plain):
			t.Fatalf("action %d %+v:\nhinted   %+v\nunhinted %+v", i, a, hinted, plain)
		case !sameDecision(plain, computed):
			t.Fatalf("action %d %+v:\nprecomputed views %+v\ncomputed views    %+v", i, a, plain, computed)
		}
		fired[min(len(plain.Violations), 3)]++
		if allowed, _ := noHitAnswer(t, e, a); allowed != nil {
			answered++ // Evaluate answered without evaluating (nohit.go)
		} else {
			out, _, _, _, _ := hitAnswerOf(t, e, a)
			hitAnswers[out]++ // the hit answer (hit.go)
			if (out == hitMany || out == hitMore) && scopeTie(plain.Violations) {
				scopeTies++
			}
		}
		if len(plain.Shadow) > 0 {
			shadowed++
			if len(plain.Violations) == 0 {
				shadowOnly++
			}
		}
		checkCandidates(t, e, a, plain)
		if n := i + 1; n%10000 == 0 {
			t.Logf("%d actions decided three ways, 0 differences so far; by violations (0, 1, 2, 3+): %v", n, fired)
		}
	}
	t.Logf("decisions by violations (0, 1, 2, 3+): %v; with shadow hits: %d (%d with no violation); failed closed alike: %d; answered without evaluating: %d",
		fired, shadowed, shadowOnly, failures, answered)
	t.Logf("the hit answer (hit.go): no rule fired %d, one hit %d, 2-4 hits composed %d, 5+ hits composed %d, planned but evaluated %d; composed with a tie across scopes %d",
		hitAnswers[hitNone], hitAnswers[hitOne], hitAnswers[hitMany], hitAnswers[hitMore], hitAnswers[hitEvaluated], scopeTies)
	if answered == 0 {
		t.Fatal("the generator should produce actions the engine answers without evaluating (nohit.go)")
	}
	if hitAnswers[hitOne] == 0 {
		t.Fatal("the generator should produce one-hit actions the engine answers in Go (hit.go)")
	}
	// Some 1% of hintWorld's actions (most of its views have shadow
	// policies or whitelisted domains), more with composingWorld's:
	// required from the default 3,000 actions on; -short's 600 could have
	// none.
	if hitAnswers[hitMany] == 0 && hintCount(t) >= 3000 {
		t.Fatal("the generator should produce two- to four-hit actions the engine composes in Go (hit.go)")
	}
	// composingWorld's tenants (a third of the actions) make five hits or
	// more on 1.3-3.8% of all actions (31 seeds at 3,000 actions: 40 to
	// 114), two to four on 4.6-7.5% (139 to 226), a composition with a
	// tie across scopes on 0.3-1.6% (21 seeds: 10 to 47): required in
	// proportion from the default 3,000 actions on (10 five-hit answers
	// and 30 two- to four-hit ones there; 666 and 2,000 at 200,000).
	if n := hintCount(t); n >= 3000 {
		if hitAnswers[hitMore] < n/300 || hitAnswers[hitMany] < n/100 || scopeTies == 0 {
			t.Fatalf("the generator should produce actions the engine composes in Go (hit.go): 2-4 hits %d (want %d), 5+ hits %d (want %d), ties across scopes %d",
				hitAnswers[hitMany], n/100, hitAnswers[hitMore], n/300, scopeTies)
		}
	}
	if fired[0] == 0 || fired[1] == 0 || fired[3] == 0 {
		t.Fatalf("the generator should produce decisions with 0, 1 and 3+ violations: %v", fired)
	}
	// Shadow hits beside violations and alone: ~3% and ~1% of actions, so
	// required from the default 3,000 actions on (600 with -short may see
	// none of one kind).
	if hintCount(t) >= 3000 && (shadowed == shadowOnly || shadowOnly == 0) {
		t.Fatalf("the generator should produce shadow hits beside violations (%d) and alone (%d)", shadowed-shadowOnly, shadowOnly)
	}
}

// scopeTie says whether two violations in a row (the hits' order) have one
// outcome and one severity and differ in scope: ranked by their keys'
// scope rank, not by outcome or severity.
func scopeTie(vs []pdp.Violation) bool {
	for i := 1; i < len(vs); i++ {
		a, b := vs[i-1], vs[i]
		if a.OnViolation == b.OnViolation && a.Severity == b.Severity && a.Scope != b.Scope &&
			a.Scope != pdp.ScopeBuiltin && b.Scope != pdp.ScopeBuiltin {
			return true
		}
	}
	return false
}

// checkCandidates is the property the hints rest on: every policy with a
// violation or a shadow hit was a candidate, every built-in that fired was
// not skipped.
func checkCandidates(t testing.TB, e *Engine, a pdp.Action, d *pdp.Decision) {
	t.Helper()
	e.mu.RLock()
	st := e.tenants[a.TenantID]
	e.mu.RUnlock()
	if _, _, err := inputAndParams(a); err != nil {
		t.Fatal(err)
	}
	text, err := actionText(a.Name, a.Params)
	if err != nil {
		t.Fatal(err)
	}
	folded := foldText(text)
	agent, tenant := st.unit.hinter.Candidates(a.AgentID, a.StepType, folded)
	obj := st.unit.hinter.CandidatesTerm(a.AgentID, a.StepType, folded)
	if o, ok := obj.Value.(ast.Object); !ok || o.Len() != 2 ||
		!slices.Equal(termNames(t, o.Get(ast.StringTerm("agent"))), agent) || !slices.Equal(termNames(t, o.Get(ast.StringTerm("tenant"))), tenant) {
		t.Fatalf("%+v: CandidatesTerm %v, Candidates %v %v", a, obj, agent, tenant)
	}
	for _, v := range d.Violations {
		ok := false
		switch v.Scope {
		case pdp.ScopeAgent:
			ok = slices.Contains(agent, v.Policy)
		case pdp.ScopeTenant:
			ok = slices.Contains(tenant, v.Policy)
		default:
			ok = v.Policy == "FinancialSafetyPolicy" && library.FinancialSafetyMayFire(folded) ||
				v.Policy == "DataExfiltrationPolicy" && library.DataExfiltrationMayFire(a.Name, text, folded)
		}
		if !ok {
			t.Fatalf("%+v: %s/%s rule %d fired but was not a candidate (agent %v, tenant %v)", a, v.Scope, v.Policy, v.Rule, agent, tenant)
		}
	}
	for _, h := range d.Shadow {
		if (h.Scope != pdp.ScopeAgent || !slices.Contains(agent, h.Policy)) && (h.Scope != pdp.ScopeTenant || !slices.Contains(tenant, h.Policy)) {
			t.Fatalf("%+v: shadow %s/%s rule %d fired but was not a candidate (agent %v, tenant %v)", a, h.Scope, h.Policy, h.Rule, agent, tenant)
		}
	}
	checkRuleCandidates(t, st.unit.hinter, a, d, folded, agent, tenant)
}

// checkRuleCandidates: every custom rule that fired (violation or shadow
// hit) was a rule-level candidate; RulesTerm names exactly the rules of
// CandidateRules, in ascending order, and exactly the policies the
// policy-level candidates name.
func checkRuleCandidates(t testing.TB, h *adapter.Hinter, a pdp.Action, d *pdp.Decision, folded string, agent, tenant []string) {
	t.Helper()
	agentRules, tenantRules := h.CandidateRules(a.AgentID, a.StepType, folded)
	term := h.RulesTerm(a.AgentID, a.StepType, folded)
	obj, ok := term.Value.(ast.Object)
	if !ok || obj.Len() != 2 {
		t.Fatalf("%+v: RulesTerm %v", a, term)
	}
	for _, scope := range []struct {
		key      string
		rules    map[string][]int
		policies []string
	}{{"agent", agentRules, agent}, {"tenant", tenantRules, tenant}} {
		o, ok := obj.Get(ast.StringTerm(scope.key)).Value.(ast.Object)
		if !ok || o.Len() != len(scope.rules) {
			t.Fatalf("%+v: RulesTerm %v, CandidateRules %v", a, term, scope.rules)
		}
		names := make([]string, 0, len(scope.rules))
		for name, idx := range scope.rules {
			names = append(names, name)
			arr, ok := o.Get(ast.StringTerm(name)).Value.(*ast.Array)
			if !ok || arr.Len() != len(idx) || !slices.IsSorted(idx) {
				t.Fatalf("%+v: RulesTerm %v, CandidateRules %v", a, term, scope.rules)
			}
			for i, j := range idx {
				if n, ok := arr.Elem(i).Value.(ast.Number); !ok || n.String() != fmt.Sprint(j) {
					t.Fatalf("%+v: RulesTerm %v, CandidateRules %v", a, term, scope.rules)
				}
			}
		}
		slices.Sort(names)
		want := slices.Sorted(slices.Values(scope.policies))
		if !slices.Equal(names, want) {
			t.Fatalf("%+v: %s policies with candidate rules %v, candidate policies %v", a, scope.key, names, want)
		}
	}
	fired := func(scope pdp.Scope, policy string, rule int) bool {
		switch scope {
		case pdp.ScopeAgent:
			return slices.Contains(agentRules[policy], rule)
		case pdp.ScopeTenant:
			return slices.Contains(tenantRules[policy], rule)
		}
		return true // built-ins: checkCandidates
	}
	for _, v := range d.Violations {
		if !fired(v.Scope, v.Policy, v.Rule) {
			t.Fatalf("%+v: %s/%s rule %d fired but was not a candidate rule (agent %v, tenant %v)", a, v.Scope, v.Policy, v.Rule, agentRules, tenantRules)
		}
	}
	for _, sh := range d.Shadow {
		if !fired(sh.Scope, sh.Policy, sh.Rule) {
			t.Fatalf("%+v: shadow %s/%s rule %d fired but was not a candidate rule (agent %v, tenant %v)", a, sh.Scope, sh.Policy, sh.Rule, agentRules, tenantRules)
		}
	}
}

// termNames is the strings of an array term of string terms.
func termNames(t testing.TB, term *ast.Term) []string {
	t.Helper()
	if term == nil {
		t.Fatal("no candidates list")
	}
	arr, ok := term.Value.(*ast.Array)
	if !ok {
		t.Fatalf("candidates %v are not an array", term)
	}
	var out []string
	for i := range arr.Len() {
		s, ok := arr.Elem(i).Value.(ast.String)
		if !ok {
			t.Fatalf("candidate %v is not a string", arr.Elem(i))
		}
		out = append(out, string(s))
	}
	return out
}

// TestCandidatesSupersetOfFired checks the candidate property alone on
// more actions than the differential test decides three ways.
func TestCandidatesSupersetOfFired(t *testing.T) {
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	world := hintWorld(r, 30)
	e, err := New(Config{CacheSize: 1000, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range world {
		e.SetTenant(tp)
	}
	hits := 0
	for range 2 * hintCount(t) {
		a := hintAction(r, world)
		d, err := unhinted(t, e, a)
		if err != nil {
			continue
		}
		hits += len(d.Violations) + len(d.Shadow)
		checkCandidates(t, e, a, d)
	}
	if hits == 0 {
		t.Fatal("no rule fired: the property was not exercised")
	}
}

// TestClientCannotSupplyHints: whatever a client names hints — a params
// key, a top-level input field of the Data API — decides nothing; the
// library reads hints only from data.gatehouse.hints, which only the
// engine's own query sets.
func TestClientCannotSupplyHints(t *testing.T) {
	tp := pdp.TenantPolicies{TenantID: "acme", Revision: 1, Mode: pdp.ModeEnforcement, Policies: []pdp.Policy{{
		Name: "pii", StepTypes: []string{"ACTION"}, Enabled: true, Version: 1,
		Rules: []pdp.Rule{{Match: "(email|phone)", Severity: pdp.SeverityCritical, OnViolation: pdp.OutcomeBlock, Confidence: 1}},
	}}}
	e, err := New(Config{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e.SetTenant(tp)
	// Hints that would skip everything and rewrite the text.
	forged := map[string]any{
		"text": `{"action":"noop","params":{}}`, "folded": `{"action":"noop","params":{}}`, "ascii": true,
		"candidates": map[string]any{"agent": []any{}, "tenant": []any{}}, "builtins": map[string]any{},
	}
	a := pdp.Action{TenantID: "acme", Name: "wire_transfer", Params: map[string]any{
		"to": "bob email", "amount": json.Number("500000"), "hints": forged,
		"gatehouse": map[string]any{"hints": forged},
	}}
	d, err := e.Evaluate(t.Context(), a)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != pdp.StatusBlocked || len(d.Violations) != 2 {
		t.Fatalf("forged hints in params changed the decision: %+v", d)
	}
	in := Input(a)
	in["hints"] = forged
	in["input"] = map[string]any{"action": "noop", "tenant_id": "acme"}
	r, ok, err := e.Query(t.Context(), "acme", in)
	if err != nil || !ok {
		t.Fatal(err, ok)
	}
	q, err := decode(r)
	if err != nil {
		t.Fatal(err)
	}
	if !sameDecision(d, q) {
		t.Fatalf("Data API with forged hints: %+v, want %+v", q, d)
	}
}

// TestActionTextMatchesLibrary checks the Go action text against the
// library's on generated actions (FuzzActionText explores further).
func TestActionTextMatchesLibrary(t *testing.T) {
	pq := textQuery(t)
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	for range hintCount(t) {
		a := pdp.Action{Name: genText(r), Params: map[string]any{}}
		for range r.IntN(4) {
			a.Params[hintKey(r)] = hintValue(r, 0)
		}
		compareText(t, pq, a)
	}
}

// FuzzActionText: the action text, its folded form and the ASCII test
// computed in Go are byte for byte the library's, for any name and params
// of strings, numbers, nested objects and arrays.
func FuzzActionText(f *testing.F) {
	f.Add("send", "to", "a\u2028b<c>&d\\u003c", "1e3", true)
	f.Add("ſync", "K", "\xff\xfe\x01\"\\", "-0.5", false)
	f.Add("", "", "İı ß ẞ ǅ 😀", "0", true)
	pq := textQuery(f)
	f.Fuzz(func(t *testing.T, name, key, s, num string, nested bool) {
		params := map[string]any{key: s}
		if pdp.ValidNumber(num) {
			params["n"] = json.Number(num)
		}
		if nested {
			params["z"] = []any{map[string]any{s: name, "b": nil}, s, true}
		}
		compareText(t, pq, pdp.Action{Name: name, Params: params})
	})
}

func textQuery(tb testing.TB) rego.PreparedEvalQuery {
	lib, err := library.Parsed()
	if err != nil {
		tb.Fatal(err)
	}
	c := ast.NewCompiler()
	c.Compile(lib)
	if c.Failed() {
		tb.Fatal(c.Errors)
	}
	pq, err := rego.New(rego.Query(`t := data.gatehouse.text.text; f := data.gatehouse.text.folded; a := count({1 | data.gatehouse.text.ascii}) == 1`),
		rego.Compiler(c), rego.Store(inmem.New()), rego.StrictBuiltinErrors(true)).PrepareForEval(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	return pq
}

func compareText(t testing.TB, pq rego.PreparedEvalQuery, a pdp.Action) {
	t.Helper()
	text, goErr := actionText(a.Name, a.Params)
	input, _, err := inputAndParams(a)
	if err != nil {
		if goErr == nil {
			// Evaluate would then convert the params lazily, and the
			// conversion would fail (panic) mid-evaluation.
			t.Fatalf("%+v: Go computed the text of params that do not convert (%v)", a, err)
		}
		t.Skip("not an input the engine accepts")
	}
	rs, err := pq.Eval(t.Context(), rego.EvalParsedInput(input))
	if goErr != nil {
		if err == nil {
			t.Fatalf("%+v: Go refused the text (%v), the library computed %q", a, goErr, rs[0].Bindings["t"])
		}
		return // both refuse: the engine then evaluates unhinted and fails as the library does
	}
	if err != nil || len(rs) != 1 {
		t.Fatalf("%+v: library: %v %v", a, err, rs)
	}
	b := rs[0].Bindings
	if b["t"] != text || b["f"] != foldText(text) || b["a"] != isASCII(text) {
		t.Fatalf("%+v:\nGo      %q %q %v\nlibrary %q %q %v", a, text, foldText(text), isASCII(text), b["t"], b["f"], b["a"])
	}
	compareParamsText(t, a)
}

// compareParamsText checks that the action text written from the params'
// encoding (pdp.Action.ParamsJSON, as encoding/json writes it without
// HTML escaping) is the walk's, and that the walk accepts the params
// wherever usableParamsText accepts their encoding. ParamsJSON is only
// for params decoded from JSON, so the params are first encoded and
// decoded again (UseNumber), as a request body's are: a nil slice, say,
// encodes as null but walks as [], and invalid UTF-8 decodes as U+FFFD.
func compareParamsText(t testing.TB, a pdp.Action) {
	t.Helper()
	encode := func(v any) ([]byte, bool) {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return nil, false
		}
		return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), true
	}
	pj, ok := encode(a.Params)
	if !ok {
		return // not params a request body could hold
	}
	dec := json.NewDecoder(bytes.NewReader(pj))
	dec.UseNumber()
	a.Params = nil
	if err := dec.Decode(&a.Params); err != nil {
		t.Fatal(err)
	}
	if pj, ok = encode(a.Params); !ok {
		t.Fatalf("decoded params %v do not encode", a.Params)
	}
	walked, walkErr := actionText(a.Name, a.Params)
	a.ParamsJSON = pj
	got, err := actionTextOf(&a)
	if (err == nil) != (walkErr == nil) || got != walked {
		t.Fatalf("%+v: from ParamsJSON %s: %q %v, the walk's %q %v", a, pj, got, err, walked, walkErr)
	}
	if usableParamsText(pj) && walkErr != nil {
		t.Fatalf("%+v: ParamsJSON %s used, but the walk refuses the params: %v", a, pj, walkErr)
	}
}

// TestUsableParamsText: the params' encoding is used only when the walk
// writes the same bytes; an exponent (which the walk checks against
// OPA's range) and an escaped U+2028 or U+2029 (which the walk writes
// as it is) are left to the walk, wherever they are in the text.
func TestUsableParamsText(t *testing.T) {
	for pj, want := range map[string]bool{
		`{}`:                                     true,
		`{"a":1,"b":-2.5,"c":[true,false,null]}`: true,
		`{"id":"3e4f-1E9","t":"a\"1e5\\"}`:       true, // exponents only in strings
		`{"s":"x\\","n":1}`:                      true,
		`{"n":1e3}`:                              false,
		`{"n":[2E-7]}`:                           false,
		`{"s":"x\\","n":1e400}`:                  false, // after a string ending in an escaped backslash
		`{"s":"a\u2028b"}`:                       false,
		`{"s":"a\u2029b"}`:                       false,
		`{"s":"unterminated}`:                    false,
		`[1]`:                                    false,
		``:                                       false,
	} {
		if got := usableParamsText([]byte(pj)); got != want {
			t.Errorf("usableParamsText(%s) = %v, want %v", pj, got, want)
		}
	}
	// A number the walk refuses as out of range is never written from
	// the encoding: the engine then evaluates unhinted and fails as the
	// library does.
	a := pdp.Action{Name: "x", Params: map[string]any{"n": json.Number("1e999999")}, ParamsJSON: []byte(`{"n":1e999999}`)}
	if _, err := actionTextOf(&a); err == nil {
		t.Fatal("actionTextOf accepted an out-of-range number from ParamsJSON")
	}
}

// TestNoHitMemo: a decision without hits is remembered per entry and
// copied; the copy equals a fresh decode of the result and the unhinted
// decision, and what a caller does to one decision never reaches the next.
func TestNoHitMemo(t *testing.T) {
	e := newEngine(t, Config{})
	tp := pdp.TenantPolicies{TenantID: "acme", Revision: 1, Mode: pdp.ModeEnforcement, Policies: scale.SeedPolicies()}
	e.SetTenant(tp)
	quiet := pdp.Action{TenantID: "acme", AgentID: "support-bot", Name: "slack.send_message", Params: map[string]any{"text": "hello"}}
	first := evaluate(t, e, quiet)
	pq, err := e.entry(t.Context(), noop.Span{}, "acme", "support-bot")
	if err != nil {
		t.Fatal(err)
	}
	text, err := actionText(quiet.Name, quiet.Params)
	if err != nil {
		t.Fatal(err)
	}
	hs := hintsOf(pq.hinter, quiet, text)
	allowed := pq.noHitTerm(&hs)
	if allowed == nil {
		t.Fatal("the quiet action is not answered as a no-hit decision")
	}
	m := pq.noHits.remembered(allowed)
	if m == nil {
		t.Fatal("the no-hit decision was not remembered")
	}
	fresh, err := decodeAST(allowed.Value)
	if err != nil {
		t.Fatal(err)
	}
	want, err := unhinted(t, e, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if !sameDecision(first, fresh) || !sameDecision(first, want) {
		t.Fatalf("remembered %+v, fresh decode %+v, unhinted %+v", first, fresh, want)
	}
	if len(first.PoliciesEvaluated) == 0 || first.Violations == nil || first.Warnings == nil {
		t.Fatalf("the test needs policies_evaluated and empty, non-nil violation lists: %+v", first)
	}
	// Scribble over everything the caller got.
	first.PoliciesEvaluated[0] = "scribbled"
	first.PoliciesEvaluated = append(first.PoliciesEvaluated, "more")
	first.Violations = append(first.Violations, pdp.Violation{Policy: "scribbled"})
	first.Status = pdp.StatusBlocked
	second := evaluate(t, e, quiet)
	if pq.noHits.remembered(allowed) != m || !sameDecision(m, fresh) {
		t.Fatal("the remembered decision changed")
	}
	if !sameDecision(second, fresh) {
		t.Fatalf("after the caller changed the first decision, the next is %+v, want %+v", second, fresh)
	}
	if &second.PoliciesEvaluated[0] == &m.PoliciesEvaluated[0] {
		t.Fatal("a decision shares its policies_evaluated with the remembered one")
	}
	// A decision with hits is decoded, never taken for the remembered one.
	hit := evaluate(t, e, as(seedAction, "support-bot"))
	if len(hit.Violations) == 0 || sameDecision(hit, fresh) {
		t.Fatalf("a decision with hits: %+v", hit)
	}
	// copyDecision copies every pointer and slice.
	sev := pdp.SeverityHigh
	reason, trig := "r", "p"
	d := &pdp.Decision{PoliciesEvaluated: []string{"a"}, Severity: &sev, Reason: &reason, TriggeredPolicy: &trig,
		Violations: []pdp.Violation{{Policy: "a"}}, Warnings: []pdp.Violation{}, Shadow: []pdp.ShadowHit{{Policy: "s"}}}
	c := copyDecision(d)
	if !reflect.DeepEqual(c, d) || c.Severity == d.Severity || c.Reason == d.Reason || c.TriggeredPolicy == d.TriggeredPolicy ||
		&c.Violations[0] == &d.Violations[0] || &c.Shadow[0] == &d.Shadow[0] || &c.PoliciesEvaluated[0] == &d.PoliciesEvaluated[0] || c.Warnings == nil {
		t.Fatalf("copyDecision shares or changes something: %+v", c)
	}
}

// hinted is the input and the hints of one evaluation, as hintedEval
// makes them (hints nil: an unhinted evaluation), for tests that change
// the hints or evaluate them on queries of their own. set is hintedEval's
// own hints, which the evaluation reads when it is not nil (the engine's
// path, view hint included); hints is the same as an object without the
// view (which hintStore looks up in the data), for tests to change.
type hinted struct {
	input ast.Value
	hints ast.Object
	set   *hintSet
}

// hintedOf is hintedEval's evaluation of a; ok is false when the action
// text cannot be computed in Go (Evaluate then decides unhinted).
func hintedOf(ctx context.Context, h *adapter.Hinter, a pdp.Action) (hinted, bool) {
	text, err := actionText(a.Name, a.Params)
	if err != nil {
		return hinted{}, false
	}
	hctx, input := hintedEval(ctx, h, a, text)
	set := hctx.Value(hintsKey{}).(*hintSet)
	return hinted{input: input, hints: set.object(), set: set}, true
}

// eval evaluates pq (over a hintStore, to see the hints) on w.
func (w hinted) eval(ctx context.Context, pq rego.PreparedEvalQuery, opts ...rego.EvalOption) (rego.ResultSet, error) {
	switch {
	case w.set != nil:
		ctx = context.WithValue(ctx, hintsKey{}, w.set)
	case w.hints != nil:
		ctx = context.WithValue(ctx, hintsKey{}, w.hints)
	}
	return pq.Eval(ctx, append([]rego.EvalOption{rego.EvalParsedInput(w.input)}, opts...)...)
}

// TestEntryHintsOf: the entry's hintsOf (the hinter's view remembered
// with the entry's own view lookup) gives the hints and the view that
// hintsOf and noHitTerm's lookup give, for every agent and step type a
// client may send (none, known, unknown, lower case), each asked twice
// (the second time from the memo).
func TestEntryHintsOf(t *testing.T) {
	e := newEngine(t, Config{})
	tp := pdp.TenantPolicies{TenantID: "acme", Revision: 1, Mode: pdp.ModeEnforcement, Policies: scale.SeedPolicies()}
	e.SetTenant(tp)
	paramsList := []map[string]any{
		{"text": "hello"},
		{"query": "DROP TABLE users; send to attacker@example.com", "amount": json.Number("50000")},
		{"card": "4111 1111 1111 1111", "ssn": "123-45-6789"},
		{"text": "send the email and phone to the public list"},
		{"Text": "Send The EMAIL to PUBLIC", "note": "straße"},
	}
	checked := 0
	for _, agent := range []string{"", "support-bot", "billing-bot", "nobody"} {
		pq, err := e.entry(t.Context(), noop.Span{}, "acme", agent)
		if err != nil {
			t.Fatal(err)
		}
		if pq.hinter == nil {
			t.Fatal("no hinter")
		}
		for _, step := range []string{"", "ACTION", "tool_call", "Tool_Call", "nonesuch"} {
			for _, params := range paramsList {
				for range 2 {
					a := pdp.Action{TenantID: "acme", AgentID: agent, StepType: step, Name: "db.query", Params: params}
					text, err := actionText(a.Name, a.Params)
					if err != nil {
						t.Fatal(err)
					}
					both, err := actionTextsOf(&a, true)
					if err != nil || both.text != text {
						t.Fatalf("actionTextsOf: %q, %v; want %q", both.text, err, text)
					}
					want := hintsOf(pq.hinter, a, text)
					wantAllowed := pq.noHitTerm(&want)
					got := pq.hintsOf(a, both)
					gotAllowed := pq.noHitTerm(&got)
					if got.rules.Value.Compare(want.rules.Value) != 0 || got.step != want.step || got.builtins != want.builtins ||
						got.foldedStr != want.foldedStr || got.textStr != want.textStr || got.ascii != want.ascii || got.keyword != want.keyword {
						t.Fatalf("%q %q %v: rules %v step %q, want %v step %q", agent, step, params, got.rules, got.step, want.rules, want.step)
					}
					if (got.view == nil) != (want.view == nil) || got.view != nil && got.view.Compare(want.view) != 0 ||
						got.found.allowed != want.found.allowed || got.found.hit != want.found.hit || gotAllowed != wantAllowed {
						t.Fatalf("%q %q %v: view %v allowed %v, want %v %v", agent, step, params, got.view, gotAllowed, want.view, wantAllowed)
					}
					if want.rules.Value.Compare(noRulesHint) != 0 {
						checked++
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no action had a candidate rule")
	}
}
