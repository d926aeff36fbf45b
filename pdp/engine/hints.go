package engine

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/pdp"
	library "github.com/gatehouse-pdp/gatehouse/rego"
)

// hintedQuery is the decision query as Evaluate runs it for registry
// tenants. Its input is the engine's own wrapper {"input": <the action's
// input>, "hints": <facts computed in Go>}: the library sees the action's
// input as input and the hints as data.gatehouse.hints, which nothing
// else sets (no store document, no client input: the Data API evaluates
// the plain query, and a client's fields named like hints stay inside
// the action's input, where the library never looks for hints).
//
// The hints: text, folded and ascii (the action text, computed in Go byte
// for byte as the library computes it), rules (per scope, each policy of
// the view with a rule that could fire → the indexes of those rules: one
// multi-pattern pass finds the rules' necessary literals, one Shift-And
// pass tests their necessary class-sequence conditions, adapter.Hinter's
// RulesTerm; with it the library skips the policies' pre-checks),
// builtins (the built-ins whose anchors occur) and financial (the money
// word and whether an amount key occurs, when FinancialSafety may fire).
// The library decides the same without them; they only spare it work.
const hintedQuery = adapter.DecisionQuery + " with input as input.input with data.gatehouse.hints as input.hints"

// prepareHinted prepares hintedQuery over a compiled unit, strict like
// prepareQuery, with the result kept as AST (decodeAST reads it).
func (e *Engine) prepareHinted(ctx context.Context, c *ast.Compiler, s storage.Store) (rego.PreparedEvalQuery, error) {
	return rego.New(
		rego.Query(hintedQuery),
		rego.Compiler(c),
		rego.Store(s),
		rego.StrictBuiltinErrors(true),
		rego.GenerateJSON(func(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }),
	).PrepareForEval(ctx)
}

var (
	hintInputKey    = ast.InternedTerm("input")
	hintHintsKey    = ast.InternedTerm("hints")
	hintText        = ast.InternedTerm("text")
	hintFolded      = ast.InternedTerm("folded")
	hintASCII       = ast.InternedTerm("ascii")
	hintRules       = ast.InternedTerm("rules")
	hintBuiltins    = ast.InternedTerm("builtins")
	hintFinancial   = ast.InternedTerm(adapter.BuiltinNames[0])
	hintExfiltrated = ast.InternedTerm(adapter.BuiltinNames[1])
	// financial: {keyword, amount_key}, FinancialSafety's facts
	// (library.FinancialFacts, fuzz-checked against the Rego).
	hintFinancialFacts = ast.InternedTerm("financial")
	hintKeyword        = ast.InternedTerm("keyword")
	hintAmountKey      = ast.InternedTerm("amount_key")
)

// builtinHints are the four possible values of the builtins hint, built
// once: index bit 0 FinancialSafetyPolicy may fire, bit 1
// DataExfiltrationPolicy may fire.
var builtinHints = [4]*ast.Term{
	ast.ObjectTerm(),
	ast.ObjectTerm([2]*ast.Term{hintFinancial, ast.InternedTerm(true)}),
	ast.ObjectTerm([2]*ast.Term{hintExfiltrated, ast.InternedTerm(true)}),
	ast.ObjectTerm([2]*ast.Term{hintFinancial, ast.InternedTerm(true)}, [2]*ast.Term{hintExfiltrated, ast.InternedTerm(true)}),
}

// hintedInput returns hintedQuery's input for action a, whose decision
// input and params are input and params; ok is false when the action text
// cannot be computed in Go (the caller then evaluates without hints).
func hintedInput(h *adapter.Hinter, a pdp.Action, input ast.Value, params ast.Object) (ast.Value, bool) {
	text, err := actionText(a.Name, params)
	if err != nil || h == nil {
		return nil, false
	}
	folded := foldText(text)
	rules := h.RulesTerm(a.AgentID, a.StepType, folded)
	builtins := 0
	var financial *ast.Term
	// FinancialFacts and DataExfiltrationMayFire from one scan of folded.
	keyword, amountKey, fin, exfil := library.BuiltinFacts(a.Name, text, folded)
	if fin {
		builtins |= 1
		financial = ast.ObjectTerm(
			[2]*ast.Term{hintKeyword, shortStringTerm(keyword)},
			[2]*ast.Term{hintAmountKey, ast.InternedTerm(amountKey)},
		)
	}
	if exfil {
		builtins |= 2
	}
	textTerm := ast.StringTerm(text)
	foldedTerm := textTerm
	if folded != text {
		foldedTerm = ast.StringTerm(folded)
	}
	items := [...][2]*ast.Term{
		{hintText, textTerm},
		{hintFolded, foldedTerm},
		{hintASCII, ast.InternedTerm(isASCII(text))},
		{hintRules, rules},
		{hintBuiltins, builtinHints[builtins]},
		{hintFinancialFacts, financial},
	}
	n := len(items)
	if financial == nil {
		n-- // built in one block either way, never grown by an Insert
	}
	hints := ast.NewObject(items[:n]...)
	return ast.NewObject(
		[2]*ast.Term{hintInputKey, ast.NewTerm(input)},
		[2]*ast.Term{hintHintsKey, ast.NewTerm(hints)},
	), true
}

// decisionOfAST is decisionOf for a result set whose values are AST terms
// (prepareHinted).
func decisionOfAST(rs rego.ResultSet, start time.Time) (*pdp.Decision, error) {
	t, err := resultTerm(rs)
	if err != nil {
		return nil, err
	}
	d, err := decodeAST(t.Value)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", pdp.ErrEvaluationFailed, err)
	}
	d.EvaluationTimeMS = float64(time.Since(start).Microseconds()) / 1000
	return d, nil
}

// resultTerm is the term of a hinted result set; an undefined result is an
// error (fail closed).
func resultTerm(rs rego.ResultSet) (*ast.Term, error) {
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, fmt.Errorf("%w: undefined result", pdp.ErrEvaluationFailed)
	}
	t, ok := rs[0].Expressions[0].Value.(*ast.Term)
	if !ok {
		return nil, fmt.Errorf("%w: result is %T, not a term", pdp.ErrEvaluationFailed, rs[0].Expressions[0].Value)
	}
	return t, nil
}

// decoded is a result term and its decision, decoded once.
type decoded struct {
	term *ast.Term
	d    pdp.Decision
}

// decisionOfAST is decisionOfAST for the entry's hinted query, which
// remembers the first result without violations, warnings or shadow hits
// it decodes. A decision without hits is the view's precomputed no-hit
// document, read from the unit's store, which nothing writes: the same
// term every time. When the result is that very term (by pointer), its
// decision is copied instead of decoded again. The copy shares nothing a
// caller could change with the remembered decision or with other copies
// (TestNoHitMemo). One term is remembered per entry, so what is kept is
// bounded; an entry serving several views decodes the others as before.
func (p *prepared) decisionOfAST(rs rego.ResultSet, start time.Time) (*pdp.Decision, error) {
	t, err := resultTerm(rs)
	if err != nil {
		return nil, err
	}
	var d *pdp.Decision
	if m := p.noHit.Load(); m != nil && m.term == t {
		d = copyDecision(&m.d)
	} else {
		if d, err = decodeAST(t.Value); err != nil {
			return nil, fmt.Errorf("%w: %w", pdp.ErrEvaluationFailed, err)
		}
		if m == nil && len(d.Violations) == 0 && len(d.Warnings) == 0 && len(d.Shadow) == 0 {
			p.noHit.CompareAndSwap(nil, &decoded{term: t, d: *copyDecision(d)})
		}
	}
	d.EvaluationTimeMS = float64(time.Since(start).Microseconds()) / 1000
	return d, nil
}

// copyDecision returns a deep copy of d: slices and pointed-to values are
// new (nil stays nil, empty stays empty), strings are immutable.
func copyDecision(d *pdp.Decision) *pdp.Decision {
	c := *d
	c.PoliciesEvaluated = slices.Clone(d.PoliciesEvaluated)
	c.TriggeredPolicy = clonePtr(d.TriggeredPolicy)
	c.Severity = clonePtr(d.Severity)
	c.Reason = clonePtr(d.Reason)
	c.Violations = slices.Clone(d.Violations)
	c.Warnings = slices.Clone(d.Warnings)
	c.Shadow = slices.Clone(d.Shadow)
	return &c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
