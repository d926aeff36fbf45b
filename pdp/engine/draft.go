package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown/cache"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// ErrBundleTenant is returned by EvaluateDraft for a tenant whose policies
// come from a bundle: a draft is tried against registry policies only.
var ErrBundleTenant = errors.New("tenant is served from a bundle")

// EvaluateDraft decides a as Evaluate would if the tenant's policies were
// tp (typically the stored policies with one unsaved draft put in): the
// console's playground tries a policy before it is saved this way.
//
// Nothing is kept: the modules are compiled into a unit of their own that
// is dropped on return, so a draft never enters the prepared-query cache,
// the module cache or the tenant's published state, and never changes
// what Evaluate decides. Its cost is a compile of tp's enabled policies
// onto the library compiled once (tens of milliseconds, see
// libcompile.go); callers bound how many run
// at once. The evaluation itself takes one of Config.MaxConcurrent's slots
// and is bounded by Config.Timeout, like every other, and fails closed
// the same way. tp.TenantID must be a tenant the engine knows from
// SetTenant.
func (e *Engine) EvaluateDraft(ctx context.Context, a pdp.Action, tp pdp.TenantPolicies) (d *pdp.Decision, err error) {
	start := time.Now()
	ctx, span := e.startDecisionSpan(ctx, "engine.EvaluateDraft", a)
	defer func() { endDecisionSpan(span, d, err) }()
	if a.TenantID != tp.TenantID {
		return nil, fmt.Errorf("%w: draft policies of tenant %q for an action of %q", pdp.ErrEvaluationFailed, tp.TenantID, a.TenantID)
	}
	dr, err := e.PrepareDraft(ctx, tp)
	if err != nil {
		return nil, err
	}
	// No inter-query value cache: one evaluation gains nothing from it.
	return dr.evaluate(ctx, a, start, nil)
}

// Draft is a tenant's policy set compiled on its own, outside the
// engine's caches and published state, to evaluate many actions against
// one compile (impact analysis replays recorded actions through two).
// It holds its own regex cache, so a draft's patterns compile once per
// draft and never take the place of the tenants' compiled ones. Safe for
// concurrent use; drop it to free it.
//
// Like a published registry tenant, a draft decides with the engine's
// hints (hintedQuery, candidates from its own adapter.Hinter), falling
// back to the plain query when the action text cannot be computed in Go;
// the two decide the same (TestDraftHinted), so a replay or a dry run
// decides as POST /v1/actions would once the draft is saved.
type Draft struct {
	e      *Engine
	tenant string
	query  rego.PreparedEvalQuery
	hinted *rego.PreparedEvalQuery // nil with a custom query (WithQuery)
	hinter *adapter.Hinter
	values cache.InterQueryValueCache
}

// draftRegexCacheSize bounds a Draft's own regex cache.
const draftRegexCacheSize = 4096

// PrepareDraft compiles tp (tp's enabled policies onto the library) once.
// tp.TenantID must be a tenant the engine knows from SetTenant and serves
// from the registry, not from a bundle.
func (e *Engine) PrepareDraft(ctx context.Context, tp pdp.TenantPolicies) (*Draft, error) {
	e.mu.RLock()
	st := e.tenants[tp.TenantID]
	e.mu.RUnlock()
	switch {
	case st == nil:
		return nil, fmt.Errorf("%w: %w %q", pdp.ErrEvaluationFailed, ErrUnknownTenant, tp.TenantID)
	case st.source != "":
		return nil, fmt.Errorf("%w: %w", pdp.ErrEvaluationFailed, ErrBundleTenant)
	}
	dr, err := e.prepareDraft(ctx, &tp)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", pdp.ErrEvaluationFailed, err)
	}
	n := draftRegexCacheSize
	values := cache.NewInterQueryValueCache(ctx, &cache.Config{
		InterQueryBuiltinValueCache: cache.InterQueryBuiltinValueCacheConfig{MaxNumEntries: &n},
	})
	dr.values = values
	return dr, nil
}

// Evaluate decides a with the draft's policies, as Evaluate would decide
// it had they been published: one of Config.MaxConcurrent's slots,
// Config.Timeout, fail closed. Nothing is recorded or counted.
func (d *Draft) Evaluate(ctx context.Context, a pdp.Action) (*pdp.Decision, error) {
	return d.evaluate(ctx, a, time.Now(), d.values)
}

func (d *Draft) evaluate(ctx context.Context, a pdp.Action, start time.Time, values cache.InterQueryValueCache) (*pdp.Decision, error) {
	if a.TenantID != d.tenant {
		return nil, fmt.Errorf("%w: draft of tenant %q for an action of %q", pdp.ErrEvaluationFailed, d.tenant, a.TenantID)
	}
	text, textErr := actionText(a.Name, a.Params)
	if d.hinted != nil && d.hinter != nil && textErr == nil {
		hctx, hin := hintedEval(ctx, d.hinter, a, text)
		rs, err := d.e.run(hctx, d.tenant, *d.hinted, hin, values)
		if err != nil {
			return nil, err
		}
		return decisionOfAST(rs, start)
	}
	input, _, err := inputAndParams(a)
	if err != nil {
		return nil, fmt.Errorf("%w: input: %w", pdp.ErrEvaluationFailed, err)
	}
	rs, err := d.e.run(ctx, d.tenant, d.query, input, values)
	if err != nil {
		return nil, err
	}
	return decisionOf(rs, start)
}

// prepareDraft builds tp's data into a throwaway unit over the shared
// library, the way unitFor and prepare do for published tenants.
func (e *Engine) prepareDraft(ctx context.Context, tp *pdp.TenantPolicies) (*Draft, error) {
	cost := 0
	for i := range tp.Policies {
		if p := &tp.Policies[i]; p.Enabled {
			cost += policyCost(p)
		}
	}
	// A draft is held to the compile budget a write is held to: it would
	// cost the compile pool as much.
	if cost > e.cfg.CompileBudget {
		return nil, budgetError(cost, e.cfg.CompileBudget)
	}
	var u *unit
	err := e.pool.do(ctx, func() (err error) {
		if u, err = e.tenantUnit(tp); err != nil {
			return fmt.Errorf("compile draft of tenant %q: %w", tp.TenantID, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	compiler, store := u.compiler, u.store
	// Strict like every published tenant's query: a draft decides exactly
	// as POST /v1/actions would once it is saved.
	pq, err := e.prepareQuery(ctx, compiler, store)
	if err != nil {
		return nil, err
	}
	d := &Draft{e: e, tenant: tp.TenantID, query: pq}
	if e.query == adapter.DecisionQuery {
		hq, err := e.prepareHinted(ctx, compiler, store)
		if err != nil {
			return nil, err
		}
		d.hinted, d.hinter = &hq, u.hinter
	}
	return d, nil
}
