package engine

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// The hit answer: a decision with few candidate rules, answered in Go.
//
// It extends the no-hit answer (nohit.go) to the decisions whose hints
// name a few candidate rules (at most maxHitCandidates) and whose
// built-ins hint is {}, or FinancialSafety alone with no amount key
// (data.gatehouse.hints.financial.amount_key == false, so its hit is
// _approval_of(keyword), which always fires); with an amount key, or
// DataExfiltration hinted, the engine evaluates. For those the
// library's result is _composed(count(_hits)) (rego/gatehouse/
// decision.rego: result's second branch) when the view has no shadow
// policy (_view.shadow == {"agent": {}, "tenant": {}}) and the tenant
// enforces (_tenant.mode == "enforcement"; the view's "enforcing": true,
// which _builtins_result asks when the rules hint is empty, is required
// too: then result's first branch gives the same one-hit result). _hits
// are the hits _fire yields for the hinted rules of the policies
// _applying holds, which is the view itself when the view says none has
// whitelisted domains ("no_whitelists": true; otherwise the engine
// evaluates), and FinancialSafety's. The engine evaluates those rules in
// Go exactly as _fire does, over the same values (the rule's data from
// the tenant's document, read from the unit's store once, at prepare:
// nothing writes it; the text, folded and ascii hints the evaluation
// would read):
//   - "regex": regex.find_n(pattern, text, 1)[0], which is OPA's
//     regexp.Compile(pattern) and FindAllString(text, 1) (topdown/regex.go);
//   - "alts": _alternative: on an ASCII text the least [indexof(folded,
//     lit), k] over the alternatives present, then substring(text, pos,
//     count(lit)) (OPA's ASCII paths: strings.Index, byte slicing with its
//     clamping); with none present, or on other texts, the regex;
//   - "_context" kinds: then _any(context_pre) over the folded text and
//     regex.match(context, text) (MatchString).
//
// No hit: the view's "allowed" (as the no-hit answer). One hit (a rule,
// or FinancialSafety's approval): object.union(_view.allowed, x[6]) of
// that hit x (_composed(1), _builtins_result), whose decision is
// remembered per (view, rule) with its match and reason left to fill in
// (hitTemplate; FinancialSafety's approval hit is the library's own
// _approval_of, evaluated once per engine: approvalHits). Two hits or
// more (up to maxComposedHits, all a plan can yield): _composed(n)'s
// bodies, built from the hits' one-hit decisions (compose): the hits in
// key order (the order sort(_hits) gives: keys are unique), the trigger's
// one-hit decision with the largest risk score, every hit's violation in
// that order, and as warnings, for two to four hits (the bodies for n =
// 2, 3, 4) the hits' warnings in that order, for five or more (the n > 4
// body) the violations of the warn hits (x[0] == -1) in that order. When
// the Go side does not reproduce the answer, the engine evaluates, in the
// same slot, with what is left of the timeout.
//
// Anything the Go side does not reproduce exactly is left to the
// evaluation, which then decides (and fails closed where it fails): a
// rule whose pattern or context does not compile (a strict built-in error
// in OPA), a kind the library does not know, rule data of unexpected
// shapes (an empty or non-ASCII alternative, a key not of five elements,
// non-string reason parts or pre-checks, patches or violations that are
// not objects), a hinted policy the view or the scope does not hold, an
// agent-scoped hint for an action without an agent, a template whose fill
// does not reproduce the decoded composition (checked with two markers
// when it is built), a hit whose patch does not compose from its fill
// (composableKey: a numeric risk score, array warnings, violations
// [x[5]], for both markers), two hits with one key (one rule hinted
// twice), or an entry past its memo bounds. Regexes are
// compiled once per entry (hitMemo) and live as long as it; the patterns
// are those OPA would run, so a costly pattern costs the same here.
//
// Like the no-hit answer, it is given holding an evaluation slot, failed
// closed when Config.Timeout passed by the clock or the caller's context
// ended, and never for an engine whose library WithModules changed.
// TestHitAnswer compares each answer with the hinted evaluation it
// replaces, field by field (and a one-rule hit's result term with the
// evaluation's, and a composed one's with the term composeHits builds),
// TestHitAnswerAdversarial, TestComposedAnswerAdversarial,
// TestHitAnswerRefuses and TestComposeHitsRefuses the edges, and
// TestHintsDifferential every hinted decision with the unhinted
// library's.

// maxHitCandidates is the most candidate rules the hit answer evaluates
// in Go; decisions with more are evaluated (hitPlanOf refuses them before
// any rule runs). The M corpus's planned decisions have at most six
// (1,000 decisions: 0..6 candidates 101, 213, 146, 117, 50, 17, 1; up to
// seven hits with FinancialSafety's approval), so 16 plans them all with
// room to spare: every M decision is answered in Go, Decision/M 61 -> 16
// allocations and 0.58x CPU, fired=3+ 182 -> 27 and 0.42x (6 alternated
// rounds vs 94356ff, README). The plan's fixed array costs 96 bytes more
// than at 4 (one allocation either way); compose's arrays live on the
// stack. The bound caps the work a decision can make the Go side do
// before an evaluation (a plan refused after its rules ran: a rule or
// template not reproduced, one key twice): at most 16 of the rules the
// evaluation runs anyway, each costing no more in Go than in OPA.
const maxHitCandidates = 16

// hitPlan is what the hit answer evaluates for one decision: the view's
// no-hit result and the candidate rules' data.
type hitPlan struct {
	allowed *ast.Term
	// financial: FinancialSafety's hit is _approval_of(keyword) (the
	// financial hint says no amount key occurs), which always fires.
	financial bool
	n         int
	rules     [maxHitCandidates]*ast.Term
}

var (
	keyShadowView   = ast.StringTerm("shadow")
	keyNoWhitelists = ast.StringTerm("no_whitelists")
	keyEnforcing    = ast.StringTerm("enforcing")
	keyAgentScope   = ast.StringTerm("agent")
	keyTenantScope  = ast.StringTerm("tenant")
	keyAgents       = ast.StringTerm("agents")
	keyRules        = ast.StringTerm("rules")
	keyMode         = ast.StringTerm("mode")
	// noShadowView is a view's shadow lists when it has no shadow policy.
	noShadowView = ast.MustParseTerm(`{"agent": {}, "tenant": {}}`).Value
)

// hitView says whether result's second branch decides for view (an
// object) of an entry whose tenant document is tenant: the view has no
// shadow policy and no whitelisted domains, and the tenant enforces.
func hitView(view ast.Value, tenant ast.Object) bool {
	obj, ok := view.(ast.Object)
	if !ok || tenant == nil {
		return false
	}
	is := func(o ast.Object, k *ast.Term, want ast.Value) bool {
		t := o.Get(k)
		return t != nil && t.Value.Compare(want) == 0
	}
	return is(obj, keyShadowView, noShadowView) &&
		is(obj, keyNoWhitelists, ast.Boolean(true)) &&
		is(obj, keyEnforcing, ast.Boolean(true)) &&
		is(tenant, keyMode, ast.String("enforcement"))
}

// hitPlanOf is the hit answer's plan for hs, whose noHitTerm was nil;
// ok false when the engine must evaluate.
func (p *prepared) hitPlanOf(hs *hintSet) (plan hitPlan, ok bool) {
	fv := hs.found
	if !fv.hit || fv.allowed == nil {
		return plan, false
	}
	switch hs.builtins {
	case builtinHints[0]:
	case builtinHints[1]:
		if !hs.financial || hs.amountKey || p.approval[0] == nil {
			return plan, false
		}
		plan.financial = true
	default:
		return plan, false
	}
	plan.allowed = fv.allowed
	rules := p.hits.planRules(p, hs)
	if !rules.ok {
		return plan, false
	}
	plan.n, plan.rules = rules.n, rules.rules
	// FinancialSafety's hit always fires, so beside candidate rules the
	// decision has one hit more than the rules that fire (at most
	// maxComposedHits, all composed in Go).
	return plan, plan.n > 0 || plan.financial
}

// planKey is what a plan's candidate rules depend on besides the entry:
// the rules hint (the Hinter's terms are shared per view and set of rules
// that may fire) and the view's agent and step type (the view, found
// once per entry by them: viewOf; the agent's policies).
type planKey struct {
	rules       *ast.Term
	agent, step string
}

// planned is candidateRules' result.
type planned struct {
	ok    bool
	n     int
	rules [maxHitCandidates]*ast.Term
}

// planRules is p.candidateRules(hs), remembered by planKey (at most
// maxHitPlans per entry; past it computed every time): the same rules
// hint in the same view names the same rules of the same data, which
// nothing writes.
func (m *hitMemo) planRules(p *prepared, hs *hintSet) *planned {
	k := planKey{hs.rules, hs.agent, hs.step}
	if r, ok := m.plans.Load(k); ok {
		return r.(*planned)
	}
	r := p.candidateRules(hs)
	if m.nplans.Load() < maxHitPlans {
		if _, loaded := m.plans.LoadOrStore(k, r); !loaded {
			m.nplans.Add(1)
		}
	}
	return r
}

// candidateRules is the rule data of the rules hs's rules hint names, in
// the hint's order (agent scope first), ok false when the Go side does
// not plan them (a hint or data of an unexpected shape, an index out of
// range, more than maxHitCandidates rules).
func (p *prepared) candidateRules(hs *hintSet) *planned {
	plan := &planned{}
	hints, ok := hs.rules.Value.(ast.Object)
	if !ok || hints.Len() != 2 {
		return plan
	}
	view := hs.found.view.(ast.Object)
	for _, scope := range [2]*ast.Term{keyAgentScope, keyTenantScope} {
		byName, ok := termObject(hints.Get(scope))
		if !ok {
			return plan
		}
		if byName.Len() == 0 {
			continue
		}
		applying, ok := termObject(view.Get(scope))
		if !ok {
			return plan
		}
		// _agent_scope: the input agent's policies (null: none); _tenant.tenant.
		var policies ast.Object
		if scope == keyAgentScope {
			if hs.agent == "" {
				return plan
			}
			agents, _ := termObject(p.tenant.Get(keyAgents))
			if agents == nil {
				return plan
			}
			policies, _ = termObject(agents.Get(ast.StringTerm(hs.agent)))
		} else {
			policies, _ = termObject(p.tenant.Get(keyTenantScope))
		}
		if policies == nil {
			return plan
		}
		ok = true
		byName.Foreach(func(name, idx *ast.Term) {
			if !ok {
				return
			}
			pol, _ := termObject(policies.Get(name))
			arr, isArr := idx.Value.(*ast.Array)
			if applying.Get(name) == nil || pol == nil || !isArr {
				ok = false
				return
			}
			rules, isArr := termArray(pol.Get(keyRules))
			if !isArr {
				ok = false
				return
			}
			for i := range arr.Len() {
				num, isNum := arr.Elem(i).Value.(ast.Number)
				if !isNum {
					ok = false
					return
				}
				n, isInt := num.Int()
				if !isInt || n < 0 || n >= rules.Len() || plan.n == maxHitCandidates {
					ok = false
					return
				}
				plan.rules[plan.n] = rules.Elem(n)
				plan.n++
			}
		})
		if !ok {
			return plan
		}
	}
	plan.ok = true
	return plan
}

func termObject(t *ast.Term) (ast.Object, bool) {
	if t == nil {
		return nil, false
	}
	o, ok := t.Value.(ast.Object)
	return o, ok
}

func termArray(t *ast.Term) (*ast.Array, bool) {
	if t == nil {
		return nil, false
	}
	a, ok := t.Value.(*ast.Array)
	return a, ok
}

// answerHit decides a by plan (hitPlanOf) in one of the slots: in Go when
// the Go side reproduces the hits and their composition, else
// by evaluating the hinted query with the rest of the time budget.
func (e *Engine) answerHit(ctx context.Context, a pdp.Action, p *prepared, hs *hintSet, plan *hitPlan, start time.Time) (*pdp.Decision, error) {
	if err := e.slots.acquire(ctx, a.TenantID); err != nil {
		return nil, err
	}
	defer e.slots.release(a.TenantID)
	began := time.Now()
	d, ok, err := p.hitDecision(hs, plan)
	if err == nil && !ok {
		left := e.cfg.Timeout - time.Since(began)
		if left <= 0 {
			err = context.DeadlineExceeded
		} else {
			var t *ast.Term
			if t, err = e.evalDirect(hintedContext(ctx, hs), p.direct, lazyInput(a), left); err == nil {
				return p.decisionOfTerm(t, start)
			}
			return nil, err
		}
	}
	return e.answeredInGo(ctx, d, err, began, start)
}

// hitDecision is the decision of plan's rules on hs's text: ok false when
// the engine must evaluate (a rule it does not reproduce, a composition
// it does not reproduce).
func (p *prepared) hitDecision(hs *hintSet, plan *hitPlan) (*pdp.Decision, bool, error) {
	var fired [maxComposedHits]firedHit
	n := 0
	if plan.financial {
		fired[0] = firedHit{approvalKey, hs.keyword}
		n = 1
	}
	for _, r := range plan.rules[:plan.n] {
		prog := p.hits.program(r)
		if prog == nil {
			return nil, false, nil
		}
		match, ok := prog.fire(hs.textStr, hs.foldedStr, hs.ascii)
		if !ok {
			continue
		}
		fired[n] = firedHit{r, match}
		n++
	}
	switch n {
	case 0:
		d, err := p.noHits.decode(plan.allowed)
		return d, err == nil, err
	case 1:
		tmpl := p.hits.template(plan.allowed, fired[0].rule, p.approval)
		if tmpl == nil {
			return nil, false, nil
		}
		return tmpl.fill(fired[0].match), true, nil
	}
	d, ok := p.hits.compose(plan.allowed, fired[:n], p.approval)
	return d, ok, nil
}

// firedHit is a rule (its data term; approvalKey: FinancialSafety's
// approval) that fired, with its match (the approval's: the keyword).
type firedHit struct {
	rule  *ast.Term
	match string
}

// maxComposedHits is the most hits the Go side composes (compose):
// every hit plan's rules and FinancialSafety's approval can yield.
const maxComposedHits = maxHitCandidates + 1

// pairwiseHits is the most hits _composed's bodies for n = 2, 3, 4 take
// (their warnings: the patches' concatenated); more take its n > 4 body
// (the warn hits' violations).
const pairwiseHits = 4

// warnRank is a warn hit's first element (0 - _outcome_rank["warn"]).
var warnRank = ast.Number("-1")

// compose is _composed(n) for the n = len(fired) hits (2 ..
// maxComposedHits) in the view whose no-hit result is allowed, decoded,
// built from the hits' one-hit templates: ok false when a hit has no
// composable template (composableKey), two hits have the same key, or
// there are more hits than maxComposedHits (the evaluation decides).
//
// _composed(n) is object.union_n([allowed, a[6], {"risk_score": max,
// "violations": [a[5], b[5], ...], "warnings": ...}]) over the hits
// sorted as sort(_hits) sorts them (_ranked_hits; see composeHits in
// hit_test.go, which builds it as terms), where the warnings are, for
// n = 2, 3, 4, the patches' warnings concatenated, and for n > 4 the
// violations x[5] of the hits whose x[0] == -1 (outcome warn), in rank
// order. Decoded (decodeAST decodes each field on its own), that is the
// trigger a's one-hit decision (the decoded object.union(allowed, a[6]))
// with three fields replaced, each a composition of the hits' one-hit
// decisions when every patch holds a numeric risk_score, an array of
// warnings and "violations": [x[5]] (composableKey checks it for both
// markers):
//   - risk_score: the largest of theirs (decoding a number to a float is
//     monotonic, so the float of the largest term is the largest float);
//   - violations: their one violation each, in rank order;
//   - warnings: n <= 4, their warnings, concatenated in rank order; n > 4,
//     the one violation of each warn hit (its template's warn), in rank
//     order.
//
// The order: the whole hits compare as their keys do when the keys
// differ (arrays compare element by element, the key first); the keys
// name scope, policy and rule, so equal keys mean one rule hinted twice
// (the set holds its hit once): left to the evaluation.
func (m *hitMemo) compose(allowed *ast.Term, fired []firedHit, approval [2]*ast.Term) (*pdp.Decision, bool) {
	n := len(fired)
	if n < 2 || n > maxComposedHits {
		return nil, false
	}
	var ts [maxComposedHits]*hitTemplate
	var order [maxComposedHits]int
	for i, f := range fired {
		t := m.template(allowed, f.rule, approval)
		if t == nil || t.key == nil {
			return nil, false
		}
		ts[i], order[i] = t, i
	}
	// Insertion sort by key: at most maxComposedHits, compared
	// maxComposedHits²/2 times at worst (OPA's sort of the set costs more).
	for i := 1; i < n; i++ {
		for j := i; j > 0; j-- {
			c := ts[order[j-1]].key.Compare(ts[order[j]].key)
			if c == 0 {
				return nil, false
			}
			if c < 0 {
				break
			}
			order[j-1], order[j] = order[j], order[j-1]
		}
	}
	// Only the first hit's whole decision is filled; the others give
	// their risk score (a template's constant) and their violations and
	// warnings, filled straight into the composed lists (appendFilled)
	// rather than into decisions of their own that would be dropped.
	nv, nw := 0, 0
	for i := range n {
		t := ts[order[i]]
		nv += len(t.d.Violations)
		switch {
		case n <= pairwiseHits:
			nw += len(t.d.Warnings)
		case t.warn:
			nw += len(t.d.Violations)
		}
	}
	d := ts[order[0]].fill(fired[order[0]].match)
	vs := make([]pdp.Violation, 0, nv+nw)
	for i := range n {
		t := ts[order[i]]
		d.RiskScore = max(d.RiskScore, t.d.RiskScore)
		vs = t.appendFilled(vs, t.d.Violations, t.violations, fired[order[i]].match)
	}
	for i := range n {
		switch t := ts[order[i]]; {
		case n <= pairwiseHits:
			vs = t.appendFilled(vs, t.d.Warnings, t.warnings, fired[order[i]].match)
		case t.warn:
			vs = t.appendFilled(vs, t.d.Violations, t.violations, fired[order[i]].match)
		}
	}
	d.Violations, d.Warnings = vs[:nv:nv], vs[nv:]
	return d, true
}

// composableKey is the sort key of rule r's hit (approvalKey:
// FinancialSafety's approval, whose hits for the markers are approval),
// the first five elements of the hit, when the hit's patch composes from
// its one-hit decision (see compose): for both markers, the patch holds a
// numeric "risk_score", an array "warnings" and "violations": [x[5]].
// Nil otherwise.
func composableKey(r *ast.Term, approval [2]*ast.Term) *ast.Array {
	var key *ast.Array
	for _, m := range [2]string{markerA, markerB} {
		var x *ast.Term
		var err error
		if r == approvalKey {
			x = approval[0]
			if m == markerB {
				x = approval[1]
			}
		} else if x, err = ruleHit(r, m); err != nil {
			return nil
		}
		arr, ok := termArray(x)
		if !ok || arr.Len() != 7 {
			return nil
		}
		patch, ok := termObject(arr.Elem(6))
		if !ok {
			return nil
		}
		rs := patch.Get(keyRiskScore)
		if rs == nil {
			return nil
		}
		if _, ok := rs.Value.(ast.Number); !ok {
			return nil
		}
		if _, ok := termArray(patch.Get(keyWarnings)); !ok {
			return nil
		}
		vs := patch.Get(keyViolations)
		if vs == nil || vs.Value.Compare(ast.NewArray(arr.Elem(5))) != 0 {
			return nil
		}
		key = arr.Slice(0, 5)
	}
	return key
}

// hitMemo remembers, per entry, each rule's program (by its data term)
// and each (view, rule)'s one-hit template (by the view's allowed term and
// the rule's data term), including the verdict that the Go side cannot
// answer for it (nil). The terms are the unit's store's, immutable and
// kept alive by the memo, so their addresses are never reused. At most
// maxHitPrograms programs and maxHitTemplates templates per entry; past
// that the engine evaluates.
type hitMemo struct {
	programs, templates, plans sync.Map
	np, nt, nplans             atomic.Int32
}

const (
	maxHitPrograms  = 1024
	maxHitTemplates = 1024
	maxHitPlans     = 1024
)

type templateKey struct{ allowed, rule *ast.Term }

// program is rule r's program, nil when the Go side does not evaluate it.
func (m *hitMemo) program(r *ast.Term) *hitProgram {
	if g, ok := m.programs.Load(r); ok {
		return g.(*hitProgram)
	}
	if m.np.Load() >= maxHitPrograms {
		return nil
	}
	g := compileHitProgram(r)
	if _, loaded := m.programs.LoadOrStore(r, g); !loaded {
		m.np.Add(1)
	}
	return g
}

// template is the one-hit template of rule r (approvalKey:
// FinancialSafety's approval, whose hits for the two markers are approval)
// in the view whose no-hit result is allowed, nil when the Go side does
// not compose it.
func (m *hitMemo) template(allowed, r *ast.Term, approval [2]*ast.Term) *hitTemplate {
	k := templateKey{allowed, r}
	if t, ok := m.templates.Load(k); ok {
		return t.(*hitTemplate)
	}
	if m.nt.Load() >= maxHitTemplates {
		return nil
	}
	var t *hitTemplate
	if r == approvalKey {
		t = newHitTemplate(allowed, nil, func(m string) (*ast.Term, error) {
			x := approval[0]
			if m == markerB {
				x = approval[1]
			}
			return hitPatch(x)
		})
	} else {
		t = newHitTemplate(allowed, reasonParts(r), func(m string) (*ast.Term, error) { return rulePatch(r, m) })
	}
	if t != nil {
		t.key = composableKey(r, approval)
		t.warn = t.key != nil && t.key.Elem(0).Value.Compare(warnRank) == 0
	}
	if _, loaded := m.templates.LoadOrStore(k, t); !loaded {
		m.nt.Add(1)
	}
	return t
}

// hitProgram is one rule's _fire, compiled.
type hitProgram struct {
	pattern    *goRegex
	alts       []string // kind "alts": the folded alternatives; nil for "regex"
	context    *goRegex
	contextPre []string // "_context" kinds
}

// compileHitProgram compiles rule data r, nil when the Go side does not
// evaluate it (see the file's comment).
func compileHitProgram(r *ast.Term) *hitProgram {
	obj, ok := r.Value.(ast.Object)
	if !ok {
		return nil
	}
	kind, ok := stringAt(obj, "kind")
	if !ok {
		return nil
	}
	g := &hitProgram{}
	switch kind {
	case "regex", "regex_context":
	case "alts", "alts_context":
		if g.alts, ok = asciiStrings(obj.Get(ast.StringTerm("alts")), false); !ok {
			return nil
		}
	default:
		return nil
	}
	pattern, ok := stringAt(obj, "pattern")
	if !ok {
		return nil
	}
	var err error
	if g.pattern, err = compileGoRegex(pattern); err != nil {
		return nil // OPA's strict built-in error: the evaluation fails closed
	}
	if strings.HasSuffix(kind, "_context") {
		context, ok := stringAt(obj, "context")
		if !ok {
			return nil
		}
		if g.context, err = compileGoRegex(context); err != nil {
			return nil
		}
		if g.contextPre, ok = asciiStrings(obj.Get(ast.StringTerm("context_pre")), true); !ok {
			return nil
		}
		if g.contextPre == nil {
			g.contextPre = []string{}
		}
	}
	return g
}

func stringAt(obj ast.Object, key string) (string, bool) {
	t := obj.Get(ast.StringTerm(key))
	if t == nil {
		return "", false
	}
	s, ok := t.Value.(ast.String)
	return string(s), ok
}

// asciiStrings is t's array of strings (stringsOf), each non-empty and
// (unless anyRunes) ASCII; ok false otherwise.
func asciiStrings(t *ast.Term, anyRunes bool) ([]string, bool) {
	out, ok := stringsOf(t)
	if !ok {
		return nil, false
	}
	for _, s := range out {
		if s == "" || !anyRunes && !isASCII(s) {
			return nil, false
		}
	}
	return out, true
}

// fire is _fire's match m of the rule on text (folded: its folded text,
// ascii: whether it is ASCII), ok false when the rule does not fire.
func (g *hitProgram) fire(text, folded string, ascii bool) (m string, ok bool) {
	if g.alts != nil {
		m, ok = g.alternative(text, folded, ascii)
	} else {
		m, ok = g.pattern.find(text, folded, ascii)
	}
	if !ok || g.context == nil {
		return m, ok
	}
	// _any(r.context_pre), then regex.match(r.context, text).
	for _, lit := range g.contextPre {
		if strings.Contains(folded, lit) {
			return m, g.context.match(text, folded, ascii)
		}
	}
	return "", false
}

// alternative is _alternative(r).
func (g *hitProgram) alternative(text, folded string, ascii bool) (string, bool) {
	if ascii { // then folded is ASCII too (foldText), as are the alternatives
		pos, k := -1, -1
		for j, lit := range g.alts {
			// min([[indexof(f, lit), k, lit] | contains(f, lit)]): the least
			// position, then the least index.
			if i := strings.Index(folded, lit); i >= 0 && (pos < 0 || i < pos) {
				pos, k = i, j
			}
		}
		if k >= 0 {
			return asciiSubstring(text, pos, len(g.alts[k])), true
		}
	}
	return g.pattern.find(text, folded, ascii)
}

// asciiSubstring is OPA's substring(s, start, n) for an ASCII s, start >=
// 0 and n >= 0.
func asciiSubstring(s string, start, n int) string {
	if s == "" || start >= len(s) {
		return ""
	}
	if start == 0 && n >= len(s) {
		return s
	}
	return s[start : start+min(n, len(s)-start)]
}

// composeHit is the library's one-hit result for rule data r with match
// m in the view whose no-hit result is allowed: object.union(allowed,
// x[6]) for x = _fire(r.kind, r) (decision.rego: _fire, _composed).
func composeHit(allowed, r *ast.Term, m string) (ast.Value, error) {
	patch, err := rulePatch(r, m)
	if err != nil {
		return nil, err
	}
	out, err := objectUnion(allowed, patch)
	if err != nil {
		return nil, err
	}
	return out.Value, nil
}

// rulePatch is x[6] for x = _fire(r.kind, r) with match m, built with
// OPA's object.union and concat semantics.
func rulePatch(r *ast.Term, m string) (*ast.Term, error) {
	_, _, patch, err := ruleHitParts(r, m)
	return patch, err
}

// ruleHit is the hit x = _fire(r.kind, r) with match m: array.concat of
// the rule's key and [violation, patch].
func ruleHit(r *ast.Term, m string) (*ast.Term, error) {
	key, v, patch, err := ruleHitParts(r, m)
	if err != nil {
		return nil, err
	}
	elems := make([]*ast.Term, 0, 7)
	key.Foreach(func(t *ast.Term) { elems = append(elems, t) })
	return ast.ArrayTerm(append(elems, v, patch)...), nil
}

// ruleHitParts are _fire's parts for rule data r and match m: the rule's
// key (five elements), the violation and the completed patch.
func ruleHitParts(r *ast.Term, m string) (key *ast.Array, v, patch *ast.Term, err error) {
	obj, ok := r.Value.(ast.Object)
	if !ok {
		return nil, nil, nil, fmt.Errorf("rule is %T", r.Value)
	}
	parts, ok := stringsOf(obj.Get(ast.StringTerm("reason_parts")))
	if !ok {
		return nil, nil, nil, fmt.Errorf("reason_parts")
	}
	key, ok = termArray(obj.Get(ast.StringTerm("key")))
	if !ok || key.Len() != 5 {
		return nil, nil, nil, fmt.Errorf("key")
	}
	reason := ast.StringTerm(strings.Join(parts, m))
	v, err = objectUnion(obj.Get(ast.StringTerm("violation")), ast.ObjectTerm(
		[2]*ast.Term{keyMatch, ast.StringTerm(m)}, [2]*ast.Term{keyReason, reason}))
	if err != nil {
		return nil, nil, nil, err
	}
	patch, err = objectUnion(ast.ObjectTerm(
		[2]*ast.Term{keyReason, reason},
		[2]*ast.Term{keyViolations, ast.ArrayTerm(v)},
		[2]*ast.Term{keyWarnings, ast.ArrayTerm(v)},
	), obj.Get(ast.StringTerm("patch")))
	return key, v, patch, err
}

// hitPatch is x[6] of a hit x (a ranked hit: five key elements, the
// violation, the patch).
func hitPatch(x *ast.Term) (*ast.Term, error) {
	arr, ok := termArray(x)
	if !ok || arr.Len() != 7 {
		return nil, fmt.Errorf("hit %v", x)
	}
	return arr.Elem(6), nil
}

// stringsOf is t's array of strings.
func stringsOf(t *ast.Term) ([]string, bool) {
	arr, ok := termArray(t)
	if !ok {
		return nil, false
	}
	out := make([]string, arr.Len())
	for i := range out {
		s, ok := arr.Elem(i).Value.(ast.String)
		if !ok {
			return nil, false
		}
		out[i] = string(s)
	}
	return out, true
}

// objectUnion is OPA's object.union(a, b) (topdown/object.go).
func objectUnion(a, b *ast.Term) (*ast.Term, error) {
	x, ok1 := termObject(a)
	y, ok2 := termObject(b)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("object.union of %v and %v", a, b)
	}
	if x.Len() == 0 {
		return b, nil
	}
	if y.Len() == 0 || x.Compare(y) == 0 {
		return a, nil
	}
	return ast.NewTerm(mergeOverwrite(x, y)), nil
}

func mergeOverwrite(x, y ast.Object) ast.Object {
	merged, _ := x.MergeWith(y, func(v1, v2 *ast.Term) (*ast.Term, bool) {
		o1, ok1 := v1.Value.(ast.Object)
		o2, ok2 := v2.Value.(ast.Object)
		if !ok1 || !ok2 {
			return v2, false
		}
		return ast.NewTerm(mergeOverwrite(o1, o2)), false
	})
	return merged
}

// hitTemplate is the decision of a one-hit result (composeHit) with its
// match and reason left to fill in: d decoded with a marker match, and
// for each string that held the marker match (slotMatch) or the reason
// made with it (slotReason), which one to put there.
type hitTemplate struct {
	d     pdp.Decision
	parts []string // reason_parts
	// key: the hit's sort key (its first five elements) when the hit
	// composes with others from its fill (composableKey), else nil.
	key *ast.Array
	// warn: the hit's first element is -1 (outcome warn), so its
	// violation is among the warnings of more than pairwiseHits hits.
	warn bool
	// reason: d.Reason's slot; violations, warnings: each violation's
	// [match, reason] slots.
	reason               slot
	violations, warnings [][2]slot
}

type slot uint8

const (
	slotConst slot = iota
	slotMatch
	slotReason
)

// Two matches no action text yields as a whole match of a rule's data
// (they hold NUL bytes and differ), for finding the slots and checking
// the fill.
const (
	markerA = "\x00gatehouse hit marker A\x00"
	markerB = "\x00gatehouse hit marker B\x00"
)

// newHitTemplate builds the template of a hit whose patch (x[6]) for
// match m is patch(m), in the view whose no-hit result is allowed; its
// reason is concat(m, parts) (parts nil: the hit has no reason made
// with the match). Nil when the fill does not reproduce the decoded
// composition for two different matches, or the composition fails.
func newHitTemplate(allowed *ast.Term, parts []string, patch func(m string) (*ast.Term, error)) *hitTemplate {
	decoded := func(m string) *pdp.Decision {
		x, err := patch(m)
		if err != nil {
			return nil
		}
		v, err := objectUnion(allowed, x)
		if err != nil {
			return nil
		}
		d, err := decodeAST(v.Value)
		if err != nil {
			return nil
		}
		return d
	}
	da, db := decoded(markerA), decoded(markerB)
	if da == nil || db == nil || len(da.Shadow) != 0 {
		return nil
	}
	t := &hitTemplate{d: *da, parts: parts}
	kind := func(s string) slot {
		switch {
		case s == markerA:
			return slotMatch
		case parts != nil && s == strings.Join(parts, markerA):
			return slotReason
		}
		return slotConst
	}
	if da.Reason != nil {
		t.reason = kind(*da.Reason)
	}
	slots := func(vs []pdp.Violation) [][2]slot {
		out := make([][2]slot, len(vs))
		for i, v := range vs {
			out[i] = [2]slot{kind(v.Match), kind(v.Reason)}
		}
		return out
	}
	t.violations, t.warnings = slots(da.Violations), slots(da.Warnings)
	if !sameFilled(t.fill(markerA), da) || !sameFilled(t.fill(markerB), db) {
		return nil
	}
	return t
}

func reasonParts(r *ast.Term) []string {
	obj, ok := r.Value.(ast.Object)
	if !ok {
		return nil
	}
	parts, _ := stringsOf(obj.Get(ast.StringTerm("reason_parts")))
	return parts
}

// sameFilled: a and b are the same decision, field by field.
func sameFilled(a, b *pdp.Decision) bool {
	return reflect.DeepEqual(a, b)
}

// appendFilled appends src, the template's violations or warnings (slots
// theirs), filled for match m as fill fills them.
func (t *hitTemplate) appendFilled(dst, src []pdp.Violation, slots [][2]slot, m string) []pdp.Violation {
	reason := ""
	if hasSlot(slots, slotReason) {
		reason = strings.Join(t.parts, m)
	}
	for i, v := range src {
		v.Match = slotValue(slots[i][0], v.Match, m, reason)
		v.Reason = slotValue(slots[i][1], v.Reason, m, reason)
		dst = append(dst, v)
	}
	return dst
}

// slotValue is what a template's string of kind s (constant c) is for
// match m and the reason filled for it.
func slotValue(s slot, c, m, reason string) string {
	switch s {
	case slotMatch:
		return m
	case slotReason:
		return reason
	}
	return c
}

// fill is the template's decision for match m: a new decision sharing
// nothing a caller could change with the template or other decisions.
func (t *hitTemplate) fill(m string) *pdp.Decision {
	reason := ""
	if t.reason == slotReason || hasSlot(t.violations, slotReason) || hasSlot(t.warnings, slotReason) {
		reason = strings.Join(t.parts, m)
	}
	value := func(s slot, c string) string { return slotValue(s, c, m, reason) }
	b := &struct {
		d                 pdp.Decision
		triggered, reason string
		severity          pdp.Severity
	}{d: t.d}
	d := &b.d
	if t.d.TriggeredPolicy != nil {
		b.triggered = *t.d.TriggeredPolicy
		d.TriggeredPolicy = &b.triggered
	}
	if t.d.Severity != nil {
		b.severity = *t.d.Severity
		d.Severity = &b.severity
	}
	if t.d.Reason != nil {
		b.reason = value(t.reason, *t.d.Reason)
		d.Reason = &b.reason
	}
	if t.d.PoliciesEvaluated != nil {
		d.PoliciesEvaluated = append(make([]string, 0, len(t.d.PoliciesEvaluated)), t.d.PoliciesEvaluated...)
	}
	nv, nw := len(t.d.Violations), len(t.d.Warnings)
	vs := make([]pdp.Violation, nv+nw)
	fillViolations := func(dst, src []pdp.Violation, slots [][2]slot) {
		for i, v := range src {
			v.Match = value(slots[i][0], v.Match)
			v.Reason = value(slots[i][1], v.Reason)
			dst[i] = v
		}
	}
	if t.d.Violations != nil {
		d.Violations = vs[:nv:nv]
		fillViolations(d.Violations, t.d.Violations, t.violations)
	}
	if t.d.Warnings != nil {
		d.Warnings = vs[nv : nv+nw : nv+nw]
		fillViolations(d.Warnings, t.d.Warnings, t.warnings)
	}
	d.Shadow = nil
	return d
}

func hasSlot(slots [][2]slot, s slot) bool {
	for _, x := range slots {
		if x[0] == s || x[1] == s {
			return true
		}
	}
	return false
}

// approvalKey stands for FinancialSafety's approval hit in the template
// memo (its own term, never a rule's).
var approvalKey = ast.StringTerm("FinancialSafetyPolicy approval")

// approvalQuery is FinancialSafety's approval hit for keyword input.k, as
// the library defines it (financial_safety.rego: _approval_of, the hit
// when the hints say no amount key occurs).
const approvalQuery = `data.gatehouse.builtins.financial_safety._approval_of(input.k)`

// approvalHits are the library's approval hits for markerA and markerB,
// evaluated once per engine with the library's compiler c (the same for
// every registry tenant); zero when the evaluation fails (the hit answer
// then leaves FinancialSafety's hits to the evaluation).
func (e *Engine) approvalHits(ctx context.Context, c *ast.Compiler) [2]*ast.Term {
	e.approvalOnce.Do(func() {
		pq, err := rego.New(
			rego.Query(approvalQuery),
			rego.Compiler(c),
			rego.Store(inmem.New()),
			rego.StrictBuiltinErrors(true),
			rego.GenerateJSON(func(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }),
		).PrepareForEval(ctx)
		if err != nil {
			return
		}
		var out [2]*ast.Term
		for i, m := range [2]string{markerA, markerB} {
			in := ast.NewObject([2]*ast.Term{ast.StringTerm("k"), ast.StringTerm(m)})
			rs, err := pq.Eval(ctx, rego.EvalParsedInput(in))
			if err != nil {
				return
			}
			if out[i], err = resultTerm(rs); err != nil {
				return
			}
		}
		e.approval = out
	})
	return e.approval
}
