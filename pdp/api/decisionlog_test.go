package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/gatehouse-pdp/gatehouse/pdp/api"
	"github.com/gatehouse-pdp/gatehouse/pdp/decisionlog"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/sqlite"
)

// observedEnv is a server wired as `gatehouse serve` wires it for
// observability: engine and store traced with tp, and a console decision
// log writing into out.
func observedEnv(t *testing.T, tp trace.TracerProvider, out io.Writer, mask ...string) (*env, *decisionlog.Logger) {
	t.Helper()
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "g.db"))
	if err != nil {
		t.Fatal(err)
	}
	st := store.TracedGovernance(db, tp)
	t.Cleanup(func() { _ = st.Close() })
	eng, err := engine.New(engine.Config{Timeout: 5 * time.Second}, engine.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(st, eng)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	dl, err := decisionlog.New(decisionlog.Config{Sink: decisionlog.SinkConsole, Mask: mask, InstanceID: "test"},
		decisionlog.WithConsole(out, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Config{AdminToken: adminToken}, api.Deps{Registry: reg, Engine: eng, Store: st, TracerProvider: tp, DecisionLog: dl})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, h: h, st: st, eng: eng, reg: reg}, dl
}

// events closes the log (flushing it) and decodes what it wrote.
func events(t *testing.T, dl *decisionlog.Logger, out *syncBuffer) []decisionlog.Event {
	t.Helper()
	if err := dl.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	var evs []decisionlog.Event
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var ev decisionlog.Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("not an event: %v\n%s", err, line)
		}
		evs = append(evs, ev)
	}
	return evs
}

// TestDecisionLogActions: every submitted action — through /v1/actions and
// a connector route — is one event whose decision_id is the action_id,
// input the engine's input document, result the returned policy_result,
// rule_labels its violations, and trace_id the response's.
func TestDecisionLogActions(t *testing.T) {
	out := &syncBuffer{}
	e, dl := observedEnv(t, nil, out, "/input/params/password", "/result/violations/*/match")
	_, key := e.tenant(store.TierPro)
	expect(t, e.post("/v1/control/policies", key, seedTenantWide), http.StatusCreated, nil)
	expect(t, e.post("/v1/control/policies", key, seedBillingBot), http.StatusCreated, nil)

	blocked := e.post("/v1/actions", key, seedAction).json(t)
	conn := e.do(request{method: http.MethodPost, path: "/v1/actions/slack/chat/post", key: key,
		body: `{"channel":"#ops","password":"hunter2hunter2","agent_id":"support-bot"}`}).json(t)
	evs := events(t, dl, out)
	if len(evs) != 2 {
		t.Fatalf("%d events, want 2", len(evs))
	}

	ev := evs[0]
	if ev.DecisionID != blocked["action_id"] || ev.Path != "gatehouse/decision/result" || ev.TraceID != blocked["trace_id"] {
		t.Errorf("event %+v\nfor response %v", ev, blocked)
	}
	if ev.Labels["id"] != "test" || ev.Labels["type"] != "gatehouse" || ev.Labels["version"] == "" {
		t.Errorf("labels %v", ev.Labels)
	}
	var seed map[string]any
	_ = json.Unmarshal([]byte(seedAction), &seed)
	wantJSON(t, "input", ev.Input, map[string]any{
		"tenant_id": ev.Custom["tenant_id"], "agent_id": "billing-bot", "action": seed["action"],
		"params": seed["params"], "step_type": "ACTION",
	})
	result := blocked["policy_result"].(map[string]any)
	for _, v := range result["violations"].([]any) {
		delete(v.(map[string]any), "match") // masked
	}
	wantJSON(t, "result", ev.Result, result)
	if len(ev.RuleLabels) == 0 || ev.RuleLabels[0].Policy != "pii_protection" || ev.RuleLabels[0].Scope != "agent" {
		t.Errorf("rule_labels %+v", ev.RuleLabels)
	}
	if ev.RequestedBy == "" || time.Since(ev.Timestamp) > time.Minute || ev.Timestamp.Location() != time.UTC {
		t.Errorf("requested_by %q timestamp %v", ev.RequestedBy, ev.Timestamp)
	}

	ev = evs[1]
	if ev.DecisionID != conn["action_id"] {
		t.Errorf("connector action: decision_id %s, want %v", ev.DecisionID, conn["action_id"])
	}
	wantJSON(t, "connector input", ev.Input, map[string]any{
		"tenant_id": ev.Custom["tenant_id"], "agent_id": "support-bot", "action": "slack.chat.post",
		"params": map[string]any{"channel": "#ops"}, "step_type": "ACTION",
	})
	if strings.Contains(out.String(), "hunter2hunter2") || len(ev.Erased) != 2 {
		t.Errorf("masking: erased %v; the secret must not be shipped:\n%s", ev.Erased, out.String())
	}
}

// TestDecisionLogDataAPI: a Data API query is logged with a random
// decision_id that the response returns, the input with the key's tenant.
func TestDecisionLogDataAPI(t *testing.T) {
	out := &syncBuffer{}
	e, dl := observedEnv(t, nil, out)
	tenantID, key := e.tenant(store.TierPro)
	res := expect(t, e.post("/v1/data/gatehouse/decision/result", key,
		`{"input":{"tenant_id":"someone-else","action":"wire_transfer","params":{"amount":50000}}}`), http.StatusOK, nil)
	id, _ := res["decision_id"].(string)
	evs := events(t, dl, out)
	if len(evs) != 1 || id == "" || evs[0].DecisionID != id {
		t.Fatalf("response decision_id %q; events %+v", id, evs)
	}
	in, _ := evs[0].Input.(map[string]any)
	if in["tenant_id"] != tenantID || evs[0].Custom["tenant_id"] != tenantID {
		t.Errorf("input %v: the tenant must be the key's", in)
	}
	if len(evs[0].RuleLabels) != 1 || evs[0].RuleLabels[0].Policy != "FinancialSafetyPolicy" {
		t.Errorf("rule_labels %+v", evs[0].RuleLabels)
	}
	wantJSON(t, "result", evs[0].Result, res["result"])
}

// TestRequestSpans: one trace per request; api.Authenticate, the engine's
// and the store's spans are children of the request's span, which
// continues the caller's W3C trace; nothing compiles on the request.
func TestRequestSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	e, dl := observedEnv(t, tp, io.Discard)
	defer dl.Close(t.Context())
	_, key := e.tenant(store.TierPro)
	const parent = "4bf92f3577b34da6a3ce929d0e0e4736"
	r := e.do(request{method: http.MethodPost, path: "/v1/actions", key: key, body: `{"action":"noop"}`,
		header: map[string]string{"traceparent": "00-" + parent + "-00f067aa0ba902b7-01"}})
	expect(t, r, http.StatusOK, map[string]any{"trace_id": parent})

	var root sdktrace.ReadOnlySpan
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID().String() != parent {
			continue
		}
		byName[s.Name()] = s
		if s.Parent().IsRemote() {
			root = s
		}
	}
	if root == nil || root.Parent().SpanID().String() != "00f067aa0ba902b7" {
		t.Fatalf("no request span continuing the caller's; spans %v", keysOf(byName))
	}
	for _, name := range []string{"api.Authenticate", "engine.Evaluate", "store.InsertActionAudited"} {
		s, ok := byName[name]
		if !ok {
			t.Errorf("no %s span; have %v", name, keysOf(byName))
			continue
		}
		if s.Parent().SpanID() != root.SpanContext().SpanID() {
			t.Errorf("%s is a child of %s, want the request span %s", name, s.Parent().SpanID(), root.SpanContext().SpanID())
		}
	}
	// The tenant was compiled when it was created (the registry warms on
	// publish): no decision compiles, so no request has a compile span.
	if _, ok := byName["engine.Compile"]; ok {
		t.Errorf("a decision compiled: engine.Compile in the request's trace")
	}
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// wantJSON compares got and want as JSON.
func wantJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	var x, y any
	_ = json.Unmarshal(g, &x)
	_ = json.Unmarshal(w, &y)
	gx, _ := json.Marshal(x)
	wy, _ := json.Marshal(y)
	if string(gx) != string(wy) {
		t.Errorf("%s:\n got %s\nwant %s", what, gx, wy)
	}
}

// TestTraceparentWithoutTracing: with tracing off (a no-op provider, as
// serve installs without OTEL_* settings) the request has no span
// middleware, yet an incoming traceparent still gives the action its
// trace_id; without one, a random trace_id stands in.
func TestTraceparentWithoutTracing(t *testing.T) {
	e := newEnv(t, func(o *envOption) { o.tp = noop.NewTracerProvider() })
	_, key := e.tenant(store.TierPro)
	const parent = "4bf92f3577b34da6a3ce929d0e0e4736"
	r := e.do(request{method: http.MethodPost, path: "/v1/actions", key: key, body: `{"action":"noop"}`,
		header: map[string]string{"traceparent": "00-" + parent + "-00f067aa0ba902b7-01"}})
	expect(t, r, http.StatusOK, map[string]any{"trace_id": parent})
	got := expect(t, e.post("/v1/actions", key, `{"action":"noop"}`), http.StatusOK, nil)
	if id := fmt.Sprint(got["trace_id"]); !traceIDPattern.MatchString(id) || id == parent {
		t.Fatalf("trace_id without a traceparent: %q", id)
	}
}
