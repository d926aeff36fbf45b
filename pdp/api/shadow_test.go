package api_test

import (
	"net/http"
	"testing"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// TestShadowPolicies: shadow hits are reported (answer, explain, dashboard)
// but never enforced, and a shadow agent-scoped copy overrides nothing.
func TestShadowPolicies(t *testing.T) {
	e := newEnv(t)
	_, key := e.tenant(store.TierPro)
	expect(t, e.post("/v1/control/policies", key, seedTenantWide), http.StatusCreated, nil)
	cards := map[string]any{"name": "cards", "mode": "shadow", "rules": []any{
		map[string]any{"match": `\d{4} \d{4}`, "severity": "critical", "reason": "card {match}"}}}
	expect(t, e.post("/v1/control/policies", key, cards), http.StatusCreated, nil)
	// billing-bot's copy of pii_protection, in shadow: it must not take the
	// tenant-wide copy's place.
	strict := map[string]any{"name": "pii_protection", "agent_id": "billing-bot", "mode": "shadow", "rules": []any{
		map[string]any{"match": "(email|phone)", "severity": "critical", "reason": "PII {match}"}}}
	expect(t, e.post("/v1/control/policies", key, strict), http.StatusCreated, nil)
	expect(t, e.get("/v1/control/policies/cards", key), http.StatusOK, map[string]any{"mode": "shadow"})
	expect(t, e.get("/v1/control/policies/pii_protection", key), http.StatusOK, map[string]any{"mode": "enforce"})

	body := map[string]any{"action": "slack.send_message", "agent_id": "billing-bot",
		"params": map[string]any{"channel": "#external", "text": "email 4111 1111 on file"}}
	r := expect(t, e.post("/v1/actions", key, body), http.StatusOK, map[string]any{"status": "allowed"})
	pr := r["policy_result"].(map[string]any)
	if pr["triggered_policy"] != "pii_protection" || pr["risk_score"] != 0.43 {
		t.Errorf("the tenant-wide warn decides: %v", pr)
	}
	if vs := pr["violations"].([]any); len(vs) != 1 || vs[0].(map[string]any)["scope"] != "tenant" {
		t.Errorf("violations: %v", vs)
	}
	sh := pr["shadow"].([]any)
	if len(sh) != 2 {
		t.Fatalf("shadow: %v", sh)
	}
	first, second := sh[0].(map[string]any), sh[1].(map[string]any)
	if first["policy"] != "pii_protection" || first["scope"] != "agent" || first["would_status"] != "blocked" ||
		second["policy"] != "cards" || second["match"] != "4111 1111" {
		t.Errorf("shadow hits: %v", sh)
	}
	id := r["action_id"].(string)
	ex := expect(t, e.get("/v1/actions/"+id+"/explain", key), http.StatusOK, nil)
	if s, _ := ex["policy_result"].(map[string]any)["shadow"].([]any); len(s) != 2 {
		t.Errorf("explain: %v", ex["policy_result"])
	}
	d := expect(t, e.get("/v1/control/dashboard?window=24h", key), http.StatusOK, nil)
	want := []any{map[string]any{"policy": "cards", "count": float64(1)}, map[string]any{"policy": "pii_protection", "count": float64(1)}}
	if got := d["shadow_hits_by_policy"]; len(got.([]any)) != 2 || got.([]any)[0].(map[string]any)["count"] != float64(1) {
		t.Errorf("shadow_hits_by_policy = %v, want %v", got, want)
	}

	// Enforcing the agent copy: it now overrides and blocks.
	strict["mode"] = "enforce"
	expect(t, e.post("/v1/control/policies", key, strict), http.StatusOK, nil)
	r = expect(t, e.post("/v1/actions", key, body), http.StatusOK, map[string]any{"status": "blocked"})
	pr = r["policy_result"].(map[string]any)
	if pr["triggered_policy"] != "pii_protection" || len(pr["shadow"].([]any)) != 1 {
		t.Errorf("after enforcing: %v", pr)
	}
	diff := expect(t, e.get("/v1/control/policies/pii_protection/diff?from=1&to=2&agent_id=billing-bot", key), http.StatusOK, nil)
	if m := diff["metadata"].([]any); len(m) != 1 || m[0].(map[string]any)["field"] != "mode" {
		t.Errorf("diff of the mode change: %v", m)
	}
	expectErrorCode(t, e.post("/v1/control/policies", key, map[string]any{"name": "x", "mode": "loud", "rules": []any{
		map[string]any{"match": "x", "severity": "low"}}}), http.StatusBadRequest, pdp.CodeInvalidPolicy, "mode")
}
