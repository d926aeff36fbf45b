package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	bundleload "github.com/gatehouse-pdp/gatehouse/bundles/loaded"
	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// bundleRevisionBase starts the revisions the engine gives bundle tenants
// far above any registry revision, so a tenant that moves from the registry
// to a bundle can never reuse a cache key of its registry past.
const bundleRevisionBase = 1 << 62

// LoadBundle publishes the tenants of a loaded bundle (`gatehouse serve
// --bundle`): the next Evaluate or Query for each of them decides with the
// bundle's modules and data exactly as shipped (library included), not with
// the engine's own library and thresholds, so the server decides what a
// stock OPA serving the same bundle decides.
//
// source names where the bundle comes from (its file or URL): loading a
// new revision from the same source replaces the previous one, and its
// tenants that the new revision no longer holds are removed (their
// decisions fail closed). A tenant may come from one source only.
//
// The bundle is compiled once, here, for all its tenants, and each tenant's
// prepared query is made before anything is published; on any error the
// engine keeps what it had. The prepared-query cache works as for registry
// tenants: each load is a new revision, so entries of the previous bundle
// are unreachable at once and dropped.
func (e *Engine) LoadBundle(ctx context.Context, source string, l *bundleload.Bundle) (err error) {
	ctx, span := e.tracer.Start(ctx, "engine.LoadBundle", trace.WithAttributes(
		attribute.String("bundle_source", source),
		attribute.String("bundle_revision", l.Revision),
	))
	defer func() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "bundle load failed")
		}
		span.End()
	}()
	if source == "" || l == nil || len(l.TenantIDs) == 0 {
		return errors.New("load bundle: a source and a bundle with tenants are required")
	}
	e.bundleMu.Lock()
	defer e.bundleMu.Unlock()

	e.mu.RLock()
	for _, id := range l.TenantIDs {
		if st := e.tenants[id]; st != nil && st.source != "" && st.source != source {
			e.mu.RUnlock()
			return fmt.Errorf("load bundle %s: tenant %q already comes from bundle %s", source, id, st.source)
		}
	}
	e.mu.RUnlock()

	// Re-validate what the bundle carries: its patterns and rules (a
	// tenant with a bad one fails closed alone) and its built-ins (network and runtime
	// ones refuse the bundle, see bundleload.Compile).
	problems, err := bundleload.CheckRegexes(l)
	if err != nil {
		return fmt.Errorf("load bundle %s revision %q: %w", source, l.Revision, err)
	}
	// And its rules: one that could never fire (an unknown kind, missing
	// from by_literal) degrades its tenant rather than pass unseen.
	for id, p := range bundleload.CheckRules(l) {
		problems[id] = errors.Join(problems[id], p)
	}
	// The bundle compiles in the engine's compile pool, as a tenant does.
	var compiler *ast.Compiler
	err = e.pool.do(ctx, func() (err error) {
		start := time.Now()
		compiler, err = bundleload.Compile(l)
		e.compiles.Add(1)
		e.compileNanos.Add(int64(time.Since(start)))
		return err
	})
	if err != nil {
		return fmt.Errorf("load bundle %s revision %q: %w", source, l.Revision, err)
	}
	store := inmem.NewFromObjectWithOpts(l.Data, inmem.OptRoundTripOnWrite(true), inmem.OptReturnASTValuesOnRead(true))
	u := &unit{compiler: compiler, store: store}

	root, _ := l.Data[adapter.Root].(map[string]any)
	tenantsData, _ := root["tenants"].(map[string]any)
	revision := bundleRevisionBase + e.bundleGen.Add(1)
	states := make(map[string]*tenantState, len(l.TenantIDs))
	for _, id := range l.TenantIDs {
		data, _ := tenantsData[id].(map[string]any)
		st := &tenantState{
			policies:  &pdp.TenantPolicies{TenantID: id, Revision: revision},
			overrides: map[string]bool{}, // one prepared query serves every agent
			unit:      u,
			source:    source,
			data:      data,
		}
		if p := problems[id]; p != nil {
			st.problem = fmt.Errorf("%w: bundle %s: %w", ErrTenantDegraded, source, p)
			states[id] = st
			continue
		}
		// Prepare now: a bundle that cannot decide is refused while the
		// previous one still serves.
		pq, err := e.prepare(ctx, key{tenant: id, revision: revision}, st)
		if err != nil {
			return fmt.Errorf("load bundle %s revision %q: %w", source, l.Revision, err)
		}
		e.cache.Add(key{tenant: id, revision: revision}, pq)
		states[id] = st
	}

	e.mu.Lock()
	olds := map[string]*tenantState{}
	for id, st := range states {
		if old := e.tenants[id]; old != nil {
			olds[id] = old
		}
		e.tenants[id] = st
	}
	for _, id := range e.sources[source] {
		if _, kept := states[id]; !kept {
			if old := e.tenants[id]; old != nil && old.source == source {
				olds[id] = old
				delete(e.tenants, id)
			}
		}
	}
	e.sources[source] = slices.Clone(l.TenantIDs)
	e.mu.Unlock()
	for id, old := range olds {
		e.drop(id, old)
	}
	span.SetAttributes(attribute.Int("tenants", len(states)))
	return nil
}

// Query evaluates the decision query for tenant with input as given, the
// way OPA's Data API does (POST /v1/data/gatehouse/decision/result): any
// JSON object, except that input.tenant_id is set to tenant, since the
// caller's credentials, never the body, choose the tenant. It returns the
// result document, or defined false when the query is undefined for this
// input. Errors wrap pdp.ErrEvaluationFailed, as Evaluate's do. Numbers in
// input should be json.Number.
func (e *Engine) Query(ctx context.Context, tenant string, input map[string]any) (result any, defined bool, err error) {
	ctx, span := e.tracer.Start(ctx, "engine.Query", trace.WithAttributes(attribute.String("tenant_id", tenant)))
	defer func() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "evaluation failed")
		}
		span.End()
	}()
	in := maps.Clone(input)
	if in == nil {
		in = map[string]any{}
	}
	in["tenant_id"] = tenant
	v, err := ast.InterfaceToValue(in)
	if err != nil {
		return nil, false, fmt.Errorf("%w: input: %w", pdp.ErrEvaluationFailed, err)
	}
	agent, _ := in["agent_id"].(string)
	rs, err := e.eval(ctx, span, tenant, agent, v)
	if err != nil {
		return nil, false, err
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, false, nil
	}
	return rs[0].Expressions[0].Value, true, nil
}

// TenantData returns the tenant's data document,
// data.gatehouse.tenants[tenant], as the engine decides with it: the
// bundle's copy for a bundle tenant, otherwise the one generated from its
// policies. ok is false for a tenant the engine does not know. The result
// must not be modified.
func (e *Engine) TenantData(tenant string) (data map[string]any, ok bool) {
	e.mu.RLock()
	st := e.tenants[tenant]
	e.mu.RUnlock()
	switch {
	case st == nil:
		return nil, false
	case st.source != "":
		return st.data, true
	}
	return adapter.TenantData(st.policies, "", true), true
}

// Source returns the bundle source a tenant was loaded from, "" for a
// tenant published with SetTenant or unknown.
func (e *Engine) Source(tenant string) string {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if st := e.tenants[tenant]; st != nil {
		return st.source
	}
	return ""
}
