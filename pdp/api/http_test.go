package api_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/api"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

func TestHealth(t *testing.T) {
	e := newEnv(t)
	r := e.get("/health", "")
	if r.code != 200 || strings.TrimSpace(string(r.body)) != `{"status":"ok"}` {
		t.Fatalf("health = %d %s", r.code, r.body)
	}
	if r := e.do(request{method: http.MethodHead, path: "/health"}); r.code != 200 {
		t.Fatalf("HEAD health = %d", r.code)
	}
	if id := r.header.Get("X-Request-Id"); len(id) != 16 {
		t.Errorf("X-Request-Id %q", id)
	}
	r = e.do(request{method: http.MethodGet, path: "/health", header: map[string]string{"X-Request-Id": "client-id.1"}})
	if r.header.Get("X-Request-Id") != "client-id.1" {
		t.Errorf("client request id not echoed: %q", r.header.Get("X-Request-Id"))
	}
}

// TestRoutingErrors: unknown routes and methods answer with the envelope.
func TestRoutingErrors(t *testing.T) {
	e := newEnv(t)
	_, key := e.tenant(store.TierPro)
	for _, tc := range []struct {
		method, path string
		key          string
		status       int
		code, msg    string
		allow        string
	}{
		{"GET", "/", "", 404, pdp.CodeNotFound, "No route GET /", ""},
		{"GET", "/v1/nope", key, 404, pdp.CodeNotFound, "No route GET /v1/nope", ""},
		{"GET", "/v2/actions", key, 404, pdp.CodeNotFound, "No route GET /v2/actions", ""},
		{"GET", "/v1/control/policies/", key, 404, pdp.CodeNotFound, "No route GET /v1/control/policies/", ""},
		{"DELETE", "/v1/control/policies", key, 405, pdp.CodeMethodNotAllowed, "Method DELETE is not allowed on /v1/control/policies (allowed: GET, POST)", "GET, POST"},
		{"PATCH", "/v1/control/policies/p", key, 405, pdp.CodeMethodNotAllowed, "Method PATCH is not allowed on /v1/control/policies/p (allowed: GET, PUT, DELETE)", "GET, PUT, DELETE"},
		{"PUT", "/v1/actions", "", 405, pdp.CodeMethodNotAllowed, "Method PUT is not allowed on /v1/actions (allowed: GET, POST)", "GET, POST"},
		{"POST", "/health", "", 405, pdp.CodeMethodNotAllowed, "Method POST is not allowed on /health (allowed: GET, HEAD)", "GET, HEAD"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := e.do(request{method: tc.method, path: tc.path, key: tc.key})
			expectError(t, r, tc.status, tc.code, tc.msg, nil)
			if r.header.Get("Allow") != tc.allow {
				t.Errorf("Allow %q, want %q", r.header.Get("Allow"), tc.allow)
			}
		})
	}
}

func TestUnauthorized(t *testing.T) {
	e := newEnv(t)
	tenantID, key := e.tenant(store.TierPro)
	r := e.do(request{method: http.MethodPost, path: "/v1/admin/tenants/" + tenantID + "/keys", key: adminToken})
	second := expect(t, r, http.StatusCreated, map[string]any{"tenant_id": tenantID})
	key2 := second["api_key"].(string)
	expect(t, e.get("/v1/actions", key2), http.StatusOK, nil)
	expect(t, e.do(request{method: http.MethodDelete, path: "/v1/admin/keys/" + second["key_id"].(string), key: adminToken}), http.StatusOK,
		map[string]any{"key_id": second["key_id"], "revoked": true})

	for _, tc := range []struct {
		name string
		auth string
	}{
		{"missing", ""},
		{"wrong scheme", "Basic " + key},
		{"no token", "Bearer "},
		{"unknown", "Bearer nram_0000000000000000000000000000000000000000"},
		{"not a key", "Bearer hello"},
		{"revoked", "Bearer " + key2},
		{"admin token as key", "Bearer " + adminToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range []struct{ method, path string }{
				{"GET", "/v1/control/policies"}, {"POST", "/v1/control/policies"}, {"GET", "/v1/control/policies/p"},
				{"PUT", "/v1/control/policies/p"}, {"DELETE", "/v1/control/policies/p"}, {"GET", "/v1/control/policies/p/rego"},
				{"POST", "/v1/actions"}, {"GET", "/v1/actions"}, {"GET", "/v1/actions/act_x"}, {"GET", "/v1/actions/act_x/explain"},
				{"POST", "/v1/actions/slack/send"},
			} {
				r := e.do(request{method: p.method, path: p.path, body: `{}`, header: map[string]string{"Authorization": tc.auth}})
				expectError(t, r, http.StatusUnauthorized, pdp.CodeUnauthorized, "Invalid or missing API key", nil)
				if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("%s %s: no WWW-Authenticate", p.method, p.path)
				}
			}
		})
	}
	// The key still works for the "Bearer" scheme in any case.
	expect(t, e.do(request{method: "GET", path: "/v1/actions", header: map[string]string{"Authorization": "bearer " + key}}), http.StatusOK, nil)
}

func TestBodyLimit(t *testing.T) {
	e := newEnv(t, func(o *envOption) { o.cfg.MaxBodyBytes = 100 << 10 })
	_, key := e.tenant(store.TierPro)
	big := `{"name":"p","description":"` + strings.Repeat("d", 100<<10) + `","rules":[]}`
	for _, path := range []string{"/v1/control/policies", "/v1/actions", "/v1/actions/slack/send"} {
		// Declared length over the limit: refused before reading.
		expectError(t, e.post(path, key, big), http.StatusRequestEntityTooLarge, pdp.CodePayloadTooLarge, "request body exceeds 102400 bytes", nil)
		// Unknown length (chunked): refused while reading.
		req := httptest.NewRequest(http.MethodPost, path, io.MultiReader(strings.NewReader(big)))
		req.ContentLength = -1
		req.Header.Set("Authorization", "Bearer "+key)
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, req)
		expectError(t, response{code: w.Code, header: w.Header(), body: w.Body.Bytes()}, http.StatusRequestEntityTooLarge, pdp.CodePayloadTooLarge, "request body exceeds 102400 bytes", nil)
	}
	if got := e.get("/v1/control/policies", key).json(t)["policies"].([]any); len(got) != 2 {
		t.Fatalf("an oversized write stored something: %v", got)
	}
}

// TestPanicRecovery: a panic is a 500 INTERNAL that leaks nothing; the
// cause is logged with the request id.
func TestPanicRecovery(t *testing.T) {
	e := newEnv(t)
	_, key := e.tenant(store.TierPro)
	r := e.do(request{method: http.MethodGet, path: "/v1/actions/act_panic", key: key, header: map[string]string{"X-Request-Id": "req-panic-1"}})
	expectError(t, r, http.StatusInternalServerError, pdp.CodeInternal, "Internal server error", nil)
	if bytes.Contains(r.body, []byte("secret")) {
		t.Fatalf("panic value leaked: %s", r.body)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "secret internal detail") || !strings.Contains(logs, `"request_id":"req-panic-1"`) {
		t.Fatalf("panic not logged with its request id:\n%s", logs)
	}
	// The server keeps serving.
	expect(t, e.get("/v1/actions", key), http.StatusOK, nil)
}

// TestTraceID: trace_id is the request span's trace id when tracing is on,
// the caller's when it sent a traceparent, and random otherwise.
func TestTraceID(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	e := newEnv(t, func(o *envOption) { o.tp = tp })
	_, key := e.tenant(store.TierPro)
	res := e.post("/v1/actions", key, `{"action":"noop"}`).json(t)
	var found bool
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID().String() == res["trace_id"] {
			found = true
		}
	}
	if !found {
		t.Fatalf("trace_id %v is not the id of a recorded span", res["trace_id"])
	}
	if got, _ := e.get("/v1/actions/"+res["action_id"].(string), key).json(t)["trace_id"].(string); got != res["trace_id"] {
		t.Errorf("stored trace_id %q", got)
	}

	// W3C trace context in: the caller's trace continues.
	const parent = "4bf92f3577b34da6a3ce929d0e0e4736"
	r := e.do(request{method: http.MethodPost, path: "/v1/actions", key: key, body: `{"action":"noop"}`,
		header: map[string]string{"traceparent": "00-" + parent + "-00f067aa0ba902b7-01"}})
	if got := r.json(t)["trace_id"]; got != parent {
		t.Errorf("trace_id %v, want the incoming %s", got, parent)
	}

	// No tracer provider and no traceparent: a random id, different per request.
	plain := newEnv(t)
	_, key = plain.tenant(store.TierPro)
	a := plain.post("/v1/actions", key, `{"action":"noop"}`).json(t)["trace_id"].(string)
	b := plain.post("/v1/actions", key, `{"action":"noop"}`).json(t)["trace_id"].(string)
	if !traceIDPattern.MatchString(a) || a == b || a == strings.Repeat("0", 32) {
		t.Errorf("trace ids %q %q", a, b)
	}
	r = plain.do(request{method: http.MethodPost, path: "/v1/actions", key: key, body: `{"action":"noop"}`,
		header: map[string]string{"traceparent": "00-" + parent + "-00f067aa0ba902b7-01"}})
	if got := r.json(t)["trace_id"]; got != parent {
		t.Errorf("no-op tracer: trace_id %v, want the incoming %s", got, parent)
	}
}

// TestTenantIsolation: tenant B cannot see, read, change or delete A's
// policies or actions, and is not governed by them.
func TestTenantIsolation(t *testing.T) {
	e := newEnv(t)
	_, keyA := e.tenant(store.TierPro)
	_, keyB := e.tenant(store.TierPro)
	e.post("/v1/control/policies", keyA, seedTenantWide)
	e.post("/v1/control/policies", keyA, seedBillingBot)
	idA := e.post("/v1/actions", keyA, seedAction).json(t)["action_id"].(string)

	if ps := e.get("/v1/control/policies?agent_id=billing-bot", keyB).json(t)["policies"].([]any); len(ps) != 2 {
		t.Errorf("B lists %d policies", len(ps))
	}
	expectErrorCode(t, e.get("/v1/control/policies/pii_protection", keyB), 404, pdp.CodePolicyNotFound)
	expectErrorCode(t, e.get("/v1/control/policies/pii_protection?agent_id=billing-bot", keyB), 404, pdp.CodePolicyNotFound)
	expectErrorCode(t, e.get("/v1/control/policies/pii_protection/rego", keyB), 404, pdp.CodePolicyNotFound)
	expectErrorCode(t, e.do(request{method: "DELETE", path: "/v1/control/policies/pii_protection", key: keyB}), 404, pdp.CodePolicyNotFound)
	expectErrorCode(t, e.do(request{method: "PUT", path: "/v1/control/policies/pii_protection", key: keyB, body: rule("pii_protection", "", "x")}), 404, pdp.CodePolicyNotFound)
	expectErrorCode(t, e.get("/v1/actions/"+idA, keyB), 404, pdp.CodeActionNotFound)
	expectErrorCode(t, e.get("/v1/actions/"+idA+"/explain", keyB), 404, pdp.CodeActionNotFound)
	if got := e.get("/v1/actions", keyB).json(t); got["total"] != 0.0 {
		t.Errorf("B lists A's actions: %v", got)
	}
	// B is not governed by A's policies; a tenant_id in the body is refused,
	// not obeyed.
	expect(t, e.post("/v1/actions", keyB, seedAction), http.StatusOK, map[string]any{"status": "allowed"})
	// Unknown fields are ignored; the tenant is always the key's.
	id := expect(t, e.post("/v1/actions", keyB, `{"action":"a","tenant_id":"x"}`), http.StatusOK, map[string]any{"status": "allowed"})["action_id"].(string)
	expect(t, e.get("/v1/actions/"+id, keyB), http.StatusOK, map[string]any{"action": "a"})
	expectErrorCode(t, e.get("/v1/actions/"+id, keyA), 404, pdp.CodeActionNotFound)
	// A's policies are intact.
	expect(t, e.get("/v1/control/policies/pii_protection", keyA), http.StatusOK, map[string]any{"enabled": true, "version": 1})
	expect(t, e.post("/v1/actions", keyA, seedAction), http.StatusOK, map[string]any{"status": "blocked"})
}

func TestAdminAPI(t *testing.T) {
	t.Run("disabled without a token", func(t *testing.T) {
		e := newEnv(t, func(o *envOption) { o.cfg.AdminToken = "" })
		for _, p := range []struct{ method, path string }{{"POST", "/v1/admin/tenants"}, {"GET", "/v1/admin/tenants"}, {"DELETE", "/v1/admin/keys/k"}} {
			r := e.do(request{method: p.method, path: p.path, key: adminToken})
			expectError(t, r, http.StatusNotFound, pdp.CodeNotFound, "No route "+p.method+" "+p.path, nil)
		}
	})

	e := newEnv(t)
	admin := func(method, path string, body any) response {
		return e.do(request{method: method, path: path, key: adminToken, body: body})
	}
	_, tenantKey := e.tenant(store.TierPro)
	for _, auth := range []string{"", "Bearer wrong-token-0123456789", "Bearer " + tenantKey, "Bearer " + adminToken + "x"} {
		r := e.do(request{method: "GET", path: "/v1/admin/tenants", header: map[string]string{"Authorization": auth}})
		expectError(t, r, http.StatusUnauthorized, pdp.CodeUnauthorized, "Invalid or missing admin token", nil)
	}

	created := expect(t, admin("POST", "/v1/admin/tenants", `{"name":"Acme","tier":"starter"}`), http.StatusCreated,
		map[string]any{"name": "Acme", "tier": "starter"})
	if len(created) != 4 || !strings.HasPrefix(created["api_key"].(string), "nram_") {
		t.Fatalf("create tenant = %v", created)
	}
	id, key := created["tenant_id"].(string), created["api_key"].(string)
	// The new key works, with the new tier's rules.
	expect(t, e.get("/v1/control/policies", key), http.StatusOK, map[string]any{"approval_modes": []any{"solo", "team"}})
	expectErrorCode(t, e.post("/v1/control/policies", key, rule("p", "bot", "x")), 403, pdp.CodeFeatureRequired)

	expect(t, admin("GET", "/v1/admin/tenants/"+id, nil), http.StatusOK, map[string]any{
		"tenant_id": id, "name": "Acme", "tier": "starter", "mode": "enforcement", "approval_mode": "solo",
		"approval_modes": []any{"solo", "team"}, "approval_settings": nil,
	})
	// A chosen id is the tenant's id; it is unique.
	expect(t, admin("POST", "/v1/admin/tenants", `{"id":"acme","tier":"free"}`), http.StatusCreated,
		map[string]any{"tenant_id": "acme", "name": "acme", "tier": "free"})
	expectError(t, admin("POST", "/v1/admin/tenants", `{"id":"acme","name":"Acme 2","tier":"pro"}`), http.StatusConflict,
		pdp.CodeConflict, "A tenant with this id already exists", nil)
	expectError(t, admin("POST", "/v1/admin/tenants", `{"id":"acme/x","tier":"pro"}`), http.StatusBadRequest,
		pdp.CodeValidation, "id: must be 1-64 letters, digits, '_' or '-', starting with a letter or digit", nil)
	if got := expect(t, admin("GET", "/v1/admin/tenants", nil), http.StatusOK, nil); got["total"] != 3.0 {
		t.Errorf("list tenants = %v", got)
	}
	// An upgrade applies to the next request.
	expect(t, admin("PATCH", "/v1/admin/tenants/"+id, `{"tier":"enterprise","approval_mode":"enterprise","approval_settings":{"min_approvals":3}}`), http.StatusOK,
		map[string]any{"tier": "enterprise", "approval_mode": "enterprise", "approval_settings": map[string]any{"min_approvals": 3}})
	expect(t, e.post("/v1/control/policies", key, rule("p", "bot", "x")), http.StatusCreated, nil)

	for _, tc := range []struct {
		method, path string
		body         any
		status       int
		code, msg    string
	}{
		{"POST", "/v1/admin/tenants", `{"name":"x","tier":"gold"}`, 400, pdp.CodeValidation, `tier: must be one of free, starter, pro, enterprise (got "gold")`},
		{"POST", "/v1/admin/tenants", `{"tier":"free"}`, 400, pdp.CodeValidation, "name: is required"},
		{"POST", "/v1/admin/tenants", `{"name":"x","tier":"pro","approval_mode":"enterprise"}`, 400, pdp.CodeValidation, `approval_mode: tier pro allows solo, team (got "enterprise")`},
		{"POST", "/v1/admin/tenants", `{"name":"x","tier":"pro","plan":"x"}`, 400, pdp.CodeValidation, "plan: unknown field"},
		{"POST", "/v1/admin/tenants", `{"name":`, 400, pdp.CodeValidation, "invalid JSON: unexpected end of input"},
		{"PATCH", "/v1/admin/tenants/" + id, `{"mode":"loud"}`, 400, pdp.CodeValidation, `mode: must be enforcement or shadow (got "loud")`},
		{"PATCH", "/v1/admin/tenants/" + id, `{"approval_settings":[1]}`, 400, pdp.CodeValidation, "approval_settings: must be a JSON object or null"},
		{"GET", "/v1/admin/tenants/ten_missing", nil, 404, pdp.CodeNotFound, "Tenant not found"},
		{"PATCH", "/v1/admin/tenants/ten_missing", `{"mode":"shadow"}`, 404, pdp.CodeNotFound, "Tenant not found"},
		{"POST", "/v1/admin/tenants/ten_missing/keys", nil, 404, pdp.CodeNotFound, "Tenant not found"},
		{"DELETE", "/v1/admin/keys/key_missing", nil, 404, pdp.CodeNotFound, "API key not found"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			expectError(t, admin(tc.method, tc.path, tc.body), tc.status, tc.code, tc.msg, nil)
		})
	}
}

func TestConfig(t *testing.T) {
	d := api.Config{}.Defaults()
	if d.MaxBodyBytes != 1<<20 || d.ServiceName != "gatehouse" || d.Validate() != nil {
		t.Fatalf("defaults %+v: %v", d, d.Validate())
	}
	bad := api.Config{AdminToken: "short", MaxBodyBytes: 10, RecordTimeout: -1}.Defaults()
	err := bad.Validate()
	for _, want := range []string{"admin token", "max body bytes", "record timeout"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want a problem with %s", err, want)
		}
	}
	if _, err := api.New(api.Config{}, api.Deps{}); err == nil {
		t.Error("New without dependencies succeeded")
	}
}

// TestHealthDegraded: a tenant whose stored policy no longer validates
// fails closed with 503 evaluation_unavailable, and /health (still 200:
// the server serves everyone else) counts it.
func TestHealthDegraded(t *testing.T) {
	e := newEnv(t)
	id, key := e.tenant(store.TierPro)
	_, other := e.tenant(store.TierPro)
	bad := pdp.Policy{Name: "pii", Enabled: true, StepTypes: []string{"ACTION"}, WhitelistedDomains: []string{},
		Rules: []pdp.Rule{{Match: "(unclosed", Severity: "high", OnViolation: "block", Confidence: 0.85}}}
	if err := e.eng.SetTenant(pdp.TenantPolicies{TenantID: id, Revision: 1 << 40, Mode: pdp.ModeEnforcement, Policies: []pdp.Policy{bad}}); err == nil {
		t.Fatal("SetTenant accepted an invalid regex")
	}
	r := e.get("/health", "")
	if r.code != 200 || strings.TrimSpace(string(r.body)) != `{"degraded_tenants":1,"status":"degraded"}` {
		t.Fatalf("health = %d %s", r.code, r.body)
	}
	act := map[string]any{"action": "ping"}
	if r := e.post("/v1/actions", key, act); r.code != 503 || !strings.Contains(string(r.body), "evaluation_unavailable") {
		t.Errorf("degraded tenant's action = %d %s", r.code, r.body)
	}
	if r := e.post("/v1/actions", other, act); r.code != 200 {
		t.Errorf("other tenant's action = %d %s", r.code, r.body)
	}
}
