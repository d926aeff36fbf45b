// Package api serves the Novyx Control API (and Gatehouse's admin API) over
// HTTP with gin: it authenticates, bounds and decodes requests, calls the
// registry, the engine and the store, and renders every failure as the
// contract's error envelope.
package api

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/gatehouse-pdp/gatehouse/bundles"
	"github.com/gatehouse-pdp/gatehouse/pdp/decisionlog"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
	"github.com/gatehouse-pdp/gatehouse/pdp/lifecycle"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// Bounds of Config.
const (
	DefaultMaxBodyBytes = 1 << 20
	minMaxBodyBytes     = 64 << 10 // an action's params alone may be 64 KiB
	maxMaxBodyBytes     = 64 << 20
	minAdminTokenLen    = 16
	maxAdminTokenLen    = 1024
)

// Config holds the API's settings. The zero value of a field means its
// default; Validate reports every problem at once.
type Config struct {
	// AdminToken enables the admin API (docs/api.md §B2) when set; without it
	// every /v1/admin route answers 404. At least 16 characters.
	AdminToken string
	// MaxBodyBytes bounds every request body (default 1 MiB, 64 KiB..64
	// MiB); a larger one is refused with 413 PAYLOAD_TOO_LARGE.
	MaxBodyBytes int64
	// ServiceName is the server name on request spans (default "gatehouse").
	ServiceName string
	// RecordTimeout bounds storing an action after its decision (default
	// 5s). The write is detached from the request, so a client that hangs
	// up cannot leave a decision unrecorded. Actions recorded together
	// share a deadline (lifecycle/deadline.go), so an action's bound is
	// between RecordTimeout minus a sixteenth and RecordTimeout.
	RecordTimeout time.Duration
	// Limits are the per-key rate limits (ops.go).
	Limits Limits
}

// Defaults returns c with every zero field set to its default.
func (c Config) Defaults() Config {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.ServiceName == "" {
		c.ServiceName = "gatehouse"
	}
	if c.RecordTimeout == 0 {
		c.RecordTimeout = 5 * time.Second
	}
	return c
}

// Validate reports every invalid setting of c (after Defaults).
func (c Config) Validate() error {
	var errs []error
	if c.MaxBodyBytes < minMaxBodyBytes || c.MaxBodyBytes > maxMaxBodyBytes {
		errs = append(errs, fmt.Errorf("api max body bytes %d: must be %d..%d", c.MaxBodyBytes, minMaxBodyBytes, maxMaxBodyBytes))
	}
	if c.AdminToken != "" {
		if n := len(c.AdminToken); n < minAdminTokenLen || n > maxAdminTokenLen {
			errs = append(errs, fmt.Errorf("api admin token: must be %d..%d characters, got %d", minAdminTokenLen, maxAdminTokenLen, n))
		}
		if strings.ContainsFunc(c.AdminToken, func(r rune) bool { return r <= ' ' || r > '~' }) {
			errs = append(errs, errors.New("api admin token: must be printable ASCII without spaces"))
		}
	}
	if c.RecordTimeout < 0 || c.RecordTimeout > time.Minute {
		errs = append(errs, fmt.Errorf("api record timeout %s: must be between 0 and 1m", c.RecordTimeout))
	}
	errs = append(errs, c.Limits.validate())
	return errors.Join(errs...)
}

// Deps are the collaborators the API is wired with. Registry, Engine and
// Store are required; Logger defaults to discarding, TracerProvider to the
// global one (a no-op unless the program installed one).
type Deps struct {
	Registry       *registry.Registry
	Engine         *engine.Engine
	Store          store.Store
	Logger         *slog.Logger
	TracerProvider trace.TracerProvider
	// Metrics, when set, is told about every request and served at GET
	// /metrics (ops.go).
	Metrics Metrics
	// Bundles, when set, serves GET /v1/bundles/{tenant}.tar.gz from this
	// cache (bundles.go); without it the route answers 404.
	Bundles *bundles.Cache
	// BundleDrain, when closed, ends held bundle long polls (shutdown).
	BundleDrain <-chan struct{}
	// DecisionLog, when set, is handed every decision (decisionlog.go).
	DecisionLog *decisionlog.Logger
	// HealthDetail, when set, adds its fields to GET /health's body (a
	// read-only server reports the tenants its bundles cannot serve). It
	// must answer quickly: load balancers probe /health often.
	HealthDetail func(ctx context.Context) map[string]any
	// Warming, when set, reports a server that is still compiling the
	// tenants it started with: while warming is true GET /health answers
	// 503 {"status":"warming"} with the counts (the server is live but not
	// ready). It must answer quickly.
	Warming func() (warming bool, compiled, tenants int)
	// Now is the clock of approvals and the dashboard (default time.Now);
	// tests inject one so approval modes' waiting times need no sleeping.
	Now func() time.Time
	// Sleep is how an early solo-mode approval is held (default a timer;
	// see lifecycle.Deps.Sleep); tests inject one that moves their clock.
	Sleep func(ctx context.Context, d time.Duration) error
}

// isNoop reports whether tp records nothing (tracing is off).
func isNoop(tp trace.TracerProvider) bool {
	_, ok := tp.(noop.TracerProvider)
	return ok
}

// continueTrace is the request span middleware when tracing is off: an
// incoming W3C traceparent is carried into the request's context (so the
// action's trace_id is the caller's), and nothing else is done.
func continueTrace(c *gin.Context) {
	if c.Request.Header.Get("Traceparent") != "" {
		ctx := propagation.TraceContext{}.Extract(c.Request.Context(), propagation.HeaderCarrier(c.Request.Header))
		c.Request = c.Request.WithContext(ctx)
	}
	c.Next()
}

// server holds what the handlers share.
type server struct {
	cfg          Config
	reg          *registry.Registry
	eng          *engine.Engine
	st           store.Store
	log          *slog.Logger
	adminHash    [sha256.Size]byte
	bundles      http.Handler // nil: no bundle route
	gov          governance   // approvals, audit, dashboard (governance.go)
	life         *lifecycle.Service
	tracing      bool // false: the tracer provider is a no-op one
	healthDetail func(ctx context.Context) map[string]any
	warming      func() (warming bool, compiled, tenants int)

	ops           // metrics and rate limits (ops.go)
	observability // spans and the decision log (decisionlog.go)
}

// New returns the HTTP handler of the API.
func New(cfg Config, deps Deps) (http.Handler, error) {
	cfg = cfg.Defaults()
	var errs []error
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if deps.Registry == nil || deps.Engine == nil || deps.Store == nil {
		errs = append(errs, errors.New("api: Registry, Engine and Store are required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	s := &server{
		cfg: cfg,
		reg: deps.Registry,
		eng: deps.Engine,
		st:  deps.Store,
		log: deps.Logger,

		healthDetail: deps.HealthDetail,
		warming:      deps.Warming,
	}
	if cfg.AdminToken != "" {
		s.adminHash = sha256.Sum256([]byte(cfg.AdminToken))
	}
	s.ops = newOps(cfg.Limits, deps.Metrics)
	s.observability = newObservability(deps)
	s.gov = newGovernance(deps)
	life, err := lifecycle.New(lifecycle.Deps{
		Engine: deps.Engine, Store: deps.Store, Registry: deps.Registry, DecisionLog: deps.DecisionLog,
		Logger: deps.Logger, Now: s.gov.now, Sleep: deps.Sleep, RecordTimeout: cfg.RecordTimeout,
	})
	if err != nil {
		return nil, err
	}
	s.life = life
	if err := s.newBundleHandler(deps); err != nil {
		return nil, err
	}

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	// Every miss is ours to answer with the envelope: no redirects to a
	// path with(out) a trailing slash, 405 with Allow for a known path.
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = true
	r.ContextWithFallback = true
	// Route on the path as sent, then unescape the values: an agent_id
	// may hold "/" (docs/api.md §A3), sent as %2F in
	// /v1/control/agents/{agent_id}/violations, and must stay one segment.
	r.UseRawPath = true
	r.UnescapePathValues = true

	// Each middleware costs nothing when its feature is off: without a
	// tracer (a no-op provider), requests get no span, only an incoming
	// traceparent carried into the context so trace_id still continues
	// the caller's trace.
	tracing := deps.TracerProvider == nil || !isNoop(deps.TracerProvider)
	s.tracing = tracing
	spans := continueTrace
	if tracing {
		otelOpts := []otelgin.Option{otelgin.WithPropagators(
			propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		)}
		if deps.TracerProvider != nil {
			otelOpts = append(otelOpts, otelgin.WithTracerProvider(deps.TracerProvider))
		}
		spans = otelgin.Middleware(cfg.ServiceName, otelOpts...)
	}
	r.Use(s.requestID, s.observeRequest, spans, s.errors, s.limitBody)
	r.NoRoute(s.noRoute)
	r.NoMethod(s.noMethod)

	r.GET("/health", s.health)
	r.HEAD("/health", s.health)
	s.opsRoutes(r)
	if err := s.openapiRoutes(r); err != nil {
		return nil, err
	}

	v1 := r.Group("/v1")
	control := v1.Group("/control", s.authenticate, policyRoutes)
	control.GET("/policies", s.listPolicies)
	control.POST("/policies", s.createPolicy)
	control.GET("/policies/:name", s.getPolicy)
	control.PUT("/policies/:name", s.replacePolicy)
	control.DELETE("/policies/:name", s.deletePolicy)
	control.GET("/policies/:name/rego", s.policyRego)

	actions := v1.Group("/actions", s.authenticate)
	actions.POST("", s.submitAction)
	actions.GET("", s.listActions)
	actions.GET("/:id", s.getAction)
	actions.GET("/:id/explain", s.explainAction)
	actions.POST("/:connector", s.submitConnectorAction)
	actions.POST("/:connector/*operation", s.submitConnectorAction)

	v1.GET("/usage", s.authenticate, s.usage)

	s.bundleRoutes(v1)
	s.dataRoutes(v1)
	s.governanceRoutes(v1)
	s.historyRoutes(v1)
	s.consoleRoutes(r, v1)
	s.keyRoutes(v1)

	if cfg.AdminToken != "" {
		admin := v1.Group("/admin", s.adminAuth)
		admin.POST("/tenants", s.createTenant)
		admin.GET("/tenants", s.listTenants)
		admin.GET("/tenants/:id", s.getTenant)
		admin.PATCH("/tenants/:id", s.updateTenant)
		admin.POST("/tenants/:id/keys", s.createKey)
		admin.DELETE("/keys/:key_id", s.revokeKey)
	}
	return r, nil
}
