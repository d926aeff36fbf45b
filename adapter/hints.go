package adapter

import (
	"maps"
	"strconv"
	"strings"
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// Hinter finds, for one tenant revision, which of its policies and rules
// could fire on an action: the candidates the engine hands to the Rego
// library as data.gatehouse.hints.candidates (policies, CandidatesTerm)
// and, for the data-driven library path, data.gatehouse.hints.rules
// (rules, RulesTerm), so the library evaluates only those.
//
// Each rule's condition is necessary for it to fire: for its match
// pattern and, if it has one, its context_requires pattern,
//   - the folded action text contains one of the pattern's necessary
//     literals (the set Literals computes, single characters allowed), and
//   - every necessary class-sequence condition of the pattern holds
//     (patternConditions: "eleven consecutive characters: three digits,
//     '-', two digits, '-', four digits", "an address character, '@', an
//     address character"; Unicode digits and case folding included),
//     derived from the pattern's syntax tree for patterns without a
//     literal set, and for those whose set the conditions sharpen.
//
// A rule with neither is always a candidate. One multi-pattern pass over
// the folded text finds every literal of the tenant at once, one
// Shift-And pass (only when a rule still in question needs it) every
// condition. A hint only ever removes rules and policies that cannot fire;
// the library computes the same decision without it (tested).
type Hinter struct {
	matcher *multiMatcher
	nlits   int
	chains  chainMatcher
	conds   []chainCond // by condition id
	// views by agent ("" for agents without policies of their own), then
	// step type, as effectiveViews computes them.
	views map[string]map[string]*HintView
}

// HintView is the hints' view of one agent and step type (Hinter.View):
// the policies that apply, in order, with their rules' conditions.
type HintView struct {
	agent, tenant []hintPolicy
	// allAgent, allTenant: the names of every policy of agent and tenant
	// as one array term, the list when all may fire.
	allAgent, allTenant *ast.Term
	// objects: the candidates objects (CandidatesTerm) built so far, by
	// which policies may fire (bit i: policy i of agent, of tenant); a map
	// replaced, never changed, and bounded by maxCandidateObjects. Only
	// for views of at most 64 policies of each scope.
	objects atomic.Pointer[map[[2]uint64]*ast.Term]
	// ruleObjects: the same for RulesTerm, by which rules may fire (bit i:
	// rule i of the view, agent policies' rules first); only for views of
	// at most maxMemoRules rules.
	ruleObjects atomic.Pointer[map[ruleKey]*ast.Term]
	nrules      int
	// code: every rule's ruleCond in RulesTerm's bit order (agent
	// policies' rules first), flattened into one slice (ruleCode), so
	// that a decision's pass over the rules reads one array instead of
	// four slices per rule. Built once per revision, after the
	// conditions are placed.
	code []int32
}

// maxCandidateObjects bounds the candidates objects a view remembers:
// texts that make many different sets of policies candidates (a tenant of
// many policies, or a client trying) cost a new object each past it.
const maxCandidateObjects = 256

// maxMemoRules: views of more rules build their RulesTerm every time.
const maxMemoRules = 256

type ruleKey [maxMemoRules / 64]uint64

// The keys of the candidates hint, data.gatehouse.hints.candidates, and of
// the rules hint, data.gatehouse.hints.rules.
var (
	candidatesAgent  = ast.StringTerm("agent")
	candidatesTenant = ast.StringTerm("tenant")
	noCandidates     = ast.ObjectTerm([2]*ast.Term{candidatesAgent, noNames}, [2]*ast.Term{candidatesTenant, noNames})
	noRuleObject     = ast.ObjectTerm()
	noRules          = ast.ObjectTerm([2]*ast.Term{candidatesAgent, noRuleObject}, [2]*ast.Term{candidatesTenant, noRuleObject})
)

type hintPolicy struct {
	name  string
	term  *ast.Term // name as a string term, built once per revision
	rules []ruleCond
}

// noNames is the empty candidate list, shared: terms handed to OPA are
// never modified by it.
var noNames = ast.ArrayTerm()

// ruleCond: the rule may fire only if one literal of match (nil: no
// condition) and one of context (nil: none) occur, and every condition of
// matchConds and contextConds (condition ids) holds.
type ruleCond struct {
	match, context           []int32
	matchConds, contextConds []int32
}

// NewHinter builds the hinter of a tenant's enabled policies.
func NewHinter(tp *pdp.TenantPolicies) *Hinter {
	h := &Hinter{views: map[string]map[string]*HintView{}}
	ids := map[string]int32{}
	var lits []string
	idsOf := func(pattern string) []int32 {
		set, ok := necessaryLiterals(pattern, 1)
		if !ok {
			return nil
		}
		out := make([]int32, len(set))
		for i, l := range set {
			id, seen := ids[l]
			if !seen {
				id = int32(len(lits))
				ids[l] = id
				lits = append(lits, l)
			}
			out[i] = id
		}
		return out
	}
	// Conditions are laid out in the Shift-And matcher after every rule's
	// literals are known: patterns without a literal set first, so they
	// are the last to be dropped when the matcher is full.
	type pending struct {
		conds   *[]int32
		pattern string
	}
	var first, second []pending
	conds := map[*pdp.Policy]hintPolicy{}
	policy := func(p *pdp.Policy) hintPolicy {
		if hp, ok := conds[p]; ok {
			return hp
		}
		hp := hintPolicy{name: p.Name, term: ast.StringTerm(p.Name), rules: make([]ruleCond, len(p.Rules))}
		for i, r := range p.Rules {
			c := &hp.rules[i]
			c.match = idsOf(r.Match)
			if c.match == nil {
				first = append(first, pending{&c.matchConds, r.Match})
			} else {
				second = append(second, pending{&c.matchConds, r.Match})
			}
			if r.ContextRequires != "" {
				if c.context = idsOf(r.ContextRequires); c.context == nil {
					first = append(first, pending{&c.contextConds, r.ContextRequires})
				} else {
					second = append(second, pending{&c.contextConds, r.ContextRequires})
				}
			}
		}
		conds[p] = hp
		return hp
	}
	for agent, byStep := range effectiveViews(tp) {
		h.views[agent] = map[string]*HintView{}
		for st, v := range byStep {
			hv := &HintView{}
			for _, p := range v.agent {
				hv.agent = append(hv.agent, policy(p))
			}
			for _, p := range v.tenant {
				hv.tenant = append(hv.tenant, policy(p))
			}
			for _, ps := range [][]hintPolicy{hv.agent, hv.tenant} {
				for _, p := range ps {
					hv.nrules += len(p.rules)
				}
			}
			hv.allAgent, hv.allTenant = namesArray(hv.agent, nil), namesArray(hv.tenant, nil)
			h.views[agent][st] = hv
		}
	}
	h.matcher = newMultiMatcher(lits)
	h.nlits = len(lits)

	var cb chainBuilder
	placed := map[string][]int32{} // by pattern, then by "literal set or not"
	for pass, list := range [][]pending{first, second} {
		for _, pd := range list {
			key := strconv.Itoa(pass) + pd.pattern
			got, ok := placed[key]
			if !ok {
				for _, cond := range conditionsOf(pd.pattern) {
					if pass == 1 && allSingletons(cond) {
						continue // the literal set tests as much
					}
					cc, fit := cb.add(cond)
					if !fit {
						break
					}
					h.conds = append(h.conds, cc)
					got = append(got, int32(len(h.conds)-1))
				}
				placed[key] = got
			}
			*pd.conds = got
		}
	}
	h.chains = cb.m
	for _, byStep := range h.views {
		for _, hv := range byStep {
			for _, ps := range [][]hintPolicy{hv.agent, hv.tenant} {
				for i := range ps {
					for j := range ps[i].rules {
						hv.code = ruleCode(hv.code, &ps[i].rules[j])
					}
				}
			}
		}
	}
	return h
}

// ruleCode appends r to code as mayFireAt reads it: the count of match's
// literal ids and the ids, the same for context (count -1: nil, no
// condition), then the count of matchConds and the ids, the same for
// contextConds.
func ruleCode(code []int32, r *ruleCond) []int32 {
	for _, ids := range [][]int32{r.match, r.context} {
		if ids == nil {
			code = append(code, -1)
			continue
		}
		code = append(code, int32(len(ids)))
		code = append(code, ids...)
	}
	for _, ids := range [][]int32{r.matchConds, r.contextConds} {
		code = append(code, int32(len(ids)))
		code = append(code, ids...)
	}
	return code
}

// mayFireAt is mayFire of the rule whose ruleCode starts at code[pc],
// and where the next rule's starts. The conditions are tested in
// mayFire's order and as lazily (no scan unless the literals hold).
func (e *hintEval) mayFireAt(code []int32, pc int) (may bool, next int) {
	may = true
	for range 2 { // match, context: one of the literals occurs
		n := int(code[pc])
		pc++
		if n < 0 {
			continue
		}
		if may {
			may = false
			for _, id := range code[pc : pc+n] {
				if e.found[id] {
					may = true
					break
				}
			}
		}
		pc += n
	}
	for range 2 { // matchConds, contextConds: every condition holds
		n := int(code[pc])
		pc++
		if may && n > 0 {
			may = e.condsHold(code[pc : pc+n])
		}
		pc += n
	}
	return may, pc
}

// conditionMemo holds patternConditions' results by pattern: they are the
// same for every tenant that writes the pattern (the classes they share
// are never modified).
var conditionMemo, _ = lru.New[string, []chainSet](4096)

func conditionsOf(pattern string) []chainSet {
	if c, ok := conditionMemo.Get(pattern); ok {
		return c
	}
	c := patternConditions(pattern)
	conditionMemo.Add(pattern, c)
	return c
}

// hintEval is what one decision's text makes true: the literals found (one
// pass, at once) and the conditions that hold (one pass, the first time a
// rule needs one).
type hintEval struct {
	h       *Hinter
	folded  string
	found   []bool
	seen    [maxChainWords]uint64
	scanned bool
}

// eval runs the literal pass over folded; buf is used for the result when
// it is large enough.
func (h *Hinter) eval(folded string, buf []bool) hintEval {
	return hintEval{h: h, folded: folded, found: h.match(folded, buf)}
}

func (e *hintEval) condsHold(ids []int32) bool {
	if len(ids) == 0 {
		return true
	}
	if !e.scanned {
		e.h.chains.scan(e.folded, &e.seen)
		e.scanned = true
	}
	for _, id := range ids {
		if !e.h.conds[id].holds(&e.seen) {
			return false
		}
	}
	return true
}

// mayFire: rule r's necessary conditions hold.
func (e *hintEval) mayFire(r *ruleCond) bool {
	return anyFound(r.match, e.found) && anyFound(r.context, e.found) &&
		e.condsHold(r.matchConds) && e.condsHold(r.contextConds)
}

// policyMayFire: one of p's rules may fire.
func (e *hintEval) policyMayFire(p *hintPolicy) bool {
	for i := range p.rules {
		if e.mayFire(&p.rules[i]) {
			return true
		}
	}
	return false
}

// Candidates returns the names of the agent-scoped and tenant-wide
// policies of the view of agentID and stepType (as the action names them;
// "" for no agent) that could fire on an action whose folded action text
// is folded. A policy left out cannot fire.
func (h *Hinter) Candidates(agentID, stepType, folded string) (agent, tenant []string) {
	v := h.view(agentID, stepType)
	if v == nil {
		return nil, nil
	}
	var buf [256]bool
	e := h.eval(folded, buf[:0])
	return candidates(v.agent, &e), candidates(v.tenant, &e)
}

// CandidateRules returns, by policy name, the indexes (ascending, in the
// policy's rules) of the agent-scoped and tenant-wide rules of the view
// of agentID and stepType that could fire on an action whose folded action
// text is folded; policies without one are left out. A rule left out
// cannot fire.
func (h *Hinter) CandidateRules(agentID, stepType, folded string) (agent, tenant map[string][]int) {
	v := h.view(agentID, stepType)
	if v == nil {
		return nil, nil
	}
	var buf [256]bool
	e := h.eval(folded, buf[:0])
	rules := func(ps []hintPolicy) map[string][]int {
		out := map[string][]int{}
		for i := range ps {
			for j := range ps[i].rules {
				if e.mayFire(&ps[i].rules[j]) {
					out[ps[i].name] = append(out[ps[i].name], j)
				}
			}
		}
		return out
	}
	return rules(v.agent), rules(v.tenant)
}

// RulesTerm is CandidateRules as the object the data-driven library path
// reads as data.gatehouse.hints.rules: {"agent": {<policy name>: [rule
// indexes ascending]}, "tenant": {...}}, only policies with a candidate
// rule. Like CandidatesTerm, a view remembers the objects it builds (by
// which rules may fire, bounded by maxCandidateObjects, views of at most
// maxMemoRules rules), and the empty objects are shared. The caller must
// not modify the term.
func (h *Hinter) RulesTerm(agentID, stepType, folded string) *ast.Term {
	return h.RulesTermIn(h.view(agentID, stepType), folded)
}

// View returns the view of agentID and stepType (as RulesTerm takes
// them), nil if there is none, for RulesTermIn: a caller that looks the
// view up once per agent and step type (the engine remembers it with its
// own view lookup) saves RulesTerm's two map lookups per decision.
func (h *Hinter) View(agentID, stepType string) *HintView {
	return h.view(agentID, stepType)
}

// RulesTermIn is RulesTerm in view v of h (View; nil: no view).
func (h *Hinter) RulesTermIn(v *HintView, folded string) *ast.Term {
	if v == nil {
		return noRules
	}
	var buf [256]bool
	e := h.eval(folded, buf[:0])
	if v.nrules > maxMemoRules {
		return rulesObject(v, &e, nil)
	}
	var k ruleKey
	for bit, pc := 0, 0; bit < v.nrules; bit++ {
		var may bool
		may, pc = e.mayFireAt(v.code, pc)
		if may {
			k[bit/64] |= 1 << (bit % 64)
		}
	}
	objs := v.ruleObjects.Load()
	if objs != nil {
		if t, ok := (*objs)[k]; ok {
			return t
		}
	}
	t := rulesObject(v, nil, &k)
	if objs == nil || len(*objs) < maxCandidateObjects {
		next := map[ruleKey]*ast.Term{}
		if objs != nil {
			next = maps.Clone(*objs)
		}
		next[k] = t
		v.ruleObjects.CompareAndSwap(objs, &next) // a racing writer's map wins; t is built again later
	}
	return t
}

// rulesObject builds RulesTerm's object from e, or from the rule bits of
// k when e is nil.
func rulesObject(v *HintView, e *hintEval, k *ruleKey) *ast.Term {
	bit := 0
	scope := func(ps []hintPolicy) *ast.Term {
		var items [][2]*ast.Term
		for i := range ps {
			var idx []*ast.Term
			for j := range ps[i].rules {
				var may bool
				if e != nil {
					may = e.mayFire(&ps[i].rules[j])
				} else {
					may = k[bit/64]&(1<<(bit%64)) != 0
				}
				bit++
				if may {
					idx = append(idx, ast.InternedTerm(j))
				}
			}
			if idx != nil {
				items = append(items, [2]*ast.Term{ps[i].term, ast.ArrayTerm(idx...)})
			}
		}
		if items == nil {
			return noRuleObject
		}
		return ast.ObjectTerm(items...)
	}
	agent := scope(v.agent)
	tenant := scope(v.tenant)
	if agent == noRuleObject && tenant == noRuleObject {
		return noRules
	}
	return ast.ObjectTerm([2]*ast.Term{candidatesAgent, agent}, [2]*ast.Term{candidatesTenant, tenant})
}

// CandidatesTerm is Candidates as the object the library reads as
// data.gatehouse.hints.candidates: {"agent": [...], "tenant": [...]}, each
// list an array of the names as string terms, in the same order. The name
// terms are built once per revision, the empty list and the list of every
// policy of the view are shared.
// A view remembers the objects it builds by which policies they name, so
// the sets that recur (none, all, the usual one or two) cost nothing after
// their first decision. The caller must not modify the term.
func (h *Hinter) CandidatesTerm(agentID, stepType, folded string) *ast.Term {
	v := h.view(agentID, stepType)
	if v == nil {
		return noCandidates
	}
	var buf [256]bool
	e := h.eval(folded, buf[:0])
	if len(v.agent) > 64 || len(v.tenant) > 64 {
		return candidatesObject(candidateTerm(v.agent, v.allAgent, &e), candidateTerm(v.tenant, v.allTenant, &e))
	}
	k := [2]uint64{mayFireMask(v.agent, &e), mayFireMask(v.tenant, &e)}
	objs := v.objects.Load()
	if objs != nil {
		if t, ok := (*objs)[k]; ok {
			return t
		}
	}
	t := candidatesObject(maskTerm(v.agent, v.allAgent, k[0]), maskTerm(v.tenant, v.allTenant, k[1]))
	if objs == nil || len(*objs) < maxCandidateObjects {
		next := map[[2]uint64]*ast.Term{}
		if objs != nil {
			next = maps.Clone(*objs)
		}
		next[k] = t
		v.objects.CompareAndSwap(objs, &next) // a racing writer's map wins; t is built again later
	}
	return t
}

func candidatesObject(agent, tenant *ast.Term) *ast.Term {
	if agent == noNames && tenant == noNames {
		return noCandidates
	}
	return ast.ObjectTerm([2]*ast.Term{candidatesAgent, agent}, [2]*ast.Term{candidatesTenant, tenant})
}

// mayFireMask has bit i set when policy i of ps may fire (len(ps) <= 64).
func mayFireMask(ps []hintPolicy, e *hintEval) uint64 {
	var m uint64
	for i := range ps {
		if e.policyMayFire(&ps[i]) {
			m |= 1 << i
		}
	}
	return m
}

// maskTerm is the array term of the names of the policies of ps whose bit
// is set in mask; all is the term of every one of them.
func maskTerm(ps []hintPolicy, all *ast.Term, mask uint64) *ast.Term {
	switch {
	case mask == 0:
		return noNames
	case len(ps) == 64 && mask == ^uint64(0) || len(ps) < 64 && mask == 1<<len(ps)-1:
		return all
	}
	ts := make([]*ast.Term, 0, len(ps))
	for i := range ps {
		if mask&(1<<i) != 0 {
			ts = append(ts, ps[i].term)
		}
	}
	return ast.ArrayTerm(ts...)
}

// view returns the view of agentID and stepType, nil if it has none.
func (h *Hinter) view(agentID, stepType string) *HintView {
	byStep := h.views[agentID]
	if agentID == "" || byStep == nil {
		byStep = h.views[""]
	}
	step := pdp.DefaultStepType
	if stepType != "" {
		step = strings.ToUpper(stepType) // the library's upper()
	}
	return byStep[step]
}

// match runs the tenant's literals over folded and returns which occur,
// in buf if it is large enough.
func (h *Hinter) match(folded string, buf []bool) []bool {
	var found []bool
	if h.nlits <= cap(buf) {
		found = buf[:h.nlits]
	} else {
		found = make([]bool, h.nlits)
	}
	h.matcher.match(folded, found)
	return found
}

func candidates(ps []hintPolicy, e *hintEval) []string {
	var out []string
	for i := range ps {
		if e.policyMayFire(&ps[i]) {
			out = append(out, ps[i].name)
		}
	}
	return out
}

// candidateTerm is the array term of the policies of ps that may fire;
// all is the term of every one of them.
func candidateTerm(ps []hintPolicy, all *ast.Term, e *hintEval) *ast.Term {
	n := 0
	for i := range ps {
		if e.policyMayFire(&ps[i]) {
			n++
		}
	}
	switch n {
	case 0:
		return noNames
	case len(ps):
		return all
	}
	return namesArray(ps, e)
}

// namesArray is the array term of the names of the policies of ps that
// may fire on e, or of all of them when e is nil.
func namesArray(ps []hintPolicy, e *hintEval) *ast.Term {
	if len(ps) == 0 {
		return noNames
	}
	ts := make([]*ast.Term, 0, len(ps))
	for i := range ps {
		if e == nil || e.policyMayFire(&ps[i]) {
			ts = append(ts, ps[i].term)
		}
	}
	return ast.ArrayTerm(ts...)
}

func anyFound(ids []int32, found []bool) bool {
	if ids == nil {
		return true
	}
	for _, id := range ids {
		if found[id] {
			return true
		}
	}
	return false
}
