package adapter

import (
	"testing"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// TestViewsFlagNoWhitelists: a view says "no_whitelists" exactly when none
// of its policies (enforcing or in shadow mode, agent-scoped or
// tenant-wide) has whitelisted domains; the library then skips the
// whitelist check, so a view with a whitelisting policy must never carry
// the flag.
func TestViewsFlagNoWhitelists(t *testing.T) {
	rule := []pdp.Rule{{Match: "x", Severity: pdp.SeverityLow, OnViolation: pdp.OutcomeWarn, Confidence: 1}}
	policy := func(name, agent string, domains []string, mode pdp.PolicyMode, steps ...string) pdp.Policy {
		return pdp.Policy{Name: name, AgentID: agent, StepTypes: steps, WhitelistedDomains: domains, Rules: rule, Mode: mode, Enabled: true}
	}
	tp := &pdp.TenantPolicies{TenantID: "acme", Mode: pdp.ModeEnforcement, Policies: []pdp.Policy{
		policy("plain", "", nil, "", "ACTION", "OUTPUT"),
		policy("listed", "", []string{"example.com"}, "", "OUTPUT"),
		policy("shadowed", "bot-a", []string{"example.com"}, pdp.PolicyShadow, "ACTION"),
		policy("own", "bot-b", nil, "", "ACTION"),
		policy("off", "bot-b", []string{"example.com"}, "", "ACTION"),
	}}
	tp.Policies[4].Enabled = false
	views := TenantData(tp, "", true)["views"].(map[string]any)
	byScope := func(scope string) map[string]any {
		if scope == "" {
			return views["default"].(map[string]any)
		}
		return views["agents"].(map[string]any)[scope].(map[string]any)
	}
	for _, c := range []struct {
		scope, step string
		want        bool
	}{
		{"", "ACTION", true},
		{"", "OUTPUT", false},      // a tenant-wide policy with a whitelist
		{"bot-a", "ACTION", false}, // an agent-scoped shadow policy with one
		{"bot-b", "ACTION", true},  // the disabled one is not in the view
		{"bot-b", "OUTPUT", false},
	} {
		v, ok := byScope(c.scope)[c.step].(map[string]any)
		if !ok {
			t.Fatalf("scope %q step %s: no view", c.scope, c.step)
		}
		if got := v["no_whitelists"] == true; got != c.want {
			t.Errorf("scope %q step %s: no_whitelists %v, want %v", c.scope, c.step, got, c.want)
		}
	}
	if bo := views["builtins_only"].(map[string]any); bo["no_whitelists"] != true {
		t.Errorf("builtins_only: no_whitelists %v, want true", bo["no_whitelists"])
	}
}

// TestViewsFlagEnforcing: every view of a tenant that enforces says
// "enforcing", and no view of a tenant in shadow mode does (the library
// then reads the tenant's mode).
func TestViewsFlagEnforcing(t *testing.T) {
	rule := []pdp.Rule{{Match: "x", Severity: pdp.SeverityLow, OnViolation: pdp.OutcomeWarn, Confidence: 1}}
	for _, mode := range []pdp.Mode{pdp.ModeEnforcement, pdp.ModeShadow} {
		tp := &pdp.TenantPolicies{TenantID: "acme", Mode: mode, Policies: []pdp.Policy{
			{Name: "wide", StepTypes: []string{"ACTION"}, Rules: rule, Enabled: true},
			{Name: "own", AgentID: "bot", StepTypes: []string{"ACTION"}, Rules: rule, Enabled: true},
		}}
		views := TenantData(tp, "", true)["views"].(map[string]any)
		all := []map[string]any{views["builtins_only"].(map[string]any)}
		for _, byStep := range []any{views["default"], views["agents"].(map[string]any)["bot"]} {
			for _, v := range byStep.(map[string]any) {
				all = append(all, v.(map[string]any))
			}
		}
		if len(all) < 3 {
			t.Fatalf("mode %s: %d views, want at least 3", mode, len(all))
		}
		for i, v := range all {
			if got, want := v["enforcing"] == true, mode == pdp.ModeEnforcement; got != want {
				t.Errorf("mode %s, view %d: enforcing %v, want %v", mode, i, got, want)
			}
			if _, present := v["enforcing"]; present && mode == pdp.ModeShadow {
				t.Errorf("mode %s, view %d: carries enforcing", mode, i)
			}
		}
	}
}
