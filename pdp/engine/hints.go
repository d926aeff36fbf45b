package engine

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/pdp"
	library "github.com/gatehouse-pdp/gatehouse/rego"
)

// hintedQuery is the decision query as Evaluate runs it for registry
// tenants, with the engine's hints: the plain decision query over the
// unit's hintStore, evaluated in a context that carries the hints
// (hintedEval). The library reads them as data.gatehouse.hints, which
// nothing else sets: no store document (hintStore answers that path from
// the evaluation's context, where only the engine puts them: the key is
// unexported) and no client input (the Data API evaluates with the
// request's context, which has no hints; a client's fields named like
// hints stay inside the action's input, where the library never looks).
//
// The hints: text, folded and ascii (the action text, computed in Go byte
// for byte as the library computes it), rules (per scope, each policy of
// the view with a rule that could fire → the indexes of those rules: one
// multi-pattern pass finds the rules' necessary literals, one Shift-And
// pass tests their necessary class-sequence conditions, adapter.Hinter's
// RulesTerm; with it the library skips the policies' pre-checks),
// builtins (the built-ins whose anchors occur), financial (the money
// word and whether an amount key occurs, when FinancialSafety may fire)
// and view (the view the library's _view finds for the action's tenant,
// agent and step type, looked up in the tenant's data the same way:
// Evaluate's lookups are remembered per entry (prepared.viewOf), others
// are made by hintStore when the library reads the hint: viewHint).
// The library decides the same without them; they only spare it work.
//
// Earlier the hints reached the library through the query itself
// (`with input as input.input with data.gatehouse.hints as input.hints`);
// OPA's with builds the overlay document and pushes its caches and target
// stack on every evaluation, and checks every data reference against the
// target, which cost more than the store reads of the hints do.
const hintedQuery = adapter.DecisionQuery

// prepareHinted prepares hintedQuery over a compiled unit, strict like
// prepareQuery, with the result kept as AST (decodeAST reads it).
func (e *Engine) prepareHinted(ctx context.Context, c *ast.Compiler, s storage.Store) (rego.PreparedEvalQuery, error) {
	body, err := e.queries.parsed(hintedQuery)
	if err != nil {
		return rego.PreparedEvalQuery{}, err
	}
	return rego.New(
		rego.ParsedQuery(body),
		rego.Compiler(c),
		rego.Store(s),
		rego.StrictBuiltinErrors(true),
		rego.GenerateJSON(func(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }),
	).PrepareForEval(ctx)
}

var (
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
	// view: the view _view finds (hintStore.view).
	hintView = ast.InternedTerm("view")
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

// hintedEval returns the context and input of hintedQuery's evaluation
// of action a, whose action text (actionText, which succeeded) is text:
// ctx with the hints (hintsOf), and the decision input with the params
// converted only where the library reads it (lazyInput).
func hintedEval(ctx context.Context, h *adapter.Hinter, a pdp.Action, text string) (context.Context, ast.Value) {
	hs := hintsOf(h, a, text)
	return hintedContext(ctx, &hs), lazyInput(a)
}

// hintedContext is ctx with (a copy of) hs for the evaluation to read, its
// text hints made values first.
func hintedContext(ctx context.Context, hs *hintSet) context.Context {
	h := new(hintSet)
	*h = *hs
	h.text = ast.String(h.textStr)
	h.folded = h.text
	if h.foldedStr != h.textStr {
		h.folded = ast.String(h.foldedStr)
	}
	return context.WithValue(ctx, hintsKey{}, h)
}

// hintsOf is the hints of action a, whose action text (actionText, which
// succeeded) is text.
func hintsOf(h *adapter.Hinter, a pdp.Action, text string) hintSet {
	folded, ascii := foldASCII(text)
	return hintsIn(h, h.View(a.AgentID, a.StepType), a, texts{text: text, folded: folded, ascii: ascii})
}

// hintsOf is the hints of action a in entry p, which remembers the
// hinter's view of a's agent and step type with its own (viewOf): one
// lookup for both; the entry's views' lookup is made, so noHitTerm does
// not make it again.
func (p *prepared) hintsOf(a pdp.Action, t texts) hintSet {
	fv := p.viewOf(a.AgentID, stepOf(a))
	hs := hintsIn(p.hinter, fv.hint, a, t)
	if p.views != nil {
		hs.view, hs.found, hs.looked = fv.view, fv, true
	}
	return hs
}

// stepOf is a's step type as lazyInput gives it: the default when empty.
func stepOf(a pdp.Action) string {
	if a.StepType == "" {
		return pdp.DefaultStepType
	}
	return a.StepType
}

// hintsIn is hintsOf with the hinter's view of a's agent and step type
// (adapter.Hinter.View) looked up and the text folded (t: actionTextsOf's
// with its fold).
func hintsIn(h *adapter.Hinter, v *adapter.HintView, a pdp.Action, t texts) hintSet {
	text, folded, ascii := t.text, t.folded, t.ascii
	hs := hintSet{rules: h.RulesTermIn(v, folded), ascii: ascii,
		tenant: a.TenantID, agent: a.AgentID, step: stepOf(a)}
	// FinancialFacts and DataExfiltrationMayFire from one scan of folded.
	var exfil bool
	hs.keyword, hs.amountKey, hs.financial, exfil = library.BuiltinFacts(a.Name, text, folded)
	builtins := 0
	if hs.financial {
		builtins |= 1
	}
	if exfil {
		builtins |= 2
	}
	hs.builtins = builtinHints[builtins]
	// The text hints as strings: made values (an allocation each) only
	// for an evaluation (hintedContext), not for the no-hit answer.
	hs.textStr, hs.foldedStr = text, folded
	return hs
}

// hintSet is one evaluation's hints, as hintStore serves them: each hint
// a value of its own, so that the library's reads of single hints (all it
// does) need no object holding them all; object builds that object for a
// read of data.gatehouse.hints whole. Built per evaluation, only read.
type hintSet struct {
	text, folded ast.Value // strings, set by hintedContext
	// textStr, foldedStr: the same as Go strings (hintsOf).
	textStr, foldedStr string
	ascii              bool
	rules              *ast.Term // adapter.Hinter's RulesTerm, shared: never modified
	builtins           *ast.Term // one of builtinHints
	financial          bool      // FinancialSafety may fire: keyword and amountKey hold
	keyword            string
	amountKey          bool
	// tenant, agent and step: the input's tenant_id, agent_id ("" for
	// none: null) and step_type (lazyInput), which the view hint is looked
	// up by (hintView).
	tenant, agent, step string
	// view: the view hint when Evaluate found it already (noHitTerm);
	// nil: hintStore looks it up (viewHint).
	view ast.Value
	// found: what noHitTerm found for view (the hit answer's view).
	found foundView
	// looked: view and found are set (prepared.hintsOf looked them up).
	looked bool
}

// object is the hints as one object: {text, folded, ascii, rules,
// builtins, financial: {keyword, amount_key} when FinancialSafety may
// fire}.
func (h *hintSet) object() ast.Object {
	items := [...][2]*ast.Term{
		{hintText, ast.NewTerm(h.text)},
		{hintFolded, ast.NewTerm(h.folded)},
		{hintASCII, ast.InternedTerm(h.ascii)},
		{hintRules, h.rules},
		{hintBuiltins, h.builtins},
		{hintFinancialFacts, nil},
	}
	n := len(items) - 1
	if h.financial {
		items[n][1] = ast.NewTerm(h.financialObject())
		n++
	}
	return ast.NewObject(items[:n]...)
}

func (h *hintSet) financialObject() ast.Object {
	return ast.NewObject(
		[2]*ast.Term{hintKeyword, shortStringTerm(h.keyword)},
		[2]*ast.Term{hintAmountKey, ast.InternedTerm(h.amountKey)},
	)
}

// read is the hint at path (below data.gatehouse.hints), or nil.
func (h *hintSet) read(path storage.Path) ast.Value {
	if len(path) == 0 {
		return h.object()
	}
	var v ast.Value
	switch path[0] {
	case "text":
		v = h.text
	case "folded":
		v = h.folded
	case "ascii":
		v = ast.InternedTerm(h.ascii).Value
	case "rules":
		v = h.rules.Value
	case "builtins":
		v = h.builtins.Value
	case "financial":
		if !h.financial {
			return nil
		}
		if len(path) == 1 {
			return h.financialObject()
		}
		switch path[1] {
		case "keyword":
			v = shortStringTerm(h.keyword).Value
		case "amount_key":
			v = ast.InternedTerm(h.amountKey).Value
		default:
			return nil
		}
		path = path[1:]
	default:
		return nil
	}
	return hintAt(v, path[1:])
}

// hintAt is the value at path below v, or nil.
func hintAt(v ast.Value, path storage.Path) ast.Value {
	for _, seg := range path {
		if v = hintChild(v, seg); v == nil {
			return nil
		}
	}
	return v
}

// hintsKey is the context key of an evaluation's hints (hintedEval).
type hintsKey struct{}

// hintStore is a registry unit's store as its queries read it: the
// tenant's data, and at data.gatehouse.hints the hints of the evaluation
// reading it, from its context (hintedEval); without hints in the context
// (every evaluation but Evaluate's hinted one), exactly the data. The
// hints are read-only for OPA (its reads never modify a value) and are
// built per evaluation, so nothing of one decision reaches another.
type hintStore struct{ storage.Store }

// hintPath is data.gatehouse.hints as a storage path.
var hintPath = storage.Path{adapter.Root, "hints"}

// Read reads path, from the context's hints under hintPath. The hints are
// a *hintSet (hintedEval) or, in tests that change them, an ast.Object.
func (s hintStore) Read(ctx context.Context, txn storage.Transaction, path storage.Path) (any, error) {
	hints := ctx.Value(hintsKey{})
	switch hints.(type) {
	case *hintSet, ast.Object:
	default:
		return s.Store.Read(ctx, txn, path)
	}
	switch {
	case path.HasPrefix(hintPath):
		if v := s.hint(ctx, txn, hints, path[len(hintPath):]); v != nil {
			return v, nil
		}
		return nil, errNoHint
	case hintPath.HasPrefix(path): // data or data.gatehouse, whole
		v, err := s.Store.Read(ctx, txn, path)
		if err != nil && !storage.IsNotFound(err) {
			return nil, err
		}
		return withHints(v, path, s.hint(ctx, txn, hints, nil).(ast.Object))
	}
	return s.Store.Read(ctx, txn, path)
}

// hint is the hint at path (below data.gatehouse.hints) of hints (a
// *hintSet or an ast.Object), or nil. The view hint of a *hintSet is
// looked up in the store as txn reads it: the data the evaluation reads.
func (s hintStore) hint(ctx context.Context, txn storage.Transaction, hints any, path storage.Path) ast.Value {
	switch h := hints.(type) {
	case *hintSet:
		switch {
		case len(path) == 0:
			obj := h.object()
			if v := s.viewHint(ctx, txn, h); v != nil {
				obj.Insert(hintView, ast.NewTerm(v))
			}
			return obj
		case path[0] == "view":
			v := s.viewHint(ctx, txn, h)
			if v == nil {
				return nil
			}
			return hintAt(v, path[1:])
		}
		return h.read(path)
	case ast.Object:
		return hintAt(h, path)
	}
	return nil
}

// viewHint is h's view hint: the view Evaluate found for it (h.view,
// found by findView in the same tenant data, read from this store when
// the entry was prepared: the store is never written), else the view
// looked up now (view).
func (s hintStore) viewHint(ctx context.Context, txn storage.Transaction, h *hintSet) ast.Value {
	if h.view != nil {
		return h.view
	}
	v, _ := s.view(ctx, txn, h)
	return v
}

// viewKind says which of _view's branches a view hint stands for.
type viewKind int

const (
	viewNone         viewKind = iota // no hint: the library looks itself
	viewAgent                        // the agent's own views
	viewDefault                      // the default views
	viewBuiltinsOnly                 // no view for the step type
)

// view is the view the library's _view finds for h's tenant, agent and
// step type in the tenant's data as txn reads it, looked up the same way:
// the agent's views if it has any (an agent "" is null: none), else the
// default ones; in them the step type as given, else upper-cased; else
// the tenant's builtins_only view. It is nil (no hint: the library looks
// itself, as without hints) when the tenant or its views are not in the
// data, or when none of those is. The value is the store's own (read
// with AST values, never copied nor modified).
func (s hintStore) view(ctx context.Context, txn storage.Transaction, h *hintSet) (ast.Value, viewKind) {
	v, err := s.Store.Read(ctx, txn, viewsPath(h.tenant))
	if err != nil {
		return nil, viewNone
	}
	return findView(v, h.agent, h.step)
}

// viewsPath is the path of a tenant's views in its unit's store.
func viewsPath(tenant string) storage.Path {
	return storage.Path{adapter.Root, "tenants", tenant, "views"}
}

// findView is the view _view finds in views (a tenant's views document,
// any value) for agent ("" for none: null) and step (the input's
// step_type): the agent's views if it has any, else the default ones; in
// them the step type as given, else upper-cased; else builtins_only. Nil
// (viewNone) when views is not an object or holds none of those.
// hintStore.view and the no-hit answer (noHitTerm) both look views up
// with it.
func findView(v any, agent, step string) (ast.Value, viewKind) {
	views, ok := v.(ast.Object)
	if !ok {
		return nil, viewNone
	}
	kind := viewAgent
	var scope ast.Value
	if agent != "" {
		scope = objectGet(objectGet(views, "agents"), agent)
	}
	if scope == nil {
		kind = viewDefault
		scope = objectGet(views, "default")
	}
	if scope != nil {
		if v := objectGet(scope, step); v != nil {
			return v, kind
		}
		if v := objectGet(scope, strings.ToUpper(step)); v != nil { // _step: upper()
			return v, kind
		}
	}
	if v := objectGet(views, "builtins_only"); v != nil {
		return v, viewBuiltinsOnly
	}
	return nil, viewNone
}

// objectGet is the value at key of v when v is an object holding it, else
// nil (as a Rego reference to a key: only objects have keys).
func objectGet(v ast.Value, key string) ast.Value {
	obj, ok := v.(ast.Object)
	if !ok {
		return nil
	}
	if t := obj.Get(keyTerm(key)); t != nil {
		return t.Value
	}
	return nil
}

// keyTerm is key as an object key: the prebuilt term of a known hint or
// view key, else a new string term.
func keyTerm(key string) *ast.Term {
	if k := hintKeys[key]; k != nil {
		return k
	}
	return ast.StringTerm(key)
}

// errNoHint is what reading a hint the evaluation does not have returns,
// built once (storage.IsNotFound holds for it, as for the store's own).
var errNoHint = &storage.Error{Code: storage.NotFoundErr, Message: "hint missing"}

// hintChild is the value at path segment seg of v, or nil.
func hintChild(v ast.Value, seg string) ast.Value {
	switch x := v.(type) {
	case ast.Object:
		if t := x.Get(keyTerm(seg)); t != nil {
			return t.Value
		}
	case *ast.Array:
		if i, err := strconv.Atoi(seg); err == nil && i >= 0 && i < x.Len() {
			return x.Elem(i).Value
		}
	}
	return nil
}

// hintKeys are the keys of the hints' objects, built once.
var hintKeys = func() map[string]*ast.Term {
	m := map[string]*ast.Term{}
	for _, t := range []*ast.Term{hintText, hintFolded, hintASCII, hintRules, hintBuiltins,
		hintFinancialFacts, hintKeyword, hintAmountKey, ast.InternedTerm("agent"), ast.InternedTerm("tenant"),
		hintView, ast.InternedTerm("agents"), ast.InternedTerm("default"), ast.InternedTerm("builtins_only"),
		ast.InternedTerm(pdp.DefaultStepType)} {
		m[string(t.Value.(ast.String))] = t
	}
	return m
}()

// withHints is v, the document at path (a proper prefix of hintPath; nil
// when there is none), with hints inserted at hintPath, in copies: the
// store's own value is never modified. The library reads neither data nor
// data.gatehouse whole; a query that does sees the hints where the
// library would.
func withHints(v any, path storage.Path, hints ast.Object) (any, error) {
	obj := ast.NewObject()
	switch x := v.(type) {
	case nil:
	case ast.Object:
		obj = x.Copy()
	default:
		return nil, fmt.Errorf("%s is %T, not an object", path, v)
	}
	key := ast.InternedTerm(hintPath[len(path)])
	var child ast.Value = hints
	if len(path) < len(hintPath)-1 {
		var sub any
		if t := obj.Get(key); t != nil {
			sub = t.Value
		}
		c, err := withHints(sub, append(slices.Clone(path), hintPath[len(path)]), hints)
		if err != nil {
			return nil, err
		}
		child = c.(ast.Value)
	}
	obj.Insert(key, ast.NewTerm(child))
	return obj, nil
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
