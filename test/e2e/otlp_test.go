package e2e

import (
	"compress/gzip"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an OTLP/HTTP trace receiver (POST /v1/traces,
// application/x-protobuf, as a collector's otlp receiver serves it) that
// keeps every span it is sent.
type otlpReceiver struct {
	*httptest.Server
	t *testing.T

	mu       sync.Mutex
	spans    []*tracepb.Span
	services []string // service.name of each resource
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	r := &otlpReceiver{t: t}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *otlpReceiver) serve(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" {
		r.t.Errorf("OTLP receiver: unexpected %s %s (%s)", req.Method, req.URL.Path, req.Header.Get("Content-Type"))
		http.Error(w, "want POST /v1/traces application/x-protobuf", http.StatusUnsupportedMediaType)
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var export collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &export); err != nil {
		r.t.Errorf("OTLP receiver: not an ExportTraceServiceRequest: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	for _, rs := range export.GetResourceSpans() {
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				r.services = append(r.services, kv.GetValue().GetStringValue())
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			r.spans = append(r.spans, ss.GetSpans()...)
		}
	}
	r.mu.Unlock()
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// trace returns the spans received so far of one trace.
func (r *otlpReceiver) trace(traceID string) []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range r.spans {
		if hex.EncodeToString(s.GetTraceId()) == traceID {
			out = append(out, s)
		}
	}
	return out
}

// TestTracingSpanTree: one POST /v1/actions with a W3C traceparent is one
// trace, exported over OTLP/HTTP to a real (in-process) receiver within
// the batch delay: the request's server span continues the caller's trace
// and parents api.Authenticate (with the key lookup under it),
// engine.Evaluate and the store write that appends the audit entry. No
// engine.Compile: the tenant was compiled when it was published, before
// the server reported ready.
func TestTracingSpanTree(t *testing.T) {
	t.Parallel()
	recv := newOTLPReceiver(t)
	s, c := startDev(t, Options{Env: []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + recv.URL,
		"OTEL_BSP_SCHEDULE_DELAY=100", // milliseconds
	}})
	const callerSpan = "00f067aa0ba902b7"
	r := wantStatus(t, c.Do(t, "POST", "/v1/actions", map[string]any{"action": "github.create_issue"}, "traceparent", traceparent), 200)
	wantField(t, r, parentTraceID, "trace_id")

	// The spans arrive while the server runs: OTEL_BSP_SCHEDULE_DELAY is
	// honoured, nothing waits for the shutdown flush.
	want := []string{"POST /v1/actions", "api.Authenticate", "store.TenantByKeyHash", "engine.Evaluate"}
	var spans []*tracepb.Span
	byName := map[string]*tracepb.Span{}
	ok := eventually(10*time.Second, func() bool {
		spans = recv.trace(parentTraceID)
		clear(byName)
		for _, sp := range spans {
			byName[sp.GetName()] = sp
		}
		for _, n := range want {
			if byName[n] == nil {
				return false
			}
		}
		return byName["store.InsertActionAudited"] != nil || byName["store.InsertAction"] != nil
	})
	if !ok {
		names := []string{}
		for _, sp := range spans {
			names = append(names, sp.GetName())
		}
		t.Fatalf("within 10s the receiver got spans %v of trace %s; want %v and the store write", names, parentTraceID, want)
	}

	id := func(b []byte) string { return hex.EncodeToString(b) }
	root := byName["POST /v1/actions"]
	if id(root.GetParentSpanId()) != callerSpan || root.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("request span: parent %s kind %v; want the caller's span %s, kind server", id(root.GetParentSpanId()), root.GetKind(), callerSpan)
	}
	write := byName["store.InsertActionAudited"]
	if write == nil {
		write = byName["store.InsertAction"] // a store without an audit chain
	}
	for _, tc := range []struct {
		child  *tracepb.Span
		parent *tracepb.Span
	}{
		{byName["api.Authenticate"], root},
		{byName["store.TenantByKeyHash"], byName["api.Authenticate"]},
		{byName["engine.Evaluate"], root},
		{write, root},
	} {
		if id(tc.child.GetParentSpanId()) != id(tc.parent.GetSpanId()) {
			t.Errorf("%s: parent span %s, want %s (%s)", tc.child.GetName(), id(tc.child.GetParentSpanId()), tc.parent.GetName(), id(tc.parent.GetSpanId()))
		}
	}
	if byName["engine.Compile"] != nil {
		t.Errorf("the first decision compiled: engine.Compile in its trace")
	}
	// Every span of the request is in the tree under the request span.
	known := map[string]bool{id(root.GetSpanId()): true}
	for range spans { // parents first, whatever the order they came in
		for _, sp := range spans {
			if known[id(sp.GetParentSpanId())] {
				known[id(sp.GetSpanId())] = true
			}
		}
	}
	for _, sp := range spans {
		if sp != root && !known[id(sp.GetSpanId())] {
			t.Errorf("span %s (parent %s) is not under the request span", sp.GetName(), id(sp.GetParentSpanId()))
		}
	}
	// The attributes the contract asks for on the evaluation (B4).
	attrs := map[string]bool{}
	for _, kv := range byName["engine.Evaluate"].GetAttributes() {
		attrs[kv.GetKey()] = true
	}
	for _, k := range []string{"tenant_id", "agent_id", "status", "cache_hit"} {
		if !attrs[k] {
			t.Errorf("engine.Evaluate lacks attribute %s", k)
		}
	}
	recv.mu.Lock()
	services := slices.Clone(recv.services)
	recv.mu.Unlock()
	if !slices.Contains(services, "gatehouse") {
		t.Errorf("resources' service.name %v, want gatehouse", services)
	}

	// A second decision on the same tenant compiles nothing.
	const second = "0af7651916cd43dd8448eb211c80319c"
	wantStatus(t, c.Do(t, "POST", "/v1/actions", map[string]any{"action": "github.create_issue"},
		"traceparent", "00-"+second+"-b7ad6b7169203331-01"), 200)
	s.Stop() // flushes the rest
	names := map[string]bool{}
	for _, sp := range recv.trace(second) {
		names[sp.GetName()] = true
	}
	if !names["engine.Evaluate"] || names["engine.Compile"] {
		t.Errorf("second decision: spans %v; want engine.Evaluate without engine.Compile (a cache hit)", names)
	}
}
