package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/cache"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// directQuery is the hinted decision query as Evaluate runs it: compiled
// once per entry by the unit's compiler (as rego.PrepareForEval compiles
// it: the query compiler over the same compiler, the value captured in a
// variable) and evaluated with topdown directly. What
// rego.PreparedEvalQuery.Eval adds per call — an EvalContext, a finish
// function, a ResultSet with bindings and expression values, the
// callback collecting them — is some eight allocations an evaluation
// need not pay; the evaluation itself is the same one (same compiler,
// store, input, strict built-in errors, indexing and early exit, the
// engine's cancel and inter-query value cache, no metrics), with a
// virtual cache and a base cache from their pools (virtualCache,
// baseCache).
// TestDirectQuery compares it with the prepared hinted query.
type directQuery struct {
	compiler *ast.Compiler
	qc       ast.QueryCompiler
	store    storage.Store
	body     ast.Body
}

// directResult is the variable the query's value is captured in.
var directResult = ast.Var("result")

func newDirectQuery(c *ast.Compiler, s storage.Store, query string) (*directQuery, error) {
	q, err := ast.ParseBody(string(directResult) + " = " + query)
	if err != nil {
		return nil, err
	}
	qc := c.QueryCompiler()
	body, err := qc.Compile(q)
	if err != nil {
		return nil, err
	}
	return &directQuery{compiler: c, qc: qc, store: s, body: body}, nil
}

var noOpMetrics = metrics.NoOp()

// eval evaluates the query on input with ctx (which carries the hints),
// cancelled by cancel, with the inter-query value cache values (nil:
// none). The result is the captured value of the first result, nil when
// undefined.
func (q *directQuery) eval(ctx context.Context, input ast.Value, cancel topdown.Cancel, values cache.InterQueryValueCache) (*ast.Term, error) {
	txn, err := q.store.NewTransaction(ctx)
	if err != nil {
		return nil, err
	}
	defer q.store.Abort(ctx, txn)
	var out *ast.Term
	vc := getVirtualCache()
	defer putVirtualCache(vc)
	bc := getBaseCache()
	defer putBaseCache(bc)
	err = topdown.NewQuery(q.body).
		WithVirtualCache(vc).
		WithBaseCache(bc).
		WithQueryCompiler(q.qc).
		WithCompiler(q.compiler).
		WithStore(q.store).
		WithTransaction(txn).
		WithInput(ast.NewTerm(input)).
		WithMetrics(noOpMetrics).
		WithIndexing(true).
		WithEarlyExit(true).
		WithStrictBuiltinErrors(true).
		WithInterQueryBuiltinValueCache(values).
		WithCancel(cancel).
		Iter(ctx, func(qr topdown.QueryResult) error {
			if out == nil {
				out = qr[directResult]
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// runDirect is run for a directQuery: in one of the slots, bounded by
// Config.Timeout, failed closed on a result that raced the deadline or a
// cancellation; an undefined result is an error.
func (e *Engine) runDirect(ctx context.Context, tenant string, q *directQuery, input ast.Value) (*ast.Term, error) {
	if err := e.slots.acquire(ctx, tenant); err != nil {
		return nil, err
	}
	defer e.slots.release(tenant)
	return e.evalDirect(ctx, q, input, e.cfg.Timeout)
}

// evalDirect is runDirect's evaluation, for a caller holding a slot,
// bounded by timeout.
func (e *Engine) evalDirect(ctx context.Context, q *directQuery, input ast.Value, timeout time.Duration) (*ast.Term, error) {
	w := startWatch(ctx, timeout)
	t, err := q.eval(ctx, input, w, e.values)
	if late := w.stop(ctx); err == nil {
		err = late // a result that raced the deadline or a cancellation is not trusted
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", pdp.ErrEvaluationFailed, err)
	}
	if t == nil {
		return nil, fmt.Errorf("%w: undefined result", pdp.ErrEvaluationFailed)
	}
	return t, nil
}
