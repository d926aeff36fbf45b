package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestActionEndpoints walks every row of docs/api.md §A7.
func TestActionEndpoints(t *testing.T) {
	t.Parallel()
	_, c := startDev(t, Options{})

	submit := func(t *testing.T, body any) map[string]any {
		t.Helper()
		return wantStatus(t, c.Do(t, "POST", "/v1/actions", body), 200)
	}

	t.Run("allowed when nothing fires", func(t *testing.T) {
		r := submit(t, map[string]any{"action": "github.create_issue", "params": map[string]any{"title": "hello"}})
		hasKeys(t, r, "action_id", "action", "agent_id", "status", "policy_result", "message")
		wantField(t, r, "allowed", "status")
		wantField(t, r, "github.create_issue", "action")
		wantField(t, r, nil, "agent_id")
		wantField(t, r, "Action permitted by policy evaluation", "message")
		pr := field(r, "policy_result")
		hasKeys(t, pr, "action_id", "status", "risk_score", "evaluation_time_ms", "policies_evaluated",
			"triggered_policy", "severity", "reason", "violations", "warnings")
		wantField(t, pr, field(r, "action_id"), "action_id")
		wantField(t, pr, "allowed", "status")
		wantField(t, pr, 0, "risk_score")
		wantField(t, pr, nil, "triggered_policy")
		wantField(t, pr, []any{}, "violations")
		wantField(t, pr, []any{}, "warnings")
		wantField(t, pr, []string{"FinancialSafetyPolicy", "DataExfiltrationPolicy"}, "policies_evaluated")
		if ms, ok := field(pr, "evaluation_time_ms").(float64); !ok || ms < 0 {
			t.Errorf("evaluation_time_ms = %v", field(pr, "evaluation_time_ms"))
		}
		if _, ok := pr.(map[string]any)["shadow_status"]; ok {
			t.Errorf("shadow_status outside shadow mode: %s", mustJSON(pr))
		}
	})

	t.Run("FinancialSafety asks for approval", func(t *testing.T) {
		r := submit(t, map[string]any{"action": "stripe.payment", "params": map[string]any{"amount": 50000, "currency": "usd"}, "agent_id": "payer"})
		id, _ := field(r, "action_id").(string)
		wantField(t, r, "pending_review", "status")
		wantField(t, r, "Action requires approval. Track with action_id: "+id, "message")
		wantField(t, r, "FinancialSafetyPolicy", "policy_result", "triggered_policy")
		wantField(t, r, "high", "policy_result", "severity")
		wantField(t, r, "High-value financial operation requires approval", "policy_result", "reason")
		wantField(t, r, "builtin", "policy_result", "violations", 0, "scope")
		wantField(t, r, "require_approval", "policy_result", "violations", 0, "on_violation")
		wantRisk(t, field(r, "policy_result"))
	})

	t.Run("FinancialSafety blocks past the hard limit", func(t *testing.T) {
		r := submit(t, map[string]any{"action": "bank.wire", "params": map[string]any{"amount": 150000}})
		wantField(t, r, "blocked", "status")
		wantField(t, r, "critical", "policy_result", "severity")
		wantField(t, r, "Financial operation exceeds hard limit: 150000", "policy_result", "reason")
		wantField(t, r, "Action blocked: Financial operation exceeds hard limit: 150000", "message")
		wantRisk(t, field(r, "policy_result"))
	})

	t.Run("DataExfiltration blocks secrets", func(t *testing.T) {
		r := submit(t, map[string]any{"action": "http.post", "params": map[string]any{"body": "key AKIAABCDEFGHIJKLMNOP"}})
		wantField(t, r, "blocked", "status")
		wantField(t, r, "DataExfiltrationPolicy", "policy_result", "triggered_policy")
		wantField(t, r, "Potential data exfiltration: AWS access key", "policy_result", "reason")
	})

	t.Run("block beats require_approval", func(t *testing.T) {
		wantStatus(t, c.Do(t, "POST", "/v1/control/policies", blockPolicy("no_stripe", "stripe", "")), 201)
		r := submit(t, map[string]any{"action": "stripe.payment", "params": map[string]any{"amount": 50000}})
		wantField(t, r, "blocked", "status")
		wantField(t, r, "no_stripe", "policy_result", "triggered_policy")
		wantField(t, r, "blocked: stripe", "policy_result", "reason")
		if v, _ := field(r, "policy_result", "violations").([]any); len(v) != 2 {
			t.Errorf("violations %s: want both hits", mustJSON(v))
		}
		wantField(t, r, []string{"no_stripe", "FinancialSafetyPolicy", "DataExfiltrationPolicy"}, "policy_result", "policies_evaluated")
	})
}

// TestConnectorRoute checks POST /v1/actions/{connector}/{operation...}.
func TestConnectorRoute(t *testing.T) {
	t.Parallel()
	_, c := startDev(t, Options{})
	// A warn policy that matches only the exact action text docs/api.md §A3
	// defines: sorted keys, no HTML escaping, non-ASCII as is, and params
	// without agent_id and step_type.
	exact := `^\{"action":"slack\.chat\.post_message","params":\{"channel":"#general","text":"<hi> ünï & co"\}\}\Z`
	wantStatus(t, c.Do(t, "POST", "/v1/control/policies", map[string]any{
		"name": "exact_text", "rules": []any{map[string]any{"match": exact, "severity": "low", "reason": "exact"}},
	}), 201)

	body := `{"text":"<hi> ünï & co","agent_id":"support-bot","step_type":"action","channel":"#general"}`
	r := wantStatus(t, c.Do(t, "POST", "/v1/actions/slack/chat/post_message", body), 200)
	wantField(t, r, "slack.chat.post_message", "action")
	wantField(t, r, "support-bot", "agent_id")
	wantField(t, r, "allowed", "status")
	wantField(t, r, "exact_text", "policy_result", "warnings", 0, "policy")
	wantField(t, r, "exact", "policy_result", "warnings", 0, "reason")

	// One segment is an operation too.
	r = wantStatus(t, c.Do(t, "POST", "/v1/actions/http/get", `{"url":"https://example.com/"}`), 200)
	wantField(t, r, "http.get", "action")

	// The same action through /v1/actions gives the same text.
	r = wantStatus(t, c.Do(t, "POST", "/v1/actions", map[string]any{
		"action": "slack.chat.post_message", "params": map[string]any{"channel": "#general", "text": "<hi> ünï & co"},
	}), 200)
	wantField(t, r, "exact_text", "policy_result", "warnings", 0, "policy")

	// explain reports the connector.
	r = wantStatus(t, c.Do(t, "POST", "/v1/actions/slack/chat/post_message", body), 200)
	id, _ := field(r, "action_id").(string)
	e := wantStatus(t, c.Do(t, "GET", "/v1/actions/"+id+"/explain", nil), 200)
	wantField(t, e, "slack", "connector")
	if op, _ := field(e, "operation").(string); op == "" {
		t.Errorf("explain operation = %v", field(e, "operation"))
	}
}

// TestActionStepTypes: a policy applies only to the step types it lists.
func TestActionStepTypes(t *testing.T) {
	t.Parallel()
	_, c := startDev(t, Options{})
	p := blockPolicy("out_only", "secretword", "")
	p["step_types"] = []string{"output"}
	wantStatus(t, c.Do(t, "POST", "/v1/control/policies", p), 201)
	act := func(step any) string {
		b := map[string]any{"action": "say", "params": map[string]any{"text": "secretword"}}
		if step != nil {
			b["step_type"] = step
		}
		return field(wantStatus(t, c.Do(t, "POST", "/v1/actions", b), 200), "status").(string)
	}
	for step, want := range map[any]string{nil: "allowed", "ACTION": "allowed", "output": "blocked", "OUTPUT": "blocked", "thought": "allowed"} {
		if got := act(step); got != want {
			t.Errorf("step_type %v: %s, want %s", step, got, want)
		}
	}
}

// TestActionRecords: GET /v1/actions/{id}, the listing and explain.
func TestActionRecords(t *testing.T) {
	t.Parallel()
	_, c := startDev(t, Options{})
	bodies := []map[string]any{
		{"action": "github.create_issue", "params": map[string]any{"title": "a"}},
		{"action": "stripe.payment", "params": map[string]any{"amount": 20000}, "agent_id": "payer"},
		{"action": "bank.wire", "params": map[string]any{"amount": 200000}},
		{"action": "github.create_issue", "params": map[string]any{"title": "b"}},
	}
	var posted []map[string]any
	for _, b := range bodies {
		posted = append(posted, wantStatus(t, c.Do(t, "POST", "/v1/actions", b), 200))
	}

	t.Run("GET one", func(t *testing.T) {
		for _, p := range posted {
			id := field(p, "action_id").(string)
			g := wantStatus(t, c.Do(t, "GET", "/v1/actions/"+id, nil), 200)
			hasKeys(t, g, "action_id", "action", "agent_id", "status", "policy_result", "message", "reason", "approver_id", "decided_at", "created_at")
			for _, k := range []string{"action_id", "action", "agent_id", "status", "message"} {
				wantField(t, g, p[k], k)
			}
			wantField(t, g, field(p, "policy_result", "status"), "policy_result", "status")
			wantField(t, g, field(p, "policy_result", "triggered_policy"), "policy_result", "triggered_policy")
			wantField(t, g, field(p, "policy_result", "violations"), "policy_result", "violations")
			wantField(t, g, nil, "approver_id")
			wantField(t, g, nil, "decided_at")
			wantTime(t, field(g, "created_at"), "created_at")
		}
		wantError(t, c.Do(t, "GET", "/v1/actions/act_000000000000000000000000", nil), 404, "actions.not_found")
		wantError(t, c.Do(t, "GET", "/v1/actions/nonsense", nil), 404, "actions.not_found")
	})

	t.Run("list newest first, paged and filtered", func(t *testing.T) {
		l := wantStatus(t, c.Do(t, "GET", "/v1/actions", nil), 200)
		hasKeys(t, l, "actions", "total")
		wantField(t, l, 4, "total")
		for _, a := range asSlice(field(l, "actions")) {
			hasKeys(t, a, "action_id", "action", "agent_id", "status", "policy_result", "message", "created_at")
		}
		var got []any
		for _, a := range field(l, "actions").([]any) {
			got = append(got, field(a, "action_id"))
		}
		var want []any
		for i := len(posted) - 1; i >= 0; i-- {
			want = append(want, field(posted[i], "action_id"))
		}
		if !jsonEqual(got, want) {
			t.Errorf("actions %v, want newest first %v", got, want)
		}

		l = wantStatus(t, c.Do(t, "GET", "/v1/actions?limit=2&offset=1", nil), 200)
		wantField(t, l, 4, "total")
		wantField(t, l, want[1], "actions", 0, "action_id")
		wantField(t, l, want[2], "actions", 1, "action_id")
		if n := len(field(l, "actions").([]any)); n != 2 {
			t.Errorf("limit=2 returned %d", n)
		}

		l = wantStatus(t, c.Do(t, "GET", "/v1/actions?status=blocked", nil), 200)
		wantField(t, l, 1, "total")
		wantField(t, l, field(posted[2], "action_id"), "actions", 0, "action_id")
		l = wantStatus(t, c.Do(t, "GET", "/v1/actions?status=pending_review", nil), 200)
		wantField(t, l, 1, "total")

		for _, q := range []string{"limit=-1", "limit=abc", "offset=-3"} {
			wantError(t, c.Do(t, "GET", "/v1/actions?"+q, nil), 400, "VALIDATION_ERROR")
		}
		// An unknown status matches nothing; empty parameters are not given.
		wantField(t, wantStatus(t, c.Do(t, "GET", "/v1/actions?status=maybe", nil), 200), 0, "total")
		wantField(t, wantStatus(t, c.Do(t, "GET", "/v1/actions?status=pending_review&limit=&offset=", nil), 200), 1, "total")
	})

	t.Run("explain", func(t *testing.T) {
		id := field(posted[1], "action_id").(string)
		e := wantStatus(t, c.Do(t, "GET", "/v1/actions/"+id+"/explain", nil), 200)
		hasKeys(t, e, "action_id", "action", "agent_id", "connector", "operation", "submitted_at", "policy_result", "approval", "audit_trail", "summary", "memories_at_time")
		wantField(t, e, id, "action_id")
		wantField(t, e, "stripe.payment", "action")
		wantField(t, e, "payer", "agent_id")
		wantField(t, e, nil, "memories_at_time")
		wantField(t, e, "pending_review", "policy_result", "status")
		wantTime(t, field(e, "submitted_at"), "submitted_at")
		trail, ok := field(e, "audit_trail").([]any)
		if !ok {
			t.Fatalf("audit_trail = %s, want an array", mustJSON(field(e, "audit_trail")))
		}
		for _, entry := range trail {
			hasKeys(t, entry, "sequence_number", "timestamp", "event", "entry_hash", "metadata")
		}
		wantError(t, c.Do(t, "GET", "/v1/actions/act_000000000000000000000000/explain", nil), 404, "actions.not_found")
	})
}

// TestActionValidation: bad action bodies are 400 VALIDATION_ERROR.
func TestActionValidation(t *testing.T) {
	t.Parallel()
	_, c := startDev(t, Options{})
	bigParams := `{"action":"x","params":{"blob":"` + strings.Repeat("a", 65*1024) + `"}}`
	cases := map[string]string{
		"malformed JSON":    `{"action": "x",`,
		"not an object":     `["x"]`,
		"missing action":    `{"params":{}}`,
		"empty action":      `{"action":""}`,
		"action too long":   fmt.Sprintf(`{"action":%q}`, strings.Repeat("a", 201)),
		"action not string": `{"action":42}`,
		"params not object": `{"action":"x","params":[1,2]}`,
		"bad agent_id":      `{"action":"x","agent_id":"has\u0000nul"}`,
		"bad step_type":     `{"action":"x","step_type":"dance"}`,
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			wantError(t, c.Do(t, "POST", "/v1/actions", body), 400, "VALIDATION_ERROR")
		})
	}
	t.Run("params over 64 KiB", func(t *testing.T) {
		// Within the body limit, over the params bound: too large, and
		// the message names the field.
		m := wantError(t, c.Do(t, "POST", "/v1/actions", bigParams), 413, "PAYLOAD_TOO_LARGE")
		wantContains(t, m["message"], "params")
	})
	t.Run("nothing recorded", func(t *testing.T) {
		wantField(t, wantStatus(t, c.Do(t, "GET", "/v1/actions", nil), 200), 0, "total")
	})
	t.Run("exactly 200 characters is fine", func(t *testing.T) {
		wantStatus(t, c.Do(t, "POST", "/v1/actions", fmt.Sprintf(`{"action":%q}`, strings.Repeat("a", 200))), 200)
	})
}

// TestFailClosed: an evaluation that cannot finish is refused with 503,
// never allowed (docs/api.md §A7), and still recorded.
func TestFailClosed(t *testing.T) {
	t.Parallel()
	_, c := startDev(t, Options{Args: []string{"--engine-eval-timeout", "1ns"}})
	r := c.Do(t, "POST", "/v1/actions", map[string]any{"action": "github.create_issue", "params": map[string]any{"title": "x"}})
	wantError(t, r, http.StatusServiceUnavailable, "novyx_ram.v1.control.evaluation_unavailable")
	l := wantStatus(t, c.Do(t, "GET", "/v1/actions", nil), 200)
	wantField(t, l, 1, "total")
	if s := field(l, "actions", 0, "status"); s == "allowed" {
		t.Errorf("a failed evaluation was recorded as allowed")
	}
}

// TestShadowMode: a shadow tenant's actions are allowed, with the would-be
// status in shadow_status.
func TestShadowMode(t *testing.T) {
	t.Parallel()
	s, _ := startDev(t, Options{})
	res := Run(t, binary(t), nil, "tenant", "create", "--name", "shadowy", "--tier", "pro", "--mode", "shadow", "--store", s.Store)
	if res.Code != 0 {
		t.Fatalf("tenant create: %d\n%s", res.Code, res.Stderr)
	}
	var created tenantLine
	if err := json.Unmarshal([]byte(res.Stdout), &created); err != nil {
		t.Fatal(err)
	}
	c := s.Client(created.APIKey)
	var r map[string]any
	if !eventually(2*time.Second, func() bool {
		resp := c.Do(t, "POST", "/v1/actions", map[string]any{"action": "bank.wire", "params": map[string]any{"amount": 500000}})
		if resp.Status != 200 {
			return false
		}
		r = resp.JSON(t)
		return true
	}) {
		t.Fatal("the new tenant's key never worked")
	}
	wantField(t, r, "allowed", "status")
	wantField(t, r, "blocked", "policy_result", "shadow_status")
	wantField(t, r, "FinancialSafetyPolicy", "policy_result", "triggered_policy")
	wantField(t, wantStatus(t, c.Do(t, "GET", "/v1/control/policies", nil), 200), "shadow", "mode")
}

// TestWhitelistedDomains: a policy is skipped when every hostname of the
// action is (under) a whitelisted domain (docs/api.md §A3); built-ins never
// are.
func TestWhitelistedDomains(t *testing.T) {
	t.Parallel()
	_, c := startDev(t, Options{})
	p := blockPolicy("outbound", "fetch", "")
	p["whitelisted_domains"] = []string{"example.com"}
	wantStatus(t, c.Do(t, "POST", "/v1/control/policies", p), 201)
	for _, tc := range []struct {
		params map[string]any
		want   string
	}{
		{map[string]any{"url": "https://example.com/a"}, "allowed"},
		{map[string]any{"url": "https://API.Example.com/a", "cc": "ops@example.com"}, "allowed"},
		{map[string]any{"url": "https://evil.com/a"}, "blocked"},
		{map[string]any{"url": "https://example.com/a", "to": "x@evil.com"}, "blocked"},
		{map[string]any{"url": "https://notexample.com/"}, "blocked"},
		{map[string]any{"note": "no host at all"}, "blocked"},
	} {
		r := wantStatus(t, c.Do(t, "POST", "/v1/actions", map[string]any{"action": "http.fetch", "params": tc.params}), 200)
		if got := field(r, "status"); got != tc.want {
			t.Errorf("params %v: %v, want %s", tc.params, got, tc.want)
		}
	}
	// A whitelisted host does not exempt an action from the built-ins.
	r := wantStatus(t, c.Do(t, "POST", "/v1/actions", map[string]any{"action": "http.fetch",
		"params": map[string]any{"url": "https://example.com/?k=AKIAABCDEFGHIJKLMNOP"}}), 200)
	wantField(t, r, "DataExfiltrationPolicy", "policy_result", "triggered_policy")
}
