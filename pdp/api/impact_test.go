package api_test

import (
	"net/http"
	"testing"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// TestPolicyImpact records actions through POST /v1/actions, then asks
// what a tightened policy would have done to them.
func TestPolicyImpact(t *testing.T) {
	e := newEnv(t)
	_, key := e.tenant(store.TierPro)
	expect(t, e.post("/v1/control/policies", key, seedTenantWide), http.StatusCreated, nil)
	sent := map[string]string{ // text → agent
		"Customer email: a@example.com, for #external": "support-bot",
		"phone number 555 0100 in a public channel":    "ops-bot",
		"nothing to see here":                          "support-bot",
		"the weekly report":                            "",
	}
	for text, agent := range sent {
		body := map[string]any{"action": "slack.send_message", "params": map[string]any{"text": text}}
		if agent != "" {
			body["agent_id"] = agent
		}
		expect(t, e.post("/v1/actions", key, body), http.StatusOK, map[string]any{"status": "allowed"})
	}
	before := expect(t, e.get("/v1/actions?limit=1", key), http.StatusOK, nil)["total"]

	tight := map[string]any{"name": "pii_protection", "rules": []any{
		map[string]any{"match": "(email|phone)", "severity": "critical", "reason": "PII: {match}"}}}
	r := expect(t, e.post("/v1/control/policies/impact", key, map[string]any{"policy": tight}), http.StatusOK, map[string]any{
		"recorded": false, "evaluated": 4, "changed": 2, "failed": 0, "partial": false, "truncated": false,
		"transitions": map[string]any{"allowed→blocked": 2},
		"by_policy":   []any{map[string]any{"policy": "pii_protection", "changed": 2, "transitions": map[string]any{"allowed→blocked": 2}}},
	})
	if ex := r["examples"].([]any); len(ex) != 2 || ex[0].(map[string]any)["after"] != "blocked" {
		t.Errorf("examples: %v", ex)
	}
	if w := r["window"].(map[string]any); w["limit"] != float64(10000) || w["time_budget_ms"] != float64(10000) {
		t.Errorf("window defaults: %v", w)
	}
	// Disabling it changes no status (it only warned).
	expect(t, e.post("/v1/control/policies/impact", key, map[string]any{"disable": "pii_protection", "limit": 2}), http.StatusOK,
		map[string]any{"evaluated": 2, "changed": 0, "truncated": true})
	// Rolling back to version 1 is the policy as it is: nothing changes.
	expect(t, e.post("/v1/control/policies/impact", key, map[string]any{"rollback": map[string]any{"name": "pii_protection", "version": 1}}),
		http.StatusOK, map[string]any{"evaluated": 4, "changed": 0})

	// The fourth analysis within the rate's burst is refused.
	res := e.post("/v1/control/policies/impact", key, map[string]any{"policy": tight})
	expectErrorCode(t, res, http.StatusTooManyRequests, pdp.CodeRateLimited)
	if res.header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	// Nothing was recorded.
	expect(t, e.get("/v1/actions?limit=1", key), http.StatusOK, map[string]any{"total": before})

	// Bad requests (another tenant, so its rate is fresh).
	_, key2 := e.tenant(store.TierStarter)
	expectErrorCode(t, e.post("/v1/control/policies/impact", key2, map[string]any{}), http.StatusBadRequest, pdp.CodeInvalidPolicy, "exactly one")
	expectErrorCode(t, e.post("/v1/control/policies/impact", key2, map[string]any{"disable": "x", "policy": tight, "since": "yesterday", "limit": 100001}),
		http.StatusBadRequest, pdp.CodeInvalidPolicy, "since", "limit")
	expectErrorCode(t, e.post("/v1/control/policies/impact", key2, map[string]any{"policy": map[string]any{"name": "p", "rules": []any{map[string]any{"match": "(?=x)", "severity": "high"}}}}),
		http.StatusBadRequest, pdp.CodeInvalidPolicy, "policy.rules[0].match")
	agentScoped := map[string]any{"name": "p", "agent_id": "bot", "rules": []any{map[string]any{"match": "x", "severity": "high"}}}
	expectErrorCode(t, e.post("/v1/control/policies/impact", key2, map[string]any{"policy": agentScoped}), http.StatusForbidden, pdp.CodeFeatureRequired)
	expectErrorCode(t, e.post("/v1/control/policies/impact", key2, map[string]any{"disable": "nope"}), http.StatusNotFound, pdp.CodePolicyNotFound)
}
