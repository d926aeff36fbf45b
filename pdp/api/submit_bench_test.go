package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
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
	"github.com/gatehouse-pdp/gatehouse/test/scale"
)

// BenchmarkSubmitAction is POST /v1/actions through the whole handler as
// serve wires it (metrics, the traced store with tracing off, no decision
// log) on a real SQLite store with durable group commit, over the first
// tenants of scale M and their corpus. It runs the handler in-process (no
// sockets), so its allocs/op are a request's across every layer. With
// -cpuprofile, the profile's pdp/engine share is the evaluation; the rest
// is what the action path adds to it. p50-ms and p99-ms are the requests'
// latencies as the 16 closed-loop clients per processor see them
// (queueing included: with -cpu 1, 16 / throughput on average).
//
//	go test ./pdp/api -run '^$' -bench SubmitAction -benchmem -count 5
func BenchmarkSubmitAction(b *testing.B) {
	const tenants = 5
	s := scale.M()
	s.Tenants = s.Tenants[:tenants]
	m := metrics.New(metrics.Config{})
	db, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "gatehouse.db"), sqlite.WithAuditBatchObserver(m))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	tp := noop.NewTracerProvider()
	st := store.TracedGovernance(db, tp, store.WithOpObserver(m))
	eng, err := engine.New(engine.Config{Timeout: 5 * time.Second, MaxConcurrent: -1}, engine.WithTracerProvider(tp), engine.WithObserver(m))
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg, err := registry.New(st, eng, registry.WithLogger(log))
	if err != nil {
		b.Fatal(err)
	}
	if err := reg.Load(b.Context()); err != nil {
		b.Fatal(err)
	}
	h, err := api.New(api.Config{AdminToken: adminToken}, api.Deps{Registry: reg, Engine: eng, Store: st, Logger: log, TracerProvider: tp, Metrics: m})
	if err != nil {
		b.Fatal(err)
	}
	call := func(path, key string, body []byte) []byte {
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code/100 != 2 {
			b.Fatalf("%s: %d %s", path, w.Code, w.Body.Bytes())
		}
		return w.Body.Bytes()
	}
	keys := map[string]string{}
	for _, tp := range s.Tenants {
		var created struct {
			APIKey string `json:"api_key"`
		}
		if err := json.Unmarshal(call("/v1/admin/tenants", adminToken, fmt.Appendf(nil, `{"name":%q,"tier":"enterprise"}`, tp.TenantID)), &created); err != nil {
			b.Fatal(err)
		}
		keys[tp.TenantID] = created.APIKey
		for _, p := range tp.Policies {
			call("/v1/control/policies", created.APIKey, policyJSON(b, p))
		}
	}
	type request struct {
		auth string
		body []byte
	}
	var reqs []request
	for _, a := range s.Actions {
		key, ok := keys[a.TenantID]
		if !ok {
			continue
		}
		body, err := json.Marshal(map[string]any{"action": a.Name, "params": a.Params, "agent_id": a.AgentID, "step_type": a.StepType})
		if err != nil {
			b.Fatal(err)
		}
		reqs = append(reqs, request{auth: "Bearer " + key, body: body})
	}
	for _, r := range reqs { // warm: every tenant decided once
		call("/v1/actions", r.auth[len("Bearer "):], r.body)
	}
	var next atomic.Int64
	b.SetParallelism(16) // 16 closed-loop clients per GOMAXPROCS, as the load tool's
	b.ReportAllocs()
	b.ResetTimer()
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpuStart := ru.Utime.Nano() + ru.Stime.Nano()
	var (
		latMu sync.Mutex
		lats  []time.Duration
	)
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{h: http.Header{}}
		var mine []time.Duration
		defer func() {
			latMu.Lock()
			lats = append(lats, mine...)
			latMu.Unlock()
		}()
		for pb.Next() {
			began := time.Now()
			r := reqs[int(next.Add(1))%len(reqs)]
			req := httptest.NewRequest(http.MethodPost, "/v1/actions", bytes.NewReader(r.body))
			req.Header.Set("Authorization", r.auth)
			req.Header.Set("Content-Type", "application/json")
			w.reset()
			h.ServeHTTP(w, req)
			if w.code != http.StatusOK || !bytes.Contains(w.body.Bytes(), []byte(`"policy_result"`)) {
				b.Errorf("status %d: %s", w.code, w.body.Bytes())
				return
			}
			mine = append(mine, time.Since(began))
		}
	})
	b.StopTimer()
	// Each request's time from its start to its answer, as a closed-loop
	// client sees it (16 per processor, so queueing included).
	if len(lats) > 0 {
		slices.Sort(lats)
		b.ReportMetric(float64(lats[len(lats)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lats[len(lats)*99/100].Microseconds())/1000, "p99-ms")
	}
	// CPU time beside wall time: on a shared machine it counts only this
	// process's work (the committer's and the collector's included).
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	b.ReportMetric(float64(ru.Utime.Nano()+ru.Stime.Nano()-cpuStart)/float64(b.N), "cpu-ns/op")
	cs := db.CommitStats()
	if cs.Batches > 0 {
		b.ReportMetric(float64(cs.Ops)/float64(cs.Batches), "ops/batch")
	}
}

// discardWriter is a reusable ResponseWriter keeping the last body.
type discardWriter struct {
	h    http.Header
	code int
	body bytes.Buffer
}

func (w *discardWriter) reset() {
	clear(w.h)
	w.code = 0
	w.body.Reset()
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}
func (w *discardWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.body.Write(p)
}

// policyJSON is p as the Control API's policy document.
func policyJSON(b *testing.B, p pdp.Policy) []byte {
	rules := make([]map[string]any, len(p.Rules))
	for i, r := range p.Rules {
		rule := map[string]any{"match": r.Match, "severity": r.Severity, "on_violation": r.OnViolation, "confidence": r.Confidence}
		if r.Reason != "" {
			rule["reason"] = r.Reason
		}
		if r.ContextRequires != "" {
			rule["context_requires"] = r.ContextRequires
		}
		rules[i] = rule
	}
	doc := map[string]any{"name": p.Name, "description": p.Description, "step_types": p.StepTypes, "rules": rules}
	if p.AgentID != "" {
		doc["agent_id"] = p.AgentID
	}
	js, err := json.Marshal(doc)
	if err != nil {
		b.Fatal(err)
	}
	return js
}
