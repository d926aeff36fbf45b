package api_test

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace/noop"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/api"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
	"github.com/gatehouse-pdp/gatehouse/pdp/metrics"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/sqlite"
)

// newOpsEnv wires the API as serve does, with metrics on the engine, the
// store and the API, over a real SQLite store.
func newOpsEnv(t *testing.T, cfg api.Config, mcfg metrics.Config, ecfg engine.Config, engineOpts ...engine.Option) (*env, *metrics.Metrics) {
	t.Helper()
	m := metrics.New(mcfg)
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "gatehouse.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	st := store.Traced(db, noop.NewTracerProvider(), store.WithOpObserver(m))
	if ecfg.Timeout == 0 {
		ecfg.Timeout = 10 * time.Second
	}
	eng, err := engine.New(ecfg, append(engineOpts, engine.WithObserver(m))...)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CollectEngine(eng); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	reg, err := registry.New(st, eng, registry.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	cfg.AdminToken = adminToken
	h, err := api.New(cfg, api.Deps{Registry: reg, Engine: eng, Store: st, Logger: log, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, h: h, st: st, eng: eng, reg: reg, logs: logs}, m
}

// scrape GETs /metrics and returns each sample as "name{labels}" → value,
// labels as the exposition writes them (sorted by name).
func scrape(t *testing.T, e *env) map[string]float64 {
	t.Helper()
	r := e.get("/metrics", "")
	if r.code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", r.code, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("GET /metrics: Content-Type %q, want the text format", ct)
	}
	samples := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		samples[line[:i]] = v
	}
	return samples
}

// wantSamples fails for every sample of want that is missing or differs.
func wantSamples(t *testing.T, got map[string]float64, want map[string]float64) {
	t.Helper()
	for k, v := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("no sample %s", k)
		} else if g != v {
			t.Errorf("%s = %v, want %v", k, g, v)
		}
	}
}

// TestMetricsAfterKnownTraffic drives known traffic through the API and
// checks the exact counts on GET /metrics.
func TestMetricsAfterKnownTraffic(t *testing.T) {
	e, _ := newOpsEnv(t, api.Config{}, metrics.Config{}, engine.Config{})
	tenantID, key := e.tenant(store.TierStarter)
	expect(t, e.post("/v1/control/policies", key, map[string]any{
		"name":  "no_wipe",
		"rules": []any{map[string]any{"match": "wipe_database", "severity": "critical"}},
	}), http.StatusCreated, nil)

	for _, tc := range []struct {
		body   map[string]any
		status string
	}{
		{map[string]any{"action": "bank.transfer", "params": map[string]any{"amount": 500000}}, "blocked"}, // FinancialSafety
		{map[string]any{"action": "payments.wire", "params": map[string]any{"amount": 250000}}, "blocked"}, // FinancialSafety
		{map[string]any{"action": "db.wipe_database"}, "blocked"},                                          // no_wipe
		{map[string]any{"action": "slack.send_message", "params": map[string]any{"text": "hi"}}, "allowed"},
		{map[string]any{"action": "calendar.read"}, "allowed"},
	} {
		expect(t, e.post("/v1/actions", key, tc.body), http.StatusOK, map[string]any{"status": tc.status})
	}
	r := expect(t, e.post("/v1/actions", key, map[string]any{"action": "calendar.read"}), http.StatusOK, nil)
	id, _ := r["action_id"].(string)
	expect(t, e.get("/v1/actions/"+id, key), http.StatusOK, nil)
	e.post("/v1/actions", "", map[string]any{"action": "x"})
	e.post("/v1/actions", "nram_unknown", map[string]any{"action": "x"})
	e.get("/v1/control/policies", "nram_nope")
	e.get("/no/such/route/"+tenantID, key)

	got := scrape(t, e)
	wantSamples(t, got, map[string]float64{
		`gatehouse_decisions_total{status="blocked",trigger="builtin"}`: 2,
		`gatehouse_decisions_total{status="blocked",trigger="custom"}`:  1,
		`gatehouse_decisions_total{status="allowed",trigger="none"}`:    3,
		`gatehouse_decision_duration_seconds_count`:                     6,

		`http_requests_total{method="POST",route="/v1/actions",status="200"}`:          6,
		`http_requests_total{method="POST",route="/v1/actions",status="401"}`:          2,
		`http_requests_total{method="GET",route="/v1/control/policies",status="401"}`:  1,
		`http_requests_total{method="POST",route="/v1/control/policies",status="201"}`: 1,
		`http_requests_total{method="GET",route="/v1/actions/:id",status="200"}`:       1,
		`http_requests_total{method="GET",route="unmatched",status="404"}`:             1,
		`http_request_duration_seconds_count{method="POST",route="/v1/actions"}`:       8,

		// Compiles happen at write time (the tenant's creation, the
		// policy write), never on a decision: every decision hits.
		`gatehouse_engine_cache_hits_total`:        6,
		`gatehouse_engine_cache_misses_total`:      0,
		`gatehouse_engine_cache_entries`:           1,
		`gatehouse_compile_duration_seconds_count`: 2,

		`gatehouse_store_operation_duration_seconds_count{op="InsertAction"}`: 6,
		`gatehouse_store_operation_duration_seconds_count{op="GetAction"}`:    1,
	})
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_resident_memory_bytes"} {
		if _, ok := got[name]; !ok {
			t.Errorf("runtime or process metric %s missing", name)
		}
	}
	if got[fmt.Sprintf(`gatehouse_build_info{goversion=%q,version=%q}`, goVersion(), pdp.Version)] != 1 {
		t.Error("gatehouse_build_info missing")
	}
	// Neither ids nor raw paths become label values.
	for k := range got {
		for _, leak := range []string{tenantID, id, "/no/such", "tenant_id", "agent_id"} {
			if strings.Contains(k, leak) {
				t.Errorf("sample %s contains %q", k, leak)
			}
		}
	}
}

// TestMetricsTenantLabels: with the option, decisions carry tenant_id.
func TestMetricsTenantLabels(t *testing.T) {
	e, _ := newOpsEnv(t, api.Config{}, metrics.Config{TenantLabels: true}, engine.Config{})
	tenantID, key := e.tenant(store.TierFree)
	e.post("/v1/actions", key, map[string]any{"action": "bank.transfer", "params": map[string]any{"amount": 500000}})
	e.post("/v1/actions", key, map[string]any{"action": "calendar.read", "agent_id": "bot-1"})
	got := scrape(t, e)
	wantSamples(t, got, map[string]float64{
		fmt.Sprintf(`gatehouse_decisions_total{status="blocked",tenant_id=%q,trigger="builtin"}`, tenantID): 1,
		fmt.Sprintf(`gatehouse_decisions_total{status="allowed",tenant_id=%q,trigger="none"}`, tenantID):    1,
	})
	for k := range got {
		if strings.Contains(k, "bot-1") {
			t.Errorf("agent id in sample %s", k)
		}
	}
}

// TestRateLimitTierDefault: a tier's default limits each key; 429 has the
// contract's usage and an integer Retry-After of at least 1 s.
func TestRateLimitTierDefault(t *testing.T) {
	e, _ := newOpsEnv(t, api.Config{Limits: api.Limits{RateLimits: map[store.Tier]store.RateLimit{
		store.TierFree: {RequestsPerSecond: 0.5, Burst: 2},
	}}}, metrics.Config{}, engine.Config{})
	tenantID, key := e.tenant(store.TierFree)
	_, proKey := e.tenant(store.TierPro)
	before := time.Now()
	for range 2 {
		expect(t, e.get("/v1/actions", key), http.StatusOK, nil)
	}
	r := e.get("/v1/actions", key)
	got := expectErrorCode(t, r, http.StatusTooManyRequests, pdp.CodeRateLimited, "Rate limit exceeded", "plan 'free'")
	retry, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || retry < 1 || retry > 2 {
		t.Errorf("Retry-After %q, want an integer of 1..2 seconds (0.5 requests/s)", r.header.Get("Retry-After"))
	}
	usage, _ := got["usage"].(map[string]any)
	if usage["current"] != 2.0 || usage["limit"] != 2.0 || usage["plan"] != "free" {
		t.Errorf("usage %v, want current 2, limit 2, plan free", usage)
	}
	resets, err := time.Parse(time.RFC3339Nano, fmt.Sprint(usage["resets_at"]))
	if err != nil || !strings.HasSuffix(fmt.Sprint(usage["resets_at"]), "Z") ||
		resets.Before(before.Add(3*time.Second)) || resets.After(time.Now().Add(4*time.Second+time.Millisecond)) {
		t.Errorf("resets_at %v (%v): want RFC 3339 UTC about 4 s ahead (2 requests at 0.5/s)", usage["resets_at"], err)
	}
	// Another tier (no default) and another key of the same tenant are
	// not limited by this key's bucket.
	expect(t, e.get("/v1/actions", proKey), http.StatusOK, nil)
	_, second, err := e.reg.CreateKey(t.Context(), tenantID)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, e.get("/v1/actions", second), http.StatusOK, nil)
	// Refused before authentication is no request of the key's.
	expectErrorCode(t, e.get("/v1/actions", "nram_unknown"), http.StatusUnauthorized, pdp.CodeUnauthorized)

	wantSamples(t, scrape(t, e), map[string]float64{
		`gatehouse_requests_rejected_total{reason="rate_limited"}`:           1,
		`http_requests_total{method="GET",route="/v1/actions",status="429"}`: 1,
	})
}

// TestRateLimitTenantOverride: PATCH rate_limit sets, exempts and clears
// a tenant's own limit; the admin API shows it.
func TestRateLimitTenantOverride(t *testing.T) {
	e, _ := newOpsEnv(t, api.Config{Limits: api.Limits{RateLimits: map[store.Tier]store.RateLimit{
		store.TierPro: {RequestsPerSecond: 0.001, Burst: 1},
	}}}, metrics.Config{}, engine.Config{})
	tenantID, key := e.tenant(store.TierPro)
	patch := func(body string) response {
		return e.do(request{method: http.MethodPatch, path: "/v1/admin/tenants/" + tenantID, key: adminToken, body: body})
	}
	// The tier's default: one request, then 429.
	expect(t, e.get("/v1/actions", key), http.StatusOK, nil)
	expectErrorCode(t, e.get("/v1/actions", key), http.StatusTooManyRequests, pdp.CodeRateLimited)

	// Unlimited for this tenant.
	expect(t, patch(`{"rate_limit": {"requests_per_second": 0}}`), http.StatusOK,
		map[string]any{"rate_limit": map[string]any{"requests_per_second": 0, "burst": 0}})
	for range 5 {
		expect(t, e.get("/v1/actions", key), http.StatusOK, nil)
	}
	// Its own limit; burst defaults to the rate rounded up.
	expect(t, patch(`{"rate_limit": {"requests_per_second": 2.5}}`), http.StatusOK,
		map[string]any{"rate_limit": map[string]any{"requests_per_second": 2.5, "burst": 3}})
	expect(t, e.get("/v1/admin/tenants/"+tenantID, adminToken), http.StatusOK,
		map[string]any{"rate_limit": map[string]any{"requests_per_second": 2.5, "burst": 3}})
	limited := 0
	for range 10 {
		if e.get("/v1/actions", key).code == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited < 6 {
		t.Errorf("%d of 10 quick requests limited at 2.5/s with bursts of 3, want at least 6", limited)
	}
	// Back to the tier's default.
	expect(t, patch(`{"rate_limit": null}`), http.StatusOK, map[string]any{"rate_limit": nil})
	expectErrorCode(t, e.get("/v1/actions", key), http.StatusTooManyRequests, pdp.CodeRateLimited)

	// Bad values name the field.
	for body, field := range map[string]string{
		`{"rate_limit": {"requests_per_second": -1}}`:             "rate_limit.requests_per_second",
		`{"rate_limit": {"requests_per_second": 1, "burst": -2}}`: "rate_limit.burst",
		`{"rate_limit": {"burst": 2}}`:                            "rate_limit.requests_per_second",
		`{"rate_limit": {"rps": 2}}`:                              "rate_limit",
		`{"rate_limit": 5}`:                                       "rate_limit",
	} {
		expectErrorCode(t, patch(body), http.StatusBadRequest, pdp.CodeValidation, field)
	}
}

// TestMaxConcurrentEvaluations: past the engine's bound an action waits a
// fifth of the evaluation timeout for a slot, then is refused with 503 evaluation_unavailable and Retry-After: 1, and
// neither evaluated nor recorded. The evaluation holding the only slot is
// held inside OPA by an http.send to a server that answers when told to.
func TestMaxConcurrentEvaluations(t *testing.T) {
	entered, release := make(chan struct{}, 1), make(chan struct{})
	hold := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(hold.Close)
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	module := fmt.Sprintf(`package held
result := {"status": "allowed", "risk_score": 0, "policies_evaluated": [], "triggered_policy": null,
	"severity": null, "reason": null, "violations": [], "warnings": []} if {
	http.send({"method": "GET", "url": %q, "force_cache": false}).status_code == 200
}`, hold.URL)
	e, _ := newOpsEnv(t, api.Config{}, metrics.Config{}, engine.Config{MaxConcurrent: 1},
		engine.WithModules(map[string]string{"held.rego": module}), engine.WithQuery("data.held.result"))
	_, key := e.tenant(store.TierFree)

	first := make(chan response, 1)
	go func() { first <- e.post("/v1/actions", key, map[string]any{"action": "calendar.read"}) }()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the first evaluation never started")
	}
	start := time.Now()
	r := e.post("/v1/actions", key, map[string]any{"action": "calendar.read"})
	// The only slot is held until the test ends, so a request that waited
	// for it would not be answered at all; 20 s only keeps a broken bound
	// from hanging the test.
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("refusal took %v: it should wait for a slot only briefly", took)
	}
	got := expectErrorCode(t, r, http.StatusServiceUnavailable, pdp.CodeEvaluationUnavailable, "neither evaluated nor allowed")
	if _, ok := got["action_id"]; ok {
		t.Errorf("a refused action has an action_id: %v", got)
	}
	if ra := r.header.Get("Retry-After"); ra != "1" {
		t.Errorf("Retry-After %q, want 1", ra)
	}
	once.Do(func() { close(release) })
	expect(t, <-first, http.StatusOK, map[string]any{"status": "allowed"})

	// Only the first action was recorded and decided; the slot is free again.
	expect(t, e.get("/v1/actions", key), http.StatusOK, map[string]any{"total": 1})
	wantSamples(t, scrape(t, e), map[string]float64{
		`gatehouse_requests_rejected_total{reason="overloaded"}`:              1,
		`gatehouse_decisions_total{status="allowed",trigger="none"}`:          1,
		`http_requests_total{method="POST",route="/v1/actions",status="503"}`: 1,
	})
	expect(t, e.post("/v1/actions", key, map[string]any{"action": "calendar.read"}), http.StatusOK, nil)
}

func TestLimitsValidate(t *testing.T) {
	_, err := api.New(api.Config{Limits: api.Limits{
		RateLimits: map[store.Tier]store.RateLimit{
			"gold":        {RequestsPerSecond: 1, Burst: 1},
			store.TierPro: {RequestsPerSecond: 1},
		},
	}}, api.Deps{})
	for _, want := range []string{`unknown tier "gold"`, "tier pro", "rate_limit.burst"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

func goVersion() string { return runtime.Version() }
