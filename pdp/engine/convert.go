package engine

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// inputValue builds the decision input {tenant_id, agent_id, action,
// params, step_type} as an AST value, so OPA does not convert it again.
// Params numbers should be json.Number: their text is kept exactly. The
// usual JSON shapes (what the API decodes) are converted directly; any
// other Go value goes through ast.InterfaceToValue.
func inputValue(a pdp.Action) (ast.Value, error) {
	in, _, err := inputAndParams(a)
	return in, err
}

// The decision input's keys, built once.
var (
	keyTenantID = ast.StringTerm("tenant_id")
	keyAgentID  = ast.StringTerm("agent_id")
	keyAction   = ast.StringTerm("action")
	keyParams   = ast.StringTerm("params")
	keyStepType = ast.StringTerm("step_type")
	emptyParams = ast.NewTerm(ast.NewObject())
)

// inputAndParams is inputValue that also returns the params object.
func inputAndParams(a pdp.Action) (ast.Value, ast.Object, error) {
	params := emptyParams
	if a.Params != nil {
		t, err := objectTerm(a.Params)
		if err != nil {
			return nil, nil, err
		}
		params = t
	}
	return inputOf(a, params), params.Value.(ast.Object), nil
}

// inputOf is the decision input of a with params as its params.
func inputOf(a pdp.Action, params *ast.Term) ast.Value {
	step := a.StepType
	if step == "" {
		step = pdp.DefaultStepType
	}
	return ast.NewObject(
		ast.Item(keyTenantID, shortStringTerm(a.TenantID)),
		ast.Item(keyAgentID, agentTerm(a.AgentID)),
		ast.Item(keyAction, shortStringTerm(a.Name)),
		ast.Item(keyParams, params),
		ast.Item(keyStepType, shortStringTerm(step)),
	)
}

// lazyInput is a's decision input as an object OPA converts only where
// the library reads it (ast.LazyObject: a key's value when it is first
// looked up, all of it only when iterated, hashed or compared): with the
// engine's hints the library reads the tenant, agent, action and step
// type, and the params only to look for amounts (FinancialSafety, when
// the text holds an amount key), so most decisions convert none of the
// params. The values are the ones inputAndParams builds (the same
// ast.InterfaceToValue, which the lazy conversion panics on a value it
// refuses: the caller must have had actionText accept a.Params, which
// checks what the conversion would refuse). The object is built per
// decision and only read, so its cache is never shared; a.Params is only
// read.
//
// The other fields are given as the values inputAndParams builds (AST
// values, which the conversion keeps as they are), from shortStringTerm's
// table: no allocation for them, before or during the evaluation.
func lazyInput(a pdp.Action) ast.Value {
	step := a.StepType
	if step == "" {
		step = pdp.DefaultStepType
	}
	params := a.Params
	if params == nil {
		params = noParams
	}
	return ast.LazyObject(map[string]any{
		"tenant_id": shortStringTerm(a.TenantID).Value,
		"agent_id":  agentTerm(a.AgentID).Value,
		"action":    shortStringTerm(a.Name).Value,
		"params":    params,
		"step_type": shortStringTerm(step).Value,
	})
}

// noParams is the params of an action without any; never modified.
var noParams = map[string]any{}

// objectTerm converts a JSON object to a term, its items built in one
// block (ast.NewObject) rather than inserted one by one.
func objectTerm(m map[string]any) (*ast.Term, error) {
	var buf [8][2]*ast.Term
	items := buf[:0]
	if len(m) > len(buf) {
		items = make([][2]*ast.Term, 0, len(m))
	}
	for k, e := range m {
		t, err := termOf(e)
		if err != nil {
			return nil, err
		}
		items = append(items, [2]*ast.Term{shortStringTerm(k), t})
	}
	return ast.NewTerm(ast.NewObject(items...)), nil
}

// termOf converts one JSON-shaped Go value to a term without reflection.
func termOf(v any) (*ast.Term, error) {
	switch x := v.(type) {
	case nil:
		return ast.InternedNullTerm, nil
	case string:
		return shortStringTerm(x), nil
	case bool:
		return ast.InternedTerm(x), nil
	case map[string]any:
		return objectTerm(x)
	case []any:
		ts := make([]*ast.Term, len(x))
		for i, e := range x {
			t, err := termOf(e)
			if err != nil {
				return nil, err
			}
			ts[i] = t
		}
		return ast.ArrayTerm(ts...), nil
	}
	// json.Number (range-checked and interned there) and everything else.
	val, err := ast.InterfaceToValue(v)
	if err != nil {
		return nil, err
	}
	return ast.NewTerm(val), nil
}

func agentTerm(id string) *ast.Term {
	if id == "" {
		return ast.InternedNullTerm
	}
	return shortStringTerm(id)
}

// Input returns the decision input of a as plain JSON-compatible values,
// exactly as a stock OPA would receive it.
func Input(a pdp.Action) map[string]any {
	var agent any
	if a.AgentID != "" {
		agent = a.AgentID
	}
	step := a.StepType
	if step == "" {
		step = pdp.DefaultStepType
	}
	params := a.Params
	if params == nil {
		params = map[string]any{}
	}
	return map[string]any{"tenant_id": a.TenantID, "agent_id": agent, "action": a.Name, "params": params, "step_type": step}
}

// decode converts the result document into a Decision.
func decode(v any) (*pdp.Decision, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("result is %T, not an object", v)
	}
	d := &pdp.Decision{}
	var err error
	str := func(k string) string {
		s, ok := m[k].(string)
		if !ok && err == nil {
			err = fmt.Errorf("result.%s is %T, not a string", k, m[k])
		}
		return s
	}
	optStr := func(k string) *string {
		if m[k] == nil {
			return nil
		}
		s := str(k)
		return &s
	}
	d.Status = pdp.Status(str("status"))
	if _, ok := m["shadow_status"]; ok {
		d.ShadowStatus = pdp.Status(str("shadow_status"))
	}
	d.RiskScore, err = number(m["risk_score"])
	d.TriggeredPolicy = optStr("triggered_policy")
	if s := optStr("severity"); s != nil {
		sev := pdp.Severity(*s)
		d.Severity = &sev
	}
	d.Reason = optStr("reason")
	if names, ok := m["policies_evaluated"].([]any); ok {
		d.PoliciesEvaluated = make([]string, len(names))
		for i, n := range names {
			d.PoliciesEvaluated[i], _ = n.(string)
		}
	}
	if d.Violations, err = violations(m["violations"], err); err != nil {
		return nil, err
	}
	if d.Warnings, err = violations(m["warnings"], err); err != nil {
		return nil, err
	}
	if sh, ok := m["shadow"]; ok {
		if d.Shadow, err = shadowHits(sh); err != nil {
			return nil, err
		}
	}
	if d.Status != pdp.StatusAllowed && d.Status != pdp.StatusBlocked && d.Status != pdp.StatusPendingReview {
		return nil, fmt.Errorf("result.status %q is not a decision status", d.Status)
	}
	return d, err
}

func violations(v any, err error) ([]pdp.Violation, error) {
	if err != nil {
		return nil, err
	}
	items, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("violations are %T, not an array", v)
	}
	out := make([]pdp.Violation, len(items))
	for i, it := range items {
		m, ok := it.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("violation %d is %T", i, it)
		}
		rule, err := number(m["rule"])
		if err != nil {
			return nil, err
		}
		conf, err := number(m["confidence"])
		if err != nil {
			return nil, err
		}
		s := func(k string) string { x, _ := m[k].(string); return x }
		out[i] = pdp.Violation{
			Policy:      s("policy"),
			Scope:       pdp.Scope(s("scope")),
			Rule:        int(rule),
			Severity:    pdp.Severity(s("severity")),
			OnViolation: pdp.Outcome(s("on_violation")),
			Reason:      s("reason"),
			Match:       s("match"),
			Confidence:  conf,
		}
	}
	return out, nil
}

// shadowHits decodes the result's shadow list.
func shadowHits(v any) ([]pdp.ShadowHit, error) {
	items, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("shadow is %T, not an array", v)
	}
	out := make([]pdp.ShadowHit, len(items))
	for i, it := range items {
		m, ok := it.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("shadow hit %d is %T", i, it)
		}
		rule, err := number(m["rule"])
		if err != nil {
			return nil, err
		}
		s := func(k string) string { x, _ := m[k].(string); return x }
		out[i] = pdp.ShadowHit{Policy: s("policy"), Scope: pdp.Scope(s("scope")), Rule: int(rule),
			Severity: pdp.Severity(s("severity")), OnViolation: pdp.Outcome(s("on_violation")),
			Reason: s("reason"), Match: s("match"), WouldStatus: pdp.Status(s("would_status"))}
	}
	return out, nil
}

func number(v any) (float64, error) {
	switch n := v.(type) {
	case json.Number:
		return n.Float64()
	case float64:
		return n, nil
	case int:
		return float64(n), nil
	case int64:
		return float64(n), nil
	}
	return math.NaN(), fmt.Errorf("%v is %T, not a number", v, v)
}

// decodeAST converts the result document, left as AST by the hinted query,
// into a Decision, with decode's checks: an object with a decision status,
// strings or null where the contract has them, numbers for risk_score and
// each violation's rule and confidence.
func decodeAST(v ast.Value) (*pdp.Decision, error) {
	m, ok := v.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("result is %T, not an object", v)
	}
	var err error
	fail := func(format string, args ...any) {
		if err == nil {
			err = fmt.Errorf(format, args...)
		}
	}
	str := func(k *ast.Term) string {
		s, ok := astField(m, k).(ast.String)
		if !ok {
			fail("result.%s is %T, not a string", string(k.Value.(ast.String)), astField(m, k))
		}
		return string(s)
	}
	// The decision and what its optional fields point to, in one block.
	b := &struct {
		d                 pdp.Decision
		triggered, reason string
		severity          pdp.Severity
	}{}
	optStr := func(k *ast.Term, dst *string) *string {
		switch astField(m, k).(type) {
		case nil, ast.Null:
			return nil
		}
		*dst = str(k)
		return dst
	}
	d := &b.d
	d.Status = pdp.Status(str(keyStatus))
	if astField(m, keyShadowStatus) != nil {
		d.ShadowStatus = pdp.Status(str(keyShadowStatus))
	}
	if d.RiskScore, ok = astNumber(astField(m, keyRiskScore)); !ok {
		fail("result.risk_score is not a number")
	}
	d.TriggeredPolicy = optStr(keyTriggeredPolicy, &b.triggered)
	if optStr(keySeverity, (*string)(&b.severity)) != nil {
		d.Severity = &b.severity
	}
	d.Reason = optStr(keyReason, &b.reason)
	if names, ok := astField(m, keyPoliciesEvaluated).(*ast.Array); ok {
		d.PoliciesEvaluated = make([]string, names.Len())
		for i := range names.Len() {
			s, _ := names.Elem(i).Value.(ast.String)
			d.PoliciesEvaluated[i] = string(s)
		}
	}
	if err != nil {
		return nil, err
	}
	if d.Violations, err = violationsAST(astField(m, keyViolations)); err != nil {
		return nil, err
	}
	if d.Warnings, err = violationsAST(astField(m, keyWarnings)); err != nil {
		return nil, err
	}
	if sh := astField(m, keyShadow); sh != nil {
		if d.Shadow, err = shadowHitsAST(sh); err != nil {
			return nil, err
		}
	}
	if d.Status != pdp.StatusAllowed && d.Status != pdp.StatusBlocked && d.Status != pdp.StatusPendingReview {
		return nil, fmt.Errorf("result.status %q is not a decision status", d.Status)
	}
	return d, nil
}

// The result document's keys, built once (ast.InternedTerm builds a new
// term for a string OPA does not intern).
var (
	keyStatus            = ast.StringTerm("status")
	keyShadowStatus      = ast.StringTerm("shadow_status")
	keyRiskScore         = ast.StringTerm("risk_score")
	keyTriggeredPolicy   = ast.StringTerm("triggered_policy")
	keyPoliciesEvaluated = ast.StringTerm("policies_evaluated")
	keyViolations        = ast.StringTerm("violations")
	keyWarnings          = ast.StringTerm("warnings")
	keyShadow            = ast.StringTerm("shadow")
)

var (
	keyPolicy      = ast.StringTerm("policy")
	keyScope       = ast.StringTerm("scope")
	keyRule        = ast.StringTerm("rule")
	keySeverity    = ast.StringTerm("severity")
	keyOnViolation = ast.StringTerm("on_violation")
	keyReason      = ast.StringTerm("reason")
	keyMatch       = ast.StringTerm("match")
	keyConfidence  = ast.StringTerm("confidence")
)

// astArray returns the array of a result field named what (violations,
// shadow hits), or an error.
func astArray(v ast.Value, what string) (*ast.Array, error) {
	items, ok := v.(*ast.Array)
	if !ok {
		return nil, fmt.Errorf("%s are %T, not an array", what, v)
	}
	return items, nil
}

// astObjectAt is the object at i of items, an array result field named
// what, or an error naming it.
func astObjectAt(items *ast.Array, i int, what string) (ast.Object, error) {
	m, ok := items.Elem(i).Value.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("%s %d is %T", what, i, items.Elem(i).Value)
	}
	return m, nil
}

// astString is the string at k in m, or "" when absent or not a string.
func astString(m ast.Object, k *ast.Term) string {
	if t := m.Get(k); t != nil {
		x, _ := t.Value.(ast.String)
		return string(x)
	}
	return ""
}

// astField is the value at k in m, or nil.
func astField(m ast.Object, k *ast.Term) ast.Value {
	if t := m.Get(k); t != nil {
		return t.Value
	}
	return nil
}

func violationsAST(v ast.Value) ([]pdp.Violation, error) {
	items, err := astArray(v, "violations")
	if err != nil {
		return nil, err
	}
	out := make([]pdp.Violation, items.Len())
	for i := range out {
		m, err := astObjectAt(items, i, "violations")
		if err != nil {
			return nil, err
		}
		rule, ok := astNumber(astField(m, keyRule))
		if !ok {
			return nil, fmt.Errorf("violation %d: rule is not a number", i)
		}
		conf, ok := astNumber(astField(m, keyConfidence))
		if !ok {
			return nil, fmt.Errorf("violation %d: confidence is not a number", i)
		}
		out[i] = pdp.Violation{
			Policy:      astString(m, keyPolicy),
			Scope:       pdp.Scope(astString(m, keyScope)),
			Rule:        int(rule),
			Severity:    pdp.Severity(astString(m, keySeverity)),
			OnViolation: pdp.Outcome(astString(m, keyOnViolation)),
			Reason:      astString(m, keyReason),
			Match:       astString(m, keyMatch),
			Confidence:  conf,
		}
	}
	return out, nil
}

var keyWouldStatus = ast.StringTerm("would_status")

// shadowHitsAST is shadowHits for a result left as AST.
func shadowHitsAST(v ast.Value) ([]pdp.ShadowHit, error) {
	items, err := astArray(v, "shadow hits")
	if err != nil {
		return nil, err
	}
	out := make([]pdp.ShadowHit, items.Len())
	for i := range out {
		m, err := astObjectAt(items, i, "shadow hits")
		if err != nil {
			return nil, err
		}
		rule, ok := astNumber(astField(m, keyRule))
		if !ok {
			return nil, fmt.Errorf("shadow hit %d: rule is not a number", i)
		}
		out[i] = pdp.ShadowHit{
			Policy:      astString(m, keyPolicy),
			Scope:       pdp.Scope(astString(m, keyScope)),
			Rule:        int(rule),
			Severity:    pdp.Severity(astString(m, keySeverity)),
			OnViolation: pdp.Outcome(astString(m, keyOnViolation)),
			Reason:      astString(m, keyReason),
			Match:       astString(m, keyMatch),
			WouldStatus: pdp.Status(astString(m, keyWouldStatus)),
		}
	}
	return out, nil
}

func astNumber(v ast.Value) (float64, bool) {
	n, ok := v.(ast.Number)
	if !ok {
		return math.NaN(), false
	}
	return n.Float64()
}
