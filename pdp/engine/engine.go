package engine

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown/cache"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/sync/singleflight"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/pdp"
	library "github.com/gatehouse-pdp/gatehouse/rego"
)

// ErrUnknownTenant is returned for a tenant the engine was never given.
var ErrUnknownTenant = errors.New("unknown tenant")

// ErrTenantDegraded is returned for every decision of a tenant that holds
// a policy the adapter refuses (an invalid regex written straight into the
// store, or left by an older version): the tenant fails closed as a whole,
// since deciding without the policy would skip it. Other tenants are not
// affected. Degraded lists such tenants and why.
var ErrTenantDegraded = errors.New("tenant holds an invalid policy")

// Engine decides actions. It is safe for concurrent use.
//
// # Lock order
//
// A goroutine that holds several of the engine's locks takes them in this
// order, and never the other way round:
//
//  1. bundleMu (LoadBundle only), then
//  2. mu (the tenants map; held only to read or swap entries, never while
//     compiling, evaluating or waiting), then
//  3. a tenant's unitMu (held while its unit compiles, so one revision
//     compiles once), then
//  4. a compile-pool token (taken with unitMu held; a waiter gives up when
//     its context ends), then
//  5. a tenant's moduleCache.mu, and the LRU's and the slots' own locks,
//     which are leaves: nothing else is taken while they are held.
//
// A caller's context never reaches a compile: compiles run in goroutines
// of their own with the context's values but not its cancellation
// (context.WithoutCancel), so a caller that gives up (a client that hangs
// up, a deadline) leaves the compile to finish for the callers that share
// it, and returns its own context's error.
type Engine struct {
	cfg     Config
	tracer  trace.Tracer
	query   string
	library map[string]*ast.Module
	// extended: WithModules added to (or replaced part of) the library,
	// so Evaluate never answers for it without evaluating (nohit.go).
	extended bool
	lib      libraryOnce    // the library compiled alone, once (libcompile.go)
	data     map[string]any // data.gatehouse.config

	mu      sync.RWMutex
	tenants map[string]*tenantState

	cache     *lru.Cache[key, *prepared]
	flight    singleflight.Group
	values    cache.InterQueryValueCache
	valuesOpt rego.EvalOption // passes values to an Eval, built once

	hits, misses, evictions, compiles atomic.Uint64
	compileNanos                      atomic.Int64
	obs                               Observer // WithObserver; nil: nobody
	slots                             *slots   // Config.MaxConcurrent; nil: unbounded
	pool                              compilePool

	// compileHook, when set, runs inside every tenant compile before the
	// compiler starts; for tests that hold a compile in flight.
	compileHook func()

	// approval: FinancialSafety's approval hits for the hit answer's
	// markers, evaluated once (approvalHits, hit.go).
	approvalOnce sync.Once
	approval     [2]*ast.Term

	// interned shares equal parts of the tenants' data documents, queries
	// the parsed and compiled queries (intern.go).
	interned sharedInterner
	queries  sharedQueries

	bundleMu  sync.Mutex          // serializes LoadBundle
	bundleGen atomic.Uint64       // revisions of bundle tenants, see LoadBundle
	sources   map[string][]string // bundle source → its tenants
}

// key identifies one prepared query. agent is empty for the tenant's shared
// entry; revision makes entries of older policy sets unreachable.
type key struct {
	tenant   string
	agent    string
	revision uint64
}

type prepared struct {
	query rego.PreparedEvalQuery
	// hinted is the decision query evaluated with the engine's hints
	// (hintedQuery), its result left as AST; nil when the tenant decides
	// without them (bundle tenants, a custom WithQuery).
	hinted *rego.PreparedEvalQuery
	hinter *adapter.Hinter
	direct *directQuery // hinted, as Evaluate runs it (direct.go)
	// views is the tenant's views document as the unit's store holds it
	// (read once: nothing writes the store), nil for tenants without
	// hints; found the view lookups in it (viewOf) and noHits
	// the no-hit decisions decoded so far (nohit.go).
	views  any
	found  viewMemo
	noHits noHitMemo
	// tenant is the tenant's data document (views, policies and rules,
	// mode) as the unit's store holds it, read with views; hits the hit
	// answer's programs and templates (hit.go).
	tenant   ast.Object
	hits     hitMemo
	approval [2]*ast.Term // Engine.approvalHits
}

// tenantState is what SetTenant recorded for one tenant.
type tenantState struct {
	policies  *pdp.TenantPolicies
	overrides map[string]bool // agents with enabled agent-scoped policies
	modules   *moduleCache    // validations and costs, by policy content

	unitMu sync.Mutex
	unit   *unit // compiled once per revision, shared by the tenant's entries

	// source names the bundle the tenant came from (LoadBundle); "" for
	// a tenant published with SetTenant. data is then its data document.
	source string
	data   map[string]any

	// problem is why the tenant cannot decide (ErrTenantDegraded), set
	// when it was published; nil for a healthy tenant.
	problem error
}

// unit is one tenant's policies at one revision: the compiler and the
// store every prepared query of the tenant evaluates against. For a
// registry tenant the compiler is the library compiled once and shared by
// every tenant (libcompile.go) and the store holds the tenant's data, its
// rules included (policy as data); a bundle's unit is the bundle compiled.
// A tenant's entries (one per agent with overrides) share it; each cache
// entry adds only its prepared queries.
type unit struct {
	compiler *ast.Compiler
	store    storage.Store
	hinter   *adapter.Hinter // registry tenants: candidates for the hints
}

// Option configures an Engine.
type Option func(*Engine) error

// WithTracerProvider sets where engine spans go (default: the global
// provider, a no-op unless the program installed one).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(e *Engine) error {
		e.tracer = tp.Tracer("github.com/gatehouse-pdp/gatehouse/pdp/engine")
		return nil
	}
}

// WithModules adds Rego modules (path → source) to the library every
// tenant is compiled with; for extensions and tests.
func WithModules(mods map[string]string) Option {
	return func(e *Engine) error {
		for p, src := range mods {
			m, err := ast.ParseModuleWithOpts(p, src, ast.ParserOptions{ProcessAnnotation: true, RegoVersion: ast.RegoV1})
			if err != nil {
				return fmt.Errorf("module %s: %w", p, err)
			}
			e.library[p] = m
		}
		e.extended = len(mods) > 0
		return nil
	}
}

// WithQuery replaces the decision query (default
// data.gatehouse.decision.result); for tests of the fail-closed paths.
func WithQuery(q string) Option {
	return func(e *Engine) error {
		e.query = q
		return nil
	}
}

// New returns an engine with cfg (defaults applied) and opts.
func New(cfg Config, opts ...Option) (*Engine, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lib, err := library.Parsed()
	if err != nil {
		return nil, fmt.Errorf("parse rego library: %w", err)
	}
	e := &Engine{
		cfg:     cfg,
		tracer:  otel.GetTracerProvider().Tracer("github.com/gatehouse-pdp/gatehouse/pdp/engine"),
		query:   adapter.DecisionQuery,
		library: make(map[string]*ast.Module, len(lib)),
		data:    cfg.ConfigData(),
		tenants: map[string]*tenantState{},
		sources: map[string][]string{},
		slots:   newSlots(cfg.MaxConcurrent, cfg.MaxConcurrentPerTenant).withWait(cfg.Timeout / 5),
		pool:    newCompilePool(cfg.CompileWorkers),
	}
	for p, m := range lib {
		e.library[p] = m
	}
	for _, o := range opts {
		if err := o(e); err != nil {
			return nil, err
		}
	}
	e.cache, err = lru.NewWithEvict(cfg.CacheSize, func(key, *prepared) { e.evictions.Add(1) })
	if err != nil {
		return nil, err
	}
	if n := cfg.RegexCacheSize; n > 0 {
		e.values = cache.NewInterQueryValueCache(context.Background(), &cache.Config{
			InterQueryBuiltinValueCache: cache.InterQueryBuiltinValueCacheConfig{MaxNumEntries: &n},
		})
		// Passed on every Eval: PreparedEvalQuery ignores the rego.New option.
		e.valuesOpt = rego.EvalInterQueryBuiltinValueCache(e.values)
	}
	return e, nil
}

// SetTenant publishes a tenant's policies at a new revision. The next
// Evaluate for the tenant uses them; the tenant's entries of older
// revisions are dropped from the cache. Other tenants are not affected.
//
// Every enabled policy is validated again, as the API validates a write
// (results are cached by content, so a revision re-checks only what
// changed): a policy that no longer passes, e.g. a regex written straight
// into the store, degrades the tenant, whose decisions then fail with
// ErrTenantDegraded. SetTenant returns that problem, nil when the tenant
// is healthy, so the caller can log it.
func (e *Engine) SetTenant(tp pdp.TenantPolicies) error {
	st := &tenantState{policies: &tp, overrides: map[string]bool{}}
	for i := range tp.Policies {
		if p := &tp.Policies[i]; p.Enabled && p.AgentID != "" {
			st.overrides[p.AgentID] = true
		}
	}
	e.mu.RLock()
	old := e.tenants[tp.TenantID]
	e.mu.RUnlock()
	if old != nil && old.source == "" {
		st.modules = old.modules // translations of unchanged policies carry over
	} else {
		st.modules = newModuleCache()
	}
	var problems []error
	for i := range tp.Policies {
		if p := &tp.Policies[i]; p.Enabled {
			if err := st.modules.validate(p); err != nil {
				problems = append(problems, fmt.Errorf("policy %q (agent %q): %w", p.Name, p.AgentID, err))
			}
		}
	}
	if len(problems) > 0 {
		st.problem = fmt.Errorf("%w: %w", ErrTenantDegraded, errors.Join(problems...))
	}
	e.mu.Lock()
	old = e.tenants[tp.TenantID]
	e.tenants[tp.TenantID] = st
	e.mu.Unlock()
	if old != nil && old.policies.Revision != tp.Revision {
		e.drop(tp.TenantID, old)
	}
	return st.problem
}

// Degraded returns the tenants that cannot decide because they hold an
// invalid policy, each with why (wrapping ErrTenantDegraded).
func (e *Engine) Degraded() map[string]error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := map[string]error{}
	for id, st := range e.tenants {
		if st.problem != nil {
			out[id] = st.problem
		}
	}
	return out
}

// RemoveTenant forgets a tenant; its decisions fail from then on.
func (e *Engine) RemoveTenant(id string) {
	e.mu.Lock()
	old := e.tenants[id]
	delete(e.tenants, id)
	e.mu.Unlock()
	if old != nil {
		e.drop(id, old)
	}
}

// drop removes the cache entries of one tenant state, key by key.
func (e *Engine) drop(tenant string, st *tenantState) {
	rev := st.policies.Revision
	e.cache.Remove(key{tenant, "", rev})
	for agent := range st.overrides {
		e.cache.Remove(key{tenant, agent, rev})
	}
}

// Revision returns the tenant's revision as last published.
func (e *Engine) Revision(tenant string) (uint64, bool) {
	e.mu.RLock()
	st := e.tenants[tenant]
	e.mu.RUnlock()
	if st == nil {
		return 0, false
	}
	return st.policies.Revision, true
}

// Stats are counters of the prepared-query cache and compilations.
type Stats struct {
	Hits, Misses, Evictions, Compiles uint64
	Size                              int
	CompileTime                       time.Duration
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	return Stats{
		Hits:        e.hits.Load(),
		Misses:      e.misses.Load(),
		Evictions:   e.evictions.Load(),
		Compiles:    e.compiles.Load(),
		Size:        e.cache.Len(),
		CompileTime: time.Duration(e.compileNanos.Load()),
	}
}

// Evaluate decides one action. It never returns a Decision together with
// an error, and never a Decision for a failed or unfinished evaluation.
func (e *Engine) Evaluate(ctx context.Context, a pdp.Action) (d *pdp.Decision, err error) {
	start := time.Now()
	ctx, span := e.startDecisionSpan(ctx, "engine.Evaluate", a)
	defer func() {
		endDecisionSpan(span, d, err)
		e.observeDecision(a.TenantID, d, err, time.Since(start))
	}()

	// The action text in Go; when it cannot be computed (or the params do
	// not convert), the input is built now, so that an input the library
	// cannot take fails before the tenant's entry is looked up.
	text, textErr := actionTextsOf(&a, true)
	var input ast.Value
	if textErr != nil {
		if input, _, err = inputAndParams(a); err != nil {
			return nil, fmt.Errorf("%w: input: %w", pdp.ErrEvaluationFailed, err)
		}
	}
	pq, err := e.entry(ctx, span, a.TenantID, a.AgentID)
	if err != nil {
		return nil, err
	}
	if pq.hinted != nil && pq.hinter != nil && textErr == nil {
		hs := pq.hintsOf(a, text)
		if allowed := pq.noHitTerm(&hs); allowed != nil {
			return e.answerNoHit(ctx, a.TenantID, pq, allowed, start)
		}
		if plan, ok := pq.hitPlanOf(&hs); ok {
			return e.answerHit(ctx, a, pq, &hs, &plan, start)
		}
		t, err := e.runDirect(hintedContext(ctx, &hs), a.TenantID, pq.direct, lazyInput(a))
		if err != nil {
			return nil, err
		}
		return pq.decisionOfTerm(t, start)
	}
	if input == nil {
		if input, _, err = inputAndParams(a); err != nil {
			return nil, fmt.Errorf("%w: input: %w", pdp.ErrEvaluationFailed, err)
		}
	}
	rs, err := e.run(ctx, a.TenantID, pq.query, input, e.values)
	if err != nil {
		return nil, err
	}
	return decisionOf(rs, start)
}

// startDecisionSpan starts the span of one decision of a. The attributes
// are set only on a span that records: building them costs allocations
// every decision would pay with no tracer installed. (A sampler therefore
// does not see them when it decides.)
//
// With a no-op tracer (tracing off: serve's provider then is noop's) and
// no recording span in ctx, no span is started at all: noop's Start
// returns ctx's non-recording span as it is when it has a span context
// (an incoming traceparent), and otherwise puts its empty span into a
// new context (an allocation per decision) where ctx already yields an
// equal one to SpanFromContext. Under a recording span (another
// provider's) Start runs as before.
func (e *Engine) startDecisionSpan(ctx context.Context, name string, a pdp.Action) (context.Context, trace.Span) {
	if _, off := e.tracer.(noop.Tracer); off {
		if parent := trace.SpanFromContext(ctx); !parent.IsRecording() {
			return ctx, parent
		}
	}
	ctx, span := e.tracer.Start(ctx, name)
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("tenant_id", a.TenantID),
			attribute.String("agent_id", a.AgentID),
		)
	}
	return ctx, span
}

// endDecisionSpan records a decision's outcome on its span and ends it.
func endDecisionSpan(span trace.Span, d *pdp.Decision, err error) {
	if !span.IsRecording() {
		span.End()
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "evaluation failed")
	} else {
		span.SetAttributes(attribute.String("status", string(d.Status)))
	}
	span.End()
}

// decisionOf decodes the decision of a result set. An undefined result or
// one that does not decode is an error, never a decision (fail closed).
func decisionOf(rs rego.ResultSet, start time.Time) (*pdp.Decision, error) {
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, fmt.Errorf("%w: undefined result", pdp.ErrEvaluationFailed)
	}
	d, err := decode(rs[0].Expressions[0].Value)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", pdp.ErrEvaluationFailed, err)
	}
	d.EvaluationTimeMS = float64(time.Since(start).Microseconds()) / 1000
	return d, nil
}

// eval evaluates the tenant's prepared decision query (compiling it on a
// miss) with input, bounded by Config.Timeout. Every error wraps
// pdp.ErrEvaluationFailed; an empty result set is the caller's to judge.
func (e *Engine) eval(ctx context.Context, span trace.Span, tenant, agent string, input ast.Value) (rego.ResultSet, error) {
	pq, err := e.entry(ctx, span, tenant, agent)
	if err != nil {
		return nil, err
	}
	return e.run(ctx, tenant, pq.query, input, e.values)
}

// entry returns the prepared queries of the tenant's entry for agent,
// compiling them on a miss. Errors wrap pdp.ErrEvaluationFailed.
func (e *Engine) entry(ctx context.Context, span trace.Span, tenant, agent string) (*prepared, error) {
	e.mu.RLock()
	st := e.tenants[tenant]
	e.mu.RUnlock()
	if st == nil {
		return nil, fmt.Errorf("%w: %w %q", pdp.ErrEvaluationFailed, ErrUnknownTenant, tenant)
	}
	if st.problem != nil {
		return nil, fmt.Errorf("%w: tenant %q: %w", pdp.ErrEvaluationFailed, tenant, st.problem)
	}
	k := key{tenant: tenant, revision: st.policies.Revision}
	if st.overrides[agent] {
		k.agent = agent
	}
	pq, hit := e.cache.Get(k)
	if span.IsRecording() {
		span.SetAttributes(attribute.Bool("cache_hit", hit))
	}
	if hit {
		e.hits.Add(1)
	} else {
		e.misses.Add(1)
		var err error
		if pq, err = e.compile(ctx, k, st); err != nil {
			return nil, fmt.Errorf("%w: %w", pdp.ErrEvaluationFailed, err)
		}
	}
	return pq, nil
}

// run evaluates a prepared decision query with input in one of the
// evaluation slots, bounded by Config.Timeout, passing values (the
// inter-query value cache) when not nil. Every error wraps
// pdp.ErrEvaluationFailed, but for ErrOverloaded from the slots.
func (e *Engine) run(ctx context.Context, tenant string, pq rego.PreparedEvalQuery, input ast.Value, values cache.InterQueryValueCache) (rego.ResultSet, error) {
	if err := e.slots.acquire(ctx, tenant); err != nil {
		return nil, err
	}
	defer e.slots.release(tenant)
	w := startWatch(ctx, e.cfg.Timeout)
	w.opts = append(w.opts[:0], rego.EvalParsedInput(input), w.cancelOpt, noMetrics)
	switch {
	case values == nil:
	case values == e.values:
		w.opts = append(w.opts, e.valuesOpt)
	default:
		// Passed on every Eval: PreparedEvalQuery ignores the rego.New option.
		w.opts = append(w.opts, rego.EvalInterQueryBuiltinValueCache(values))
	}
	rs, err := pq.Eval(ctx, w.opts...)
	if late := w.stop(ctx); err == nil {
		err = late // a result that raced the deadline or a cancellation is not trusted
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", pdp.ErrEvaluationFailed, err)
	}
	return rs, nil
}

// compile prepares the query of key k once, however many callers miss on
// it at the same moment. The shared work runs detached from every caller's
// cancellation (see Engine's lock order notes); each caller waits for it
// until its own context ends.
func (e *Engine) compile(ctx context.Context, k key, st *tenantState) (*prepared, error) {
	sfKey := k.tenant + "\x00" + k.agent + "\x00" + strconv.FormatUint(k.revision, 10)
	detached := context.WithoutCancel(ctx)
	ch := e.flight.DoChan(sfKey, func() (any, error) {
		if pq, ok := e.cache.Get(k); ok {
			return pq, nil // compiled by a caller that finished just before
		}
		pq, err := e.prepare(detached, k, st)
		if err != nil {
			return nil, err
		}
		// Cache only if the tenant is still at this revision; a racing
		// SetTenant has already dropped this revision's keys.
		if rev, ok := e.Revision(k.tenant); ok && rev == k.revision {
			e.cache.Add(k, pq)
		}
		return pq, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*prepared), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for the compile of tenant %q: %w", k.tenant, context.Cause(ctx))
	}
}

func (e *Engine) prepare(ctx context.Context, k key, st *tenantState) (_ *prepared, err error) {
	start := time.Now()
	ctx, span := e.tracer.Start(ctx, "engine.Compile", trace.WithAttributes(
		attribute.String("tenant_id", k.tenant),
		attribute.String("agent_id", k.agent),
		attribute.Int64("revision", int64(k.revision)),
	))
	defer func() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "compile failed")
		}
		span.End()
		e.recordCompile(time.Since(start))
	}()

	u, reused, err := e.unitFor(ctx, k.tenant, st)
	if err != nil {
		return nil, err
	}
	span.SetAttributes(attribute.Bool("unit_reused", reused))
	pq, err := e.prepareQuery(ctx, u.compiler, u.store)
	if err != nil {
		return nil, fmt.Errorf("prepare tenant %q: %w", k.tenant, err)
	}
	p := &prepared{query: pq}
	if st.source == "" && e.query == adapter.DecisionQuery {
		// Registry tenants decide with the engine's hints; a bundle's
		// library is the bundle's own and is evaluated as shipped.
		hq, err := e.prepareHinted(ctx, u.compiler, u.store)
		if err != nil {
			return nil, fmt.Errorf("prepare tenant %q: %w", k.tenant, err)
		}
		p.hinted, p.hinter = &hq, u.hinter
		if p.direct, err = e.queries.direct(u.compiler, u.store, hintedQuery); err != nil {
			return nil, fmt.Errorf("prepare tenant %q: %w", k.tenant, err)
		}
		// The views, for the no-hit answer (nohit.go); none when modules of
		// the engine's caller may change what the library decides.
		if !e.extended {
			if p.views, err = storage.ReadOne(ctx, u.store, viewsPath(k.tenant)); err != nil && !storage.IsNotFound(err) {
				return nil, fmt.Errorf("prepare tenant %q: read its views: %w", k.tenant, err)
			}
			doc, err := storage.ReadOne(ctx, u.store, viewsPath(k.tenant)[:3])
			if err != nil && !storage.IsNotFound(err) {
				return nil, fmt.Errorf("prepare tenant %q: read its data: %w", k.tenant, err)
			}
			p.tenant, _ = doc.(ast.Object)
			p.approval = e.approvalHits(ctx, u.compiler)
		}
	}
	return p, nil
}

// prepareQuery prepares the decision query over a compiled unit. Strict:
// a built-in error (a regex that does not compile, a number out of range)
// fails the evaluation, and so the decision, instead of making one rule
// body undefined and the rule silently skipped.
func (e *Engine) prepareQuery(ctx context.Context, c *ast.Compiler, s storage.Store) (rego.PreparedEvalQuery, error) {
	body, err := e.queries.parsed(e.query)
	if err != nil {
		return rego.PreparedEvalQuery{}, err
	}
	return rego.New(
		rego.ParsedQuery(body),
		rego.Compiler(c),
		rego.Store(s),
		rego.StrictBuiltinErrors(true),
	).PrepareForEval(ctx)
}

// unitFor returns the tenant's unit for st's revision: its data store
// over the shared library (compiled on first use), built on first use in
// the compile pool. A failed build is not kept, so a cancelled caller does
// not poison the revision. ctx must not be a caller's cancellable context
// (compile passes a detached one): unitMu is held while the unit builds.
func (e *Engine) unitFor(ctx context.Context, tenant string, st *tenantState) (_ *unit, reused bool, _ error) {
	st.unitMu.Lock()
	defer st.unitMu.Unlock()
	if st.unit != nil {
		return st.unit, true, nil
	}
	var u *unit
	err := e.pool.do(ctx, func() (err error) {
		if e.compileHook != nil {
			e.compileHook()
		}
		u, err = e.tenantUnit(st.policies)
		if err != nil {
			return fmt.Errorf("compile tenant %q: %w", tenant, err)
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	st.unit = u
	return st.unit, false, nil
}

// tenantUnit builds the unit of a registry tenant's policies (or a
// draft's): the shared library and a store holding the engine's config and
// the tenant's data document, read through a hintStore (the hints of
// Evaluate's hinted evaluations).
func (e *Engine) tenantUnit(tp *pdp.TenantPolicies) (*unit, error) {
	lib, err := e.lib.get(e.library)
	if err != nil {
		return nil, fmt.Errorf("compile the library: %w", err)
	}
	doc, err := ast.InterfaceToValue(adapter.TenantData(tp, "", true))
	if err != nil {
		return nil, fmt.Errorf("tenant %q: its data document: %w", tp.TenantID, err)
	}
	// The store keeps AST values as given (InterfaceToValue returns an
	// ast.Value unchanged): the document with its equal parts shared, with
	// each other and with the tenants built around the same time.
	store := inmem.NewFromObjectWithOpts(map[string]any{
		adapter.Root: map[string]any{
			"config":  e.data,
			"tenants": map[string]any{tp.TenantID: e.interned.value(doc)},
		},
	}, inmem.OptRoundTripOnWrite(true), inmem.OptReturnASTValuesOnRead(true))
	return &unit{compiler: lib, store: hintStore{store}, hinter: adapter.NewHinter(tp)}, nil
}

// moduleCache keeps, by scope, name and a fingerprint of a policy's
// content, adapter.Validate's verdict and the policy's compile cost
// (budget.go), so a write re-checks and re-measures only what changed
// (versions alone would do for the registry, but not for policies loaded
// from files, which carry none).
type moduleCache struct {
	mu      sync.Mutex
	costs   map[moduleKey]int
	checked map[moduleKey]error // adapter.Validate's verdict by content
}

type moduleKey struct {
	agent, name string
	sum         [sha256.Size]byte
}

func newModuleCache() *moduleCache {
	return &moduleCache{costs: map[moduleKey]int{}, checked: map[moduleKey]error{}}
}

// validate runs adapter.Validate on a copy of p once per content.
func (c *moduleCache) validate(p *pdp.Policy) error {
	content, err := json.Marshal(p)
	if err != nil {
		return err
	}
	k := moduleKey{p.AgentID, p.Name, sha256.Sum256(content)}
	c.mu.Lock()
	verdict, seen := c.checked[k]
	c.mu.Unlock()
	if seen {
		return verdict
	}
	cp := *p
	verdict = adapter.Validate(&cp)
	c.mu.Lock()
	for old := range c.checked {
		if old.agent == k.agent && old.name == k.name {
			delete(c.checked, old)
		}
	}
	c.checked[k] = verdict
	c.mu.Unlock()
	return verdict
}

// cost returns the compile cost of p (policyCost), measured once per
// content; other versions of the same policy are dropped.
func (c *moduleCache) cost(p *pdp.Policy) int {
	k, err := translationKey(p)
	if err != nil {
		return policyCost(p)
	}
	c.mu.Lock()
	n, ok := c.costs[k]
	c.mu.Unlock()
	if ok {
		return n
	}
	n = policyCost(p)
	c.mu.Lock()
	for old := range c.costs {
		if old.agent == k.agent && old.name == k.name {
			delete(c.costs, old)
		}
	}
	c.costs[k] = n
	c.mu.Unlock()
	return n
}

// translationKey identifies what a policy's data is made of.
func translationKey(p *pdp.Policy) (moduleKey, error) {
	content, err := json.Marshal(struct {
		S, W []string
		R    []pdp.Rule
		M    string
	}{p.StepTypes, p.WhitelistedDomains, p.Rules, p.ModeName()})
	if err != nil {
		return moduleKey{}, err
	}
	return moduleKey{p.AgentID, p.Name, sha256.Sum256(content)}, nil
}
