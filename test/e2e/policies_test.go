package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
)

// warnPolicy is a small valid policy document.
func warnPolicy(name, match string) map[string]any {
	return map[string]any{
		"name":        name,
		"description": "warn on " + match,
		"rules":       []any{map[string]any{"match": match, "severity": "medium", "on_violation": "warn"}},
	}
}

func blockPolicy(name, match, agent string) map[string]any {
	p := map[string]any{
		"name":        name,
		"description": "block " + match,
		"rules":       []any{map[string]any{"match": match, "severity": "critical", "reason": "blocked: {match}"}},
	}
	if agent != "" {
		p["agent_id"] = agent
	}
	return p
}

var builtinDescriptions = map[string]string{
	"FinancialSafety":  "Policy to prevent unauthorized financial operations.",
	"DataExfiltration": "Policy to prevent data exfiltration attempts.",
}

// TestPolicyEndpoints walks every row of docs/api.md §A6.
func TestPolicyEndpoints(t *testing.T) {
	t.Parallel()
	_, c := startDev(t, Options{})

	t.Run("POST creates with 201 then updates with 200", func(t *testing.T) {
		r := wantStatus(t, c.Do(t, "POST", "/v1/control/policies", warnPolicy("tw", "alpha")), http.StatusCreated)
		hasKeys(t, r, "policy_name", "agent_id", "scope", "action", "version", "message")
		wantField(t, r, "tw", "policy_name")
		wantField(t, r, nil, "agent_id")
		wantField(t, r, "tenant", "scope")
		wantField(t, r, "created", "action")
		wantField(t, r, 1, "version")
		wantField(t, r, "Policy 'tw' created", "message")

		r = wantStatus(t, c.Do(t, "POST", "/v1/control/policies", warnPolicy("tw", "beta")), http.StatusOK)
		wantField(t, r, "updated", "action")
		wantField(t, r, 2, "version")
		wantField(t, r, "Policy 'tw' updated", "message")

		// The same name at agent scope is a separate policy.
		p := warnPolicy("tw", "gamma")
		p["agent_id"] = "agent-1"
		r = wantStatus(t, c.Do(t, "POST", "/v1/control/policies", p), http.StatusCreated)
		wantField(t, r, "agent", "scope")
		wantField(t, r, "agent-1", "agent_id")
		wantField(t, r, 1, "version")
	})

	t.Run("YAML is accepted like JSON", func(t *testing.T) {
		yaml := "name: from_yaml\nrules:\n  - match: \"yaml(thing)?\"\n    severity: low\n"
		r := wantStatus(t, c.Do(t, "POST", "/v1/control/policies", yaml, "Content-Type", "application/yaml"), http.StatusCreated)
		wantField(t, r, "from_yaml", "policy_name")
		g := wantStatus(t, c.Do(t, "GET", "/v1/control/policies/from_yaml", nil), 200)
		wantField(t, g, "yaml(thing)?", "config", "rules", 0, "match")
		wantField(t, g, "low", "config", "rules", 0, "severity")
		wantField(t, g, "warn", "config", "rules", 0, "on_violation")
	})

	t.Run("GET list: built-ins, tenant-wide, then the agent's", func(t *testing.T) {
		r := wantStatus(t, c.Do(t, "GET", "/v1/control/policies", nil), 200)
		hasKeys(t, r, "policies", "mode", "connectors", "approval_modes")
		wantField(t, r, "enforcement", "mode")
		wantField(t, r, []string{"github", "slack", "linear", "pagerduty", "http"}, "connectors")
		wantField(t, r, []string{"solo", "team", "enterprise"}, "approval_modes")
		ps := field(r, "policies")
		got := names(ps)
		if len(got) < 2 || got[0] != "FinancialSafety" || got[1] != "DataExfiltration" {
			t.Fatalf("policies %v: want the built-ins first", got)
		}
		for i, name := range got[:2] {
			b := field(ps, i)
			wantField(t, b, true, "enabled")
			wantField(t, b, "builtin", "source")
			wantField(t, b, nil, "agent_id")
			wantField(t, b, builtinDescriptions[name], "description")
		}
		// Without agent_id: only tenant-wide custom policies, no effective.
		for _, p := range ps.([]any)[2:] {
			hasKeys(t, p, "name", "enabled", "description", "agent_id", "scope", "version", "created_at", "updated_at")
			wantField(t, p, "tenant", "scope")
			if _, ok := p.(map[string]any)["effective"]; ok {
				t.Errorf("effective without agent_id: %s", mustJSON(p))
			}
			wantTime(t, field(p, "created_at"), "created_at")
			wantTime(t, field(p, "updated_at"), "updated_at")
		}
		if !slices.Equal(got[2:], []string{"from_yaml", "tw"}) && !slices.Equal(got[2:], []string{"tw", "from_yaml"}) {
			t.Errorf("tenant-wide custom policies %v, want tw and from_yaml", got[2:])
		}

		r = wantStatus(t, c.Do(t, "GET", "/v1/control/policies?agent_id=agent-1", nil), 200)
		ps = field(r, "policies")
		var scopes []any
		for _, p := range ps.([]any)[2:] {
			scopes = append(scopes, field(p, "scope"))
			if _, ok := p.(map[string]any)["effective"]; !ok {
				t.Errorf("no effective with agent_id: %s", mustJSON(p))
			}
		}
		if !slices.Equal(scopes, []any{"tenant", "tenant", "agent"}) {
			t.Errorf("scopes %v: want tenant-wide then agent-scoped", scopes)
		}
		last := field(ps, len(ps.([]any))-1)
		wantField(t, last, "tw", "name")
		wantField(t, last, "agent-1", "agent_id")
		wantField(t, last, true, "effective")
		for _, p := range ps.([]any)[2:4] {
			wantField(t, p, field(p, "name") != "tw", "effective")
		}
	})

	t.Run("GET one is scope-aware", func(t *testing.T) {
		r := wantStatus(t, c.Do(t, "GET", "/v1/control/policies/tw", nil), 200)
		hasKeys(t, r, "name", "description", "source", "agent_id", "scope", "enabled", "version", "config", "created_at", "updated_at")
		wantField(t, r, "tenant", "scope")
		wantField(t, r, nil, "agent_id")
		wantField(t, r, 2, "version")
		wantField(t, r, true, "enabled")
		hasKeys(t, field(r, "config"), "name", "description", "rules", "step_types", "whitelisted_domains")
		wantField(t, r, "beta", "config", "rules", 0, "match")
		wantField(t, r, []string{"ACTION"}, "config", "step_types")
		wantField(t, r, []string{}, "config", "whitelisted_domains")
		wantTime(t, field(r, "created_at"), "created_at")

		r = wantStatus(t, c.Do(t, "GET", "/v1/control/policies/tw?agent_id=agent-1", nil), 200)
		wantField(t, r, "agent", "scope")
		wantField(t, r, "gamma", "config", "rules", 0, "match")

		for name, desc := range builtinDescriptions {
			r := wantStatus(t, c.Do(t, "GET", "/v1/control/policies/"+name, nil), 200)
			wantField(t, r, name, "name")
			wantField(t, r, "builtin", "source")
			wantField(t, r, desc, "description")
		}

		wantError(t, c.Do(t, "GET", "/v1/control/policies/nope", nil), 404, "novyx_ram.v1.control.policy_not_found")
		wantError(t, c.Do(t, "GET", "/v1/control/policies/from_yaml?agent_id=agent-1", nil), 404, "novyx_ram.v1.control.policy_not_found")
	})

	t.Run("PUT replaces at its scope", func(t *testing.T) {
		p := warnPolicy("tw", "delta")
		p["step_types"] = []string{"output", "Action"}
		r := wantStatus(t, c.Do(t, "PUT", "/v1/control/policies/tw", p), 200)
		hasKeys(t, r, "policy_name", "agent_id", "scope", "action", "version", "message")
		wantField(t, r, "updated", "action")
		wantField(t, r, 3, "version")
		wantField(t, r, "tenant", "scope")
		g := wantStatus(t, c.Do(t, "GET", "/v1/control/policies/tw", nil), 200)
		wantField(t, g, "delta", "config", "rules", 0, "match")
		wantField(t, g, []string{"OUTPUT", "ACTION"}, "config", "step_types")

		// Without name in the body: the path names it.
		noName := warnPolicy("", "epsilon")
		delete(noName, "name")
		wantStatus(t, c.Do(t, "PUT", "/v1/control/policies/tw", noName), 200)

		// A different name in the body is refused.
		m := wantError(t, c.Do(t, "PUT", "/v1/control/policies/tw", warnPolicy("other", "x")), 400, "novyx_ram.v1.control.invalid_policy")
		wantContains(t, m["message"], "name")

		wantError(t, c.Do(t, "PUT", "/v1/control/policies/missing", warnPolicy("missing", "x")), 404, "novyx_ram.v1.control.policy_not_found")
		// from_yaml exists tenant-wide, not for agent-1.
		scoped := warnPolicy("from_yaml", "x")
		scoped["agent_id"] = "agent-1"
		wantError(t, c.Do(t, "PUT", "/v1/control/policies/from_yaml", scoped), 404, "novyx_ram.v1.control.policy_not_found")
		wantError(t, c.Do(t, "GET", "/v1/control/policies/missing", nil), 404, "novyx_ram.v1.control.policy_not_found")
	})

	t.Run("DELETE disables; the tenant-wide policy governs again", func(t *testing.T) {
		// billing-bot's override blocks what the tenant-wide policy warns on.
		wantStatus(t, c.Do(t, "POST", "/v1/control/policies", warnPolicy("pii", "email")), 201)
		wantStatus(t, c.Do(t, "POST", "/v1/control/policies", blockPolicy("pii", "email", "billing-bot")), 201)
		act := map[string]any{"action": "mail.send", "params": map[string]any{"email": "a@b.c"}, "agent_id": "billing-bot"}
		wantField(t, wantStatus(t, c.Do(t, "POST", "/v1/actions", act), 200), "blocked", "status")

		r := wantStatus(t, c.Do(t, "DELETE", "/v1/control/policies/pii?agent_id=billing-bot", nil), 200)
		hasKeys(t, r, "policy_name", "agent_id", "scope", "action", "version", "message")
		wantField(t, r, "disabled", "action")
		wantField(t, r, "pii", "policy_name")
		wantField(t, r, "billing-bot", "agent_id")
		wantField(t, r, "agent", "scope")
		wantField(t, r, 2, "version")

		res := wantStatus(t, c.Do(t, "POST", "/v1/actions", act), 200)
		wantField(t, res, "allowed", "status")
		wantField(t, res, "pii", "policy_result", "warnings", 0, "policy")
		wantField(t, res, "tenant", "policy_result", "warnings", 0, "scope")

		// Listed as disabled; the tenant-wide one is effective again.
		l := wantStatus(t, c.Do(t, "GET", "/v1/control/policies?agent_id=billing-bot", nil), 200)
		agentPii := find(field(l, "policies"), "agent_id", "billing-bot")
		wantField(t, agentPii, false, "enabled")
		wantField(t, agentPii, false, "effective")
		for _, p := range field(l, "policies").([]any) {
			if field(p, "name") == "pii" && field(p, "scope") == "tenant" {
				wantField(t, p, true, "effective")
			}
		}
		g := wantStatus(t, c.Do(t, "GET", "/v1/control/policies/pii?agent_id=billing-bot", nil), 200)
		wantField(t, g, false, "enabled")

		// Repeating the DELETE is 200.
		r = wantStatus(t, c.Do(t, "DELETE", "/v1/control/policies/pii?agent_id=billing-bot", nil), 200)
		wantField(t, r, "disabled", "action")

		// Re-posting re-enables, at the next version.
		r = wantStatus(t, c.Do(t, "POST", "/v1/control/policies", blockPolicy("pii", "email", "billing-bot")), 200)
		wantField(t, r, "updated", "action")
		if v, _ := field(r, "version").(float64); v < 3 {
			t.Errorf("re-enabled at version %v, want ≥ 3", field(r, "version"))
		}
		wantField(t, wantStatus(t, c.Do(t, "POST", "/v1/actions", act), 200), "blocked", "status")
	})

	t.Run("DELETE refuses built-ins and missing policies", func(t *testing.T) {
		for _, name := range []string{"FinancialSafety", "DataExfiltration", "financialsafety", "DATAEXFILTRATIONPOLICY"} {
			m := wantError(t, c.Do(t, "DELETE", "/v1/control/policies/"+name, nil), 403, "novyx_ram.v1.control.cannot_delete_builtin")
			_ = m
		}
		wantError(t, c.Do(t, "DELETE", "/v1/control/policies/nope", nil), 404, "novyx_ram.v1.control.policy_not_found")
		wantError(t, c.Do(t, "DELETE", "/v1/control/policies/tw?agent_id=agent-2", nil), 404, "novyx_ram.v1.control.policy_not_found")
	})

	t.Run("reserved names cannot be created or updated", func(t *testing.T) {
		for _, name := range []string{"FinancialSafety", "financialsafetypolicy", "DataExfiltration", "DataExfiltrationPolicy"} {
			m := wantError(t, c.Do(t, "POST", "/v1/control/policies", warnPolicy(name, "x")), 400, "novyx_ram.v1.control.invalid_policy")
			wantContains(t, m["message"], "reserved")
			wantError(t, c.Do(t, "PUT", "/v1/control/policies/"+name, warnPolicy(name, "x")), 400, "novyx_ram.v1.control.invalid_policy")
		}
	})

	t.Run("rego of a policy", func(t *testing.T) {
		r := c.Do(t, "GET", "/v1/control/policies/tw/rego", nil)
		if r.Status != 200 || len(r.Body) == 0 {
			t.Fatalf("GET rego: %d %s", r.Status, r.Body)
		}
		wantContains(t, string(r.Body), "package gatehouse")
	})
}

// TestPolicyVersionsCount checks version arithmetic over many updates.
func TestPolicyVersionsCount(t *testing.T) {
	t.Parallel()
	_, c := startDev(t, Options{})
	for i := 1; i <= 5; i++ {
		r := c.Do(t, "POST", "/v1/control/policies", warnPolicy("v", fmt.Sprintf("m%d", i)))
		want := 200
		if i == 1 {
			want = 201
		}
		wantField(t, wantStatus(t, r, want), i, "version")
	}
	r := wantStatus(t, c.Do(t, "DELETE", "/v1/control/policies/v", nil), 200)
	wantField(t, r, 6, "version")
}
