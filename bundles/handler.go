package bundles

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// Content types of the bundle service protocol (OPA v1/download).
const (
	// ContentTypeGzip answers a request that did not ask to long poll.
	ContentTypeGzip = "application/gzip"
	// ContentTypeLongPoll answers one that did; it tells OPA that the server
	// supports long polling, so OPA keeps sending wait=N.
	ContentTypeLongPoll = "application/vnd.openpolicyagent.bundles"
)

// DefaultMaxWait caps the wait=N a client may ask for.
const DefaultMaxWait = 300 * time.Second

// PathSuffix ends every bundle path: /v1/bundles/{tenant}.tar.gz.
const PathSuffix = ".tar.gz"

// StatusError is an error with the response it should produce. Authorize
// and Snapshot may return one (or wrap one) to choose the status, code and
// message; other errors are classified by the handler.
type StatusError struct {
	Status  int    // HTTP status
	Code    string // contract error code, e.g. pdp.CodeUnauthorized
	Message string // sent to the client
	Err     error  // logged, never sent
}

// Error returns the code and message (and the cause, if any).
func (e *StatusError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %s: %v", e.Status, e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

// Unwrap returns the cause.
func (e *StatusError) Unwrap() error { return e.Err }

// HandlerConfig wires the bundle endpoint.
type HandlerConfig struct {
	// Cache builds and holds the bundles; required.
	Cache *Cache
	// Authorize admits the request for tenant (a key of that tenant, or the
	// admin token); required. An error is 401 UNAUTHORIZED unless it is or
	// wraps a *StatusError.
	Authorize func(r *http.Request, tenant string) error
	// Snapshot returns the tenant's policies as they are now; required. It
	// must see every write its server has acknowledged (read-after-write),
	// or a long poll woken by Notify would find nothing new. An error is 404
	// NOT_FOUND when it wraps pdp.ErrNotFound, a *StatusError's response, or
	// else 500 INTERNAL.
	Snapshot func(ctx context.Context, tenant string) (pdp.TenantPolicies, error)
	// MaxWait caps a long poll (Prefer: wait=N); default DefaultMaxWait.
	// The HTTP server's WriteTimeout must be longer.
	MaxWait time.Duration
	// Logger receives the causes of 500 responses; default slog.Default().
	Logger *slog.Logger
	// Drain, when closed, ends every held long poll at once with 304, as
	// if its wait had passed: a server shutting down closes it (e.g. from
	// http.Server.RegisterOnShutdown) so it need not wait out MaxWait.
	Drain <-chan struct{}
	// Envelope, when set, builds the body of an error response; the API
	// passes the one that builds all of its envelopes. Without it the
	// handler builds the same envelope itself (docs/api.md §A1).
	Envelope func(status int, code, message string) []byte
}

// NewHandler returns the handler of GET (and HEAD) /v1/bundles/{tenant}.tar.gz,
// speaking the protocol of OPA's bundle plugin (OPA-NOTES §2):
//   - 200 with the tarball and its ETag; Content-Type application/gzip, or
//     application/vnd.openpolicyagent.bundles when the request asked to
//     long poll;
//   - If-None-Match (one ETag or a comma-separated list, W/ prefixes
//     ignored, * matching anything) naming the current ETag: 304 with the
//     ETag, at once without a wait preference;
//   - Prefer: modes=snapshot,delta;wait=N (N seconds, capped at MaxWait):
//     the 304 is held until the tenant's revision changes (200 with the new
//     bundle) or N seconds pass (304);
//   - errors in the contract's envelope {"error","code","message","status"}.
//
// The tenant is the last path segment less ".tar.gz", path-unescaped, so the
// handler can be mounted under any router.
func NewHandler(cfg HandlerConfig) (http.Handler, error) {
	if cfg.Cache == nil || cfg.Authorize == nil || cfg.Snapshot == nil {
		return nil, errors.New("bundle handler: Cache, Authorize and Snapshot are required")
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = DefaultMaxWait
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &handler{cfg: cfg}, nil
}

type handler struct {
	cfg HandlerConfig
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		h.fail(w, r, &StatusError{Status: http.StatusMethodNotAllowed, Code: pdp.CodeMethodNotAllowed, Message: "Method not allowed"})
		return
	}
	tenant, ok := tenantFromPath(r.URL)
	if !ok {
		h.fail(w, r, &StatusError{Status: http.StatusNotFound, Code: pdp.CodeNotFound, Message: "Not found"})
		return
	}
	if err := h.cfg.Authorize(r, tenant); err != nil {
		var se *StatusError
		if !errors.As(err, &se) {
			err = &StatusError{Status: http.StatusUnauthorized, Code: pdp.CodeUnauthorized, Message: "Invalid or missing API key", Err: err}
		}
		h.fail(w, r, err)
		return
	}

	wait := preferWait(r.Header.Get("Prefer"), h.cfg.MaxWait)
	contentType := ContentTypeGzip
	if wait > 0 {
		contentType = ContentTypeLongPoll
	}
	deadline := time.Now().Add(wait)
	ctx := r.Context()
	waitCtx := ctx
	if h.cfg.Drain != nil && wait > 0 {
		var cancel context.CancelFunc
		waitCtx, cancel = context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-h.cfg.Drain:
				cancel()
			case <-waitCtx.Done():
			}
		}()
	}
	for {
		// Watch before reading: a write after the read closes changed.
		changed := h.cfg.Cache.Watch(tenant)
		b, err := h.current(ctx, tenant)
		if err != nil {
			if ctx.Err() == nil {
				h.fail(w, r, err)
			}
			return
		}
		if !etagMatches(r.Header.Get("If-None-Match"), b.ETag) {
			h.send(w, r, b, contentType)
			return
		}
		// Each pass needs a Notify, so a write that leaves the bundle as it
		// was costs one read, never a busy loop.
		if !waitFor(waitCtx, changed, time.Until(deadline)) {
			if ctx.Err() != nil {
				return // the client left
			}
			w.Header().Set("ETag", b.ETag)
			w.Header().Set("Cache-Control", "private, no-cache")
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
}

// current returns the tenant's bundle at its current revision.
func (h *handler) current(ctx context.Context, tenant string) (*Built, error) {
	tp, err := h.cfg.Snapshot(ctx, tenant)
	var se *StatusError
	switch {
	case err == nil:
	case errors.As(err, &se):
		return nil, err
	case errors.Is(err, pdp.ErrNotFound):
		return nil, &StatusError{Status: http.StatusNotFound, Code: pdp.CodeNotFound, Message: "Tenant not found", Err: err}
	default:
		return nil, fmt.Errorf("snapshot of tenant %q: %w", tenant, err)
	}
	if tp.TenantID != tenant {
		return nil, fmt.Errorf("snapshot of tenant %q returned tenant %q", tenant, tp.TenantID)
	}
	b, err := h.cfg.Cache.Get(ctx, tp)
	if err != nil {
		return nil, fmt.Errorf("build bundle of tenant %q: %w", tenant, err)
	}
	return b, nil
}

func (h *handler) send(w http.ResponseWriter, r *http.Request, b *Built, contentType string) {
	hdr := w.Header()
	hdr.Set("Content-Type", contentType)
	hdr.Set("ETag", b.ETag)
	hdr.Set("Cache-Control", "private, no-cache")
	hdr.Set("Content-Length", strconv.Itoa(len(b.Bytes)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b.Bytes)
	}
}

// fail writes err in the contract's error envelope; errors that are not a
// *StatusError are 500 INTERNAL, their text logged and never sent.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var se *StatusError
	if !errors.As(err, &se) {
		se = &StatusError{Status: http.StatusInternalServerError, Code: pdp.CodeInternal, Message: "Internal server error", Err: err}
	}
	if se.Status >= 500 {
		h.cfg.Logger.ErrorContext(r.Context(), "bundle request failed",
			slog.String("path", r.URL.Path), slog.String("code", se.Code), slog.Any("error", err))
	}
	if se.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse"`)
	}
	envelope := h.cfg.Envelope
	if envelope == nil {
		envelope = defaultEnvelope
	}
	b := envelope(se.Status, se.Code, se.Message)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(se.Status)
	_, _ = w.Write(b)
}

// defaultEnvelope is {"error","code","message","status"} in that order,
// error being the message for a generic code and the code otherwise.
func defaultEnvelope(status int, code, message string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	errField := code
	if pdp.IsGenericCode(code) {
		errField = message
	}
	_ = enc.Encode(struct {
		Error   string `json:"error"`
		Code    string `json:"code"`
		Message string `json:"message"`
		Status  int    `json:"status"`
	}{errField, code, message, status})
	return b.Bytes()
}

// tenantFromPath returns the last segment of u's path less PathSuffix,
// unescaped.
func tenantFromPath(u *url.URL) (string, bool) {
	p := u.EscapedPath()
	seg := p[strings.LastIndexByte(p, '/')+1:]
	name, ok := strings.CutSuffix(seg, PathSuffix)
	if !ok || name == "" {
		return "", false
	}
	tenant, err := url.PathUnescape(name)
	if err != nil || checkTenantID(tenant) != nil {
		return "", false
	}
	return tenant, true
}

// waitPref finds the wait preference (RFC 7240) in a Prefer header. OPA
// sends "modes=snapshot,delta;wait=N", where the comma belongs to modes, so
// the header is not split on commas first.
var waitPref = regexp.MustCompile(`(?i)(?:^|[;,\s])wait\s*=\s*"?([0-9]{1,9})"?`)

// preferWait returns the long-poll wait the Prefer header asks for, at most
// limit; 0 for none.
func preferWait(prefer string, limit time.Duration) time.Duration {
	m := waitPref.FindStringSubmatch(prefer)
	if m == nil {
		return 0
	}
	n, err := strconv.Atoi(m[1])
	if err != nil || n <= 0 {
		return 0
	}
	return min(time.Duration(n)*time.Second, limit)
}

// etagMatches reports whether the If-None-Match header names etag, using
// the weak comparison RFC 9110 prescribes for If-None-Match.
func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	want := strings.TrimPrefix(etag, "W/")
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == want {
			return true
		}
	}
	return false
}
