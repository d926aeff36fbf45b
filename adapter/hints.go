package adapter

import (
	"maps"
	"strings"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// Hinter finds, for one tenant revision, which of its policies could fire
// on an action: the candidates the engine hands to the Rego library as
// data.gatehouse.hints.candidates, so the library evaluates only those.
//
// Each rule's condition is necessary for it to fire: the folded action
// text contains one of its match pattern's necessary literals (the set
// Literals computes, single characters allowed), and one of its
// context_requires pattern's if it has a set; a rule without a set is
// always a candidate. One multi-pattern pass over the folded text finds
// every literal of the tenant at once. A hint only ever removes policies
// none of whose rules can fire; the library computes the same decision
// without it (tested).
type Hinter struct {
	matcher *multiMatcher
	nlits   int
	// views by agent ("" for agents without policies of their own), then
	// step type, as effectiveViews computes them.
	views map[string]map[string]*hintView
}

type hintView struct {
	agent, tenant []hintPolicy
	// allAgent, allTenant: the names of every policy of agent and tenant
	// as one array term, the list when all may fire.
	allAgent, allTenant *ast.Term
	// objects: the candidates objects (CandidatesTerm) built so far, by
	// which policies may fire (bit i: policy i of agent, of tenant); a map
	// replaced, never changed, and bounded by maxCandidateObjects. Only
	// for views of at most 64 policies of each scope.
	objects atomic.Pointer[map[[2]uint64]*ast.Term]
}

// maxCandidateObjects bounds the candidates objects a view remembers:
// texts that make many different sets of policies candidates (a tenant of
// many policies, or a client trying) cost a new object each past it.
const maxCandidateObjects = 256

// The keys of the candidates hint, data.gatehouse.hints.candidates.
var (
	candidatesAgent  = ast.StringTerm("agent")
	candidatesTenant = ast.StringTerm("tenant")
	noCandidates     = ast.ObjectTerm([2]*ast.Term{candidatesAgent, noNames}, [2]*ast.Term{candidatesTenant, noNames})
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
// condition) and one of context (nil: none) occur.
type ruleCond struct {
	match, context []int32
}

// NewHinter builds the hinter of a tenant's enabled policies.
func NewHinter(tp *pdp.TenantPolicies) *Hinter {
	h := &Hinter{views: map[string]map[string]*hintView{}}
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
	conds := map[*pdp.Policy]hintPolicy{}
	policy := func(p *pdp.Policy) hintPolicy {
		if hp, ok := conds[p]; ok {
			return hp
		}
		hp := hintPolicy{name: p.Name, term: ast.StringTerm(p.Name)}
		for _, r := range p.Rules {
			c := ruleCond{match: idsOf(r.Match)}
			if r.ContextRequires != "" {
				c.context = idsOf(r.ContextRequires)
			}
			hp.rules = append(hp.rules, c)
		}
		conds[p] = hp
		return hp
	}
	for agent, byStep := range effectiveViews(tp) {
		h.views[agent] = map[string]*hintView{}
		for st, v := range byStep {
			hv := &hintView{}
			for _, p := range v.agent {
				hv.agent = append(hv.agent, policy(p))
			}
			for _, p := range v.tenant {
				hv.tenant = append(hv.tenant, policy(p))
			}
			hv.allAgent, hv.allTenant = namesArray(hv.agent, nil), namesArray(hv.tenant, nil)
			h.views[agent][st] = hv
		}
	}
	h.matcher = newMultiMatcher(lits)
	h.nlits = len(lits)
	return h
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
	found := h.match(folded, buf[:0])
	return candidates(v.agent, found), candidates(v.tenant, found)
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
	found := h.match(folded, buf[:0])
	if len(v.agent) > 64 || len(v.tenant) > 64 {
		return candidatesObject(candidateTerm(v.agent, v.allAgent, found), candidateTerm(v.tenant, v.allTenant, found))
	}
	k := [2]uint64{mayFireMask(v.agent, found), mayFireMask(v.tenant, found)}
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
func mayFireMask(ps []hintPolicy, found []bool) uint64 {
	var m uint64
	for i := range ps {
		if ps[i].mayFire(found) {
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
func (h *Hinter) view(agentID, stepType string) *hintView {
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

func candidates(ps []hintPolicy, found []bool) []string {
	var out []string
	for i := range ps {
		if ps[i].mayFire(found) {
			out = append(out, ps[i].name)
		}
	}
	return out
}

// candidateTerm is the array term of the policies of ps that may fire;
// all is the term of every one of them.
func candidateTerm(ps []hintPolicy, all *ast.Term, found []bool) *ast.Term {
	n := 0
	for i := range ps {
		if ps[i].mayFire(found) {
			n++
		}
	}
	switch n {
	case 0:
		return noNames
	case len(ps):
		return all
	}
	return namesArray(ps, found)
}

// namesArray is the array term of the names of the policies of ps that
// may fire on found, or of all of them when found is nil.
func namesArray(ps []hintPolicy, found []bool) *ast.Term {
	if len(ps) == 0 {
		return noNames
	}
	ts := make([]*ast.Term, 0, len(ps))
	for i := range ps {
		if found == nil || ps[i].mayFire(found) {
			ts = append(ts, ps[i].term)
		}
	}
	return ast.ArrayTerm(ts...)
}

func (p *hintPolicy) mayFire(found []bool) bool {
	for _, r := range p.rules {
		if anyFound(r.match, found) && anyFound(r.context, found) {
			return true
		}
	}
	return false
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
