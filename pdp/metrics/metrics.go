// Package metrics is Gatehouse's Prometheus instrumentation: one Metrics
// value holds a private registry (no global state; two servers in one
// process never share series) with every collector, implements the small
// observer interfaces the other packages declare (api.Metrics,
// engine.Observer, store.OpObserver, store.AuditBatchObserver,
// decisionlog.Observer) and serves
// the text exposition format for GET /metrics.
//
// Label values are bounded sets: routes are gin's patterns, never raw
// URLs; methods outside the standard ones count as OTHER; store operations
// are method names. Tenant ids appear only on gatehouse_decisions_total,
// and only when Config.TenantLabels is set; agent ids never do.
package metrics

import (
	"errors"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
)

// Config holds the settings of Metrics.
type Config struct {
	// TenantLabels adds a tenant_id label to gatehouse_decisions_total.
	// Off by default: with many tenants it multiplies the series, and
	// tenant ids are customer names an operator may not want scraped.
	TenantLabels bool
}

// Metrics is every collector Gatehouse exports. Its Observe methods are
// safe for concurrent use and cost a few atomic operations each.
type Metrics struct {
	cfg Config
	reg *prometheus.Registry

	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	rejected        *prometheus.CounterVec
	decisions       *prometheus.CounterVec
	decisionTime    prometheus.Histogram
	compileTime     prometheus.Histogram
	storeOps        *prometheus.HistogramVec
	auditBatch      prometheus.Histogram
	bundleDownloads *prometheus.CounterVec
	decisionLogs    decisionLogCounters // decisionlog.go

	// The children of the vectors observed on every request, resolved
	// once per label set: WithLabelValues hashes and validates its labels
	// and formats the status on every call.
	requestSeries  seriesCache[requestLabels, requestChildren]
	decisionSeries seriesCache[decisionLabels, prometheus.Counter]
	storeSeries    seriesCache[string, prometheus.Observer]
}

// seriesCache memoizes a vector's children by their labels. The label
// sets are bounded (routes, methods, statuses, store operations,
// decision outcomes), so it needs no eviction.
type seriesCache[K comparable, V any] struct {
	mu sync.RWMutex
	m  map[K]V
}

// get returns the child of k, resolving it with resolve on first use.
func (c *seriesCache[K, V]) get(k K, resolve func(K) V) V {
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return v
	}
	v = resolve(k)
	c.mu.Lock()
	if c.m == nil {
		c.m = map[K]V{}
	}
	c.m[k] = v
	c.mu.Unlock()
	return v
}

type requestLabels struct {
	route, method string
	status        int
}

type requestChildren struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

type decisionLabels struct{ status, trigger, tenantID string }

// Bucket boundaries, in seconds unless said otherwise. A decision on a
// cache hit takes 0.1–1 ms, a compile 10 ms–1 s, a store call 0.1–10 ms.
var (
	requestBuckets  = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	decisionBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}
	compileBuckets  = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	storeBuckets    = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
	batchBuckets    = prometheus.ExponentialBuckets(1, 2, 10) // 1 … 512 writes
)

// New returns the metrics with the Go runtime and process collectors and
// gatehouse_build_info registered.
func New(cfg Config) *Metrics {
	m := &Metrics{cfg: cfg, reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "http_requests_total",
		Help: "HTTP requests answered, by route pattern (\"unmatched\" when none), method and status code.",
	}, []string{"route", "method", "status"})
	m.requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "http_request_duration_seconds",
		Help:    "Time from a request's arrival to its answer, by route pattern and method.",
		Buckets: requestBuckets,
	}, []string{"route", "method"})
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_requests_rejected_total",
		Help: "Requests refused before any work: reason rate_limited (429), or overloaded (503: evaluations past --max-concurrent-evaluations).",
	}, []string{"reason"})
	decisionLabels := []string{"status", "trigger"}
	if cfg.TenantLabels {
		decisionLabels = append(decisionLabels, "tenant_id")
	}
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_decisions_total",
		Help: "Decisions, by status (allowed, blocked, pending_review; unavailable when evaluation failed) and what triggered it (builtin, custom or none).",
	}, decisionLabels)
	m.decisionTime = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "gatehouse_decision_duration_seconds",
		Help:    "Time of one decision in the engine, compilation on a cache miss included.",
		Buckets: decisionBuckets,
	})
	m.compileTime = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "gatehouse_compile_duration_seconds",
		Help:    "Time of one compilation of a tenant's policies (a cache miss, or a loaded bundle).",
		Buckets: compileBuckets,
	})
	m.storeOps = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "gatehouse_store_operation_duration_seconds",
		Help:    "Time of one store call, by operation (the store method, as the store.<op> span is named).",
		Buckets: storeBuckets,
	}, []string{"op"})
	m.auditBatch = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "gatehouse_audit_append_batch_size",
		Help:    "Writes committed together by one audit group commit (one transaction, one fsync).",
		Buckets: batchBuckets,
	})
	m.bundleDownloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_bundle_downloads_total",
		Help: "Bundle requests (GET /v1/bundles/...), by HTTP status: 200 a bundle sent, 304 not modified, others refused.",
	}, []string{"status"})
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "gatehouse_build_info",
		Help: "Always 1; the labels say which Gatehouse and Go this is.",
	}, []string{"version", "goversion"})
	buildInfo.WithLabelValues(pdp.Version, runtime.Version()).Set(1)

	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo,
		m.requests, m.requestDuration, m.rejected,
		m.decisions, m.decisionTime, m.compileTime,
		m.storeOps, m.auditBatch, m.bundleDownloads,
	)
	m.decisionLogs = newDecisionLogCounters(m.reg)
	return m
}

// Registry returns the private registry, for tests and for registering
// further collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text format. A collector
// that fails leaves its series out; the others are still served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4, // scrapes gather every collector: no pile-ups
	})
}

// Methods counted by name; any other is OTHER, so a client cannot mint
// series by inventing methods.
var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

// ObserveRequest counts one answered request. route is the matched
// route's pattern ("/v1/actions/:id"), "" when none matched.
func (m *Metrics) ObserveRequest(route, method string, status int, took time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	if !knownMethods[method] {
		method = "OTHER"
	}
	ch := m.requestSeries.get(requestLabels{route, method, status}, m.resolveRequest)
	ch.count.Inc()
	ch.duration.Observe(took.Seconds())
}

func (m *Metrics) resolveRequest(l requestLabels) requestChildren {
	return requestChildren{
		count:    m.requests.WithLabelValues(l.route, l.method, strconv.Itoa(l.status)),
		duration: m.requestDuration.WithLabelValues(l.route, l.method),
	}
}

// Reasons of ObserveRejection.
const (
	RejectRateLimited = "rate_limited"
	RejectOverloaded  = "overloaded"
)

// ObserveRejection counts a request refused before any work.
func (m *Metrics) ObserveRejection(reason string) {
	m.rejected.WithLabelValues(reason).Inc()
}

// Triggers of gatehouse_decisions_total.
const (
	TriggerBuiltin = "builtin"
	TriggerCustom  = "custom"
	TriggerNone    = "none"
)

// statusUnavailable labels a decision that could not be made (the action
// was refused, fail closed).
const statusUnavailable = "unavailable"

// ObserveDecision counts one decision of the engine (engine.Observer). An
// evaluation the engine refused as overloaded was never made: it counts as
// a rejection, not a decision.
func (m *Metrics) ObserveDecision(tenantID string, d *pdp.Decision, err error, took time.Duration) {
	if errors.Is(err, engine.ErrOverloaded) {
		m.ObserveRejection(RejectOverloaded)
		return
	}
	status, trigger := statusUnavailable, TriggerNone
	if err == nil && d != nil {
		status, trigger = string(d.Status), Trigger(d)
	}
	l := decisionLabels{status: status, trigger: trigger}
	if m.cfg.TenantLabels {
		l.tenantID = tenantID
	}
	m.decisionSeries.get(l, m.resolveDecision).Inc()
	m.decisionTime.Observe(took.Seconds())
}

func (m *Metrics) resolveDecision(l decisionLabels) prometheus.Counter {
	if m.cfg.TenantLabels {
		return m.decisions.WithLabelValues(l.status, l.trigger, l.tenantID)
	}
	return m.decisions.WithLabelValues(l.status, l.trigger)
}

// Trigger says what decided d: a built-in policy, a custom one, or none
// (nothing fired).
func Trigger(d *pdp.Decision) string {
	if d.TriggeredPolicy == nil {
		return TriggerNone
	}
	name := *d.TriggeredPolicy
	for _, v := range d.Violations {
		if v.Policy == name {
			if v.Scope == pdp.ScopeBuiltin {
				return TriggerBuiltin
			}
			return TriggerCustom
		}
	}
	if name == pdp.DecisionFinancialSafety || name == pdp.DecisionDataExfiltration {
		return TriggerBuiltin
	}
	return TriggerCustom
}

// ObserveCompile records one compilation (engine.Observer).
func (m *Metrics) ObserveCompile(took time.Duration) {
	m.compileTime.Observe(took.Seconds())
}

// ObserveStoreOp records one store call (store.OpObserver).
func (m *Metrics) ObserveStoreOp(op string, took time.Duration) {
	m.storeSeries.get(op, m.resolveStoreOp).Observe(took.Seconds())
}

func (m *Metrics) resolveStoreOp(op string) prometheus.Observer {
	return m.storeOps.WithLabelValues(op)
}

// ObserveAuditBatch records the size of one audit group commit
// (store.AuditBatchObserver).
func (m *Metrics) ObserveAuditBatch(size int) {
	m.auditBatch.Observe(float64(size))
}

// ObserveBundleDownload counts one bundle request by its HTTP status.
func (m *Metrics) ObserveBundleDownload(status int) {
	m.bundleDownloads.WithLabelValues(strconv.Itoa(status)).Inc()
}

// StatsSource is what the engine collector reads; *engine.Engine is one.
type StatsSource interface {
	Stats() engine.Stats
}

// CollectEngine exports src's cache counters, read when scraped (the
// engine already counts them; nothing is added to its hot path):
// gatehouse_engine_cache_{hits,misses,evictions}_total and
// gatehouse_engine_cache_entries. One engine per Metrics.
func (m *Metrics) CollectEngine(src StatsSource) error {
	if src == nil {
		return errors.New("metrics: CollectEngine: no engine")
	}
	return m.reg.Register(engineCollector{src: src})
}

var (
	descHits = prometheus.NewDesc("gatehouse_engine_cache_hits_total",
		"Decisions answered from a cached prepared query.", nil, nil)
	descMisses = prometheus.NewDesc("gatehouse_engine_cache_misses_total",
		"Decisions that found no cached prepared query and compiled one.", nil, nil)
	descEvictions = prometheus.NewDesc("gatehouse_engine_cache_evictions_total",
		"Prepared queries evicted from the full cache (see --engine-cache-size).", nil, nil)
	descEntries = prometheus.NewDesc("gatehouse_engine_cache_entries",
		"Prepared queries in the cache now.", nil, nil)
)

// engineCollector turns engine.Stats into metrics at scrape time.
type engineCollector struct{ src StatsSource }

// Describe sends the four descriptors.
func (c engineCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descHits
	ch <- descMisses
	ch <- descEvictions
	ch <- descEntries
}

// Collect reads the engine's counters once, so the four agree.
func (c engineCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Stats()
	ch <- prometheus.MustNewConstMetric(descHits, prometheus.CounterValue, float64(s.Hits))
	ch <- prometheus.MustNewConstMetric(descMisses, prometheus.CounterValue, float64(s.Misses))
	ch <- prometheus.MustNewConstMetric(descEvictions, prometheus.CounterValue, float64(s.Evictions))
	ch <- prometheus.MustNewConstMetric(descEntries, prometheus.GaugeValue, float64(s.Size))
}
