package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/api"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/sqlite"
)

const adminToken = "admin-token-0123456789"

// panicStore is the real SQLite store with one trap: reading the action
// "act_panic" panics, to exercise the recovery path through a real route.
type panicStore struct{ store.GovernanceStore }

func (s panicStore) GetAction(ctx context.Context, tenantID, id string) (store.ActionRecord, error) {
	if id == "act_panic" {
		panic("secret internal detail")
	}
	return s.GovernanceStore.GetAction(ctx, tenantID, id)
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type env struct {
	t    *testing.T
	h    http.Handler
	st   store.Store
	eng  *engine.Engine
	reg  *registry.Registry
	logs *syncBuffer
	path string // the SQLite file
}

type envOption struct {
	cfg        api.Config
	engineOpts []engine.Option
	tp         trace.TracerProvider
	now        func() time.Time // the API's clock (Deps.Now); nil: time.Now
	sleep      func(ctx context.Context, d time.Duration) error
}

func newEnv(t *testing.T, opts ...func(*envOption)) *env {
	t.Helper()
	o := envOption{cfg: api.Config{AdminToken: adminToken}}
	for _, f := range opts {
		f(&o)
	}
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	var dbOpts []sqlite.Option
	if o.now != nil {
		dbOpts = append(dbOpts, sqlite.WithNowFunc(o.now)) // one clock for the API and the store
	}
	db, err := sqlite.Open(t.Context(), path, dbOpts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	st := panicStore{db}
	eng, err := engine.New(engine.Config{Timeout: 5 * time.Second}, o.engineOpts...)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	regOpts := []registry.Option{registry.WithLogger(log)}
	if o.now != nil {
		regOpts = append(regOpts, registry.WithNow(o.now)) // key expiry on the same clock
	}
	reg, err := registry.New(st, eng, regOpts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	h, err := api.New(o.cfg, api.Deps{Registry: reg, Engine: eng, Store: st, Logger: log, TracerProvider: o.tp, Now: o.now, Sleep: o.sleep})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, h: h, st: st, eng: eng, reg: reg, logs: logs, path: path}
}

// tenant creates a tenant through the registry and returns its ID and key.
func (e *env) tenant(tier store.Tier) (string, string) {
	e.t.Helper()
	tn, key, err := e.reg.CreateTenant(e.t.Context(), registry.NewTenant{Name: "t-" + string(tier), Tier: tier})
	if err != nil {
		e.t.Fatal(err)
	}
	return tn.ID, key
}

type response struct {
	code   int
	header http.Header
	body   []byte
}

// json decodes the body as a generic JSON value (numbers as float64).
func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response %d is not a JSON object: %v\n%s", r.code, err, r.body)
	}
	return m
}

// request is one HTTP request. body is sent as is when it is a string or
// []byte, else JSON-encoded.
type request struct {
	method, path, key string
	body              any
	header            map[string]string
}

func (e *env) do(r request) response {
	e.t.Helper()
	var rd io.Reader
	switch b := r.body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(js)
	}
	req := httptest.NewRequest(r.method, r.path, rd)
	if r.key != "" {
		req.Header.Set("Authorization", "Bearer "+r.key)
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	return response{code: w.Code, header: w.Header(), body: w.Body.Bytes()}
}

func (e *env) get(path, key string) response {
	e.t.Helper()
	return e.do(request{method: http.MethodGet, path: path, key: key})
}

func (e *env) post(path, key string, body any) response {
	e.t.Helper()
	return e.do(request{method: http.MethodPost, path: path, key: key, body: body})
}

// expect fails unless the response has status code and a JSON body whose
// fields include want (compared after a JSON round trip, so numbers are
// float64). Fields named in absent must not be present.
func expect(t *testing.T, r response, code int, want map[string]any) map[string]any {
	t.Helper()
	if r.code != code {
		t.Fatalf("status %d, want %d; body %s", r.code, code, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	got := r.json(t)
	js, _ := json.Marshal(want)
	var norm map[string]any
	_ = json.Unmarshal(js, &norm)
	for k, v := range norm {
		if !reflect.DeepEqual(got[k], v) {
			t.Errorf("field %q = %#v, want %#v\nbody %s", k, got[k], v, r.body)
		}
	}
	return got
}

// envelope is the error body of docs/api.md §A1 plus extra fields; expectError
// checks that the body has exactly these fields.
func expectError(t *testing.T, r response, status int, code, message string, extra map[string]any) {
	t.Helper()
	want := map[string]any{"error": code, "code": code, "message": message, "status": status}
	if pdp.IsGenericCode(code) { // Novyx's generic envelope: error is the message
		want["error"] = message
	}
	for k, v := range extra {
		want[k] = v
	}
	got := expect(t, r, status, want)
	if len(got) != len(want) {
		t.Errorf("envelope has fields %v, want exactly %v", keys(got), keys(want))
	}
}

// expectErrorCode checks an envelope's status and code and that the
// message contains each of parts.
func expectErrorCode(t *testing.T, r response, status int, code string, parts ...string) map[string]any {
	t.Helper()
	got := expect(t, r, status, map[string]any{"code": code, "status": status})
	msg, _ := got["message"].(string)
	if wantErr := any(code); pdp.IsGenericCode(code) && got["error"] != msg || !pdp.IsGenericCode(code) && got["error"] != wantErr {
		t.Errorf("envelope error %q: want the message for a generic code, the code otherwise (%s)", got["error"], code)
	}
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("message %q does not contain %q", msg, p)
		}
	}
	return got
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Seed documents (seed-agent-scoped-policies.txt, curl tab), verbatim.
const (
	seedTenantWide = `{
    "name": "pii_protection",
    "description": "Warn on PII patterns",
    "rules": [{
      "match": "(email|phone)",
      "context_requires": "(external|public)",
      "severity": "medium",
      "on_violation": "warn"
    }]
  }`
	seedBillingBot = `{
    "name": "pii_protection",
    "description": "Block PII outright for billing-bot",
    "agent_id": "billing-bot",
    "rules": [{
      "match": "(email|phone|ssn|passport|routing)",
      "severity": "critical",
      "on_violation": "block",
      "reason": "PII blocked for billing-bot: {match}"
    }]
  }`
	seedAction = `{"action":"slack.send_message","params":{"channel":"#external","text":"Customer email: alice@example.com"},"agent_id":"billing-bot"}`
)

// rule is a minimal valid policy body.
func rule(name, agent, match string) map[string]any {
	m := map[string]any{"name": name, "rules": []any{map[string]any{"match": match, "severity": "critical"}}}
	if agent != "" {
		m["agent_id"] = agent
	}
	return m
}
