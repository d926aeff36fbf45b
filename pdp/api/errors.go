package api

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	mrand "math/rand/v2"
	"net/http"
	"runtime/debug"
	"slices"
	"time"
	"unsafe"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
	"github.com/gatehouse-pdp/gatehouse/pdp/lifecycle"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
)

// apiError is one response in the error envelope (docs/api.md §A1):
// {"error", "code", "message", "status"} plus Extra fields, where error is
// the human message for the generic codes (UNAUTHORIZED, VALIDATION_ERROR,
// NOT_FOUND, …), as Novyx's generic envelope has it, and the code itself
// for the namespaced ones (novyx_ram.v1.*, actions.not_found), as the
// Control API's errors have it. body is the one place an envelope is
// built; every error response goes through render. cause, if any, is
// logged and never sent.
type apiError struct {
	Status  int
	Code    string
	Message string
	Extra   map[string]any
	cause   error
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

func (e *apiError) Unwrap() error { return e.cause }

// body renders the envelope: the four fixed fields first, in the
// contract's order, then Extra sorted by key (Extra never overrides them).
func (e *apiError) body() json.RawMessage {
	var b bytes.Buffer
	b.WriteByte('{')
	field := func(k string, v any) {
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		kb, _ := encodeJSON(k)
		vb, err := encodeJSON(v)
		if err != nil {
			vb = []byte("null")
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	if pdp.IsGenericCode(e.Code) {
		field("error", e.Message)
	} else {
		field("error", e.Code)
	}
	field("code", e.Code)
	field("message", e.Message)
	field("status", e.Status)
	for _, k := range slices.Sorted(maps.Keys(e.Extra)) {
		switch k {
		case "error", "code", "message", "status":
		default:
			field(k, e.Extra[k])
		}
	}
	b.WriteByte('}')
	return b.Bytes()
}

func newError(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Gin context keys.
const (
	ctxValidationCode = "gatehouse.validation_code"
)

// policyRoutes marks a route whose 400s are invalid_policy rather than
// VALIDATION_ERROR (docs/api.md §A1, A6).
func policyRoutes(c *gin.Context) {
	c.Set(ctxValidationCode, pdp.CodeInvalidPolicy)
}

// classify maps an error of any layer to its response: the one place where
// error classes meet HTTP statuses. Unknown errors are 500 INTERNAL with a
// fixed message; their text is only logged.
func classify(c *gin.Context, err error) *apiError {
	var (
		ae  *apiError
		te  *registry.TierError
		roe *registry.ReadOnlyError
		ve  *pdp.ValidationError
		mbe *http.MaxBytesError
	)
	var (
		rights *registry.RightsError
		ide    *lifecycle.IdentityError
	)
	var (
		tooLarge    *lifecycle.ParamsTooLargeError
		textLarge   *lifecycle.ActionTextTooLargeError
		unavailable *lifecycle.UnavailableError
	)
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &tooLarge):
		return &apiError{Status: http.StatusRequestEntityTooLarge, Code: pdp.CodePayloadTooLarge, Message: tooLarge.Error(), cause: err}
	case errors.As(err, &textLarge):
		return &apiError{Status: http.StatusRequestEntityTooLarge, Code: pdp.CodePayloadTooLarge, Message: textLarge.Error(), cause: err}
	case errors.As(err, &unavailable):
		// The cause was logged by the lifecycle; the action is recorded
		// as blocked under its ID.
		return &apiError{Status: http.StatusServiceUnavailable, Code: pdp.CodeEvaluationUnavailable,
			Message: "Policy evaluation is unavailable; the action was not allowed",
			Extra:   map[string]any{"action_id": unavailable.ActionID, "trace_id": unavailable.TraceID}}
	case errors.Is(err, engine.ErrOverloaded):
		// Refused before evaluating because engine.Config.MaxConcurrent
		// evaluations were running: the code agents already treat as "not
		// allowed, try again", with Retry-After: 1. Under overload,
		// queueing would only make every decision late. Not evaluated, so
		// not recorded and without an action_id.
		c.Header("Retry-After", "1")
		return &apiError{Status: http.StatusServiceUnavailable, Code: pdp.CodeEvaluationUnavailable,
			Message: "Gatehouse is evaluating as many actions as it may at once; this one was neither evaluated nor allowed. Retry shortly."}
	case errors.Is(err, lifecycle.ErrActionNotFound):
		return &apiError{Status: http.StatusNotFound, Code: pdp.CodeActionNotFound,
			Message: fmt.Sprintf("Action '%s' not found", truncate(c.Param("id"), maxActionIDLen)), cause: err}
	case errors.Is(err, lifecycle.ErrGovernanceUnavailable):
		return &apiError{Status: http.StatusNotImplemented, Code: pdp.CodeGovernanceUnavailable, Message: "The store does not keep approvals, the audit chain or the dashboard", cause: err}
	case errors.As(err, &mbe):
		return &apiError{Status: http.StatusRequestEntityTooLarge, Code: pdp.CodePayloadTooLarge,
			Message: fmt.Sprintf("request body exceeds %d bytes", mbe.Limit), cause: err}
	case errors.Is(err, registry.ErrUnauthorized):
		return &apiError{Status: http.StatusUnauthorized, Code: pdp.CodeUnauthorized, Message: "Invalid or missing API key", cause: err}
	case errors.As(err, &te):
		return tierError(te)
	case errors.As(err, &roe):
		return &apiError{Status: http.StatusConflict, Code: pdp.CodeReadOnly, Message: roe.Error(), cause: err}
	case errors.Is(err, registry.ErrCannotDeleteBuiltin):
		return &apiError{Status: http.StatusForbidden, Code: pdp.CodeCannotDeleteBuiltin, Message: "Built-in policies cannot be deleted", cause: err}
	case errors.Is(err, registry.ErrTenantNotFound):
		return &apiError{Status: http.StatusNotFound, Code: pdp.CodeNotFound, Message: "Tenant not found", cause: err}
	case errors.Is(err, registry.ErrTenantExists):
		return &apiError{Status: http.StatusConflict, Code: pdp.CodeConflict, Message: "A tenant with this id already exists", cause: err}
	case errors.Is(err, registry.ErrKeyNotFound):
		return &apiError{Status: http.StatusNotFound, Code: pdp.CodeNotFound, Message: "API key not found", cause: err}
	case errors.As(err, &rights):
		return &apiError{Status: http.StatusForbidden, Code: pdp.CodeForbidden, Message: rights.Error(), cause: err}
	case errors.As(err, &ide):
		return &apiError{Status: http.StatusForbidden, Code: pdp.CodeAgentMismatch, Message: ide.Error(), Extra: ide.Extra(), cause: err}
	case errors.Is(err, registry.ErrKeysUnavailable):
		return &apiError{Status: http.StatusNotImplemented, Code: pdp.CodeGovernanceUnavailable, Message: "The store does not keep the audit chain, which key operations are recorded on", cause: err}
	case errors.Is(err, pdp.ErrEvaluationFailed):
		return &apiError{Status: http.StatusServiceUnavailable, Code: pdp.CodeEvaluationUnavailable,
			Message: "Policy evaluation is unavailable; the action was not allowed", cause: err}
	case errors.As(err, &ve):
		code := c.GetString(ctxValidationCode)
		if code == "" {
			code = pdp.CodeValidation
		}
		// err, not ve: a pdp.ValidationErrors names every problem.
		return &apiError{Status: http.StatusBadRequest, Code: code, Message: err.Error(), cause: err}
	}
	return &apiError{Status: http.StatusInternalServerError, Code: pdp.CodeInternal, Message: "Internal server error", cause: err}
}

func tierError(te *registry.TierError) *apiError {
	e := &apiError{Status: http.StatusForbidden, Code: te.Code, Message: te.Error(), cause: te}
	if te.Code == pdp.CodeLimitExceeded {
		e.Extra = map[string]any{"limit": te.Limit, "current": te.Current}
	} else {
		e.Extra = map[string]any{"feature": string(te.Feature), "required_tier": string(te.RequiredTier), "current_tier": string(te.CurrentTier)}
	}
	return e
}

// fail ends the request with err; the errors middleware renders it.
func fail(c *gin.Context, err error) {
	_ = c.Error(err)
	c.Abort()
}

// errors is the one error middleware: it renders the last error a handler
// failed with, recovers panics as 500 INTERNAL (logging the cause and the
// stack with the request id, sending nothing of it), and logs every
// request.
func (s *server) errors(c *gin.Context) {
	start := startOf(c)
	defer func() {
		if rec := recover(); rec != nil {
			if rec == http.ErrAbortHandler { //nolint:errorlint // sentinel panic value, compared as net/http does
				panic(rec)
			}
			s.log.ErrorContext(c.Request.Context(), "panic serving request",
				slog.String("request_id", requestIDOf(c)),
				slog.Any("panic", rec),
				slog.String("stack", string(debug.Stack())))
			c.Abort()
			if !c.Writer.Written() {
				s.render(c, &apiError{Status: http.StatusInternalServerError, Code: pdp.CodeInternal, Message: "Internal server error"})
			}
		}
		s.logRequest(c, start)
	}()
	c.Next()
	if len(c.Errors) > 0 && !c.Writer.Written() {
		s.render(c, classify(c, c.Errors.Last().Err))
	}
}

func (s *server) render(c *gin.Context, e *apiError) {
	if e.Status >= 500 && e.cause != nil {
		s.log.ErrorContext(c.Request.Context(), "request failed",
			slog.String("request_id", requestIDOf(c)),
			slog.String("code", e.Code),
			slog.Any("error", e.cause))
	}
	if e.Status == http.StatusUnauthorized {
		c.Header("WWW-Authenticate", `Bearer realm="gatehouse"`)
	}
	writeJSON(c, e.Status, e.body())
}

func (s *server) logRequest(c *gin.Context, start time.Time) {
	status := c.Writer.Status()
	level := slog.LevelDebug
	// A 503 from /health while warming is the server's expected state
	// after a start (progress is logged at info), not a failure.
	if status >= 500 && !(status == http.StatusServiceUnavailable && c.FullPath() == "/health") {
		level = slog.LevelError
	}
	ctx := c.Request.Context()
	if !s.log.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("request_id", requestIDOf(c)),
		slog.String("method", c.Request.Method),
		slog.String("route", c.FullPath()),
		slog.Int("status", status),
		slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
	}
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		attrs = append(attrs, slog.String("trace_id", sc.TraceID().String()))
	}
	if t, ok := tenantOf(c); ok {
		attrs = append(attrs, slog.String("tenant_id", t.ID))
	}
	s.log.LogAttrs(ctx, level, "request", attrs...)
}

func (s *server) noRoute(c *gin.Context) {
	fail(c, newError(http.StatusNotFound, pdp.CodeNotFound, "No route %s %s", c.Request.Method, truncate(c.Request.URL.Path, 200)))
}

func (s *server) noMethod(c *gin.Context) {
	fail(c, newError(http.StatusMethodNotAllowed, pdp.CodeMethodNotAllowed, "Method %s is not allowed on %s (allowed: %s)",
		c.Request.Method, truncate(c.Request.URL.Path, 200), c.Writer.Header().Get("Allow")))
}

// requestID takes a well-formed X-Request-Id from the client or makes one,
// and echoes it; logs and the request span carry it.
func (s *server) requestID(c *gin.Context) {
	st := &requestState{ResponseWriter: c.Writer, start: time.Now()}
	id := c.GetHeader("X-Request-Id")
	if !validRequestID(id) {
		// A correlation id, not a secret: a fast random source will do.
		id = st.makeID(mrand.Uint64())
	}
	st.id = id
	st.header[0] = id
	c.Writer.Header()["X-Request-Id"] = st.header[:]
	c.Writer = st
	c.Next()
}

// requestState is what the middleware chain keeps of one request, in one
// allocation: its id (and the header value answering it, a full slice,
// so an Add copies rather than writes into it) and, once authenticate
// accepted its key, its identity.
//
// It rides on the request as its gin.ResponseWriter, passing every call
// on to the writer it wraps: gin drops a context's Keys map after each
// request, so state kept with c.Set costs a new map (two allocations)
// on every one, and a context value would cost a copy of the request
// besides. gin sets its own writer back before the next request, so the
// wrapper is never seen by another one; nothing else in the chain
// replaces c.Writer (stateOf would then find no state: the request
// would have no id and no identity, and its routes would answer 401).
type requestState struct {
	gin.ResponseWriter
	id       string
	idText   [16]byte // a generated id's text; id points into it
	header   [1]string
	identity registry.Identity
	authed   bool
	// bodyLimit is the most readBody reads of the body (0: no limit).
	bodyLimit int64
	// start is when the request reached the chain: the one reading of
	// the clock its metrics and its log line both measure from.
	start time.Time
}

// startOf is when the request reached the middleware chain (now, before
// requestID ran).
func startOf(c *gin.Context) time.Time {
	if st := stateOf(c); st != nil {
		return st.start
	}
	return time.Now()
}

// Unwrap returns the wrapped writer, for http.ResponseController.
func (st *requestState) Unwrap() http.ResponseWriter { return st.ResponseWriter }

// makeID writes v as 16 lowercase hex digits into st and returns them as a
// string sharing st's memory (no allocation of its own): idText is
// written once, here, before the string exists, and never again.
func (st *requestState) makeID(v uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	hex.Encode(st.idText[:], b[:])
	return unsafe.String(&st.idText[0], len(st.idText))
}

// stateOf returns the request's state; nil before requestID ran.
func stateOf(c *gin.Context) *requestState {
	st, _ := c.Writer.(*requestState)
	return st
}

// requestIDOf is the request's id ("" before requestID ran).
func requestIDOf(c *gin.Context) string {
	if st := stateOf(c); st != nil {
		return st.id
	}
	return ""
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// limitBody refuses a declared length over the limit at once and caps what
// handlers can read otherwise (reading past it fails with
// *http.MaxBytesError, rendered as 413). It also tags the request span.
//
// A body of a declared length is bounded by it already (net/http reads
// no further), so only a body of unknown length (chunked) is wrapped in
// http.MaxBytesReader, which also closes the connection rather than
// drain an oversized body; readBody checks the limit on every body, so a
// request made in-process with a body longer than it says is bounded
// too.
func (s *server) limitBody(c *gin.Context) {
	if span := trace.SpanFromContext(c.Request.Context()); span.IsRecording() {
		span.SetAttributes(attribute.String("request_id", requestIDOf(c)))
	}
	if c.Request.ContentLength > s.cfg.MaxBodyBytes {
		fail(c, &http.MaxBytesError{Limit: s.cfg.MaxBodyBytes})
		return
	}
	st := stateOf(c)
	if st != nil {
		st.bodyLimit = s.cfg.MaxBodyBytes
	}
	if c.Request.Body != nil && (c.Request.ContentLength < 0 || st == nil) {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBodyBytes)
	}
	c.Next()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
