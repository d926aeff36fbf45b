package metrics

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
)

// scrape serves m's exposition and returns its samples by "name{labels}".
func scrape(t *testing.T, m *Metrics) map[string]float64 {
	t.Helper()
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("scrape: %d %s", w.Code, w.Body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(w.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

func want(t *testing.T, got map[string]float64, samples map[string]float64) {
	t.Helper()
	for k, v := range samples {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestTrigger(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    pdp.Decision
		want string
	}{
		{"nothing fired", pdp.Decision{}, TriggerNone},
		{"builtin", pdp.Decision{TriggeredPolicy: ptr("FinancialSafety"),
			Violations: []pdp.Violation{{Policy: "FinancialSafety", Scope: pdp.ScopeBuiltin}}}, TriggerBuiltin},
		{"custom tenant", pdp.Decision{TriggeredPolicy: ptr("pii"),
			Violations: []pdp.Violation{{Policy: "pii", Scope: pdp.ScopeTenant}, {Policy: "DataExfiltration", Scope: pdp.ScopeBuiltin}}}, TriggerCustom},
		{"custom agent", pdp.Decision{TriggeredPolicy: ptr("pii"),
			Violations: []pdp.Violation{{Policy: "pii", Scope: pdp.ScopeAgent}}}, TriggerCustom},
		{"builtin by name without violations", pdp.Decision{TriggeredPolicy: ptr("DataExfiltrationPolicy")}, TriggerBuiltin},
	} {
		if got := Trigger(&tc.d); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestObservations(t *testing.T) {
	m := New(Config{})
	m.ObserveRequest("/v1/actions", "POST", 200, 2*time.Millisecond)
	m.ObserveRequest("", "GET", 404, time.Millisecond)
	m.ObserveRequest("/v1/actions", "BREW", 405, time.Millisecond) // a client cannot mint series
	m.ObserveRejection(RejectRateLimited)
	blocked := &pdp.Decision{Status: pdp.StatusBlocked, TriggeredPolicy: ptr("FinancialSafety"),
		Violations: []pdp.Violation{{Policy: "FinancialSafety", Scope: pdp.ScopeBuiltin}}}
	m.ObserveDecision("ten_1", blocked, nil, time.Millisecond)
	m.ObserveDecision("ten_1", nil, pdp.ErrEvaluationFailed, time.Millisecond)
	m.ObserveCompile(30 * time.Millisecond)
	m.ObserveStoreOp("InsertAction", 3*time.Millisecond)
	for _, n := range []int{1, 1, 40} {
		m.ObserveAuditBatch(n)
	}
	m.ObserveBundleDownload(200)
	m.ObserveBundleDownload(304)
	m.ObserveBundleDownload(304)

	got := scrape(t, m)
	want(t, got, map[string]float64{
		`http_requests_total{method="POST",route="/v1/actions",status="200"}`:                 1,
		`http_requests_total{method="GET",route="unmatched",status="404"}`:                    1,
		`http_requests_total{method="OTHER",route="/v1/actions",status="405"}`:                1,
		`http_request_duration_seconds_bucket{method="POST",route="/v1/actions",le="0.0025"}`: 1,
		`gatehouse_requests_rejected_total{reason="rate_limited"}`:                            1,
		`gatehouse_decisions_total{status="blocked",trigger="builtin"}`:                       1,
		`gatehouse_decisions_total{status="unavailable",trigger="none"}`:                      1,
		`gatehouse_decision_duration_seconds_count`:                                           2,
		`gatehouse_compile_duration_seconds_bucket{le="0.05"}`:                                1,
		`gatehouse_store_operation_duration_seconds_count{op="InsertAction"}`:                 1,
		`gatehouse_audit_append_batch_size_count`:                                             3,
		`gatehouse_audit_append_batch_size_sum`:                                               42,
		`gatehouse_audit_append_batch_size_bucket{le="2"}`:                                    2,
		`gatehouse_bundle_downloads_total{status="200"}`:                                      1,
		`gatehouse_bundle_downloads_total{status="304"}`:                                      2,
	})
	for k := range got {
		if strings.Contains(k, "ten_1") {
			t.Errorf("tenant id in %s without TenantLabels", k)
		}
	}
}

// TestObservationsResolvedOnce: repeated observations land on the
// children resolved the first time (the series cache), one series per
// label set, tenants apart only with TenantLabels.
func TestObservationsResolvedOnce(t *testing.T) {
	for _, tenantLabels := range []bool{false, true} {
		m := New(Config{TenantLabels: tenantLabels})
		allowed := &pdp.Decision{Status: pdp.StatusAllowed}
		for range 3 {
			m.ObserveRequest("/v1/actions", "POST", 200, time.Millisecond)
			m.ObserveRequest("/v1/actions", "BREW", 200, time.Millisecond)
			m.ObserveRequest("/v1/actions", "PURGE", 200, time.Millisecond)
			m.ObserveDecision("ten_a", allowed, nil, time.Millisecond)
			m.ObserveDecision("ten_b", allowed, nil, time.Millisecond)
			m.ObserveStoreOp("InsertAction", time.Millisecond)
		}
		m.ObserveRequest("/v1/actions", "POST", 503, time.Millisecond)
		w := map[string]float64{
			`http_requests_total{method="POST",route="/v1/actions",status="200"}`:    3,
			`http_requests_total{method="POST",route="/v1/actions",status="503"}`:    1,
			`http_requests_total{method="OTHER",route="/v1/actions",status="200"}`:   6,
			`http_request_duration_seconds_count{method="POST",route="/v1/actions"}`: 4,
			`gatehouse_store_operation_duration_seconds_count{op="InsertAction"}`:    3,
		}
		if tenantLabels {
			w[`gatehouse_decisions_total{status="allowed",tenant_id="ten_a",trigger="none"}`] = 3
			w[`gatehouse_decisions_total{status="allowed",tenant_id="ten_b",trigger="none"}`] = 3
		} else {
			w[`gatehouse_decisions_total{status="allowed",trigger="none"}`] = 6
		}
		want(t, scrape(t, m), w)
	}
}

type fakeEngine struct{ s engine.Stats }

func (f fakeEngine) Stats() engine.Stats { return f.s }

func TestEngineCollector(t *testing.T) {
	m := New(Config{})
	if err := m.CollectEngine(fakeEngine{engine.Stats{Hits: 7, Misses: 2, Evictions: 1, Size: 5}}); err != nil {
		t.Fatal(err)
	}
	want(t, scrape(t, m), map[string]float64{
		"gatehouse_engine_cache_hits_total":      7,
		"gatehouse_engine_cache_misses_total":    2,
		"gatehouse_engine_cache_evictions_total": 1,
		"gatehouse_engine_cache_entries":         5,
	})
	if err := m.CollectEngine(fakeEngine{}); err == nil {
		t.Error("a second engine was accepted: its series would collide")
	}
	if err := m.CollectEngine(nil); err == nil {
		t.Error("nil engine accepted")
	}
}

// TestNoGlobals: two Metrics count independently, as two servers in one
// process must.
func TestNoGlobals(t *testing.T) {
	a, b := New(Config{}), New(Config{TenantLabels: true})
	a.ObserveDecision("ten_a", &pdp.Decision{Status: pdp.StatusAllowed}, nil, time.Millisecond)
	b.ObserveDecision("ten_b", &pdp.Decision{Status: pdp.StatusAllowed}, nil, time.Millisecond)
	b.ObserveDecision("ten_b", &pdp.Decision{Status: pdp.StatusAllowed}, nil, time.Millisecond)
	want(t, scrape(t, a), map[string]float64{`gatehouse_decisions_total{status="allowed",trigger="none"}`: 1})
	want(t, scrape(t, b), map[string]float64{`gatehouse_decisions_total{status="allowed",tenant_id="ten_b",trigger="none"}`: 2})
}
