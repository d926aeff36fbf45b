package e2e

import (
	"compress/gzip"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// logReceiver is an HTTP decision-log endpoint like OPA's /logs: it takes
// gzipped JSON arrays of events.
type logReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	events []map[string]any
	posts  int
}

func newLogReceiver(t *testing.T) *logReceiver {
	r := &logReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.URL.Path != "/logs" || req.Header.Get("Content-Encoding") != "gzip" ||
			req.Header.Get("Content-Type") != "application/json" {
			t.Errorf("decision log upload: %s %s %v", req.Method, req.URL.Path, req.Header)
		}
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			t.Errorf("decision log upload is not gzip: %v", err)
			http.Error(w, "gzip", http.StatusBadRequest)
			return
		}
		var evs []map[string]any
		if err := json.NewDecoder(zr).Decode(&evs); err != nil {
			t.Errorf("decision log upload is not a JSON array: %v", err)
			http.Error(w, "json", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.events = append(r.events, evs...)
		r.posts++
		r.mu.Unlock()
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *logReceiver) byID() map[string]map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]map[string]any{}
	for _, ev := range r.events {
		id, _ := ev["decision_id"].(string)
		m[id] = ev
	}
	return m
}

// TestDecisionLogHTTP: with --decision-log http, every action and Data API
// decision reaches the endpoint in OPA's event format, within the flush
// interval, with the masked fields erased; /metrics counts them.
func TestDecisionLogHTTP(t *testing.T) {
	t.Parallel()
	recv := newLogReceiver(t)
	s, c := startDev(t, Options{Args: []string{
		"--decision-log", "http", "--decision-log-url", recv.URL + "/logs", "--decision-log-flush-interval", "100ms",
		"--decision-log-mask", "/input/params/otp,/result/violations/*/match",
	}})
	wantStatus(t, c.Do(t, "POST", "/v1/control/policies", map[string]any{
		"name": "no_root", "rules": []any{map[string]any{"match": "root", "severity": "critical"}},
	}), 201)
	act := wantStatus(t, c.Do(t, "POST", "/v1/actions",
		map[string]any{"action": "ssh.login", "params": map[string]any{"user": "root", "otp": "hunter2hunter2"}, "agent_id": "ops-bot"},
		"traceparent", traceparent), 200)
	wantField(t, act, "blocked", "status")
	query := wantStatus(t, c.Do(t, "POST", "/v1/data/gatehouse/decision/result",
		map[string]any{"input": map[string]any{"action": "wire_transfer", "params": map[string]any{"amount": 20000}}}), 200)
	qid, _ := query["decision_id"].(string)
	if qid == "" {
		t.Fatalf("Data API response without decision_id: %v", query)
	}

	actionID := act["action_id"].(string)
	var evs map[string]map[string]any
	if !eventually(10*time.Second, func() bool { evs = recv.byID(); return evs[actionID] != nil && evs[qid] != nil }) {
		t.Fatalf("the endpoint did not get both events within 10s: %v", evs)
	}
	ev := evs[actionID]
	wantField(t, ev, "gatehouse/decision/result", "path")
	wantField(t, ev, parentTraceID, "trace_id")
	wantField(t, ev, "gatehouse", "labels", "type")
	wantField(t, ev, Version, "labels", "version")
	wantField(t, ev, s.TenantID, "custom", "tenant_id")
	wantField(t, ev, map[string]any{"tenant_id": s.TenantID, "agent_id": "ops-bot", "action": "ssh.login",
		"params": map[string]any{"user": "root"}, "step_type": "ACTION"}, "input")
	wantField(t, ev, "blocked", "result", "status")
	wantField(t, ev, act["policy_result"].(map[string]any)["risk_score"], "result", "risk_score")
	wantField(t, ev, []any{map[string]any{"policy": "no_root", "scope": "tenant", "rule": 0, "severity": "critical", "on_violation": "block"}}, "rule_labels")
	wantField(t, ev, []any{"/input/params/otp", "/result/violations/*/match"}, "erased")
	wantTime(t, ev["timestamp"], "timestamp")
	wantContains(t, ev["requested_by"], "127.0.0.1:")
	if id, _ := field(ev, "span_id").(string); len(id) != 16 {
		t.Errorf("span_id %v", ev["span_id"])
	}
	if b, _ := json.Marshal(evs); strings.Contains(string(b), "hunter2hunter2") {
		t.Errorf("a masked secret reached the endpoint")
	}
	q := evs[qid]
	wantField(t, q, s.TenantID, "input", "tenant_id")
	wantField(t, q, "pending_review", "result", "status")
	wantField(t, q, "FinancialSafetyPolicy", "rule_labels", 0, "policy")

	metrics := c.Do(t, "GET", "/metrics", nil)
	if !strings.Contains(string(metrics.Body), "gatehouse_decision_logs_shipped_total 2") ||
		!strings.Contains(string(metrics.Body), "gatehouse_decision_logs_dropped_total 0") {
		t.Errorf("/metrics lacks the decision-log counts:\n%s", grepLines(string(metrics.Body), "gatehouse_decision_logs"))
	}
	s.Stop()
}

// TestDecisionLogConsole: --decision-log console writes one JSON line per
// decision on stdout, after the dev key.
func TestDecisionLogConsole(t *testing.T) {
	t.Parallel()
	s, c := startDev(t, Options{Args: []string{"--decision-log", "console"}})
	act := wantStatus(t, c.Do(t, "POST", "/v1/actions", map[string]any{"action": "github.create_issue"}), 200)
	s.Stop()
	line, _, err := s.Stdout.Wait(0, logTimeout, func(l string) bool { return strings.Contains(l, `"decision_id"`) })
	if err != nil {
		t.Fatalf("no event on stdout:\n%s", s.Stdout)
	}
	ev, _ := LogEntry(line)
	wantField(t, ev, act["action_id"], "decision_id")
	wantField(t, ev, act["trace_id"], "trace_id") // no tracer: the response's stand-in id
	wantField(t, ev, "allowed", "result", "status")
}

func grepLines(s, sub string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return strings.Join(out, "\n")
}
