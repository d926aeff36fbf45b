package decisionlog

import (
	"bytes"
	"encoding/json"
	"maps"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// Path is the decision's path in every event: the one query Gatehouse
// answers, data.gatehouse.decision.result, as OPA names it in its logs.
const Path = "gatehouse/decision/result"

// LabelType is labels.type of every event.
const LabelType = "gatehouse"

// Decision is one decision as the API hands it to Logger.Log. Log keeps
// references to Input and Result and encodes them later, on the worker:
// neither may be modified after Log.
type Decision struct {
	// ID is the decision_id: the action_id, or a random id for a query.
	ID string
	// TenantID is custom.tenant_id.
	TenantID string
	// Input is the input document: ActionInput, QueryInput, a
	// json.RawMessage or any value encoding/json encodes.
	Input any
	// Result is the result document: a json.RawMessage (the API's encoded
	// policy_result) or any value encoding/json encodes; nil when the
	// query was undefined.
	Result any
	// Violations are the hits, for rule_labels; nil: they are read from
	// Result's "violations".
	Violations []pdp.Violation
	// RequestedBy is the client's address.
	RequestedBy string
	// TraceID is the trace_id when the context carries no span (the
	// action's stand-in trace id); a recording span's wins.
	TraceID string
	// Time is when the decision was made (default: when Log is called).
	Time time.Time
}

// ActionInput is the input of an action's decision, built from what the
// API already holds (params already encoded), as the engine's input
// document: {"tenant_id","agent_id" (null when none),"action","params",
// "step_type"}.
type ActionInput struct {
	TenantID, AgentID, Action, StepType string
	// Params is the params object as JSON.
	Params json.RawMessage
}

// MarshalJSON encodes the input as the engine's input document; Params
// must be valid JSON (empty: {}).
func (a ActionInput) MarshalJSON() ([]byte, error) { return a.appendJSON(nil) }

// QueryInput is the input of a Data API query: the client's input with
// tenant_id set to the key's tenant, as the engine evaluates it.
type QueryInput struct {
	Input    map[string]any
	TenantID string
}

// MarshalJSON encodes the input with its tenant_id.
func (q QueryInput) MarshalJSON() ([]byte, error) {
	in := maps.Clone(q.Input) // shallow: only tenant_id is replaced
	if in == nil {
		in = map[string]any{}
	}
	in["tenant_id"] = q.TenantID
	return marshal(in)
}

// Event is one decision-log event, with the fields of OPA's EventV1 that
// Gatehouse fills (see the package comment).
type Event struct {
	Labels      map[string]string `json:"labels"`
	DecisionID  string            `json:"decision_id"`
	TraceID     string            `json:"trace_id,omitempty"`
	SpanID      string            `json:"span_id,omitempty"`
	Path        string            `json:"path"`
	Input       any               `json:"input,omitempty"`
	Result      any               `json:"result,omitempty"`
	Erased      []string          `json:"erased,omitempty"`
	RequestedBy string            `json:"requested_by,omitempty"`
	Timestamp   time.Time         `json:"timestamp"`
	RuleLabels  []RuleLabels      `json:"rule_labels,omitempty"`
	Custom      map[string]any    `json:"custom,omitempty"`
}

// RuleLabels are the labels of one rule that fired.
type RuleLabels struct {
	Policy      string       `json:"policy"`
	Scope       pdp.Scope    `json:"scope"`
	Rule        int          `json:"rule"`
	Severity    pdp.Severity `json:"severity"`
	OnViolation pdp.Outcome  `json:"on_violation"`
}

// record is a Decision waiting in the buffer, with what Log read from its
// context.
type record struct {
	Decision
	span trace.SpanContext
}

// ruleLabels derives rule_labels from the hits, once per rule.
func ruleLabels(vs []pdp.Violation) []RuleLabels {
	if len(vs) == 0 {
		return nil
	}
	out := make([]RuleLabels, 0, len(vs))
	for _, v := range vs {
		l := RuleLabels{Policy: v.Policy, Scope: v.Scope, Rule: v.Rule, Severity: v.Severity, OnViolation: v.OnViolation}
		dup := false
		for _, o := range out {
			if o == l {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, l)
		}
	}
	return out
}

// violationsOf reads the violations of an encoded result.
func violationsOf(result any) []pdp.Violation {
	raw, ok := result.(json.RawMessage)
	if !ok {
		if result == nil {
			return nil
		}
		var err error
		if raw, err = json.Marshal(result); err != nil {
			return nil
		}
	}
	var r struct {
		Violations []pdp.Violation `json:"violations"`
	}
	_ = json.Unmarshal(raw, &r) // a result without violations has no rule labels
	return r.Violations
}

// marshal encodes v without HTML escaping, like the API's responses.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
