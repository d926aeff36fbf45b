package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

var (
	actionIDPattern = regexp.MustCompile(`^act_[0-9a-f]{24}$`)
	traceIDPattern  = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

func TestSubmitActionResponse(t *testing.T) {
	e := newEnv(t)
	_, key := e.tenant(store.TierEnterprise)
	e.post("/v1/control/policies", key, `{"name":"approve_deploys","rules":[{"match":"deploy","severity":"high","reason":"Deploys need a human: {match}"}]}`)
	e.post("/v1/control/policies", key, `{"name":"note_reads","rules":[{"match":"read","severity":"low","confidence":0.4}]}`)

	for _, tc := range []struct {
		name        string
		body        any
		status      string
		message     func(id string) string
		triggered   any
		severity    any
		reason      any
		risk        float64
		violations  int
		warnings    int
		stepTypeArg string
	}{
		{"allowed", map[string]any{"action": "files.list"}, "allowed",
			func(string) string { return "Action permitted by policy evaluation" }, nil, nil, nil, 0, 0, 0, ""},
		{"warn", map[string]any{"action": "files.read"}, "allowed",
			func(string) string { return "Action permitted by policy evaluation" }, "note_reads", "low", "Policy 'note_reads' violated: read", 0.1, 1, 1, ""},
		{"pending", map[string]any{"action": "ci.deploy", "params": map[string]any{"env": "prod"}}, "pending_review",
			func(id string) string { return "Action requires approval. Track with action_id: " + id }, "approve_deploys", "high", "Deploys need a human: deploy", 0.68, 1, 0, ""},
		{"blocked", map[string]any{"action": "bank.wire", "params": map[string]any{"amount": 250000}}, "blocked",
			func(string) string { return "Action blocked: Financial operation exceeds hard limit: 250000" }, "FinancialSafetyPolicy", "critical", "Financial operation exceeds hard limit: 250000", 1, 1, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := expect(t, e.post("/v1/actions", key, tc.body), http.StatusOK, map[string]any{"status": tc.status, "agent_id": nil})
			id, _ := res["action_id"].(string)
			if !actionIDPattern.MatchString(id) {
				t.Fatalf("action_id %q", id)
			}
			if tid, _ := res["trace_id"].(string); !traceIDPattern.MatchString(tid) {
				t.Errorf("trace_id %q", tid)
			}
			if res["message"] != tc.message(id) {
				t.Errorf("message %q, want %q", res["message"], tc.message(id))
			}
			if len(res) != 7 {
				t.Errorf("response fields %v", keys(res))
			}
			pr := res["policy_result"].(map[string]any)
			for _, f := range []string{"action_id", "status", "risk_score", "evaluation_time_ms", "policies_evaluated", "triggered_policy", "severity", "reason", "violations", "warnings"} {
				if _, ok := pr[f]; !ok {
					t.Errorf("policy_result lacks %s", f)
				}
			}
			if pr["action_id"] != id || pr["status"] != tc.status || pr["triggered_policy"] != tc.triggered || pr["severity"] != tc.severity || pr["reason"] != tc.reason {
				t.Errorf("policy_result = %v", pr)
			}
			if pr["risk_score"] != tc.risk || len(pr["violations"].([]any)) != tc.violations || len(pr["warnings"].([]any)) != tc.warnings {
				t.Errorf("risk %v violations %v warnings %v", pr["risk_score"], pr["violations"], pr["warnings"])
			}
			if _, ok := pr["shadow_status"]; ok {
				t.Error("shadow_status outside shadow mode")
			}

			// Recorded durably, readable at once.
			got := expect(t, e.get("/v1/actions/"+id, key), http.StatusOK, map[string]any{
				"action_id": id, "action": tc.body.(map[string]any)["action"], "agent_id": nil, "status": tc.status,
				"message": tc.message(id), "reason": tc.reason, "approver_id": nil, "decided_at": nil,
				"policy_result": pr,
			})
			if s, _ := got["created_at"].(string); !rfc3339Z.MatchString(s) {
				t.Errorf("created_at %v", got["created_at"])
			}
		})
	}
}

func TestConnectorRoute(t *testing.T) {
	e := newEnv(t)
	tenantID, key := e.tenant(store.TierPro)
	e.post("/v1/control/policies", key, seedTenantWide)
	e.post("/v1/control/policies", key, seedBillingBot)

	// The seed action through the connector route.
	res := expect(t, e.post("/v1/actions/slack/send_message", key,
		`{"channel":"#external","text":"Customer email: alice@example.com","agent_id":"billing-bot","step_type":"action"}`),
		http.StatusOK, map[string]any{"action": "slack.send_message", "agent_id": "billing-bot", "status": "blocked",
			"message": "Action blocked: PII blocked for billing-bot: email"})
	rec, err := e.st.GetAction(t.Context(), tenantID, res["action_id"].(string))
	if err != nil {
		t.Fatal(err)
	}
	// params are the body minus agent_id and step_type.
	if string(rec.Params) != `{"channel":"#external","text":"Customer email: alice@example.com"}` || rec.StepType != "ACTION" ||
		rec.Connector != "slack" || rec.Operation != "send_message" || rec.AgentID != "billing-bot" {
		t.Fatalf("record = %+v params %s", rec, rec.Params)
	}

	// Nested operations: / becomes .
	expect(t, e.post("/v1/actions/github/repos/issues/create", key, `{"title":"x"}`), http.StatusOK,
		map[string]any{"action": "github.repos.issues.create", "status": "allowed"})
	// An empty body is no params.
	expect(t, e.post("/v1/actions/http/get", key, nil), http.StatusOK, map[string]any{"action": "http.get"})

	for _, tc := range []struct {
		name, path string
		body       any
		parts      []string
	}{
		{"no operation", "/v1/actions/slack", `{}`, []string{"operation: is required"}},
		{"no operation slash", "/v1/actions/slack/", `{}`, []string{"operation: is required"}},
		{"not an object", "/v1/actions/slack/send", `[1]`, []string{"must be a JSON object"}},
		{"agent_id type", "/v1/actions/slack/send", `{"agent_id":5}`, []string{"agent_id: must be a string"}},
		{"step_type", "/v1/actions/slack/send", `{"step_type":"dance"}`, []string{"step_type: must be one of"}},
		{"malformed", "/v1/actions/slack/send", `{"a":`, []string{"invalid JSON"}},
		{"long action", "/v1/actions/slack/" + strings.Repeat("o", 200), `{}`, []string{"action: must be at most 200 characters"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectErrorCode(t, e.post(tc.path, key, tc.body), http.StatusBadRequest, pdp.CodeValidation, tc.parts...)
		})
	}
}

func TestSubmitActionValidation(t *testing.T) {
	e := newEnv(t)
	tenantID, key := e.tenant(store.TierPro)
	for _, tc := range []struct {
		name, body string
		message    string
	}{
		{"no action", `{"params":{}}`, "action: is required"},
		{"null action", `{"action":null}`, "action: is required"},
		{"empty action", `{"action":""}`, "action: must not be empty"},
		{"long action", `{"action":"` + strings.Repeat("a", 201) + `"}`, "action: must be at most 200 characters"},
		{"action type", `{"action":5}`, "action: must be a string"},
		{"params type", `{"action":"a","params":[1]}`, "params: must be an object"},
		{"params string", `{"action":"a","params":"x"}`, "params: must be an object"},
		{"agent_id", `{"action":"a","agent_id":"no\ttabs"}`, "agent_id: must be 1-200 printable characters (letters, digits, spaces, punctuation such as '/' — no control characters)"},
		{"agent_id long", `{"action":"a","agent_id":"` + strings.Repeat("a", 201) + `"}`, "agent_id: must be 1-200 printable characters (letters, digits, spaces, punctuation such as '/' — no control characters)"},
		{"step_type", `{"action":"a","step_type":"dance"}`, "step_type: must be one of thought, action, observation, output, error, policy_check"},
		{"several", `{"action":"","step_type":"dance"}`, "action: must not be empty; step_type: must be one of thought, action, observation, output, error, policy_check"},
		{"malformed", `{"action":`, "invalid JSON: unexpected end of input"},
		{"syntax", `{"action" "a"}`, "invalid JSON at byte 11: invalid character '\"' after object key"},
		{"not an object", `["a"]`, "the request body must be a JSON object"},
		{"trailing", `{"action":"a"} {"action":"b"}`, "unexpected data after the JSON object"},
		{"empty", ``, "the request body is empty; expected a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectError(t, e.post("/v1/actions", key, tc.body), http.StatusBadRequest, pdp.CodeValidation, tc.message, nil)
		})
	}
	if _, total, _ := e.st.ListActions(t.Context(), tenantID, store.ActionQuery{}); total != 0 {
		t.Fatalf("invalid submissions recorded %d actions", total)
	}
	// Unknown top-level fields are ignored (a newer SDK's), known ones
	// still checked; an agent_id may hold spaces, '/' and any script.
	expect(t, e.post("/v1/actions", key, `{"action":"a","paramz":{},"metadata":{"sdk":"9.9"},"agent_id":"ops bot/eu ü"}`), http.StatusOK,
		map[string]any{"status": "allowed", "agent_id": "ops bot/eu ü"})

	// Step types in any case; 200-character names; numbers kept exactly.
	res := expect(t, e.post("/v1/actions", key, `{"action":"`+strings.Repeat("a", 200)+`","step_type":"Policy_Check","params":{"n":1.50,"big":12345678901234567890}}`), http.StatusOK, nil)
	rec, _ := e.st.GetAction(t.Context(), tenantID, res["action_id"].(string))
	if rec.StepType != "POLICY_CHECK" || string(rec.Params) != `{"big":12345678901234567890,"n":1.50}` {
		t.Fatalf("record step %q params %s", rec.StepType, rec.Params)
	}
}

func TestParamsBound(t *testing.T) {
	e := newEnv(t)
	_, key := e.tenant(store.TierPro)
	big := strings.Repeat("x", 64<<10)
	expectErrorCode(t, e.post("/v1/actions", key, map[string]any{"action": "a", "params": map[string]any{"t": big}}),
		http.StatusRequestEntityTooLarge, pdp.CodePayloadTooLarge, "params: must be at most 65536 bytes as JSON")
	expectErrorCode(t, e.post("/v1/actions/http/post", key, map[string]any{"t": big}),
		http.StatusRequestEntityTooLarge, pdp.CodePayloadTooLarge, "params")
	// Under the params bound but over the action text's (adapter's regex
	// cost bound): refused, never truncated.
	expectErrorCode(t, e.post("/v1/actions", key, map[string]any{"action": "a", "params": map[string]any{"t": big[:64<<10-8]}}),
		http.StatusRequestEntityTooLarge, pdp.CodePayloadTooLarge, "action text (the JSON of action and params that rules match) must be at most 4096 bytes")
	// {"action":"a","params":{"t":"…"}} is 32 bytes of overhead: exactly
	// at the bound passes, one byte more does not.
	expect(t, e.post("/v1/actions", key, map[string]any{"action": "a", "params": map[string]any{"t": big[:adapter.MaxActionTextBytes-32]}}), http.StatusOK, nil)
	expectErrorCode(t, e.post("/v1/actions", key, map[string]any{"action": "a", "params": map[string]any{"t": big[:adapter.MaxActionTextBytes-31]}}),
		http.StatusRequestEntityTooLarge, pdp.CodePayloadTooLarge, "got 4097")
	expectErrorCode(t, e.post("/v1/data/gatehouse/decision/result", key, map[string]any{"input": map[string]any{"action": "a", "params": map[string]any{"t": big[:adapter.MaxActionTextBytes-31]}}}),
		http.StatusRequestEntityTooLarge, pdp.CodePayloadTooLarge, "got 4097")
}

func TestListActions(t *testing.T) {
	e := newEnv(t)
	_, key := e.tenant(store.TierPro)
	e.post("/v1/control/policies", key, rule("stop", "", "forbidden"))
	var ids []string
	for i := range 7 {
		act := fmt.Sprintf("step%d", i)
		if i%3 == 0 {
			act = "forbidden" + act
		}
		res := expect(t, e.post("/v1/actions", key, map[string]any{"action": act}), http.StatusOK, nil)
		ids = append(ids, res["action_id"].(string))
	}
	page := func(q string) ([]string, float64) {
		t.Helper()
		got := expect(t, e.get("/v1/actions"+q, key), http.StatusOK, nil)
		var out []string
		for _, a := range got["actions"].([]any) {
			out = append(out, a.(map[string]any)["action_id"].(string))
		}
		return out, got["total"].(float64)
	}
	all, total := page("")
	if total != 7 || strings.Join(all, ",") != strings.Join([]string{ids[6], ids[5], ids[4], ids[3], ids[2], ids[1], ids[0]}, ",") {
		t.Fatalf("list = %v (%v), want newest first", all, total)
	}
	if got, total := page("?limit=2&offset=1"); total != 7 || strings.Join(got, ",") != ids[5]+","+ids[4] {
		t.Fatalf("page = %v", got)
	}
	if got, total := page("?status=blocked"); total != 3 || strings.Join(got, ",") != ids[6]+","+ids[3]+","+ids[0] {
		t.Fatalf("blocked = %v (%v)", got, total)
	}
	if got, total := page("?limit=500&offset=100"); total != 7 || len(got) != 0 {
		t.Fatalf("past the end = %v", got)
	}
	for _, tc := range []struct{ q, msg string }{
		{"?limit=0", "limit: must be an integer from 1 to 500"},
		{"?limit=501", "limit: must be an integer from 1 to 500"},
		{"?limit=ten", "limit: must be an integer from 1 to 500"},
		{"?offset=-1", "offset: must be an integer from 0 to 2147483648"},
		{"?limit=0&status=x", "limit: must be an integer from 1 to 500"},
	} {
		expectError(t, e.get("/v1/actions"+tc.q, key), http.StatusBadRequest, pdp.CodeValidation, tc.msg, nil)
	}
	// An unknown status matches nothing; empty parameters are not given.
	expect(t, e.get("/v1/actions?status=maybe", key), http.StatusOK, map[string]any{"actions": []any{}, "total": 0})
	if got := expect(t, e.get("/v1/actions?status=&limit=&offset=", key), http.StatusOK, nil); got["total"] == 0.0 {
		t.Errorf("empty parameters filtered: %v", got)
	}
}

func TestExplainAction(t *testing.T) {
	e := newEnv(t)
	_, key := e.tenant(store.TierPro)
	e.post("/v1/control/policies", key, seedTenantWide)
	e.post("/v1/control/policies", key, seedBillingBot)
	res := e.post("/v1/actions", key, seedAction).json(t)
	id := res["action_id"].(string)

	got := expect(t, e.get("/v1/actions/"+id+"/explain", key), http.StatusOK, map[string]any{
		"action_id": id, "action": "slack.send_message", "agent_id": "billing-bot",
		"connector": "slack", "operation": "send_message",
		"policy_result": res["policy_result"], "approval": nil, "memories_at_time": nil,
		"summary": "Action 'slack.send_message' by agent 'billing-bot' was blocked by policy 'pii_protection' (critical): PII blocked for billing-bot: email.",
	})
	if len(got) != 11 {
		t.Errorf("explain fields %v", keys(got))
	}
	// The action's one entry: its evaluation (governance_test.go checks
	// trails in depth).
	if trail, _ := got["audit_trail"].([]any); len(trail) != 1 || trail[0].(map[string]any)["event"] != "action_blocked" {
		t.Errorf("audit_trail %v", got["audit_trail"])
	}
	if s, _ := got["submitted_at"].(string); !rfc3339Z.MatchString(s) {
		t.Errorf("submitted_at %v", got["submitted_at"])
	}
	got = expect(t, e.get("/v1/actions/"+e.post("/v1/actions", key, `{"action":"noop"}`).json(t)["action_id"].(string)+"/explain", key), http.StatusOK, map[string]any{
		"connector": nil, "operation": "noop",
	})
	if s := got["summary"].(string); !strings.Contains(s, "was allowed: no policy fired") {
		t.Errorf("summary %q", s)
	}

	for _, p := range []string{"/v1/actions/act_000000000000000000000000", "/v1/actions/act_000000000000000000000000/explain", "/v1/actions/" + strings.Repeat("x", 100)} {
		expectErrorCode(t, e.get(p, key), http.StatusNotFound, pdp.CodeActionNotFound, "not found")
	}
}

// TestShadowMode: an admin switches the tenant to shadow mode; the next
// action is allowed with the would-be status in shadow_status.
func TestShadowMode(t *testing.T) {
	e := newEnv(t)
	tenantID, key := e.tenant(store.TierPro)
	e.post("/v1/control/policies", key, seedBillingBot)
	r := e.do(request{method: http.MethodPatch, path: "/v1/admin/tenants/" + tenantID, key: adminToken, body: map[string]any{"mode": "shadow"}})
	expect(t, r, http.StatusOK, map[string]any{"mode": "shadow"})

	res := expect(t, e.post("/v1/actions", key, seedAction), http.StatusOK, map[string]any{
		"status": "allowed", "message": "Action permitted by policy evaluation",
	})
	pr := res["policy_result"].(map[string]any)
	if pr["status"] != "allowed" || pr["shadow_status"] != "blocked" || pr["triggered_policy"] != "pii_protection" {
		t.Fatalf("policy_result = %v", pr)
	}
	expect(t, e.get("/v1/control/policies", key), http.StatusOK, map[string]any{"mode": "shadow"})
	got := expect(t, e.get("/v1/actions/"+res["action_id"].(string)+"/explain", key), http.StatusOK, nil)
	if s := got["summary"].(string); !strings.Contains(s, "Shadow mode") {
		t.Errorf("summary %q", s)
	}
}

// TestEvaluationUnavailable: a failing evaluation is a 503 with the
// action_id, and the action is recorded as blocked — never allowed.
func TestEvaluationUnavailable(t *testing.T) {
	e := newEnv(t, func(o *envOption) {
		o.engineOpts = append(o.engineOpts, engine.WithQuery("data.gatehouse.does_not_exist"))
	})
	tenantID, key := e.tenant(store.TierPro)
	r := e.post("/v1/actions", key, `{"action":"bank.transfer","params":{"amount":5}}`)
	got := expect(t, r, http.StatusServiceUnavailable, map[string]any{
		"error": pdp.CodeEvaluationUnavailable, "code": pdp.CodeEvaluationUnavailable, "status": 503,
		"message": "Policy evaluation is unavailable; the action was not allowed",
	})
	id, _ := got["action_id"].(string)
	if !actionIDPattern.MatchString(id) || !traceIDPattern.MatchString(fmt.Sprint(got["trace_id"])) || len(got) != 6 {
		t.Fatalf("503 body = %s", r.body)
	}
	if strings.Contains(string(r.body), "undefined") || strings.Contains(string(r.body), "does_not_exist") {
		t.Fatalf("503 leaks the cause: %s", r.body)
	}
	rec, err := e.st.GetAction(t.Context(), tenantID, id)
	if err != nil || rec.Status != pdp.StatusBlocked {
		t.Fatalf("recorded %+v, %v", rec, err)
	}
	var d map[string]any
	_ = json.Unmarshal(rec.Decision, &d)
	if d["reason"] != "evaluation unavailable" || d["status"] != "blocked" {
		t.Fatalf("recorded decision %s", rec.Decision)
	}
	expect(t, e.get("/v1/actions/"+id, key), http.StatusOK, map[string]any{
		"status": "blocked", "reason": "evaluation unavailable", "message": "Action blocked: evaluation unavailable",
	})
	if !strings.Contains(e.logs.String(), "evaluation failed") {
		t.Error("the cause was not logged")
	}
}
