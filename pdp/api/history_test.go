package api_test

import (
	"net/http"
	"reflect"
	"testing"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// TestPolicyHistory writes a policy every way at both scopes, then reads
// its history, each version as GET policy showed it at the time, diffs,
// and rolls back: decisions after the rollback are those of the version.
func TestPolicyHistory(t *testing.T) {
	e := newEnv(t)
	_, key := e.tenant(store.TierPro)
	keyID, err := e.reg.KeyID(t.Context(), key)
	if err != nil || keyID == "" {
		t.Fatalf("KeyID: %q, %v", keyID, err)
	}
	const action = `{"action":"slack.send_message","params":{"channel":"#external","text":"Customer ssn 078-05-1120"},"agent_id":"billing-bot"}`
	decide := func() map[string]any {
		t.Helper()
		r := expect(t, e.post("/v1/actions", key, action), http.StatusOK, nil)
		pr := r["policy_result"].(map[string]any)
		delete(pr, "action_id")
		delete(pr, "evaluation_time_ms")
		return pr
	}
	v1 := map[string]any{"name": "pii", "description": "warn", "agent_id": "billing-bot",
		"rules": []any{map[string]any{"match": "email", "severity": "medium"}}}
	v2 := map[string]any{"name": "pii", "description": "tightened", "agent_id": "billing-bot",
		"rules": []any{map[string]any{"match": "email", "severity": "medium"},
			map[string]any{"match": `\d{3}-\d{2}-\d{4}`, "severity": "critical", "reason": "SSN {match}"}}}

	// Tenant-wide writes, so both scopes have history.
	expect(t, e.post("/v1/control/policies", key, rule("pii", "", "passport")), http.StatusCreated, nil)
	expect(t, e.do(request{method: http.MethodDelete, path: "/v1/control/policies/pii", key: key}), http.StatusOK, nil)

	var views []map[string]any
	var decisions []map[string]any
	snap := func() {
		t.Helper()
		views = append(views, expect(t, e.get("/v1/control/policies/pii?agent_id=billing-bot", key), http.StatusOK, nil))
		decisions = append(decisions, decide())
	}
	expect(t, e.post("/v1/control/policies", key, v1), http.StatusCreated, map[string]any{"version": 1})
	snap()
	expect(t, e.do(request{method: http.MethodPut, path: "/v1/control/policies/pii", key: key, body: v2}), http.StatusOK, map[string]any{"version": 2, "action": "updated"})
	snap()
	expect(t, e.do(request{method: http.MethodDelete, path: "/v1/control/policies/pii?agent_id=billing-bot", key: key}), http.StatusOK, map[string]any{"version": 3})
	snap()
	expect(t, e.post("/v1/control/policies", key, v2), http.StatusOK, map[string]any{"version": 4})
	snap()
	if decisions[0]["status"] != "allowed" || decisions[1]["status"] != "blocked" {
		t.Fatalf("decisions at v1, v2: %v, %v", decisions[0]["status"], decisions[1]["status"])
	}

	h := expect(t, e.get("/v1/control/policies/pii/versions?agent_id=billing-bot", key), http.StatusOK,
		map[string]any{"policy_name": "pii", "agent_id": "billing-bot"})
	vs := h["versions"].([]any)
	wantActions := []string{"enabled", "disabled", "updated", "created"}
	if len(vs) != 4 {
		t.Fatalf("versions: %v", vs)
	}
	for i, v := range vs {
		m := v.(map[string]any)
		if m["version"] != float64(4-i) || m["action"] != wantActions[i] || m["actor"] != keyID {
			t.Errorf("version entry %d: %v", i, m)
		}
	}
	tw := expect(t, e.get("/v1/control/policies/pii/versions", key), http.StatusOK, map[string]any{"agent_id": nil})
	if n := len(tw["versions"].([]any)); n != 2 {
		t.Errorf("tenant-wide history: %d versions, want 2", n)
	}

	// Each version reads back exactly as GET policy showed it.
	for i, want := range views {
		got := expect(t, e.get("/v1/control/policies/pii/versions/"+itoa(i+1)+"?agent_id=billing-bot", key), http.StatusOK, nil)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("version %d:\n got %v\nwant %v", i+1, got, want)
		}
	}

	d := expect(t, e.get("/v1/control/policies/pii/diff?from=1&to=2&agent_id=billing-bot", key), http.StatusOK,
		map[string]any{"from": 1, "to": 2, "identical": false,
			"metadata": []any{map[string]any{"field": "description", "from": "warn", "to": "tightened"}}, "lists": []any{}})
	rules := d["rules"].(map[string]any)
	if added := rules["added"].([]any); len(added) != 1 || added[0].(map[string]any)["index"] != float64(1) {
		t.Errorf("rules added: %v", rules)
	}
	if len(rules["removed"].([]any))+len(rules["changed"].([]any))+len(rules["moved"].([]any)) != 0 {
		t.Errorf("rules: %v", rules)
	}
	expect(t, e.get("/v1/control/policies/pii/diff?from=2&to=4&agent_id=billing-bot", key), http.StatusOK, map[string]any{"identical": true})

	// Rollback to version 1: a new version 5 equal to 1, deciding as 1 did.
	expect(t, e.post("/v1/control/policies/pii/rollback", key, map[string]any{"version": 1, "agent_id": "billing-bot"}), http.StatusOK,
		map[string]any{"action": "rolled_back", "version": 5, "scope": "agent"})
	if got := decide(); !reflect.DeepEqual(got, decisions[0]) {
		t.Errorf("decision after rollback to 1:\n got %v\nwant %v", got, decisions[0])
	}
	expect(t, e.get("/v1/control/policies/pii/diff?from=1&to=5&agent_id=billing-bot", key), http.StatusOK, map[string]any{"identical": true})
	h = expect(t, e.get("/v1/control/policies/pii/versions?agent_id=billing-bot", key), http.StatusOK, nil)
	if top := h["versions"].([]any)[0].(map[string]any); top["action"] != "rolled_back" || top["rolled_back_from"] != float64(1) {
		t.Errorf("newest version: %v", top)
	}
	// Rolling back to the disabled version 3 disables it again.
	expect(t, e.post("/v1/control/policies/pii/rollback", key, map[string]any{"version": 3, "agent_id": "billing-bot"}), http.StatusOK, map[string]any{"version": 6})
	if got := decide(); !reflect.DeepEqual(got, decisions[2]) {
		t.Errorf("decision after rollback to 3:\n got %v\nwant %v", got, decisions[2])
	}

	// The audit chain has every write, rollbacks included.
	audit := expect(t, e.get("/v1/audit?event_type=policy_rolled_back", key), http.StatusOK, nil)
	if es := audit["entries"].([]any); len(es) != 2 {
		t.Errorf("policy_rolled_back entries: %v", es)
	}

	// Errors.
	expectErrorCode(t, e.get("/v1/control/policies/pii/versions/99?agent_id=billing-bot", key), http.StatusNotFound, pdp.CodePolicyNotFound)
	expectErrorCode(t, e.get("/v1/control/policies/pii/versions/x", key), http.StatusBadRequest, pdp.CodeInvalidPolicy, "version")
	expectErrorCode(t, e.get("/v1/control/policies/pii/diff?from=1", key), http.StatusBadRequest, pdp.CodeInvalidPolicy, "to")
	expectErrorCode(t, e.get("/v1/control/policies/nope/versions", key), http.StatusNotFound, pdp.CodePolicyNotFound)
	expectErrorCode(t, e.get("/v1/control/policies/FinancialSafety/versions", key), http.StatusNotFound, pdp.CodePolicyNotFound)
	expectErrorCode(t, e.post("/v1/control/policies/pii/rollback", key, map[string]any{}), http.StatusBadRequest, pdp.CodeInvalidPolicy, "version")
	expectErrorCode(t, e.post("/v1/control/policies/pii/rollback", key, map[string]any{"version": 9}), http.StatusNotFound, pdp.CodePolicyNotFound)
	expectErrorCode(t, e.post("/v1/control/policies/pii/rollback", key, map[string]any{"version": 1, "x": 1}), http.StatusBadRequest, pdp.CodeInvalidPolicy, "x")
}

// TestRollbackIsAWrite: a rollback passes the tier gates like any write.
func TestRollbackIsAWrite(t *testing.T) {
	e := newEnv(t)
	tid, key := e.tenant(store.TierStarter)
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		expect(t, e.post("/v1/control/policies", key, rule(n, "", n+"x")), http.StatusCreated, nil)
	}
	expect(t, e.do(request{method: http.MethodDelete, path: "/v1/control/policies/a", key: key}), http.StatusOK, nil)
	expect(t, e.post("/v1/control/policies", key, rule("f", "", "fx")), http.StatusCreated, nil)
	// Version 1 of "a" was enabled: restoring it would be a sixth.
	expectErrorCode(t, e.post("/v1/control/policies/a/rollback", key, map[string]any{"version": 1}), http.StatusForbidden, pdp.CodeLimitExceeded)
	_ = tid
}

func itoa(i int) string {
	return string(rune('0' + i))
}
