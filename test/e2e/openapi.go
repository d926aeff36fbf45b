package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/gatehouse-pdp/gatehouse/docs"
)

// The e2e suite checks every exchange with Gatehouse against
// docs/openapi.yaml (the embedded copy the server serves at
// /openapi.json), so the document cannot drift from what the server does:
//
//   - every response is validated: its status must be documented for the
//     operation, and its headers and body must match; a request to a path
//     or method the document does not describe must be answered 404 or 405
//     with the error envelope — anything else is an undocumented route;
//   - every request is validated (path, query, headers, security, body). A
//     request the document rejects counts as deliberately invalid — the
//     bad-input tests send many — and must then be refused with a 4xx
//     whose envelope is documented for the operation. A request the
//     document rejects but the server accepts (2xx) fails the test: either
//     the test sent something the document forbids and the server took
//     it, or the document is stricter than the server.

// Counts of validated exchanges, reported by TestMain.
var specStats struct {
	requests, invalid, responses, unrouted atomic.Int64

	mu sync.Mutex
	// why counts, per operation and first line of the validation error,
	// the requests the document rejected (printed with -v).
	why map[string]int
}

// noteInvalid records why a request did not match the document.
func noteInvalid(route *routers.Route, err error) {
	reason, _, _ := strings.Cut(err.Error(), "\n")
	k := route.Method + " " + route.Path + ": " + reason
	specStats.mu.Lock()
	defer specStats.mu.Unlock()
	if specStats.why == nil {
		specStats.why = map[string]int{}
	}
	specStats.why[k]++
}

// specChecker holds the loaded document and its router.
type specChecker struct {
	doc      *openapi3.T
	router   routers.Router
	envelope *openapi3.Schema
}

var loadSpec = sync.OnceValues(func() (*specChecker, error) {
	b, err := docs.OpenAPIJSON()
	if err != nil {
		return nil, err
	}
	doc, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		return nil, fmt.Errorf("load docs/openapi.yaml: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("docs/openapi.yaml: %w", err)
	}
	// Servers name the default address; the suite's servers listen on
	// random ports, so route on the path alone.
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route docs/openapi.yaml: %w", err)
	}
	// Bundles are binary: checked for their documented type, not decoded.
	openapi3filter.RegisterBodyDecoder("application/gzip", openapi3filter.FileBodyDecoder)
	openapi3filter.RegisterBodyDecoder("application/vnd.openpolicyagent.bundles", openapi3filter.FileBodyDecoder)
	openapi3filter.RegisterBodyDecoder("application/x-ndjson", openapi3filter.FileBodyDecoder)
	return &specChecker{doc: doc, router: router, envelope: doc.Components.Schemas["ErrorEnvelope"].Value}, nil
})

// tbKey carries the testing.TB of a request in its context, so a mismatch
// fails the (sub)test that sent it.
type tbKey struct{}

// WithTB returns ctx carrying t for the validating transport.
func WithTB(ctx context.Context, t testing.TB) context.Context {
	return context.WithValue(ctx, tbKey{}, t)
}

// SpecTransport is an http.RoundTripper that validates every exchange
// against docs/openapi.yaml (see above) and fails the test on a mismatch:
// the test of the request's context (WithTB), else t.
type SpecTransport struct {
	Base http.RoundTripper // nil: http.DefaultTransport
	T    testing.TB
	// report, when set, receives mismatches instead of T.Errorf (the
	// transport's own test).
	report func(format string, args ...any)
}

// NewSpecTransport returns a validating transport reporting to t.
func NewSpecTransport(t testing.TB, base http.RoundTripper) *SpecTransport {
	return &SpecTransport{Base: base, T: t}
}

// SpecClient returns an http.Client that validates every exchange.
func SpecClient(t testing.TB) *http.Client {
	return &http.Client{Timeout: requestTimeout, Transport: NewSpecTransport(t, nil)}
}

// RoundTrip sends req, then validates the request and the response.
func (v *SpecTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		reqBody = b
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	base := v.Base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	respBody, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	if problem := v.check(req, reqBody, resp, respBody); problem != "" {
		v.fail(req, "openapi: %s %s → %d: %s\nrequest body: %s\nresponse body: %s",
			req.Method, req.URL.RequestURI(), resp.StatusCode, problem, clip(reqBody), clip(respBody))
	}
	return resp, nil
}

// fail reports a mismatch to the test that sent req (WithTB), else to T.
func (v *SpecTransport) fail(req *http.Request, format string, args ...any) {
	if v.report != nil {
		v.report(format, args...)
		return
	}
	t := v.T
	if rt, ok := req.Context().Value(tbKey{}).(testing.TB); ok {
		t = rt
	}
	t.Helper()
	t.Errorf(format, args...)
}

// check returns what is wrong with the exchange, "" when nothing is.
func (v *SpecTransport) check(req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) string {
	sc, err := loadSpec()
	if err != nil {
		return err.Error()
	}
	ctx := context.Background()
	routed := routingRequest(req, reqBody)
	route, params, err := sc.router.FindRoute(routed)
	specStats.responses.Add(1)
	specStats.requests.Add(1)
	if err != nil {
		// Not a documented operation: only the envelope's "no such route"
		// answers are acceptable.
		specStats.unrouted.Add(1)
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
			return fmt.Sprintf("undocumented route (%v) answered %d", err, resp.StatusCode)
		}
		return checkEnvelope(sc, resp, respBody)
	}
	reqInput := &openapi3filter.RequestValidationInput{
		Request:    routed,
		PathParams: params,
		Route:      route,
		Options: &openapi3filter.Options{
			MultiError:         true,
			AuthenticationFunc: bearerPresent,
		},
	}
	reqErr := openapi3filter.ValidateRequest(ctx, reqInput)
	if reqErr != nil {
		specStats.invalid.Add(1)
		noteInvalid(route, reqErr)
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			return fmt.Sprintf("the request does not match the document, yet the server answered %d: %v", resp.StatusCode, reqErr)
		}
	}
	respInput := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: reqInput,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Options:                &openapi3filter.Options{MultiError: true, IncludeResponseStatus: true},
	}
	respInput.SetBodyBytes(respBody)
	if err := openapi3filter.ValidateResponse(ctx, respInput); err != nil {
		return "response does not match the document: " + err.Error()
	}
	if resp.StatusCode >= 400 {
		return checkEnvelope(sc, resp, respBody)
	}
	return ""
}

// checkEnvelope validates an error response against ErrorEnvelope, and
// that its status field is the HTTP status.
func checkEnvelope(sc *specChecker, resp *http.Response, body []byte) string {
	if resp.Request != nil && resp.Request.Method == http.MethodHead {
		return ""
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return "error response is not JSON: " + err.Error()
	}
	if err := sc.envelope.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		return "error response is not the envelope: " + err.Error()
	}
	if m, _ := v.(map[string]any); m["status"] != float64(resp.StatusCode) {
		return fmt.Sprintf("envelope status %v, HTTP status %d", m["status"], resp.StatusCode)
	}
	return ""
}

// bearerPresent admits a request that carries a bearer credential: whether
// the key is valid is the server's to say, and its 401 is then checked
// like any other response.
func bearerPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	scheme, token, ok := strings.Cut(in.RequestValidationInput.Request.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return errors.New("no bearer credential")
	}
	return nil
}

// routingRequest is req as the document's router should see it, with its
// body. Two routes take a path of several segments, which OpenAPI
// templates cannot express: POST /v1/actions/{connector}/{operation...}
// and GET /v1/data/{path...}; their tail becomes one escaped segment.
func routingRequest(req *http.Request, body []byte) *http.Request {
	r := req.Clone(req.Context())
	r.Body = io.NopCloser(bytes.NewReader(body))
	segs := strings.Split(strings.TrimPrefix(req.URL.Path, "/"), "/")
	join := func(head int) {
		tail := make([]string, 0, len(segs)-head)
		for _, s := range segs[head:] {
			tail = append(tail, url.PathEscape(s))
		}
		head2 := make([]string, head)
		for i, s := range segs[:head] {
			head2[i] = url.PathEscape(s)
		}
		u := *req.URL
		u.RawPath = "/" + strings.Join(head2, "/") + "/" + strings.Join(tail, "%2F")
		r.URL = &u
	}
	switch {
	case req.Method == http.MethodPost && len(segs) > 4 && segs[0] == "v1" && segs[1] == "actions":
		join(3)
	case req.Method == http.MethodGet && len(segs) > 3 && segs[0] == "v1" && segs[1] == "data":
		join(2)
	}
	return r
}

func clip(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "…"
	}
	return string(b)
}

// reportSpecStats prints how many exchanges were checked against the
// document, so a run shows the check happened.
func reportSpecStats() {
	fmt.Fprintf(os.Stderr, "openapi: checked %d requests (%d deliberately invalid, refused as documented; %d to undocumented routes, answered 404/405) and %d responses against docs/openapi.yaml\n",
		specStats.requests.Load(), specStats.invalid.Load(), specStats.unrouted.Load(), specStats.responses.Load())
	if !testing.Verbose() {
		return
	}
	specStats.mu.Lock()
	defer specStats.mu.Unlock()
	for _, k := range slices.Sorted(maps.Keys(specStats.why)) {
		fmt.Fprintf(os.Stderr, "openapi:   %3d × %s\n", specStats.why[k], k)
	}
}
