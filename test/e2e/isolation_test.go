package e2e

import "testing"

// TestTenantIsolation: two tenants on one server see nothing of each
// other: policies, decisions, actions (docs/api.md §A1: the tenant comes from
// the key, never from the request).
func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	s, a := startDev(t, Options{})
	bl := createTenant(t, s.Store, "other", "enterprise")
	b := usable(t, s, bl.APIKey)
	if bl.TenantID == s.TenantID {
		t.Fatalf("two tenants share the ID %q", bl.TenantID)
	}

	// A blocks "email" for billing-bot and everyone.
	wantStatus(t, a.Do(t, "POST", "/v1/control/policies", blockPolicy("pii", "email", "")), 201)
	wantStatus(t, a.Do(t, "POST", "/v1/control/policies", blockPolicy("pii", "email", "billing-bot")), 201)
	act := map[string]any{"action": "mail.send", "params": map[string]any{"email": "x@y.z"}, "agent_id": "billing-bot"}
	ra := wantStatus(t, a.Do(t, "POST", "/v1/actions", act), 200)
	wantField(t, ra, "blocked", "status")
	aID := field(ra, "action_id").(string)

	// B's decisions ignore A's policies.
	rb := wantStatus(t, b.Do(t, "POST", "/v1/actions", act), 200)
	wantField(t, rb, "allowed", "status")
	wantField(t, rb, []string{"FinancialSafetyPolicy", "DataExfiltrationPolicy"}, "policy_result", "policies_evaluated")
	bID := field(rb, "action_id").(string)

	// B cannot see, change or delete A's policies.
	lb := wantStatus(t, b.Do(t, "GET", "/v1/control/policies?agent_id=billing-bot", nil), 200)
	if got := names(field(lb, "policies")); len(got) != 2 {
		t.Errorf("B lists %v", got)
	}
	wantError(t, b.Do(t, "GET", "/v1/control/policies/pii", nil), 404, "novyx_ram.v1.control.policy_not_found")
	wantError(t, b.Do(t, "GET", "/v1/control/policies/pii?agent_id=billing-bot", nil), 404, "novyx_ram.v1.control.policy_not_found")
	wantError(t, b.Do(t, "PUT", "/v1/control/policies/pii", warnPolicy("pii", "x")), 404, "novyx_ram.v1.control.policy_not_found")
	wantError(t, b.Do(t, "DELETE", "/v1/control/policies/pii", nil), 404, "novyx_ram.v1.control.policy_not_found")

	// Nor A's actions, and the other way round.
	wantError(t, b.Do(t, "GET", "/v1/actions/"+aID, nil), 404, "actions.not_found")
	wantError(t, b.Do(t, "GET", "/v1/actions/"+aID+"/explain", nil), 404, "actions.not_found")
	wantError(t, a.Do(t, "GET", "/v1/actions/"+bID, nil), 404, "actions.not_found")
	wantField(t, wantStatus(t, b.Do(t, "GET", "/v1/actions", nil), 200), 1, "total")
	wantField(t, wantStatus(t, a.Do(t, "GET", "/v1/actions", nil), 200), 1, "total")

	// The same name in B is B's own policy, at version 1.
	r := wantStatus(t, b.Do(t, "POST", "/v1/control/policies", warnPolicy("pii", "email")), 201)
	wantField(t, r, 1, "version")
	rb = wantStatus(t, b.Do(t, "POST", "/v1/actions", act), 200)
	wantField(t, rb, "allowed", "status")
	wantField(t, rb, "pii", "policy_result", "warnings", 0, "policy")
	// A still blocks, at its own version.
	wantField(t, wantStatus(t, a.Do(t, "POST", "/v1/actions", act), 200), "blocked", "status")
	wantField(t, wantStatus(t, a.Do(t, "GET", "/v1/control/policies/pii", nil), 200), 1, "version")

	// A tenant_id in a body changes nothing: the key decides.
	spoof := map[string]any{"action": "mail.send", "params": map[string]any{"email": "x@y.z"}, "agent_id": "billing-bot", "tenant_id": s.TenantID}
	if r := b.Do(t, "POST", "/v1/actions", spoof); r.Status == 200 {
		wantField(t, r.JSON(t), "allowed", "status")
	}
}
