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
// Params numbers should be json.Number: their text is kept exactly.
func inputValue(a pdp.Action) (ast.Value, error) {
	params := ast.NewObject()
	if a.Params != nil {
		v, err := ast.InterfaceToValue(a.Params)
		if err != nil {
			return nil, err
		}
		obj, ok := v.(ast.Object)
		if !ok {
			return nil, fmt.Errorf("params must be an object")
		}
		params = obj
	}
	step := a.StepType
	if step == "" {
		step = pdp.DefaultStepType
	}
	return ast.NewObject(
		ast.Item(ast.InternedTerm("tenant_id"), ast.StringTerm(a.TenantID)),
		ast.Item(ast.InternedTerm("agent_id"), agentTerm(a.AgentID)),
		ast.Item(ast.InternedTerm("action"), ast.StringTerm(a.Name)),
		ast.Item(ast.InternedTerm("params"), ast.NewTerm(params)),
		ast.Item(ast.InternedTerm("step_type"), ast.StringTerm(step)),
	), nil
}

func agentTerm(id string) *ast.Term {
	if id == "" {
		return ast.InternedNullTerm
	}
	return ast.StringTerm(id)
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
