package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp/api"
	"github.com/gatehouse-pdp/gatehouse/pdp/metrics"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// Operating settings of `serve`: HTTP server timeouts, per-key rate limits
// by tier, the bound on concurrent evaluations (an engine setting), and
// metrics. README's
// "Operations" section explains how to choose them.

// HTTPConfig holds the HTTP server's timeouts (net/http.Server's).
type HTTPConfig struct {
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout Duration `json:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request, body included.
	ReadTimeout Duration `json:"read_timeout"`
	// WriteTimeout bounds a request from the end of its headers to the
	// end of its answer. It must outlast a bundle long poll (held up to
	// api.BundleMaxWait), so it defaults to that plus 30 s.
	WriteTimeout Duration `json:"write_timeout"`
	// IdleTimeout bounds how long a keep-alive connection waits for its
	// next request.
	IdleTimeout Duration `json:"idle_timeout"`
}

// Defaults and bounds of the HTTP timeouts.
const (
	defaultReadHeaderTimeout = 10 * time.Second
	defaultReadTimeout       = 30 * time.Second
	defaultWriteTimeout      = api.BundleMaxWait + 30*time.Second
	defaultIdleTimeout       = 2 * time.Minute
	maxHTTPTimeout           = time.Hour
)

func (h HTTPConfig) defaults() HTTPConfig {
	for _, f := range []struct {
		d   *Duration
		def time.Duration
	}{
		{&h.ReadHeaderTimeout, defaultReadHeaderTimeout},
		{&h.ReadTimeout, defaultReadTimeout},
		{&h.WriteTimeout, defaultWriteTimeout},
		{&h.IdleTimeout, defaultIdleTimeout},
	} {
		if *f.d == 0 {
			*f.d = Duration(f.def)
		}
	}
	return h
}

func (h HTTPConfig) validate() error {
	var errs []error
	for _, f := range []struct {
		key string
		d   Duration
	}{
		{"http.read_header_timeout", h.ReadHeaderTimeout},
		{"http.read_timeout", h.ReadTimeout},
		{"http.write_timeout", h.WriteTimeout},
		{"http.idle_timeout", h.IdleTimeout},
	} {
		// 0 would mean "never" to net/http: a slow client could then hold
		// a connection forever, so it is not offered.
		if d := time.Duration(f.d); d <= 0 || d > maxHTTPTimeout {
			errs = append(errs, fmt.Errorf("%s %s: must be more than 0 and at most %s", f.key, d, maxHTTPTimeout))
		}
	}
	return errors.Join(errs...)
}

// RateLimitConfig is the default request rate limit of each tier, per API
// key (docs/api.md §A1); "0", the default, is unlimited. A tenant's own limit,
// set with the admin API, overrides its tier's.
type RateLimitConfig struct {
	Free       RateSpec `json:"free"`
	Starter    RateSpec `json:"starter"`
	Pro        RateSpec `json:"pro"`
	Enterprise RateSpec `json:"enterprise"`
}

// limits returns the tiers' limits as the API takes them.
func (r RateLimitConfig) limits() map[store.Tier]store.RateLimit {
	m := map[store.Tier]store.RateLimit{}
	for tier, spec := range map[store.Tier]RateSpec{
		store.TierFree: r.Free, store.TierStarter: r.Starter, store.TierPro: r.Pro, store.TierEnterprise: r.Enterprise,
	} {
		if spec != (RateSpec{}) { // the API validates what is given
			m[tier] = store.RateLimit(spec)
		}
	}
	return m
}

// RateSpec is a rate limit as a setting spells it: "R" for R requests per
// second with bursts of R rounded up, "R:B" for bursts of B, "0" for
// unlimited. The config file takes the same string, or a plain number.
type RateSpec struct {
	RequestsPerSecond float64
	Burst             int
}

// parseRateSpec reads "R" or "R:B".
func parseRateSpec(s string) (RateSpec, error) {
	bad := fmt.Errorf("%q: want requests per second, optionally with a burst: 10 or 10:20 (0: unlimited)", s)
	rate, burst, hasBurst := strings.Cut(strings.TrimSpace(s), ":")
	rps, err := strconv.ParseFloat(rate, 64)
	if err != nil || math.IsNaN(rps) || math.IsInf(rps, 0) {
		return RateSpec{}, bad
	}
	r := RateSpec{RequestsPerSecond: rps}
	switch {
	case hasBurst:
		if r.Burst, err = strconv.Atoi(burst); err != nil {
			return RateSpec{}, bad
		}
	case rps > 0:
		r.Burst = max(1, int(math.Ceil(min(rps, store.MaxRequestsPerSecond))))
	}
	return r, nil
}

// String writes r back as parseRateSpec reads it, without the burst when
// it is the default one.
func (r RateSpec) String() string {
	rate := strconv.FormatFloat(r.RequestsPerSecond, 'f', -1, 64)
	if def, _ := parseRateSpec(rate); def.Burst == r.Burst {
		return rate
	}
	return rate + ":" + strconv.Itoa(r.Burst)
}

// UnmarshalJSON reads "R", "R:B" or a number R.
func (r *RateSpec) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("want a rate such as 10 or \"10:20\", got %s", b)
		}
		s = n.String()
	}
	v, err := parseRateSpec(s)
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// MarshalJSON writes r as its string.
func (r RateSpec) MarshalJSON() ([]byte, error) { return json.Marshal(r.String()) }

// Concurrency is engine.max_concurrent_evaluations: "auto" (0, the
// default) is engine.DefaultMaxConcurrent() on the machine it runs on, -1
// no bound.
type Concurrency int

const concurrencyAuto = "auto"

func parseConcurrency(s string) (Concurrency, error) {
	if strings.EqualFold(strings.TrimSpace(s), concurrencyAuto) {
		return 0, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q: want auto, -1 (no bound) or a number of evaluations", s)
	}
	return Concurrency(n), nil
}

// String returns "auto" for 0, else the number.
func (c Concurrency) String() string {
	if c == 0 {
		return concurrencyAuto
	}
	return strconv.Itoa(int(c))
}

// UnmarshalJSON reads "auto" or a number.
func (c *Concurrency) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("want auto or a number, got %s", b)
		}
		*c = Concurrency(n)
		return nil
	}
	v, err := parseConcurrency(s)
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// MarshalJSON writes c as its string.
func (c Concurrency) MarshalJSON() ([]byte, error) { return json.Marshal(c.String()) }

// MetricsConfig holds the settings of GET /metrics.
type MetricsConfig struct {
	// TenantLabels adds tenant_id to gatehouse_decisions_total.
	TenantLabels bool `json:"tenant_labels"`
}

func (m MetricsConfig) metricsConfig() metrics.Config {
	return metrics.Config{TenantLabels: m.TenantLabels}
}

// apiLimits returns the API's limits of c.
func (c Config) apiLimits() api.Limits {
	return api.Limits{RateLimits: c.RateLimit.limits()}
}

// opsDefaults fills in the operating settings' defaults (Config.Defaults
// calls it).
func (c Config) opsDefaults() Config {
	c.HTTP = c.HTTP.defaults()
	return c
}

// opsValidate reports every invalid operating setting (Config.Validate
// calls it; the API checks the limits it takes).
func (c Config) opsValidate() error {
	return c.HTTP.validate()
}

func rate(f func(c *Config) *RateSpec) codec {
	return codec{
		set: func(c *Config, v string) error {
			r, err := parseRateSpec(v)
			if err != nil {
				return err
			}
			*f(c) = r
			return nil
		},
		display: func(c Config) string { return f(&c).String() },
	}
}

func concurrency(f func(c *Config) *Concurrency) codec {
	return codec{
		set: func(c *Config, v string) error {
			n, err := parseConcurrency(v)
			if err != nil {
				return err
			}
			*f(c) = n
			return nil
		},
		display: func(c Config) string { return f(&c).String() },
	}
}

// Operating settings of serve, in --help order.
var (
	setReadHeaderTimeout = newSetting("read-header-timeout", "http.read_header_timeout", "duration",
		"HTTP: bound on reading a request's headers",
		duration(func(c *Config) *Duration { return &c.HTTP.ReadHeaderTimeout }))
	setReadTimeout = newSetting("read-timeout", "http.read_timeout", "duration",
		"HTTP: bound on reading a whole request, body included",
		duration(func(c *Config) *Duration { return &c.HTTP.ReadTimeout }))
	setWriteTimeout = newSetting("write-timeout", "http.write_timeout", "duration",
		"HTTP: bound on answering a request; keep it above the bundle long-poll wait ("+api.BundleMaxWait.String()+")",
		duration(func(c *Config) *Duration { return &c.HTTP.WriteTimeout }))
	setIdleTimeout = newSetting("idle-timeout", "http.idle_timeout", "duration",
		"HTTP: how long a keep-alive connection may wait for its next request",
		duration(func(c *Config) *Duration { return &c.HTTP.IdleTimeout }))
	setMaxConcurrentEvaluations = newSetting("max-concurrent-evaluations", "engine.max_concurrent_evaluations", "n|auto",
		"decisions evaluated at once; past it an action waits for a slot up to a fifth of the evaluation timeout, then is refused with 503 evaluation_unavailable and Retry-After: 1 (auto: 4 × GOMAXPROCS; -1: no bound)",
		concurrency(func(c *Config) *Concurrency { return &c.Engine.MaxConcurrentEvaluations }))
	setMaxConcurrentPerTenant = newSetting("max-concurrent-evaluations-per-tenant", "engine.max_concurrent_evaluations_per_tenant", "n|auto",
		"evaluation slots one tenant may hold at once; past it that tenant's actions wait, then get the same 503, the other slots stay free for other tenants (auto: half of max-concurrent-evaluations; -1: no per-tenant bound)",
		concurrency(func(c *Config) *Concurrency { return &c.Engine.MaxConcurrentPerTenant }))
	setRateLimitFree = newSetting("rate-limit-free", "rate_limit.free", "rps[:burst]",
		"per-API-key request rate of free tenants; past it 429 RATE_LIMITED with Retry-After (0: unlimited)",
		rate(func(c *Config) *RateSpec { return &c.RateLimit.Free }))
	setRateLimitStarter = newSetting("rate-limit-starter", "rate_limit.starter", "rps[:burst]",
		"per-API-key request rate of starter tenants (0: unlimited)",
		rate(func(c *Config) *RateSpec { return &c.RateLimit.Starter }))
	setRateLimitPro = newSetting("rate-limit-pro", "rate_limit.pro", "rps[:burst]",
		"per-API-key request rate of pro tenants (0: unlimited)",
		rate(func(c *Config) *RateSpec { return &c.RateLimit.Pro }))
	setRateLimitEnterprise = newSetting("rate-limit-enterprise", "rate_limit.enterprise", "rps[:burst]",
		"per-API-key request rate of enterprise tenants (0: unlimited)",
		rate(func(c *Config) *RateSpec { return &c.RateLimit.Enterprise }))
	setMetricsTenantLabels = func() *setting {
		s := newSetting("metrics-tenant-labels", "metrics.tenant_labels", "",
			"label gatehouse_decisions_total with tenant_id (one series per tenant: mind the cardinality)",
			boolean(func(c *Config) *bool { return &c.Metrics.TenantLabels }))
		s.isBool = true
		return s
	}()
)

// warnWriteTimeout warns when the write timeout would cut off bundle long
// polls held for their longest wait. It is a warning, not an error: a
// server whose bundles nobody long-polls may want a shorter one.
func warnWriteTimeout(h HTTPConfig, logger *slog.Logger) {
	if time.Duration(h.WriteTimeout) <= api.BundleMaxWait {
		logger.Warn("http.write_timeout is not above the bundle long-poll wait: long polls may be cut off",
			"write_timeout", h.WriteTimeout.String(), "bundle_max_wait", api.BundleMaxWait.String())
	}
}
