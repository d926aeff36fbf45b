package engine

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// The no-hit answer: the commonest decision, answered without evaluating.
//
// When the engine's hints say that no rule of the view's policies can fire
// (data.gatehouse.hints.rules == {"agent": {}, "tenant": {}}) and that no
// built-in's anchor occurs (data.gatehouse.hints.builtins == {}), the
// library's result is, by its first branch (rego/gatehouse/decision.rego:
// result, _builtins_result), exactly _view.allowed: the view's
// precomputed no-hit result, a term of the tenant's data. Evaluate then
// answers that term in Go instead of evaluating the hinted query, after
// checking the same preconditions on the same values the evaluation would
// read:
//   - is_string(input.action): the input's action is always a string
//     (lazyInput);
//   - the rules and builtins hints: the very values hintStore would serve
//     (hintsOf computes both ways; the rules object is compared as Rego's
//     == compares it);
//   - _view is the view hint: findView, the lookup hintStore.view makes,
//     over the tenant's views document read from the unit's store (once,
//     at prepare: nothing writes that store), and the view has "allowed".
//     When there is no view hint (no views in the data, none found) the
//     library looks further itself, so the engine evaluates.
//
// The answer stands for the library's own result only: an engine whose
// library WithModules extended or changed evaluates every decision.
//
// Everything else stays as an evaluation has it: the tenant's entry is
// looked up first (unknown and degraded tenants fail as before), the
// answer is given holding one of the evaluation slots (admitted, waiting
// and refused with ErrOverloaded like an evaluation, fairness included),
// and it is not trusted once Config.Timeout has passed by the clock or
// the caller's context has ended, as run does not trust a result that
// raced either. A stock OPA, the Data API and opa test still evaluate the
// library, which takes the later branches to the same result;
// TestHintsDifferential compares both on every generated action and
// TestNoHitAnswer compares the answer with the hinted evaluation it
// replaces, field by field.
//
// The hit answer (hit.go) takes the decisions this one leaves when only
// a few candidate rules (and at most FinancialSafety's approval) are
// hinted, and answers those where at most one hit results.

// noHitTerm is the result term of a's decision when hs (hintsOf a) says
// nothing can fire, taken from the view the library would find; nil when
// the evaluation must decide. It sets hs.view to that view (nil when the
// entry has no views: hintStore then looks it up itself), so that an
// evaluation's view hint needs no lookup of its own.
func (p *prepared) noHitTerm(hs *hintSet) *ast.Term {
	if p.views == nil {
		return nil
	}
	if !hs.looked {
		fv := p.viewOf(hs.agent, hs.step)
		hs.view, hs.found, hs.looked = fv.view, fv, true
	}
	fv := hs.found
	if fv.allowed == nil || hs.builtins != builtinHints[0] || hs.rules.Value.Compare(noRulesHint) != 0 {
		return nil
	}
	return fv.allowed
}

// foundView is what findView finds in an entry's views for one agent and
// step type: the view (nil: none) and its "allowed" term (nil: none).
type foundView struct {
	view    ast.Value
	allowed *ast.Term
	// hit: result's second branch decides for the view (hitView), so
	// the hit answer may (hit.go).
	hit bool
	// hint: the entry's hinter's view of the same agent and step type
	// (adapter.Hinter.View; nil: none, or no hinter).
	hint *adapter.HintView
}

// viewOf is findView's lookup in p.views, remembered (viewMemo).
func (p *prepared) viewOf(agent, step string) foundView {
	k := viewKey{agent: agent, step: step}
	memo := p.found.Load()
	if memo != nil {
		if fv, ok := (*memo)[k]; ok {
			return fv
		}
	}
	var fv foundView
	fv.view, _ = findView(p.views, agent, step)
	if obj, ok := fv.view.(ast.Object); ok {
		fv.allowed = obj.Get(keyAllowed)
		fv.hit = hitView(obj, p.tenant)
	}
	if p.hinter != nil {
		fv.hint = p.hinter.View(agent, step)
	}
	if memo == nil || len(*memo) < maxViewMemo {
		next := make(map[viewKey]foundView, 1+len0(memo))
		if memo != nil {
			maps.Copy(next, *memo)
		}
		next[k] = fv
		p.found.CompareAndSwap(memo, &next) // a racing writer's map wins; looked up again later
	}
	return fv
}

// viewKey is what findView looks a view up by: the input's agent_id and
// step_type (hintSet).
type viewKey struct{ agent, step string }

// viewMemo remembers an entry's view lookups (viewOf) by viewKey. The
// views are immutable (the unit's store is never written), so a lookup
// made once holds for the entry's life. A map replaced, never changed; at
// most maxViewMemo keys (agent ids and step types are the client's), past
// that lookups are made every time.
type viewMemo = atomic.Pointer[map[viewKey]foundView]

const maxViewMemo = 256

func len0(m *map[viewKey]foundView) int {
	if m == nil {
		return 0
	}
	return len(*m)
}

var (
	// noRulesHint is the rules hint of an action no rule can fire on, as
	// the library's result compares it.
	noRulesHint = ast.MustParseTerm(`{"agent": {}, "tenant": {}}`).Value
	keyAllowed  = ast.StringTerm("allowed")
)

// answerNoHit is the decision whose result term is allowed (noHitTerm),
// given like an evaluation's: in one of the slots, failed closed when the
// timeout passed or ctx ended meanwhile.
func (e *Engine) answerNoHit(ctx context.Context, tenant string, p *prepared, allowed *ast.Term, start time.Time) (*pdp.Decision, error) {
	if err := e.slots.acquire(ctx, tenant); err != nil {
		return nil, err
	}
	defer e.slots.release(tenant)
	began := time.Now()
	d, err := p.noHits.decode(allowed)
	return e.answeredInGo(ctx, d, err, began, start)
}

// answeredInGo is the epilogue of an answer given in Go (the no-hit and
// the hit answer) that began at began, holding a slot, for a decision
// requested at start: d, timed, unless deciding failed (err), Config.Timeout
// passed by the clock or the caller's context ended, each an
// ErrEvaluationFailed (fail closed), as the evaluation would fail.
func (e *Engine) answeredInGo(ctx context.Context, d *pdp.Decision, err error, began, start time.Time) (*pdp.Decision, error) {
	switch {
	case err != nil:
	case !time.Now().Before(began.Add(e.cfg.Timeout)):
		err = context.DeadlineExceeded
	case ctx.Err() != nil:
		err = context.Cause(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", pdp.ErrEvaluationFailed, err)
	}
	d.EvaluationTimeMS = float64(time.Since(start).Microseconds()) / 1000
	return d, nil
}

// decisionOfAST is decisionOfAST for the entry's hinted query, decoding a
// result without hits once (noHitMemo). A decision without hits is the
// view's precomputed no-hit document, read from the unit's store, which
// nothing writes: the same term every time.
func (p *prepared) decisionOfAST(rs rego.ResultSet, start time.Time) (*pdp.Decision, error) {
	t, err := resultTerm(rs)
	if err != nil {
		return nil, err
	}
	return p.decisionOfTerm(t, start)
}

// decisionOfTerm is decisionOfAST for the result term t.
func (p *prepared) decisionOfTerm(t *ast.Term, start time.Time) (*pdp.Decision, error) {
	d, err := p.noHits.decode(t)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", pdp.ErrEvaluationFailed, err)
	}
	d.EvaluationTimeMS = float64(time.Since(start).Microseconds()) / 1000
	return d, nil
}

// noHitMemo remembers, per entry, the decisions of result terms without
// violations, warnings or shadow hits, by the term (its pointer): a view's
// no-hit result, which the no-hit answer and evaluations without hits
// return, is a term of the unit's store, immutable and the same every
// time. A remembered term is kept alive by the memo, so its address is
// never reused for another term. decode hands out copies that share
// nothing a caller could change with the remembered decision or with
// other copies (TestNoHitMemo). At most maxNoHits terms are remembered per
// entry (a tenant has a few views per scope); past that, terms are
// decoded every time.
type noHitMemo struct {
	m sync.Map // *ast.Term → *pdp.Decision, never modified
	n atomic.Int32
}

const maxNoHits = 64

// decode is the decision of result term t (decodeAST), from the memo when
// t is remembered.
func (m *noHitMemo) decode(t *ast.Term) (*pdp.Decision, error) {
	if d, ok := m.m.Load(t); ok {
		return copyDecision(d.(*pdp.Decision)), nil
	}
	d, err := decodeAST(t.Value)
	if err != nil {
		return nil, err
	}
	if len(d.Violations) == 0 && len(d.Warnings) == 0 && len(d.Shadow) == 0 && m.n.Load() < maxNoHits {
		if _, loaded := m.m.LoadOrStore(t, copyDecision(d)); !loaded {
			m.n.Add(1)
		}
	}
	return d, nil
}

// remembered is the decision remembered for t, nil if none (tests).
func (m *noHitMemo) remembered(t *ast.Term) *pdp.Decision {
	if d, ok := m.m.Load(t); ok {
		return d.(*pdp.Decision)
	}
	return nil
}
