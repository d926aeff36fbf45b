package decisionlog

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// counts is an Observer for tests.
type counts struct{ shipped, dropped, failed atomic.Int64 }

func (c *counts) DecisionLogsShipped(n int) { c.shipped.Add(int64(n)) }
func (c *counts) DecisionLogsDropped(n int) { c.dropped.Add(int64(n)) }
func (c *counts) DecisionLogsFailed(n int)  { c.failed.Add(int64(n)) }

// syncBuffer is a bytes.Buffer safe for the worker and the test.
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

func strp(s string) *string { return &s }

// sampleDecision is a blocked action with one violation.
func sampleDecision(id string) Decision {
	sev := pdp.Severity("critical")
	d := &pdp.Decision{
		ActionID:          id,
		Status:            pdp.StatusBlocked,
		RiskScore:         0.95,
		PoliciesEvaluated: []string{"FinancialSafety", "DataExfiltration"},
		TriggeredPolicy:   strp("DataExfiltration"),
		Severity:          &sev,
		Reason:            strp("Potential data exfiltration: credential"),
		Violations: []pdp.Violation{{
			Policy: "DataExfiltration", Scope: pdp.ScopeBuiltin, Rule: 4, Severity: "critical", OnViolation: "block",
			Reason: "Potential data exfiltration: credential", Match: "password: hunter22", Confidence: 0.95,
		}},
		Warnings: []pdp.Violation{},
	}
	raw, _ := json.Marshal(d)
	return Decision{
		ID:          id,
		TenantID:    "acme",
		Input:       ActionInput{TenantID: "acme", Action: "http.post", Params: json.RawMessage(`{"password":"hunter22","url":"https://x.example"}`)},
		Result:      json.RawMessage(raw),
		Violations:  d.Violations,
		RequestedBy: "127.0.0.1:5555",
		TraceID:     "0123456789abcdef0123456789abcdef",
		Time:        time.Date(2026, 5, 1, 12, 0, 0, 123456789, time.FixedZone("x", 3600)),
	}
}

func TestConsoleEvent(t *testing.T) {
	var out syncBuffer
	c := &counts{}
	l, err := New(Config{Sink: SinkConsole, Mask: []string{"/input/params/password", "/result/violations/*/match", "/input/params/absent"}, InstanceID: "inst-1"},
		WithConsole(&out, io.Discard), WithObserver(c))
	if err != nil {
		t.Fatal(err)
	}
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(t.Context(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
	l.Log(ctx, sampleDecision("act_1"))
	l.Log(t.Context(), sampleDecision("act_2")) // no span: the stand-in trace id
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), out.String())
	}
	var ev map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &ev); err != nil {
		t.Fatal(err)
	}
	want := `{
	  "labels": {"id": "inst-1", "type": "gatehouse", "version": "` + pdp.Version + `"},
	  "decision_id": "act_1",
	  "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
	  "span_id": "00f067aa0ba902b7",
	  "path": "gatehouse/decision/result",
	  "input": {"action": "http.post", "agent_id": null, "params": {"url": "https://x.example"}, "step_type": "ACTION", "tenant_id": "acme"},
	  "result": {"action_id": "act_1", "status": "blocked", "risk_score": 0.95, "evaluation_time_ms": 0,
	    "policies_evaluated": ["FinancialSafety", "DataExfiltration"], "triggered_policy": "DataExfiltration",
	    "severity": "critical", "reason": "Potential data exfiltration: credential",
	    "violations": [{"policy": "DataExfiltration", "scope": "builtin", "rule": 4, "severity": "critical",
	      "on_violation": "block", "reason": "Potential data exfiltration: credential", "confidence": 0.95}],
	    "warnings": []},
	  "erased": ["/input/params/password", "/result/violations/*/match"],
	  "requested_by": "127.0.0.1:5555",
	  "timestamp": "2026-05-01T11:00:00.123456789Z",
	  "rule_labels": [{"policy": "DataExfiltration", "scope": "builtin", "rule": 4, "severity": "critical", "on_violation": "block"}],
	  "custom": {"tenant_id": "acme"}
	}`
	if !jsonSame(t, lines[0], want) {
		t.Errorf("event:\n%s\nwant:\n%s", lines[0], want)
	}
	if strings.Contains(out.String(), "hunter22") {
		t.Errorf("a masked secret was shipped:\n%s", out.String())
	}
	var ev2 Event
	if err := json.Unmarshal([]byte(lines[1]), &ev2); err != nil {
		t.Fatal(err)
	}
	if ev2.TraceID != "0123456789abcdef0123456789abcdef" || ev2.SpanID != "" {
		t.Errorf("without a span: trace_id %q span_id %q", ev2.TraceID, ev2.SpanID)
	}
	if got := c.shipped.Load(); got != 2 {
		t.Errorf("shipped %d, want 2", got)
	}
	if s := l.Stats(); s.Shipped != 2 || s.Dropped != 0 || s.Failed != 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestQueryEvent: a Data API decision — the input with the key's tenant,
// a generic result whose violations give the rule labels.
func TestQueryEvent(t *testing.T) {
	var out syncBuffer
	l, err := New(Config{Sink: SinkConsole, Path: Stderr}, WithConsole(io.Discard, &out))
	if err != nil {
		t.Fatal(err)
	}
	result := map[string]any{"status": "pending_review", "violations": []any{
		map[string]any{"policy": "pii", "scope": "tenant", "rule": json.Number("1"), "severity": "high", "on_violation": "require_approval"},
		map[string]any{"policy": "pii", "scope": "tenant", "rule": json.Number("1"), "severity": "high", "on_violation": "require_approval"},
	}}
	l.Log(t.Context(), Decision{ID: "q1", TenantID: "acme", Input: QueryInput{Input: map[string]any{"action": "x", "tenant_id": "evil"}, TenantID: "acme"}, Result: result})
	l.Log(t.Context(), Decision{ID: "q2", TenantID: "acme", Input: QueryInput{TenantID: "acme"}}) // undefined
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines on stderr", len(lines))
	}
	var ev Event
	_ = json.Unmarshal([]byte(lines[0]), &ev)
	if in, _ := ev.Input.(map[string]any); in["tenant_id"] != "acme" {
		t.Errorf("input %v: tenant_id must be the key's", ev.Input)
	}
	if len(ev.RuleLabels) != 1 || ev.RuleLabels[0] != (RuleLabels{"pii", "tenant", 1, "high", "require_approval"}) {
		t.Errorf("rule_labels %+v, want the one rule once", ev.RuleLabels)
	}
	if strings.Contains(lines[1], `"result"`) || strings.Contains(lines[1], "rule_labels") {
		t.Errorf("an undefined decision has no result: %s", lines[1])
	}
}

// TestLogNeverBlocks: with the sink stuck, Log returns at once; what the
// buffer cannot hold is dropped, counted, and logged once per interval.
func TestLogNeverBlocks(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	defer srv.Close()
	defer close(release)
	var logs syncBuffer
	c := &counts{}
	l, err := New(Config{Sink: SinkHTTP, URL: srv.URL, BufferSize: 10, BatchSize: 5, FlushInterval: 10 * time.Millisecond},
		WithObserver(c), WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	// The sink is stuck until the test ends, so a Log call that waited for
	// it would never return: finishing at all is the proof, and the
	// deadline is only there to fail rather than hang (a clock bound on
	// how fast 10,000 calls run would measure the machine, not the code).
	const n = 10000
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		for i := range n {
			l.Log(t.Context(), sampleDecision("act_"+string(rune('a'+i%26))))
		}
	}()
	select {
	case <-logged:
	case <-time.After(time.Minute):
		t.Fatalf("%d Log calls with a stuck sink did not return within a minute: Log blocks", n)
	}
	s := l.Stats()
	if s.Dropped < n-20 || c.dropped.Load() != s.Dropped {
		t.Errorf("dropped %d (observer %d), want nearly all %d", s.Dropped, c.dropped.Load(), n)
	}
	if got := strings.Count(logs.String(), "decision log buffer full"); got != 1 {
		t.Errorf("%d drop log lines, want 1 (rate-limited):\n%s", got, logs.String())
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := l.Close(ctx); err == nil {
		t.Errorf("Close with a stuck sink and a deadline: no error")
	}
	s = l.Stats()
	if s.Shipped+s.Dropped+s.Failed != n {
		t.Errorf("stats %+v do not add up to %d", s, n)
	}
	l.Log(t.Context(), sampleDecision("late")) // after Close: dropped, no panic
	if l.Stats().Dropped != s.Dropped+1 {
		t.Errorf("an event logged after Close was not counted as dropped")
	}
}

// TestHTTPSink: batches are gzipped JSON arrays POSTed like OPA's; a
// failing endpoint is retried with backoff until it takes them.
func TestHTTPSink(t *testing.T) {
	var (
		mu       sync.Mutex
		received []Event
		calls    int
		batches  []int
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if r.Method != http.MethodPost || r.Header.Get("Content-Encoding") != "gzip" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s %v", r.Method, r.URL.Path, r.Header)
		}
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			t.Errorf("not gzip: %v", err)
			return
		}
		var evs []Event
		if err := json.NewDecoder(zr).Decode(&evs); err != nil {
			t.Errorf("not a JSON array: %v", err)
		}
		batches = append(batches, len(evs))
		received = append(received, evs...)
	}))
	defer srv.Close()
	c := &counts{}
	l, err := New(Config{Sink: SinkHTTP, URL: srv.URL + "/logs", BatchSize: 4, FlushInterval: 20 * time.Millisecond}, WithObserver(c))
	if err != nil {
		t.Fatal(err)
	}
	var waits []time.Duration
	l.sink.(*httpSink).sleep = func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d) // on the worker only
		return nil
	}
	for i := range 10 {
		l.Log(t.Context(), sampleDecision("act_"+string(rune('0'+i))))
	}
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(received) != 10 {
		t.Fatalf("received %d events, want 10", len(received))
	}
	for i, ev := range received {
		if want := "act_" + string(rune('0'+i)); ev.DecisionID != want {
			t.Errorf("event %d is %s, want %s (order kept)", i, ev.DecisionID, want)
		}
	}
	for _, b := range batches {
		if b > 4 {
			t.Errorf("a batch of %d events, more than batch_size 4", b)
		}
	}
	if len(waits) != 2 || waits[0] < backoffMin/2 || waits[0] > backoffMin || waits[1] < backoffMin || waits[1] > 2*backoffMin {
		t.Errorf("waits %v: want two, exponential from %s with jitter", waits, backoffMin)
	}
	if c.shipped.Load() != 10 || c.failed.Load() != 0 {
		t.Errorf("shipped %d failed %d", c.shipped.Load(), c.failed.Load())
	}
}

// TestHTTPSinkRefused: a 4xx other than 408/429 is not retried; the batch
// counts as failed and later batches still go.
func TestHTTPSinkRefused(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	defer srv.Close()
	var logs syncBuffer
	l, err := New(Config{Sink: SinkHTTP, URL: srv.URL, BatchSize: 2}, WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		l.Log(t.Context(), sampleDecision("a"))
	}
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s := l.Stats(); s.Failed != 2 || s.Shipped != 2 || calls.Load() != 2 {
		t.Errorf("stats %+v after %d calls: want one refused batch of 2, one shipped", s, calls.Load())
	}
	if !strings.Contains(logs.String(), "decision log events not shipped") {
		t.Errorf("no log line about the refused batch:\n%s", logs.String())
	}
}

func TestBackoff(t *testing.T) {
	for attempt := 1; attempt < 40; attempt++ {
		d := min(backoffMin<<min(attempt-1, 19), backoffMax)
		for range 50 {
			if w := backoff(attempt); w < d/2 || w > d {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", attempt, w, d/2, d)
			}
		}
	}
}

// TestFileRotation: the file sink rotates at max_size_mb and keeps
// max_files rotated files.
func TestFileRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "decisions.log")
	l, err := New(Config{Sink: SinkFile, Path: path, MaxSizeMB: 1, MaxFiles: 2})
	if err != nil {
		t.Fatal(err)
	}
	d := sampleDecision("x")
	// Events of 30 KB: a batch of 100 is larger than the file may grow,
	// so it is written in pieces.
	d.Input = ActionInput{TenantID: "acme", Action: "x", Params: json.RawMessage(`{"pad":"` + strings.Repeat("p", 30000) + `"}`)}
	const n = 200 // ~6 MB
	for i := range n {
		d.ID = fmt.Sprintf("act_%08d", i)
		for l.Stats().Buffered > 5000 {
			time.Sleep(time.Millisecond)
		}
		l.Log(t.Context(), d)
	}
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s := l.Stats(); s.Shipped != n {
		t.Fatalf("stats %+v", s)
	}
	// lumberjack deletes old backups in the background after a rotation.
	var files []os.DirEntry
	for deadline := time.Now().Add(5 * time.Second); ; {
		files, _ = os.ReadDir(dir)
		if len(files) <= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(files) != 3 {
		t.Errorf("%d files, want the current one and 2 rotated: %v", len(files), files)
	}
	var last string
	for _, f := range files {
		fh, err := os.Open(filepath.Join(dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var ev Event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Errorf("%s: a line that is not an event: %v", f.Name(), err)
			}
			last = max(last, ev.DecisionID)
		}
		fh.Close()
		if info, _ := f.Info(); info.Size() > 1<<20 {
			t.Errorf("%s has %d bytes, more than max_size_mb", f.Name(), info.Size())
		}
	}
	if want := fmt.Sprintf("act_%08d", n-1); last != want {
		t.Errorf("newest event %s, want %s", last, want)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		errs []string
	}{
		{"defaults", Config{}, nil},
		{"console", Config{Sink: SinkConsole}, nil},
		{"file without path", Config{Sink: SinkFile}, []string{"decision_log.path: required"}},
		{"http without url", Config{Sink: SinkHTTP}, []string{"decision_log.url: required"}},
		{"bad everything", Config{Sink: SinkHTTP, URL: "ftp://x", BatchSize: -1, BufferSize: maxBufferSize + 1, FlushInterval: time.Nanosecond,
			MaxFiles: -1, MaxSizeMB: -1, Mask: []string{"/labels"}},
			[]string{"decision_log.url", "decision_log.batch_size", "decision_log.buffer_size", "decision_log.flush_interval",
				"decision_log.max_files", "decision_log.max_size_mb", "decision_log.mask[0]"}},
		{"unknown sink", Config{Sink: "kafka"}, []string{"decision_log.sink"}},
		{"console path", Config{Sink: SinkConsole, Path: "/tmp/x"}, []string{"want stdout or stderr"}},
		{"url without http", Config{Sink: SinkFile, Path: "x", URL: "http://x"}, []string{"applies to sink http only"}},
		{"password redacted", Config{Sink: SinkHTTP, URL: "ftp://u:secret@host"}, []string{"decision_log.url"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Defaults().Validate()
			if len(tc.errs) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %v", tc.errs)
			}
			for _, e := range tc.errs {
				if !strings.Contains(err.Error(), e) {
					t.Errorf("error %q lacks %q", err, e)
				}
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error shows the URL's password: %v", err)
			}
		})
	}
	if l, err := New(Config{}); l != nil || err != nil {
		t.Errorf("sink none: New = %v, %v; want nil, nil", l, err)
	}
	var nl *Logger
	nl.Log(context.Background(), Decision{}) // a nil Logger logs nothing
	if err := nl.Close(context.Background()); err != nil {
		t.Error(err)
	}
}

// BenchmarkLog is the decision's share of decision logging: one
// non-blocking enqueue.
func BenchmarkLog(b *testing.B) {
	l, err := New(Config{Sink: SinkConsole, BufferSize: maxBufferSize}, WithConsole(io.Discard, io.Discard))
	if err != nil {
		b.Fatal(err)
	}
	d := sampleDecision("act_1")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		l.Log(ctx, d)
	}
	b.StopTimer()
	_ = l.Close(ctx)
}

// BenchmarkEncode is the worker's cost per event, masks included.
func BenchmarkEncode(b *testing.B) {
	l, err := New(Config{Sink: SinkConsole, Mask: []string{"/input/params/password"}}, WithConsole(io.Discard, io.Discard))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close(context.Background())
	r := &record{Decision: sampleDecision("act_1")}
	lb := &Logger{labels: l.labels, labelsJSON: l.labelsJSON, mask: l.mask}
	b.ReportAllocs()
	for b.Loop() {
		lb.buf.Reset()
		if err := lb.encode(r); err != nil {
			b.Fatal(err)
		}
	}
}

// chunks records each Write.
type chunks []string

func (c *chunks) Write(p []byte) (int, error) { *c = append(*c, string(p)); return len(p), nil }

func TestWriterSinkBoundsWrites(t *testing.T) {
	var got chunks
	s := &writerSink{w: &got, maxWrite: 10}
	if err := s.ship(t.Context(), []byte("aaaa\nbbbb\ncccc\n0123456789abcde\nd\n"), 5); err != nil {
		t.Fatal(err)
	}
	want := chunks{"aaaa\nbbbb\n", "cccc\n", "0123456789abcde\n", "d\n"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("writes %q, want %q", got, want)
	}
}

// BenchmarkWorker is the worker's whole cost per event on the http sink:
// encoding and compressing a batch of 100 (the POST itself not included).
func BenchmarkWorker(b *testing.B) {
	l := &Logger{labels: map[string]string{"id": "x", "version": "dev", "type": LabelType}, mask: &masker{}}
	l.labelsJSON, _ = marshal(l.labels)
	s := newHTTPSink("http://127.0.0.1:1/logs", nil)
	r := &record{Decision: sampleDecision("act_1")}
	b.ReportAllocs()
	for b.Loop() {
		l.buf.Reset()
		for range 100 {
			if err := l.encode(r); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.compress(l.buf.Bytes()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100, "ns/event")
	b.ReportMetric(float64(l.buf.Len())/100, "bytes/event")
}
