package adapter

import (
	"strings"

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
	// as one array term, what CandidateTerms returns when all may fire.
	allAgent, allTenant *ast.Term
}

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

// CandidateTerms is Candidates with each list as an array term of string
// terms, in the same order, ready to hand to OPA: the terms are built once
// per revision (the empty list and the list of every policy of the view
// are shared, the others are new arrays of the shared name terms). The
// caller must not modify them.
func (h *Hinter) CandidateTerms(agentID, stepType, folded string) (agent, tenant *ast.Term) {
	v := h.view(agentID, stepType)
	if v == nil {
		return noNames, noNames
	}
	var buf [256]bool
	found := h.match(folded, buf[:0])
	return candidateTerm(v.agent, v.allAgent, found), candidateTerm(v.tenant, v.allTenant, found)
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
