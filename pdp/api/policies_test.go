package api_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	library "github.com/gatehouse-pdp/gatehouse/rego"
)

var rfc3339Z = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$`)

// TestSeedWalkthrough sends the seed document's curl requests, then the
// action of its SDK tabs, and checks every answer.
func TestSeedWalkthrough(t *testing.T) {
	e := newEnv(t)
	_, key := e.tenant(store.TierPro)

	expect(t, e.post("/v1/control/policies", key, seedTenantWide), http.StatusCreated, map[string]any{
		"policy_name": "pii_protection", "agent_id": nil, "scope": "tenant", "action": "created", "version": 1,
		"message": "Policy 'pii_protection' created",
	})
	expect(t, e.post("/v1/control/policies", key, seedBillingBot), http.StatusCreated, map[string]any{
		"policy_name": "pii_protection", "agent_id": "billing-bot", "scope": "agent", "action": "created", "version": 1,
		"message": "Policy 'pii_protection' created",
	})
	got := expect(t, e.get("/v1/control/policies/pii_protection?agent_id=billing-bot", key), http.StatusOK, map[string]any{
		"name": "pii_protection", "description": "Block PII outright for billing-bot", "source": "custom",
		"agent_id": "billing-bot", "scope": "agent", "enabled": true, "version": 1,
		"config": map[string]any{
			"name": "pii_protection", "description": "Block PII outright for billing-bot",
			"rules": []any{map[string]any{
				"match": "(email|phone|ssn|passport|routing)", "severity": "critical", "on_violation": "block",
				"reason": "PII blocked for billing-bot: {match}", "confidence": 0.85,
			}},
			"step_types": []any{"ACTION"}, "whitelisted_domains": []any{},
		},
	})
	for _, f := range []string{"created_at", "updated_at"} {
		if s, _ := got[f].(string); !rfc3339Z.MatchString(s) {
			t.Errorf("%s = %v, want RFC 3339 UTC with Z", f, got[f])
		}
	}

	res := expect(t, e.post("/v1/actions", key, seedAction), http.StatusOK, map[string]any{
		"action": "slack.send_message", "agent_id": "billing-bot", "status": "blocked",
		"message": "Action blocked: PII blocked for billing-bot: email",
	})
	pr := res["policy_result"].(map[string]any)
	if pr["triggered_policy"] != "pii_protection" || pr["reason"] != "PII blocked for billing-bot: email" || pr["action_id"] != res["action_id"] {
		t.Fatalf("policy_result = %v", pr)
	}

	// Step 4: the same action as support-bot, or with no agent, is allowed
	// with the tenant-wide warning.
	for _, agent := range []any{"support-bot", nil} {
		body := map[string]any{"action": "slack.send_message", "params": map[string]any{"channel": "#external", "text": "Customer email: alice@example.com"}}
		if agent != nil {
			body["agent_id"] = agent
		}
		res := expect(t, e.post("/v1/actions", key, body), http.StatusOK, map[string]any{
			"status": "allowed", "agent_id": agent, "message": "Action permitted by policy evaluation",
		})
		warnings := res["policy_result"].(map[string]any)["warnings"].([]any)
		if len(warnings) != 1 || warnings[0].(map[string]any)["scope"] != "tenant" {
			t.Errorf("agent %v: warnings %v", agent, warnings)
		}
	}
}

func TestListPolicies(t *testing.T) {
	e := newEnv(t)
	_, key := e.tenant(store.TierPro)
	builtins := []any{
		map[string]any{"name": "FinancialSafety", "enabled": true, "description": "Policy to prevent unauthorized financial operations.", "source": "builtin", "agent_id": nil},
		map[string]any{"name": "DataExfiltration", "enabled": true, "description": "Policy to prevent data exfiltration attempts.", "source": "builtin", "agent_id": nil},
	}
	expect(t, e.get("/v1/control/policies", key), http.StatusOK, map[string]any{
		"policies": builtins, "mode": "enforcement",
		"connectors":     []any{"github", "slack", "linear", "pagerduty", "http"},
		"approval_modes": []any{"solo", "team"},
	})

	e.post("/v1/control/policies", key, seedTenantWide)
	e.post("/v1/control/policies", key, seedBillingBot)
	e.post("/v1/control/policies", key, rule("other", "", "x"))
	e.post("/v1/control/policies", key, rule("mine", "billing-bot", "x"))
	e.post("/v1/control/policies", key, rule("theirs", "support-bot", "x"))
	e.do(request{method: http.MethodDelete, path: "/v1/control/policies/mine?agent_id=billing-bot", key: key})

	type item struct {
		name, agent, scope string
		enabled            bool
		effective          any // nil: field absent
	}
	check := func(path string, want []item) {
		t.Helper()
		got := expect(t, e.get(path, key), http.StatusOK, nil)
		ps := got["policies"].([]any)
		if len(ps) != 2+len(want) {
			t.Fatalf("%s: %d policies, want %d: %v", path, len(ps), 2+len(want), ps)
		}
		for i, w := range want {
			p := ps[2+i].(map[string]any)
			var agent any
			if w.agent != "" {
				agent = w.agent
			}
			eff, hasEff := p["effective"]
			if p["name"] != w.name || p["agent_id"] != agent || p["scope"] != w.scope || p["enabled"] != w.enabled || p["source"] != "custom" ||
				hasEff != (w.effective != nil) || (w.effective != nil && eff != w.effective) {
				t.Errorf("%s item %d = %v, want %+v", path, i, p, w)
			}
			for _, f := range []string{"version", "created_at", "updated_at", "description"} {
				if _, ok := p[f]; !ok {
					t.Errorf("%s item %d lacks %s", path, i, f)
				}
			}
		}
	}
	check("/v1/control/policies", []item{
		{"other", "", "tenant", true, nil},
		{"pii_protection", "", "tenant", true, nil},
	})
	check("/v1/control/policies?agent_id=billing-bot", []item{
		{"other", "", "tenant", true, true},
		{"pii_protection", "", "tenant", true, false}, // shadowed by billing-bot's
		{"mine", "billing-bot", "agent", false, false},
		{"pii_protection", "billing-bot", "agent", true, true},
	})
	expectErrorCode(t, e.get("/v1/control/policies?agent_id=bad%09agent", key), http.StatusBadRequest, pdp.CodeInvalidPolicy, "agent_id")
}

// TestPolicyCRUD walks A6 row by row.
func TestPolicyCRUD(t *testing.T) {
	e := newEnv(t)
	_, key := e.tenant(store.TierEnterprise)
	put := func(name string, body any) response {
		return e.do(request{method: http.MethodPut, path: "/v1/control/policies/" + name, key: key, body: body})
	}
	del := func(path string) response {
		return e.do(request{method: http.MethodDelete, path: "/v1/control/policies/" + path, key: key})
	}

	for _, step := range []struct {
		name string
		r    func() response
		code int
		want map[string]any
	}{
		{"create", func() response { return e.post("/v1/control/policies", key, rule("p", "", "a")) }, 201,
			map[string]any{"policy_name": "p", "agent_id": nil, "scope": "tenant", "action": "created", "version": 1, "message": "Policy 'p' created"}},
		{"upsert", func() response { return e.post("/v1/control/policies", key, rule("p", "", "b")) }, 200,
			map[string]any{"action": "updated", "version": 2, "message": "Policy 'p' updated"}},
		{"put", func() response {
			return put("p", map[string]any{"rules": []any{map[string]any{"match": "c", "severity": "low"}}})
		}, 200,
			map[string]any{"policy_name": "p", "scope": "tenant", "action": "updated", "version": 3, "message": "Policy 'p' updated"}},
		{"put same name", func() response { return put("p", rule("p", "", "d")) }, 200,
			map[string]any{"action": "updated", "version": 4}},
		{"create agent copy", func() response { return e.post("/v1/control/policies", key, rule("p", "bot", "e")) }, 201,
			map[string]any{"agent_id": "bot", "scope": "agent", "action": "created", "version": 1}},
		{"put agent copy", func() response { return put("p", rule("p", "bot", "f")) }, 200,
			map[string]any{"agent_id": "bot", "scope": "agent", "version": 2}},
		{"put agent copy by query", func() response { return put("p?agent_id=bot", rule("p", "", "f")) }, 200,
			map[string]any{"agent_id": "bot", "scope": "agent", "version": 3}},
		{"put agent copy, query and body agree", func() response { return put("p?agent_id=bot", rule("p", "bot", "f")) }, 200,
			map[string]any{"agent_id": "bot", "scope": "agent", "version": 4}},
		{"put conflicting scopes", func() response { return put("p?agent_id=bot", rule("p", "other", "f")) }, 400,
			map[string]any{"code": pdp.CodeInvalidPolicy}},
		{"delete", func() response { return del("p") }, 200,
			map[string]any{"policy_name": "p", "agent_id": nil, "scope": "tenant", "action": "disabled", "version": 5, "message": "Policy 'p' disabled"}},
		{"delete again", func() response { return del("p") }, 200,
			map[string]any{"action": "disabled", "version": 5}},
		{"get disabled", func() response { return e.get("/v1/control/policies/p", key) }, 200,
			map[string]any{"enabled": false, "version": 5, "scope": "tenant"}},
		{"agent copy untouched", func() response { return e.get("/v1/control/policies/p?agent_id=bot", key) }, 200,
			map[string]any{"enabled": true, "version": 4, "scope": "agent", "agent_id": "bot"}},
		{"re-post re-enables", func() response { return e.post("/v1/control/policies", key, rule("p", "", "g")) }, 200,
			map[string]any{"action": "updated", "version": 6}},
		{"get re-enabled", func() response { return e.get("/v1/control/policies/p", key) }, 200,
			map[string]any{"enabled": true, "version": 6}},
		{"delete agent copy", func() response { return del("p?agent_id=bot") }, 200,
			map[string]any{"agent_id": "bot", "scope": "agent", "action": "disabled", "version": 5}},
		{"get builtin", func() response { return e.get("/v1/control/policies/FinancialSafety", key) }, 200,
			map[string]any{"name": "FinancialSafety", "source": "builtin", "agent_id": nil, "scope": "builtin", "enabled": true,
				"description": "Policy to prevent unauthorized financial operations.", "created_at": nil, "updated_at": nil}},
		{"get builtin any case", func() response { return e.get("/v1/control/policies/dataexfiltrationpolicy", key) }, 200,
			map[string]any{"name": "DataExfiltration", "source": "builtin"}},
	} {
		t.Run(step.name, func(t *testing.T) { expect(t, step.r(), step.code, step.want) })
	}

	for _, tc := range []struct {
		name    string
		r       func() response
		status  int
		code    string
		message string
	}{
		{"get missing", func() response { return e.get("/v1/control/policies/nope", key) }, 404, pdp.CodePolicyNotFound, "Policy 'nope' not found"},
		{"get missing scope", func() response { return e.get("/v1/control/policies/p?agent_id=other", key) }, 404, pdp.CodePolicyNotFound, "Policy 'p' not found for agent 'other'"},
		{"put missing", func() response { return put("nope", rule("nope", "", "x")) }, 404, pdp.CodePolicyNotFound, "Policy 'nope' not found"},
		{"put missing at scope", func() response { return put("p", rule("p", "other", "x")) }, 404, pdp.CodePolicyNotFound, "Policy 'p' not found for agent 'other'"},
		{"put name mismatch", func() response { return put("p", rule("q", "", "x")) }, 400, pdp.CodeInvalidPolicy, `name: must equal the policy name in the path ("p"), or be left out`},
		{"delete missing", func() response { return del("nope") }, 404, pdp.CodePolicyNotFound, "Policy 'nope' not found"},
		{"delete builtin", func() response { return del("FinancialSafety") }, 403, pdp.CodeCannotDeleteBuiltin, "Built-in policies cannot be deleted"},
		{"delete builtin suffix", func() response { return del("DataExfiltrationPolicy") }, 403, pdp.CodeCannotDeleteBuiltin, "Built-in policies cannot be deleted"},
		{"create reserved", func() response { return e.post("/v1/control/policies", key, rule("financialsafety", "", "x")) }, 400, pdp.CodeInvalidPolicy,
			`name: "financialsafety" is a reserved name of a built-in policy`},
		{"put reserved", func() response { return put("FinancialSafety", rule("FinancialSafety", "", "x")) }, 400, pdp.CodeInvalidPolicy,
			`name: "FinancialSafety" is a reserved name of a built-in policy`},
	} {
		t.Run(tc.name, func(t *testing.T) { expectError(t, tc.r(), tc.status, tc.code, tc.message, nil) })
	}
}

func TestYAMLPolicy(t *testing.T) {
	e := newEnv(t)
	_, key := e.tenant(store.TierPro)
	yml := "name: pii_protection\ndescription: Block PII outright for billing-bot\nagent_id: billing-bot\nrules:\n  - match: (email|phone|ssn|passport|routing)\n    severity: critical\n    on_violation: block\n    reason: \"PII blocked for billing-bot: {match}\"\n"
	r := e.do(request{method: http.MethodPost, path: "/v1/control/policies", key: key, body: yml, header: map[string]string{"Content-Type": "application/yaml"}})
	expect(t, r, http.StatusCreated, map[string]any{"policy_name": "pii_protection", "agent_id": "billing-bot", "scope": "agent"})
	expect(t, e.post("/v1/actions", key, seedAction), http.StatusOK, map[string]any{"status": "blocked"})

	bad := "name: x\nrules:\n  - match: a\n    sevrity: high\n"
	r = e.do(request{method: http.MethodPost, path: "/v1/control/policies", key: key, body: bad, header: map[string]string{"Content-Type": "application/x-yaml"}})
	expectErrorCode(t, r, http.StatusBadRequest, pdp.CodeInvalidPolicy, `sevrity`, "rules[0]")
}

func TestPolicyRego(t *testing.T) {
	e := newEnv(t)
	tenantID, key := e.tenant(store.TierPro)
	e.post("/v1/control/policies", key, seedTenantWide)
	e.post("/v1/control/policies", key, seedBillingBot)

	r := e.get("/v1/control/policies/pii_protection/rego?agent_id=billing-bot", key)
	if r.code != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("rego: %d %s", r.code, r.header.Get("Content-Type"))
	}
	want := fmt.Sprintf(`package gatehouse.policies.%s.agents["billing-bot"].pii_protection`, tenantID)
	if !strings.HasPrefix(string(r.body), want) || !strings.Contains(string(r.body), "PII blocked for billing-bot: {match}") {
		t.Fatalf("rego module:\n%s", r.body)
	}
	r = e.get("/v1/control/policies/pii_protection/rego", key)
	if !strings.Contains(string(r.body), `.tenant.pii_protection`) {
		t.Fatalf("tenant-wide module:\n%s", r.body)
	}
	for name, file := range map[string]string{"FinancialSafety": "financial_safety.rego", "dataexfiltration": "data_exfiltration.rego"} {
		r := e.get("/v1/control/policies/"+name+"/rego", key)
		if r.code != 200 || string(r.body) != library.Sources()["gatehouse/builtins/"+file] {
			t.Errorf("%s: %d, body is not the library module", name, r.code)
		}
	}
	expectError(t, e.get("/v1/control/policies/nope/rego", key), 404, pdp.CodePolicyNotFound, "Policy 'nope' not found", nil)
}

// TestInvalidPolicies: each invalid document is a 400 invalid_policy whose
// message names the field, and nothing is stored.
func TestInvalidPolicies(t *testing.T) {
	e := newEnv(t)
	_, key := e.tenant(store.TierEnterprise)
	before := e.get("/v1/control/policies", key).body
	for _, tc := range []struct {
		name, body string
		parts      []string
	}{
		{"no name", `{"rules":[{"match":"a","severity":"low"}]}`, []string{"name: is required"}},
		{"bad name", `{"name":"has space","rules":[{"match":"a","severity":"low"}]}`, []string{"name: must be"}},
		{"long name", `{"name":"` + strings.Repeat("n", 65) + `","rules":[{"match":"a","severity":"low"}]}`, []string{"name: must be"}},
		{"no rules", `{"name":"p"}`, []string{"rules"}},
		{"empty rules", `{"name":"p","rules":[]}`, []string{"rules"}},
		{"unknown field", `{"name":"p","rulez":[],"rules":[{"match":"a","severity":"low"}]}`, []string{`unknown field "rulez"`}},
		{"unknown rule field", `{"name":"p","rules":[{"match":"a","sevrity":"low"}]}`, []string{"rules[0]", `unknown field "sevrity"`}},
		{"bad severity", `{"name":"p","rules":[{"match":"a","severity":"huge"}]}`, []string{"rules[0].severity"}},
		{"bad on_violation", `{"name":"p","rules":[{"match":"a","severity":"low","on_violation":"explode"}]}`, []string{"rules[0].on_violation"}},
		{"look-ahead", `{"name":"p","rules":[{"match":"a","severity":"low"},{"match":"(?=x)","severity":"low"}]}`, []string{"rules[1].match: look-ahead (?=...) is not supported"}},
		{"bad regex", `{"name":"p","rules":[{"match":"(","severity":"low"}]}`, []string{"rules[0].match"}},
		{"confidence", `{"name":"p","rules":[{"match":"a","severity":"low","confidence":2}]}`, []string{"rules[0].confidence"}},
		{"wrong type", `{"name":"p","rules":[{"match":1,"severity":"low"}]}`, []string{"rules[0].match: must be a string"}},
		{"step type", `{"name":"p","step_types":["dance"],"rules":[{"match":"a","severity":"low"}]}`, []string{"step_types"}},
		{"domain", `{"name":"p","whitelisted_domains":["not a host"],"rules":[{"match":"a","severity":"low"}]}`, []string{"whitelisted_domains[0]"}},
		{"description", `{"name":"p","description":"` + strings.Repeat("d", 1025) + `","rules":[{"match":"a","severity":"low"}]}`, []string{"description"}},
		{"agent id", `{"name":"p","agent_id":"bad\u0007agent","rules":[{"match":"a","severity":"low"}]}`, []string{"agent_id"}},
		{"malformed", `{"name":"p",`, []string{"invalid JSON"}},
		{"not an object", `[1,2]`, []string{"object"}},
		{"trailing", `{"name":"p","rules":[{"match":"a","severity":"low"}]} {}`, []string{"unexpected data"}},
		{"empty", ``, []string{"empty"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectErrorCode(t, e.post("/v1/control/policies", key, tc.body), http.StatusBadRequest, pdp.CodeInvalidPolicy, tc.parts...)
		})
	}
	if after := e.get("/v1/control/policies", key).body; string(after) != string(before) {
		t.Fatalf("invalid writes changed the list:\n%s\n%s", before, after)
	}
}

// TestTierMatrixHTTP: the 403 bodies of every tier for every gated write,
// and the order of checks (feature gate before validation, validation
// before the limit).
func TestTierMatrixHTTP(t *testing.T) {
	e := newEnv(t)
	starterMsg := "Feature 'draft_policies' requires Starter tier or higher"
	proMsg := "Feature 'agent_scoped_policies' requires Pro tier or higher"
	starter := func(cur string) map[string]any {
		return map[string]any{"feature": "draft_policies", "required_tier": "starter", "current_tier": cur}
	}
	pro := func(cur string) map[string]any {
		return map[string]any{"feature": "agent_scoped_policies", "required_tier": "pro", "current_tier": cur}
	}
	for _, tc := range []struct {
		tier              store.Tier
		tenantWide, agent map[string]any // nil: allowed
	}{
		{store.TierFree, starter("free"), pro("free")},
		{store.TierStarter, nil, pro("starter")},
		{store.TierPro, nil, nil},
		{store.TierEnterprise, nil, nil},
	} {
		t.Run(string(tc.tier), func(t *testing.T) {
			_, key := e.tenant(tc.tier)
			for _, w := range []struct {
				agent string
				extra map[string]any
				msg   string
			}{{"", tc.tenantWide, starterMsg}, {"bot", tc.agent, proMsg}} {
				r := e.post("/v1/control/policies", key, rule("p", w.agent, "x"))
				if w.extra == nil {
					expect(t, r, http.StatusCreated, nil)
					continue
				}
				expectError(t, r, http.StatusForbidden, pdp.CodeFeatureRequired, w.msg, w.extra)
				// The gate comes before validation: an invalid document
				// asking for the feature gets the same 403.
				bad := map[string]any{"name": "bad name", "rules": []any{}}
				if w.agent != "" {
					bad["agent_id"] = w.agent
				}
				expectError(t, e.post("/v1/control/policies", key, bad), http.StatusForbidden, pdp.CodeFeatureRequired, w.msg, w.extra)
				// PUT is gated the same way.
				r = e.do(request{method: http.MethodPut, path: "/v1/control/policies/p", key: key, body: rule("p", w.agent, "x")})
				expectError(t, r, http.StatusForbidden, pdp.CodeFeatureRequired, w.msg, w.extra)
			}
			// Reading is allowed on every tier.
			expect(t, e.get("/v1/control/policies?agent_id=bot", key), http.StatusOK, nil)
		})
	}

	t.Run("limit", func(t *testing.T) {
		_, key := e.tenant(store.TierStarter)
		for i := range 5 {
			expect(t, e.post("/v1/control/policies", key, rule(fmt.Sprintf("p%d", i), "", "x")), http.StatusCreated, nil)
		}
		expectError(t, e.post("/v1/control/policies", key, rule("p5", "", "x")), http.StatusForbidden, pdp.CodeLimitExceeded,
			"Custom policy limit reached (5) for tier 'starter'", map[string]any{"limit": 5, "current": 5})
		// Validation before the limit.
		expectErrorCode(t, e.post("/v1/control/policies", key, `{"name":"p5","rules":[]}`), http.StatusBadRequest, pdp.CodeInvalidPolicy, "rules")
		// Updates do not count.
		expect(t, e.post("/v1/control/policies", key, rule("p0", "", "y")), http.StatusOK, map[string]any{"version": 2})
	})
}

// TestReadAfterWriteHTTP: a policy write is in force for the next request.
func TestReadAfterWriteHTTP(t *testing.T) {
	e := newEnv(t)
	_, key := e.tenant(store.TierPro)
	act := map[string]any{"action": "notify", "params": map[string]any{"text": "launch codes"}}
	for i := range 5 {
		expect(t, e.post("/v1/actions", key, act), http.StatusOK, map[string]any{"status": "allowed"})
		expect(t, e.post("/v1/control/policies", key, rule("codes", "", "launch")), map[bool]int{true: 201, false: 200}[i == 0], nil)
		expect(t, e.post("/v1/actions", key, act), http.StatusOK, map[string]any{"status": "blocked"})
		expect(t, e.do(request{method: http.MethodDelete, path: "/v1/control/policies/codes", key: key}), http.StatusOK, nil)
	}
}

// TestConcurrentCreatesHTTP races creates against a starter tenant's limit
// through the handler: exactly five are created, the rest get the 403.
func TestConcurrentCreatesHTTP(t *testing.T) {
	e := newEnv(t)
	_, key := e.tenant(store.TierStarter)
	const n = 16
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			body := fmt.Sprintf(`{"name":"p%d","rules":[{"match":"x","severity":"low"}]}`, i)
			req := httptest.NewRequest(http.MethodPost, "/v1/control/policies", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+key)
			w := httptest.NewRecorder()
			e.h.ServeHTTP(w, req)
			codes <- w.Code
		})
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	if count[http.StatusCreated] != 5 || count[http.StatusForbidden] != n-5 {
		t.Fatalf("status counts %v, want 5 created and %d refused", count, n-5)
	}
	if ps := e.get("/v1/control/policies", key).json(t)["policies"].([]any); len(ps) != 2+5 {
		t.Fatalf("listed %d policies", len(ps))
	}
}
