package e2e

import (
	"net/url"
	"strings"
	"testing"
)

// What an unchanged Novyx client relies on beyond the seed (docs/api.md):
// usage per tier, the two envelopes, agent ids with spaces and slashes on
// every route, unknown action fields, strict policies, empty parameters.

func TestUsagePerTier(t *testing.T) {
	t.Parallel()
	s := govServer(t, SQLiteStore(t), NewKey())
	for _, tc := range []struct {
		tier                       string
		drafts, scoped, dash, expo bool
		limit                      any
		modes                      []any
	}{
		{"free", false, false, false, false, 0.0, []any{"solo"}},
		{"starter", true, false, true, true, 5.0, []any{"solo", "team"}},
		{"pro", true, true, true, true, 25.0, []any{"solo", "team"}},
		{"enterprise", true, true, true, true, nil, []any{"solo", "team", "enterprise"}},
	} {
		id, c := govTenant(t, s, tc.tier)
		u := wantStatus(t, c.Do(t, "GET", "/v1/usage", nil), 200)
		wantField(t, u, id, "tenant_id")
		wantField(t, u, tc.tier, "tier")
		wantField(t, u, tc.drafts, "features", "draft_policies")
		wantField(t, u, tc.scoped, "features", "agent_scoped_policies")
		wantField(t, u, tc.dash, "features", "governance_dashboard")
		wantField(t, u, tc.expo, "features", "audit_export")
		wantField(t, u, tc.modes, "features", "approval_modes")
		wantField(t, u, tc.limit, "limits", "custom_policies")
		wantField(t, u, nil, "limits", "rate_limit")
		wantField(t, u, 0, "usage", "custom_policies")
		if tc.drafts {
			wantStatus(t, c.Do(t, "POST", "/v1/control/policies", warnPolicy("emails", "email")), 201)
			govSubmit(t, c, map[string]any{"action": "stripe.payment", "params": map[string]any{"amount": 50000}}, "pending_review")
			u = wantStatus(t, c.Do(t, "GET", "/v1/usage", nil), 200)
			wantField(t, u, 1, "usage", "custom_policies")
			wantField(t, u, 1, "usage", "pending_approvals")
		}
	}
	wantError(t, s.Client("nram_unknown").Do(t, "GET", "/v1/usage", nil), 401, "UNAUTHORIZED")
}

// TestErrorEnvelopes: Novyx's generic envelope carries the human message
// in error; the Control errors keep error = code.
func TestErrorEnvelopes(t *testing.T) {
	t.Parallel()
	s, c := startDev(t, Options{})
	for _, tc := range []struct {
		r      *Response
		status int
		code   string
	}{
		{s.Client("nram_nope").Do(t, "GET", "/v1/control/policies", nil), 401, "UNAUTHORIZED"},
		{c.Do(t, "GET", "/v1/nowhere", nil), 404, "NOT_FOUND"},
		{c.Do(t, "POST", "/v1/actions", `{"action":`), 400, "VALIDATION_ERROR"},
		{c.Do(t, "GET", "/v1/actions?limit=0", nil), 400, "VALIDATION_ERROR"},
	} {
		m := wantError(t, tc.r, tc.status, tc.code)
		if m["error"] == tc.code || m["error"] != m["message"] {
			t.Errorf("generic %s: error %q, message %q", tc.code, m["error"], m["message"])
		}
	}
	for _, tc := range []struct {
		r      *Response
		status int
		code   string
	}{
		{c.Do(t, "GET", "/v1/control/policies/nope", nil), 404, "novyx_ram.v1.control.policy_not_found"},
		{c.Do(t, "POST", "/v1/control/policies", `{"name":"x"}`), 400, "novyx_ram.v1.control.invalid_policy"},
		{c.Do(t, "GET", "/v1/actions/act_nope", nil), 404, "actions.not_found"},
	} {
		m := wantError(t, tc.r, tc.status, tc.code)
		if m["error"] != tc.code {
			t.Errorf("control %s: error %q", tc.code, m["error"])
		}
	}
}

// TestAgentIDsEverywhere: an agent_id with spaces, a slash and non-ASCII
// letters works on every route that takes one, percent-encoded in paths.
func TestAgentIDsEverywhere(t *testing.T) {
	t.Parallel()
	s := govServer(t, SQLiteStore(t), NewKey())
	_, c := govTenant(t, s, "pro")
	const agent = "ops bot/eu ü"
	q := "agent_id=" + url.QueryEscape(agent)
	wantStatus(t, c.Do(t, "POST", "/v1/control/policies", warnPolicy("emails", "email")), 201)
	p := wantStatus(t, c.Do(t, "POST", "/v1/control/policies", blockPolicy("emails", "email", agent)), 201)
	wantField(t, p, agent, "agent_id")
	wantField(t, wantStatus(t, c.Do(t, "GET", "/v1/control/policies/emails?"+q, nil), 200), agent, "agent_id")
	wantField(t, find(wantStatus(t, c.Do(t, "GET", "/v1/control/policies?"+q, nil), 200)["policies"], "agent_id", agent), "emails", "name")
	if r := c.Do(t, "GET", "/v1/control/policies/emails/rego?"+q, nil); r.Status != 200 || !strings.Contains(string(r.Body), "package") {
		t.Errorf("rego of %q: %d %s", agent, r.Status, r.Body)
	}
	// PUT by query targets the agent's copy; a conflicting body is refused.
	u := wantStatus(t, c.Do(t, "PUT", "/v1/control/policies/emails?"+q, warnPolicy("emails", "e-mail")), 200)
	wantField(t, u, agent, "agent_id")
	wantField(t, u, 2, "version")
	wantError(t, c.Do(t, "PUT", "/v1/control/policies/emails?"+q, blockPolicy("emails", "email", "someone-else")), 400, "novyx_ram.v1.control.invalid_policy")
	wantStatus(t, c.Do(t, "PUT", "/v1/control/policies/emails?"+q, blockPolicy("emails", "email", agent)), 200)

	r := wantStatus(t, c.Do(t, "POST", "/v1/actions", map[string]any{"action": "mail.send", "params": map[string]any{"to": "email"}, "agent_id": agent}), 200)
	wantField(t, r, "blocked", "status")
	wantField(t, r, agent, "agent_id")
	id := r["action_id"].(string)
	r = wantStatus(t, c.Do(t, "POST", "/v1/actions/mail/send", map[string]any{"to": "email", "agent_id": agent}), 200)
	wantField(t, r, agent, "agent_id")
	wantField(t, wantStatus(t, c.Do(t, "GET", "/v1/actions/"+id, nil), 200), agent, "agent_id")
	v := wantStatus(t, c.Do(t, "GET", "/v1/control/agents/"+url.PathEscape(agent)+"/violations", nil), 200)
	wantField(t, v, agent, "agent_id")
	wantField(t, v, 2, "total")
	wantField(t, v, 2, "returned")
	d := wantStatus(t, c.Do(t, "GET", "/v1/control/dashboard", nil), 200)
	wantField(t, d, []any{map[string]any{"agent_id": agent, "count": 2.0}}, "violations_by_agent")
	wantField(t, find(wantStatus(t, c.Do(t, "GET", "/v1/control/agents", nil), 200)["agents"], "agent_id", agent), 1, "policies")
	wantField(t, wantStatus(t, c.Do(t, "GET", "/v1/audit?event_type=action_blocked", nil), 200), agent, "entries", 0, "agent_id")
	wantStatus(t, c.Do(t, "DELETE", "/v1/control/policies/emails?"+q, nil), 200)

	// Control characters are refused everywhere.
	wantError(t, c.Do(t, "POST", "/v1/actions", map[string]any{"action": "a", "agent_id": "bad\tagent"}), 400, "VALIDATION_ERROR")
	wantError(t, c.Do(t, "POST", "/v1/control/policies", blockPolicy("x", "y", "bad\u2028agent")), 400, "novyx_ram.v1.control.invalid_policy")
	wantError(t, c.Do(t, "GET", "/v1/control/agents/bad%0Aagent/violations", nil), 400, "novyx_ram.v1.control.invalid_violations_param")
	wantError(t, c.Do(t, "POST", "/v1/actions", map[string]any{"action": "a", "agent_id": strings.Repeat("x", 201)}), 400, "VALIDATION_ERROR")
}

// TestTolerantActionsStrictPolicies: a newer SDK's unknown fields do not
// break a decision; a misspelt policy field is refused, saying why.
func TestTolerantActionsStrictPolicies(t *testing.T) {
	t.Parallel()
	_, c := startDev(t, Options{})
	r := wantStatus(t, c.Do(t, "POST", "/v1/actions", map[string]any{
		"action": "bank.wire", "params": map[string]any{"amount": 150000}, "sdk_version": "9.9", "metadata": map[string]any{"trace": "x"},
	}), 200)
	wantField(t, r, "blocked", "status")
	wantError(t, c.Do(t, "POST", "/v1/actions", map[string]any{"action": 7}), 400, "VALIDATION_ERROR")
	e := wantError(t, c.Do(t, "POST", "/v1/control/policies", map[string]any{
		"name": "p", "rules": []any{map[string]any{"match": "x", "severity": "high", "context_require": "y"}},
	}), 400, "novyx_ram.v1.control.invalid_policy")
	wantContains(t, e["message"], `unknown field "context_require"`)
	wantContains(t, e["message"], "a misspelt field would silently weaken the policy")
}
