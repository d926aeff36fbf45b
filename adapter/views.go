package adapter

import (
	"slices"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// BuiltinNames are the built-ins as decisions name them (docs/api.md §A5), in
// the order policies_evaluated lists them.
var BuiltinNames = []string{"FinancialSafetyPolicy", "DataExfiltrationPolicy"}

// scopeView is the effective policy set of one scope (an agent with its own
// enabled policies, or every other agent) for one step type: what the Rego
// library's _computed_view derives from the data at each decision, here
// computed once per revision.
type scopeView struct {
	agent, tenant []*pdp.Policy // sorted by name
}

// effectiveViews returns, for the default scope ("") and each agent with
// enabled agent-scoped policies, the views by step type; a step type no
// effective policy lists has no view (the library then uses
// builtins_only).
func effectiveViews(tp *pdp.TenantPolicies) map[string]map[string]*scopeView {
	tenantWide := map[string]*pdp.Policy{}
	agentScoped := map[string]map[string]*pdp.Policy{}
	for i := range tp.Policies {
		p := &tp.Policies[i]
		if !p.Enabled {
			continue
		}
		if p.AgentID == "" {
			tenantWide[p.Name] = p
			continue
		}
		if agentScoped[p.AgentID] == nil {
			agentScoped[p.AgentID] = map[string]*pdp.Policy{}
		}
		agentScoped[p.AgentID][p.Name] = p
	}
	out := map[string]map[string]*scopeView{"": scopeViews(nil, tenantWide)}
	for agent, own := range agentScoped {
		out[agent] = scopeViews(own, tenantWide)
	}
	return out
}

// scopeViews follows docs/api.md §A4 as decision.rego does: an agent's enabled,
// enforcing policy overrides the tenant-wide one of the same name whatever
// its step types (a shadow agent copy overrides nothing); then each policy
// applies to the step types it lists. Shadow policies are in the views
// like any other: the library sorts their hits out by mode.
func scopeViews(own, tenantWide map[string]*pdp.Policy) map[string]*scopeView {
	views := map[string]*scopeView{}
	view := func(step string) *scopeView {
		if views[step] == nil {
			views[step] = &scopeView{}
		}
		return views[step]
	}
	for _, p := range own {
		for _, st := range slices.Compact(slices.Sorted(slices.Values(p.StepTypes))) {
			v := view(st)
			v.agent = append(v.agent, p)
		}
	}
	for name, p := range tenantWide {
		// Only an enforcing agent copy overrides (issue 16, per-policy
		// shadow mode): beside a shadow agent copy the tenant-wide copy
		// keeps deciding, or shadowing if it is a shadow copy itself.
		if o := own[name]; o != nil && !o.Shadow() {
			continue
		}
		for _, st := range slices.Compact(slices.Sorted(slices.Values(p.StepTypes))) {
			v := view(st)
			v.tenant = append(v.tenant, p)
		}
	}
	byName := func(a, b *pdp.Policy) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	}
	for _, v := range views {
		slices.SortFunc(v.agent, byName)
		slices.SortFunc(v.tenant, byName)
	}
	return views
}

// evaluated is the view's policies_evaluated: agent-scoped names, then
// tenant-wide names, each sorted, then the built-ins.
func (v *scopeView) evaluated() []any {
	out := make([]any, 0, len(v.agent)+len(v.tenant)+len(BuiltinNames))
	for _, p := range v.agent {
		out = append(out, p.Name)
	}
	for _, p := range v.tenant {
		out = append(out, p.Name)
	}
	for _, n := range BuiltinNames {
		out = append(out, n)
	}
	return out
}

// allowedResult is the decision when nothing fires, with the tenant's mode
// applied: decision.rego's _with_mode(_allowed_result(evaluated)).
func allowedResult(evaluated []any, mode string) map[string]any {
	r := map[string]any{
		"status":             "allowed",
		"risk_score":         0,
		"policies_evaluated": evaluated,
		"triggered_policy":   nil,
		"severity":           nil,
		"reason":             nil,
		"violations":         []any{},
		"warnings":           []any{},
	}
	if mode == string(pdp.ModeShadow) {
		r["shadow_status"] = "allowed"
	}
	return r
}

// viewData renders one view as the library reads it: the effective
// policies by scope (name → the policy's data entry), those that enforce
// under "agent" and "tenant" and those in shadow mode under "shadow", the
// evaluated list, the finished no-hit result and, when none of its
// policies has whitelisted domains, "no_whitelists": true (the library
// then never asks whether a whitelist skips one of them; without the
// flag it asks for each policy), and when the tenant enforces,
// "enforcing": true (the library's shortcut for a decision where only
// FinancialSafety may fire reads the mode from the view it already holds
// instead of evaluating the tenant's document; a view without the flag
// takes the general path to the same result).
func viewData(v *scopeView, meta func(*pdp.Policy) map[string]any, mode string) map[string]any {
	split := func(ps []*pdp.Policy) (enforce, shadow map[string]any) {
		enforce, shadow = map[string]any{}, map[string]any{}
		for _, p := range ps {
			if p.Shadow() {
				shadow[p.Name] = meta(p)
			} else {
				enforce[p.Name] = meta(p)
			}
		}
		return enforce, shadow
	}
	agent, shadowAgent := split(v.agent)
	tenant, shadowTenant := split(v.tenant)
	ev := v.evaluated()
	out := map[string]any{
		"agent":     agent,
		"tenant":    tenant,
		"shadow":    map[string]any{"agent": shadowAgent, "tenant": shadowTenant},
		"evaluated": ev,
		"allowed":   allowedResult(ev, mode),
	}
	if !slices.ContainsFunc(v.agent, whitelists) && !slices.ContainsFunc(v.tenant, whitelists) {
		out["no_whitelists"] = true
	}
	if mode == string(pdp.ModeEnforcement) {
		out["enforcing"] = true
	}
	return out
}

// whitelists reports whether p has whitelisted domains, which may skip it
// for an action (decision.rego's _whitelisted needs a non-empty list).
func whitelists(p *pdp.Policy) bool { return len(p.WhitelistedDomains) > 0 }

// tenantViews renders data.gatehouse.tenants[t].views: "default" (agents
// without policies of their own) and "agents" (each agent with some), each
// by step type, and "builtins_only" for a step type no effective policy
// lists. With allAgents false only agent's scope is included.
func tenantViews(tp *pdp.TenantPolicies, agent string, allAgents bool, meta func(*pdp.Policy) map[string]any, mode string) map[string]any {
	eff := effectiveViews(tp)
	render := func(byStep map[string]*scopeView) map[string]any {
		out := make(map[string]any, len(byStep))
		for st, v := range byStep {
			out[st] = viewData(v, meta, mode)
		}
		return out
	}
	agents := map[string]any{}
	for a, byStep := range eff {
		if a != "" && (allAgents || a == agent) {
			agents[a] = render(byStep)
		}
	}
	return map[string]any{
		"default":       render(eff[""]),
		"agents":        agents,
		"builtins_only": viewData(&scopeView{}, meta, mode),
	}
}
