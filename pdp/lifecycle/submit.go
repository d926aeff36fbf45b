package lifecycle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/decisionlog"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// Bounds of an action (docs/api.md §A7).
const (
	MaxActionLen   = 200
	MaxParamsBytes = 64 << 10
)

// ReasonUnavailable is the reason recorded for an action whose evaluation
// failed: it is stored as blocked (fail closed) with this reason.
const ReasonUnavailable = "evaluation unavailable"

// Submission is one action as the caller received it, already decoded.
type Submission struct {
	TenantID string
	// KeyID names the API key that submitted it ("" when unknown); team
	// mode reads it from the evaluation entry to recognize the submitter.
	KeyID string
	// Name is the action ("slack.send_message").
	Name     string
	AgentID  string
	StepType string // "" is the default step type; any case
	// Params is the decoded params object (numbers as json.Number); nil
	// is {}.
	Params map[string]any
	// ParamsJSON is Params encoded as JSON, when the caller has it; else
	// Submit encodes Params.
	ParamsJSON []byte
	// ParamsEncoded vouches that ParamsJSON is exactly what Submit would
	// encode Params as (encoding/json's output without HTML escaping), as
	// pdp/api's decoder checks when it takes params from a request body
	// as they are: it is then stored as Submit's own encoding would be
	// (store.ActionRecord.JSONEncoded), not parsed again.
	ParamsEncoded bool
	// ParamsDecoded says Params were decoded from JSON with UseNumber
	// (objects, arrays, strings, json.Number, booleans and null only), as
	// pdp/api decodes a request body. The params' encoding (ParamsJSON
	// when ParamsEncoded, else Submit's own) is then exactly the text the
	// engine's walk of Params would write, and is handed to the engine
	// (pdp.Action.ParamsJSON) so that it need not walk them again. Any
	// other Go value (a float64, a nil map) may be written differently,
	// so without it the engine walks Params.
	ParamsDecoded bool
	// TraceID is the request's trace; "" draws a random one, so every
	// action has one.
	TraceID string
	// RequestedBy is the client's address, for the decision log.
	RequestedBy string
	// Problems are what decoding found (a field of the wrong type); they
	// are reported with Submit's own, all at once.
	Problems pdp.ValidationErrors
	// Key is the submitting key, whose bound agent and step types bind the
	// submission (identity.go); nil binds nothing.
	Key *store.APIKey
	// RequireAgentKeys is the tenant's setting: only agent-bound keys
	// submit.
	RequireAgentKeys bool
}

// Result is a submitted action's outcome.
type Result struct {
	ActionID string
	TraceID  string
	// Action and AgentID are the action as decided.
	Action  string
	AgentID string
	// Decision is the policy_result as recorded (ActionID set, lists
	// never nil); DecisionJSON its encoding, as stored.
	Decision     *pdp.Decision
	DecisionJSON []byte
	// Message is the response's sentence for the status (docs/api.md §A7).
	Message string
}

// ParamsTooLargeError refuses params over MaxParamsBytes as JSON.
type ParamsTooLargeError struct{ Size int }

func (e *ParamsTooLargeError) Error() string {
	return fmt.Sprintf("params: must be at most %d bytes as JSON (got %d)", MaxParamsBytes, e.Size)
}

// ActionTextTooLargeError refuses an action whose action text is over
// adapter.MaxActionTextBytes (CheckActionText).
type ActionTextTooLargeError struct{ Size int }

func (e *ActionTextTooLargeError) Error() string {
	return fmt.Sprintf("action text (the JSON of action and params that rules match) must be at most %d bytes (got %d)", adapter.MaxActionTextBytes, e.Size)
}

// CheckActionText refuses an action whose action text — the compact JSON
// of {"action", "params"} that rules match, docs/api.md §A3 — is longer than
// adapter.MaxActionTextBytes: regex cost is bounded per byte of that text
// (adapter/cost.go), and a text is never truncated, since a cut could hide
// a match. The length is Go's encoding, which never undercounts the text
// OPA builds. The Data API checks its input with it too.
func CheckActionText(action, params any) error {
	if params == nil {
		params = map[string]any{}
	}
	text, err := encodeJSON(map[string]any{"action": action, "params": params})
	if err != nil {
		return &pdp.ValidationError{Field: "params", Reason: "cannot be encoded as JSON"}
	}
	if len(text) > adapter.MaxActionTextBytes {
		return &ActionTextTooLargeError{Size: len(text)}
	}
	return nil
}

// UnavailableError is a decision that could not be made: the action was
// recorded as blocked with ReasonUnavailable under ActionID, and is not
// allowed. It unwraps to pdp.ErrEvaluationFailed and the cause.
type UnavailableError struct {
	ActionID string
	TraceID  string
	Cause    error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("action %s not evaluated: %v", e.ActionID, e.Cause)
}

// Unwrap returns the cause (which wraps pdp.ErrEvaluationFailed).
func (e *UnavailableError) Unwrap() error { return e.Cause }

// Validate checks sub and normalizes its step type, returning every
// problem at once.
func (sub *Submission) Validate() error {
	es := sub.Problems
	switch {
	case sub.Name == "" && len(es) == 0:
		es = append(es, &pdp.ValidationError{Field: "action", Reason: "must not be empty"})
	case utf8.RuneCountInString(sub.Name) > MaxActionLen:
		es = append(es, &pdp.ValidationError{Field: "action", Reason: fmt.Sprintf("must be at most %d characters", MaxActionLen)})
	case strings.IndexByte(sub.Name, 0) >= 0:
		es = append(es, &pdp.ValidationError{Field: "action", Reason: "must not contain NUL bytes"})
	}
	if err := registry.CheckAgentID("agent_id", sub.AgentID); err != nil {
		var ve *pdp.ValidationError
		if errors.As(err, &ve) {
			es = append(es, ve)
		}
	}
	if sub.StepType == "" {
		sub.StepType = pdp.DefaultStepType
	} else if up := strings.ToUpper(sub.StepType); slices.Contains(pdp.StepTypes, up) {
		sub.StepType = up
	} else {
		es = append(es, &pdp.ValidationError{Field: "step_type", Reason: "must be one of thought, action, observation, output, error, policy_check"})
	}
	return es.Err()
}

// Submit validates the action, decides it, records it durably (with its
// evaluation entry, in one group-committed transaction, when the store
// keeps a chain) and returns the outcome only once it is on disk.
//
// A failed evaluation is never an allowed action: it is recorded as
// blocked with ReasonUnavailable and returned as *UnavailableError. An
// action the engine refused unevaluated (engine.ErrOverloaded) is not
// recorded.
func (s *Service) Submit(ctx context.Context, sub Submission) (Result, error) {
	if err := sub.Validate(); err != nil {
		return Result{}, err
	}
	if err := sub.bindIdentity(); err != nil {
		return Result{}, err
	}
	if sub.Params == nil {
		sub.Params = map[string]any{}
	}
	// The action's encodings (params, policy_result, the evaluation
	// entry's metadata) are written into one scratch buffer and kept in
	// one allocation (actionBytes); pj is in the scratch buffer until
	// then.
	ab := newActionBytes()
	defer ab.release()
	pj := sub.ParamsJSON
	if pj == nil {
		var err error
		if pj, err = ab.params(sub.Params); err != nil {
			return Result{}, &pdp.ValidationError{Field: "params", Reason: "cannot be encoded as JSON"}
		}
	}
	if len(pj) > MaxParamsBytes {
		return Result{}, &ParamsTooLargeError{Size: len(pj)}
	}
	// The action text is {"action":<name>,"params":<pj>}: pj is params
	// as CheckActionText would encode them, so its length is counted
	// without encoding params again.
	var nameBuf [256]byte
	if n := len(`{"action":,"params":}`) + len(appendString(nameBuf[:0], sub.Name)) + len(pj); n > adapter.MaxActionTextBytes {
		return Result{}, &ActionTextTooLargeError{Size: n}
	}
	connector, operation := SplitAction(sub.Name)
	// What no store can hold (invalid UTF-8, NUL) is refused before
	// deciding, the same on every driver, so a decision is never made for
	// an action that could not then be recorded.
	// params are checked in place; only params that fail are copied into
	// a string, for CheckText to name them in order.
	paramsText := ""
	if !utf8.Valid(pj) || bytes.IndexByte(pj, 0) >= 0 {
		paramsText = string(pj)
	}
	if err := store.CheckText(
		store.Text{Field: "action", Value: sub.Name}, store.Text{Field: "agent_id", Value: sub.AgentID},
		store.Text{Field: "connector", Value: connector}, store.Text{Field: "operation", Value: operation},
		store.Text{Field: "params", Value: paramsText}, store.Text{Field: "trace_id", Value: sub.TraceID},
	); err != nil {
		return Result{}, err
	}
	id, traceID := s.newIDs(sub.TraceID == "")
	if sub.TraceID != "" {
		traceID = sub.TraceID
	}

	act := pdp.Action{
		TenantID: sub.TenantID,
		AgentID:  sub.AgentID,
		Name:     sub.Name,
		Params:   sub.Params,
		StepType: sub.StepType,
	}
	// pj is this encoding of Params when Submit wrote it, or the
	// caller's vouched for as it (a caller's other ParamsJSON is not).
	if sub.ParamsDecoded && (sub.ParamsJSON == nil || sub.ParamsEncoded) {
		act.ParamsJSON = pj
	}
	d, evalErr := s.eng.Evaluate(ctx, act)
	if errors.Is(evalErr, engine.ErrOverloaded) {
		return Result{}, evalErr // not evaluated, so nothing to record
	}
	if evalErr != nil {
		reason := ReasonUnavailable
		d = &pdp.Decision{Status: pdp.StatusBlocked, Reason: &reason}
	}
	d.ActionID = id
	NormalizeDecision(d)
	if err := ab.decision(d); err != nil {
		return Result{}, fmt.Errorf("encode decision: %w", err)
	}
	rec := store.ActionRecord{
		ID:             id,
		TenantID:       sub.TenantID,
		AgentID:        sub.AgentID,
		Action:         sub.Name,
		Connector:      connector,
		Operation:      operation,
		StepType:       sub.StepType,
		Status:         d.Status,
		RiskScore:      d.RiskScore,
		ViolationCount: len(d.Violations),
		TraceID:        traceID,
		// Encoded here by actionBytes (params as encodeParams, the
		// decision as encodeDecision: what encoding/json would write),
		// or params vouched for as that (ParamsEncoded). Any other
		// ParamsJSON of a caller is parsed by the store.
		JSONEncoded: sub.ParamsJSON == nil || sub.ParamsEncoded,
	}
	if d.TriggeredPolicy != nil {
		rec.TriggeredPolicy = *d.TriggeredPolicy
	}
	if d.Severity != nil {
		rec.Severity = *d.Severity
	}
	submitter := ""
	if sub.Key != nil {
		submitter = sub.Key.Identity()
	}
	if s.gov != nil {
		// Written here, not by a helper: its pointers then stay on the
		// stack.
		if err := ab.meta(&evaluationMeta{
			Action:          rec.Action,
			AgentID:         optPtr(rec.AgentID),
			KeyID:           optPtr(sub.KeyID),
			SubmittedBy:     optPtr(submitter),
			Status:          rec.Status,
			ShadowStatus:    d.ShadowStatus,
			TriggeredPolicy: optPtr(rec.TriggeredPolicy),
			Severity:        optPtr(string(rec.Severity)),
			RiskScore:       rec.RiskScore,
		}); err != nil {
			return Result{}, fmt.Errorf("record action %s: %w", id, err)
		}
	}
	var meta []byte
	rec.Params, rec.Decision, meta = ab.done(pj)
	decision := rec.Decision
	rctx := s.deadlines.detach(ctx)
	if err := s.record(rctx, rec, meta); err != nil {
		return Result{}, fmt.Errorf("record action %s: %w", id, err)
	}
	s.logDecision(ctx, &rec, d, sub.RequestedBy) // non-blocking
	if evalErr != nil {
		s.log.WarnContext(ctx, "evaluation failed; action recorded as blocked",
			slog.String("tenant_id", sub.TenantID), slog.String("action_id", id), slog.Any("error", evalErr))
		return Result{}, &UnavailableError{ActionID: id, TraceID: traceID, Cause: evalErr}
	}
	return Result{ActionID: id, TraceID: traceID, Action: sub.Name, AgentID: sub.AgentID,
		Decision: d, DecisionJSON: decision, Message: Message(d.Status, d.Reason, id)}, nil
}

// evaluationMeta is the metadata of an action's evaluation entry, beside
// the action_id, event and timestamp the store sets. key_id names the
// submitting key, which team mode needs to recognize the submitter.
type evaluationMeta struct {
	Action          string     `json:"action"`
	AgentID         *string    `json:"agent_id"`
	KeyID           *string    `json:"key_id"`
	SubmittedBy     *string    `json:"submitted_by,omitempty"`
	Status          pdp.Status `json:"status"`
	ShadowStatus    pdp.Status `json:"shadow_status,omitempty"`
	TriggeredPolicy *string    `json:"triggered_policy"`
	Severity        *string    `json:"severity"`
	RiskScore       float64    `json:"risk_score"`
}

// appendJSON appends m as encoding/json encodes it without HTML escaping
// (TestEvaluationMetaMatchesEncodingJSON holds the two together).
func (m *evaluationMeta) appendJSON(b []byte) ([]byte, error) {
	if !finite(m.RiskScore) {
		return nil, errNotFinite
	}
	b = append(b, `{"action":`...)
	b = appendString(b, m.Action)
	b = append(b, `,"agent_id":`...)
	b = appendOptString(b, m.AgentID)
	b = append(b, `,"key_id":`...)
	b = appendOptString(b, m.KeyID)
	if m.SubmittedBy != nil {
		b = append(b, `,"submitted_by":`...)
		b = appendString(b, *m.SubmittedBy)
	}
	b = append(b, `,"status":`...)
	b = appendString(b, string(m.Status))
	if m.ShadowStatus != "" {
		b = append(b, `,"shadow_status":`...)
		b = appendString(b, string(m.ShadowStatus))
	}
	b = append(b, `,"triggered_policy":`...)
	b = appendOptString(b, m.TriggeredPolicy)
	b = append(b, `,"severity":`...)
	b = appendOptString(b, m.Severity)
	b = append(b, `,"risk_score":`...)
	b = appendFloat(b, m.RiskScore)
	return append(b, '}'), nil
}

// record stores an evaluated action durably, with its evaluation entry
// (meta, its metadata) in the same group-committed transaction when the
// store keeps a chain (docs/api.md §A10: the answer waits for both).
func (s *Service) record(ctx context.Context, rec store.ActionRecord, meta []byte) error {
	if s.gov == nil {
		_, err := s.st.InsertAction(ctx, rec)
		return err
	}
	// The service's clock, which the approval modes' waiting times read.
	rec.CreatedAt = s.now()
	_, _, err := s.gov.InsertActionAudited(ctx, rec, store.AuditEvent{Metadata: meta})
	return err
}

// logDecision hands a recorded action's decision to the decision log:
// decision_id is the action_id, the input is the engine's input document,
// the result the policy_result as recorded.
func (s *Service) logDecision(ctx context.Context, rec *store.ActionRecord, d *pdp.Decision, requestedBy string) {
	if s.dlog == nil {
		return
	}
	s.dlog.Log(ctx, decisionlog.Decision{
		ID:       rec.ID,
		TenantID: rec.TenantID,
		Input: decisionlog.ActionInput{
			TenantID: rec.TenantID, AgentID: rec.AgentID, Action: rec.Action, StepType: rec.StepType, Params: rec.Params,
		},
		Result:      rec.Decision,
		Violations:  d.Violations,
		RequestedBy: requestedBy,
		TraceID:     rec.TraceID,
	})
}

// NormalizeDecision makes a decision's lists [] rather than null, as
// every answer shows them.
func NormalizeDecision(d *pdp.Decision) {
	if d.PoliciesEvaluated == nil {
		d.PoliciesEvaluated = []string{}
	}
	if d.Violations == nil {
		d.Violations = []pdp.Violation{}
	}
	if d.Warnings == nil {
		d.Warnings = []pdp.Violation{}
	}
}

// Messages of an action (docs/api.md §A7), verbatim.
const (
	msgAllowed  = "Action permitted by policy evaluation"
	msgBlocked  = "Action blocked: "
	msgPending  = "Action requires approval. Track with action_id: "
	msgApproved = "Action approved"
	msgDenied   = "Action denied"
)

// Message is the sentence that goes with an action's status.
func Message(st pdp.Status, reason *string, id string) string {
	switch st {
	case pdp.StatusBlocked:
		r := "blocked by policy"
		if reason != nil && *reason != "" {
			r = *reason
		}
		return msgBlocked + r
	case pdp.StatusPendingReview:
		return msgPending + id
	case pdp.StatusApproved:
		return msgApproved
	case pdp.StatusDenied:
		return msgDenied
	}
	return msgAllowed
}

// SplitAction derives connector and operation from an action name:
// "slack.send_message" → ("slack", "send_message"); a name without a dot
// has no connector.
func SplitAction(name string) (connector, operation string) {
	if c, op, ok := strings.Cut(name, "."); ok {
		return c, op
	}
	return "", name
}

func optPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
