package api

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/ratelimit"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// Operating the API: metrics, per-key rate limits (docs/api.md §A1), and the
// answer to the engine's bound on concurrent evaluations. Everything here
// refuses work before it is done, or counts it after; none of it changes a
// decision.

// Metrics is what the API reports to and serves at GET /metrics (no
// auth); pdp/metrics implements it. Its methods must be fast and safe for
// concurrent use.
type Metrics interface {
	// Handler serves the metrics in the Prometheus text format.
	Handler() http.Handler
	// ObserveRequest is called once per answered request. route is the
	// matched route's pattern (gin's FullPath, "/v1/actions/:id"), never
	// the raw URL; "" when no route matched.
	ObserveRequest(route, method string, status int, took time.Duration)
	// ObserveRejection counts a request refused before any work: reason
	// "rate_limited" (429). (Evaluations the engine refuses as overloaded
	// are counted by its observer.)
	ObserveRejection(reason string)
	// ObserveBundleDownload counts one bundle request by the HTTP status
	// it was answered with; the bundle route calls observeBundleDownload.
	ObserveBundleDownload(status int)
}

// rejectRateLimited is the reason of Metrics.ObserveRejection for a 429.
const rejectRateLimited = "rate_limited"

// Limits are the API's request limits. The zero value limits nothing.
// (The bound on concurrent evaluations is the engine's:
// engine.Config.MaxConcurrent; the API turns its refusals into 503s.)
type Limits struct {
	// RateLimits is the default request rate limit of each tier, applied
	// per API key to every request authenticated with one (docs/api.md §A1).
	// A tier not listed, or with 0 requests per second, is unlimited: the
	// contract's default is off. A tenant's own store.Tenant.RateLimit
	// (admin API: PATCH /v1/admin/tenants/{id} {"rate_limit": ...})
	// overrides its tier's.
	RateLimits map[store.Tier]store.RateLimit
}

func (l Limits) validate() error {
	var errs []error
	for _, tier := range slices.Sorted(maps.Keys(l.RateLimits)) {
		rl := l.RateLimits[tier]
		if !tier.Valid() {
			errs = append(errs, fmt.Errorf("api rate limit: unknown tier %q", tier))
		}
		if err := rl.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("api rate limit of tier %s: %w", tier, err))
		}
	}
	return errors.Join(errs...)
}

// ops holds the state of the guards.
type ops struct {
	metrics Metrics // nil: no metrics, no /metrics route
	limiter *ratelimit.Limiter
	rates   map[store.Tier]store.RateLimit
	now     func() time.Time
}

func newOps(l Limits, m Metrics) ops {
	return ops{metrics: m, limiter: ratelimit.New(0), rates: l.RateLimits, now: time.Now}
}

// opsRoutes registers GET /metrics when the API has metrics.
func (s *server) opsRoutes(r *gin.Engine) {
	if s.metrics == nil {
		return
	}
	h := s.metrics.Handler()
	r.GET("/metrics", func(c *gin.Context) { h.ServeHTTP(c.Writer, c.Request) })
}

// observeRequest counts every request once it is answered. It runs
// outside the errors middleware, so the status it sees is the one sent.
func (s *server) observeRequest(c *gin.Context) {
	if s.metrics == nil {
		c.Next()
		return
	}
	start := startOf(c)
	c.Next()
	s.metrics.ObserveRequest(c.FullPath(), c.Request.Method, c.Writer.Status(), time.Since(start))
}

// observeBundleDownload counts a bundle request answered with status.
// The bundle route calls it after serving.
func (s *server) observeBundleDownload(status int) {
	if s.metrics != nil {
		s.metrics.ObserveBundleDownload(status)
	}
}

func (s *server) observeRejection(reason string) {
	if s.metrics != nil {
		s.metrics.ObserveRejection(reason)
	}
}

// rateLimit returns the limit that applies to t's keys: its own, else its
// tier's default, else none.
func (s *server) rateLimit(t store.Tenant) ratelimit.Limit {
	rl, ok := s.rates[t.Tier]
	if t.RateLimit != nil {
		rl, ok = *t.RateLimit, true
	}
	if !ok {
		return ratelimit.Limit{}
	}
	return ratelimit.Limit{RequestsPerSecond: rl.RequestsPerSecond, Burst: rl.Burst}
}

// allowRate takes a token from the bucket of the request's API key, or
// fails the request with 429 RATE_LIMITED, its usage and Retry-After
// (whole seconds, at least 1). authenticate calls it, so every route
// behind an API key is limited; the admin token is not.
func (s *server) allowRate(c *gin.Context, keyHash string, t store.Tenant) bool {
	lim := s.rateLimit(t)
	if lim.Unlimited() {
		return true
	}
	// Buckets are keyed by the key's hash: the table never holds a secret.
	r := s.limiter.Allow(keyHash, lim, s.now())
	if r.Allowed {
		return true
	}
	retry := max(1, int(math.Ceil(r.RetryAfter.Seconds())))
	c.Header("Retry-After", strconv.Itoa(retry))
	s.observeRejection(rejectRateLimited)
	fail(c, &apiError{
		Status: http.StatusTooManyRequests,
		Code:   pdp.CodeRateLimited,
		Message: fmt.Sprintf("Rate limit exceeded: %s requests per second with bursts of %d per API key on plan '%s'; retry in %d s",
			strconv.FormatFloat(lim.RequestsPerSecond, 'f', -1, 64), lim.Burst, t.Tier, retry),
		Extra: map[string]any{"usage": map[string]any{
			"current":   r.Current,
			"limit":     r.Limit,
			"plan":      string(t.Tier),
			"resets_at": timestamp(r.ResetAt),
		}},
	})
	return false
}
