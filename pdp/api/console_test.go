package api_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/gatehouse-pdp/gatehouse/pdp/api"
	"github.com/gatehouse-pdp/gatehouse/pdp/console"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// seedActionFor is the seed walkthrough's action (seed-agent-scoped-policies.txt).
func seedActionFor(agent string) map[string]any {
	return map[string]any{
		"action":   "slack.send_message",
		"params":   map[string]any{"channel": "#external", "text": "Customer email: alice@example.com"},
		"agent_id": agent,
	}
}

func TestDryRunMatchesActions(t *testing.T) {
	e := newEnv(t)
	_, key := e.tenant(store.TierPro)
	for _, doc := range []string{seedTenantWide, seedBillingBot} {
		expect(t, e.post("/v1/control/policies", key, doc), http.StatusCreated, nil)
	}
	for _, agent := range []string{"billing-bot", "support-bot"} {
		t.Run(agent, func(t *testing.T) {
			before, actions := auditCount(t, e, key), e.get("/v1/actions", key).json(t)["total"]
			dry := expect(t, e.post("/v1/control/dry-run", key, seedActionFor(agent)), http.StatusOK, map[string]any{"recorded": false})
			if _, ok := dry["draft"]; ok {
				t.Errorf("draft decision without a draft: %v", dry["draft"])
			}
			if n := auditCount(t, e, key); n != before {
				t.Errorf("a dry run appended to the audit chain: %v → %v entries", before, n)
			}
			if total := e.get("/v1/actions", key).json(t)["total"]; total != actions {
				t.Errorf("a dry run recorded an action: total %v → %v", actions, total)
			}
			saved := dry["saved"].(map[string]any)
			if saved["action_id"] != nil {
				t.Errorf("dry run action_id %v, want null", saved["action_id"])
			}

			// The same action through POST /v1/actions decides the same.
			real := expect(t, e.post("/v1/actions", key, seedActionFor(agent)), http.StatusOK, nil)
			for _, k := range []string{"action", "agent_id", "status"} {
				if saved[k] != real[k] {
					t.Errorf("%s: dry run %v, actions %v", k, saved[k], real[k])
				}
			}
			if !strings.HasPrefix(real["message"].(string), "Action requires approval") && saved["message"] != real["message"] {
				t.Errorf("message: dry run %q, actions %q", saved["message"], real["message"])
			}
			sp, rp := saved["policy_result"].(map[string]any), real["policy_result"].(map[string]any)
			for _, k := range []string{"status", "risk_score", "policies_evaluated", "triggered_policy", "severity", "reason", "violations", "warnings"} {
				if !reflect.DeepEqual(sp[k], rp[k]) {
					t.Errorf("policy_result.%s: dry run %v, actions %v", k, sp[k], rp[k])
				}
			}
		})
	}
	billing := e.post("/v1/control/dry-run", key, seedActionFor("billing-bot")).json(t)["saved"].(map[string]any)
	if billing["status"] != "blocked" || billing["policy_result"].(map[string]any)["reason"] != "PII blocked for billing-bot: email" {
		t.Errorf("billing-bot: %v", billing)
	}
}

func TestDryRunDraft(t *testing.T) {
	e := newEnv(t)
	_, key := e.tenant(store.TierPro)
	expect(t, e.post("/v1/control/policies", key, seedTenantWide), http.StatusCreated, nil)
	draftYAML := "name: pii_protection\nrules:\n  - match: \"(email)\"\n    severity: high\n    reason: \"Draft holds {match}\"\n"

	body := seedActionFor("support-bot")
	body["draft"] = draftYAML
	body["draft_format"] = "yaml"
	res := expect(t, e.post("/v1/control/dry-run", key, body), http.StatusOK, map[string]any{"recorded": false})
	saved, draft := res["saved"].(map[string]any), res["draft"].(map[string]any)
	if saved["status"] != "allowed" || len(saved["policy_result"].(map[string]any)["warnings"].([]any)) != 1 {
		t.Errorf("saved: %v", saved)
	}
	if draft["status"] != "pending_review" || draft["policy_result"].(map[string]any)["reason"] != "Draft holds email" {
		t.Errorf("draft: %v", draft)
	}

	// The draft was not saved and changed nothing: the stored policy, the
	// next real decision, the actions and the audit chain are as before.
	got := e.get("/v1/control/policies/pii_protection", key).json(t)
	if got["version"] != float64(1) || !strings.Contains(configJSON(t, got["config"]), "(email|phone)") {
		t.Errorf("stored policy after a draft: %v", got)
	}
	if st := e.post("/v1/control/dry-run", key, seedActionFor("support-bot")).json(t)["saved"].(map[string]any)["status"]; st != "allowed" {
		t.Errorf("after a draft the saved decision is %v", st)
	}

	// A draft is checked as saving it would be, its fields named draft.*.
	body["draft"] = `{"name":"x","rules":[{"match":"(?=a)b","severity":"urgent"}]}`
	body["draft_format"] = "json"
	expectErrorCode(t, e.post("/v1/control/dry-run", key, body), http.StatusBadRequest, "novyx_ram.v1.control.invalid_policy",
		"draft.rules[0].match: look-ahead", "draft.rules[0].severity")
	body["draft_format"] = "toml"
	expectErrorCode(t, e.post("/v1/control/dry-run", key, body), http.StatusBadRequest, "novyx_ram.v1.control.invalid_policy", "draft_format")

	// Tier gates apply to drafts: Starter may not draft an agent-scoped
	// policy, Free no custom policy at all.
	_, starter := e.tenant(store.TierStarter)
	body["draft"] = `{"name":"x","agent_id":"billing-bot","rules":[{"match":"a","severity":"low"}]}`
	body["draft_format"] = "json"
	expectErrorCode(t, e.post("/v1/control/dry-run", starter, body), http.StatusForbidden, "novyx_ram.v1.tier.feature_required", "agent_scoped_policies")
	_, free := e.tenant(store.TierFree)
	body["draft"] = `{"name":"x","rules":[{"match":"a","severity":"low"}]}`
	expectErrorCode(t, e.post("/v1/control/dry-run", free, body), http.StatusForbidden, "novyx_ram.v1.tier.feature_required")
	// Without a draft every tier may dry-run.
	expect(t, e.post("/v1/control/dry-run", free, seedActionFor("")), http.StatusOK, nil)
}

func TestDryRunValidation(t *testing.T) {
	e := newEnv(t)
	_, key := e.tenant(store.TierPro)
	for _, tc := range []struct {
		name string
		body any
		want []string
	}{
		{"no action", map[string]any{}, []string{"action: is required"}},
		{"empty action", map[string]any{"action": ""}, []string{"action: must not be empty"}},
		{"long action", map[string]any{"action": strings.Repeat("a", 201)}, []string{"action: must be at most 200"}},
		{"bad agent", map[string]any{"action": "a", "agent_id": "no\ncontrol"}, []string{"agent_id"}},
		{"bad step", map[string]any{"action": "a", "step_type": "dance"}, []string{"step_type"}},
		{"params not an object", map[string]any{"action": "a", "params": []int{1}}, []string{"params: must be an object"}},
		{"format without draft", map[string]any{"action": "a", "draft_format": "yaml"}, []string{"draft_format"}},
		{"unknown field", map[string]any{"action": "a", "drafts": "x"}, []string{"drafts"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectErrorCode(t, e.post("/v1/control/dry-run", key, tc.body), http.StatusBadRequest, "novyx_ram.v1.control.invalid_policy", tc.want...)
		})
	}
	big := map[string]any{"action": "a", "params": map[string]any{"t": strings.Repeat("x", 70<<10)}}
	expectErrorCode(t, e.post("/v1/control/dry-run", key, big), http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE")
	r := e.post("/v1/control/dry-run", "nram_unknown", map[string]any{"action": "a"})
	if r.code != http.StatusUnauthorized {
		t.Errorf("without a valid key: %d", r.code)
	}
}

func TestListAgents(t *testing.T) {
	e := newEnv(t)
	_, key := e.tenant(store.TierPro)
	expect(t, e.get("/v1/control/agents", key), http.StatusOK, map[string]any{"agents": []any{}})
	expect(t, e.post("/v1/control/policies", key, seedTenantWide), http.StatusCreated, nil)
	expect(t, e.post("/v1/control/policies", key, seedBillingBot), http.StatusCreated, nil)
	expect(t, e.post("/v1/control/policies", key, rule("other", "support-bot", "x")), http.StatusCreated, nil)
	expect(t, e.do(request{method: http.MethodDelete, path: "/v1/control/policies/other?agent_id=support-bot", key: key}), http.StatusOK, nil)
	expect(t, e.get("/v1/control/agents", key), http.StatusOK, map[string]any{"agents": []any{
		map[string]any{"agent_id": "billing-bot", "policies": 1, "enabled": 1},
		map[string]any{"agent_id": "support-bot", "policies": 1, "enabled": 0},
	}})
	// Another tenant sees none of them.
	_, other := e.tenant(store.TierPro)
	expect(t, e.get("/v1/control/agents", other), http.StatusOK, map[string]any{"agents": []any{}})
}

func TestConsoleServed(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		path, typ string
	}{
		{"/console/", "text/html"},
		{"/console/js/app.js", "javascript"},
		{"/console/console.css", "text/css"},
	} {
		r := e.do(request{method: http.MethodGet, path: tc.path})
		if r.code != http.StatusOK || !strings.Contains(r.header.Get("Content-Type"), tc.typ) {
			t.Errorf("GET %s: %d %q", tc.path, r.code, r.header.Get("Content-Type"))
		}
		if got := r.header.Get("Content-Security-Policy"); got != console.CSP {
			t.Errorf("GET %s: CSP %q", tc.path, got)
		}
	}
	if r := e.do(request{method: http.MethodGet, path: "/console"}); r.code != http.StatusMovedPermanently || r.header.Get("Location") != "/console/" {
		t.Errorf("GET /console: %d %q", r.code, r.header.Get("Location"))
	}
	for _, p := range []string{"/console/missing.js", "/console/../go.mod", "/console/js/"} {
		if r := e.do(request{method: http.MethodGet, path: p}); r.code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, r.code)
		}
	}
}

func auditCount(t *testing.T, e *env, key string) float64 {
	t.Helper()
	n, _ := e.get("/v1/audit/verify", key).json(t)["entries"].(float64)
	return n
}

func configJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDryRunRateLimited: a dry run counts against the key's rate limit as
// a submitted action does, so the playground is no way around it.
func TestDryRunRateLimited(t *testing.T) {
	e := newEnv(t, func(o *envOption) {
		o.cfg.Limits = api.Limits{RateLimits: map[store.Tier]store.RateLimit{store.TierPro: {RequestsPerSecond: 0.01, Burst: 2}}}
	})
	_, key := e.tenant(store.TierPro)
	expect(t, e.post("/v1/actions", key, map[string]any{"action": "a"}), http.StatusOK, nil)
	expect(t, e.post("/v1/control/dry-run", key, map[string]any{"action": "a"}), http.StatusOK, nil)
	expectErrorCode(t, e.post("/v1/control/dry-run", key, map[string]any{"action": "a"}), http.StatusTooManyRequests, "RATE_LIMITED")
}
