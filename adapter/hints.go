package adapter

import (
	"strings"

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
}

type hintPolicy struct {
	name  string
	rules []ruleCond
}

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
		hp := hintPolicy{name: p.Name}
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
	byStep := h.views[agentID]
	if agentID == "" || byStep == nil {
		byStep = h.views[""]
	}
	step := pdp.DefaultStepType
	if stepType != "" {
		step = strings.ToUpper(stepType) // the library's upper()
	}
	v := byStep[step]
	if v == nil {
		return nil, nil
	}
	var buf [256]bool
	found := buf[:0]
	if h.nlits <= len(buf) {
		found = buf[:h.nlits]
	} else {
		found = make([]bool, h.nlits)
	}
	h.matcher.match(folded, found)
	return candidates(v.agent, found), candidates(v.tenant, found)
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
