package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

const (
	parentTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	traceparent   = "00-" + parentTraceID + "-00f067aa0ba902b7-01"
)

// TestTracingConsole: OTEL_TRACES_EXPORTER=console writes spans to
// stdout, continuing the caller's W3C trace; the action response carries
// the trace_id (docs/api.md §B4).
func TestTracingConsole(t *testing.T) {
	t.Parallel()
	s, c := startDev(t, Options{Env: []string{"OTEL_TRACES_EXPORTER=console", "OTEL_SERVICE_NAME=gh-e2e"}})
	r := wantStatus(t, c.Do(t, "POST", "/v1/actions", map[string]any{"action": "github.create_issue"}, "traceparent", traceparent), 200)
	wantField(t, r, parentTraceID, "trace_id")
	if !strings.Contains(s.Stderr.String(), `"exporters":["console"]`) {
		t.Errorf("no log of the console exporter")
	}
	s.Stop()
	out := s.Stdout.String()
	if !strings.Contains(out, parentTraceID) {
		t.Errorf("no span of trace %s on stdout:\n%.2000s", parentTraceID, out)
	}
	if !strings.Contains(out, "gh-e2e") {
		t.Errorf("OTEL_SERVICE_NAME not in the resource")
	}
}

// TestTracingOTLP: with OTEL_EXPORTER_OTLP_ENDPOINT set, spans are sent
// over OTLP/HTTP; they are flushed at shutdown at the latest.
func TestTracingOTLP(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		posts []string
	)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		posts = append(posts, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type")+" "+string(b))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	defer collector.Close()

	s, c := startDev(t, Options{Env: []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + collector.URL}})
	wantStatus(t, c.Do(t, "POST", "/v1/actions", map[string]any{"action": "github.create_issue"}, "traceparent", traceparent), 200)
	s.Stop()

	mu.Lock()
	defer mu.Unlock()
	found := false
	for _, p := range posts {
		if strings.HasPrefix(p, "POST /v1/traces application/x-protobuf") && strings.Contains(p, "engine.Evaluate") {
			found = true
		}
	}
	if !found {
		t.Errorf("collector got no trace export with an engine.Evaluate span; got %d requests", len(posts))
	}
}

// TestTracingOff: without OTEL_* variables nothing is exported and no
// trace is invented for the response beyond the caller's.
func TestTracingOff(t *testing.T) {
	t.Parallel()
	s, c := startDev(t, Options{})
	wantStatus(t, c.Do(t, "POST", "/v1/actions", map[string]any{"action": "github.create_issue"}), 200)
	if strings.Contains(s.Stderr.String(), "tracing enabled") {
		t.Errorf("tracing enabled without OTEL_* variables")
	}
	s.Stop()
	if n := len(s.Stdout.All()); n != 1 {
		t.Errorf("stdout has %d lines, want only the dev key", n)
	}
}
