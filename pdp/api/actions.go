package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/trace"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// Bounds of an action (CONTRACT A7) and of the listing.
const (
	maxActionLen     = 200
	maxParamsBytes   = 64 << 10
	defaultListLimit = 50
	maxListLimit     = 500
	maxListOffset    = 1 << 31
	maxActionIDLen   = 64
)

// Messages of an action response (CONTRACT A7), verbatim.
const (
	msgAllowed  = "Action permitted by policy evaluation"
	msgBlocked  = "Action blocked: "
	msgPending  = "Action requires approval. Track with action_id: "
	msgApproved = "Action approved"
	msgDenied   = "Action denied"
)

// reasonUnavailable is the reason recorded for an action whose evaluation
// failed: it is stored as blocked (fail closed) with this reason.
const reasonUnavailable = "evaluation unavailable"

// actionBody is the body of POST /v1/actions.
type actionBody struct {
	Action   *string         `json:"action"`
	Params   json.RawMessage `json:"params"`
	AgentID  *string         `json:"agent_id"`
	StepType *string         `json:"step_type"`
}

// actionRequest is a validated action about to be decided.
type actionRequest struct {
	name, agentID, stepType string
	connector, operation    string
	params                  map[string]any
	paramsJSON              []byte
}

// actionResponse is the answer of every submission.
type actionResponse struct {
	ActionID     string        `json:"action_id"`
	Action       string        `json:"action"`
	AgentID      *string       `json:"agent_id"`
	Status       pdp.Status    `json:"status"`
	PolicyResult *pdp.Decision `json:"policy_result"`
	Message      string        `json:"message"`
	TraceID      string        `json:"trace_id"`
}

func (s *server) submitAction(c *gin.Context) {
	body, err := readBody(c)
	if err != nil {
		fail(c, err)
		return
	}
	var b actionBody
	if err := decodeStrict(body, &b); err != nil {
		fail(c, err)
		return
	}
	var es pdp.ValidationErrors
	req := actionRequest{}
	if b.Action == nil {
		es = append(es, &pdp.ValidationError{Field: "action", Reason: "is required"})
	} else {
		req.name = *b.Action
	}
	params, err := decodeParams(b.Params, "params")
	if err != nil {
		fail(c, err)
		return
	}
	s.finishRequest(c, &req, params, deref(b.AgentID), deref(b.StepType), es)
}

// submitConnectorAction is POST /v1/actions/{connector}/{operation...}: the
// action is "<connector>.<operation with / as .>" and its params are the
// body without agent_id and step_type.
func (s *server) submitConnectorAction(c *gin.Context) {
	body, err := readBody(c)
	if err != nil {
		fail(c, err)
		return
	}
	var es pdp.ValidationErrors
	connector := c.Param("connector")
	op := strings.Trim(c.Param("operation"), "/")
	if op == "" {
		es = append(es, &pdp.ValidationError{Field: "operation", Reason: "is required: POST /v1/actions/{connector}/{operation}"})
	}
	req := actionRequest{name: connector + "." + strings.ReplaceAll(op, "/", ".")}
	var params map[string]any
	if len(bytes.TrimSpace(body)) > 0 {
		if params, err = decodeParams(body, ""); err != nil {
			fail(c, err)
			return
		}
	} else {
		params = map[string]any{}
	}
	agentID, err := takeString(params, "agent_id")
	addProblem(&es, err)
	stepType, err := takeString(params, "step_type")
	addProblem(&es, err)
	s.finishRequest(c, &req, params, agentID, stepType, es)
}

// finishRequest validates the rest of an action and submits it.
func (s *server) finishRequest(c *gin.Context, req *actionRequest, params map[string]any, agentID, stepType string, es pdp.ValidationErrors) {
	switch {
	case req.name == "" && len(es) == 0:
		es = append(es, &pdp.ValidationError{Field: "action", Reason: "must not be empty"})
	case utf8.RuneCountInString(req.name) > maxActionLen:
		es = append(es, &pdp.ValidationError{Field: "action", Reason: fmt.Sprintf("must be at most %d characters", maxActionLen)})
	case strings.IndexByte(req.name, 0) >= 0:
		es = append(es, &pdp.ValidationError{Field: "action", Reason: "must not contain NUL bytes"})
	}
	addProblem(&es, registry.CheckAgentID("agent_id", agentID))
	if stepType == "" {
		stepType = pdp.DefaultStepType
	} else if up := strings.ToUpper(stepType); slices.Contains(pdp.StepTypes, up) {
		stepType = up
	} else {
		es = append(es, &pdp.ValidationError{Field: "step_type", Reason: "must be one of thought, action, observation, output, error, policy_check"})
	}
	if err := es.Err(); err != nil {
		fail(c, err)
		return
	}
	pj, err := encodeJSON(params)
	if err != nil {
		fail(c, &pdp.ValidationError{Field: "params", Reason: "cannot be encoded as JSON"})
		return
	}
	if len(pj) > maxParamsBytes {
		fail(c, newError(http.StatusRequestEntityTooLarge, pdp.CodePayloadTooLarge,
			"params: must be at most %d bytes as JSON (got %d)", maxParamsBytes, len(pj)))
		return
	}
	req.params, req.paramsJSON, req.agentID, req.stepType = params, pj, agentID, stepType
	req.connector, req.operation = splitAction(req.name)
	s.submit(c, req)
}

// submit decides the action, records it durably, and answers. A failed
// evaluation is never an allowed action: it is recorded as blocked with
// reason "evaluation unavailable" and answered 503 with its action_id.
func (s *server) submit(c *gin.Context, req *actionRequest) {
	ctx := c.Request.Context()
	t := tenant(c)
	id := "act_" + s.randomHex(12)
	traceID := s.traceID(ctx)

	d, evalErr := s.eng.Evaluate(ctx, pdp.Action{
		TenantID: t.ID,
		AgentID:  req.agentID,
		Name:     req.name,
		Params:   req.params,
		StepType: req.stepType,
	})
	if errors.Is(evalErr, engine.ErrOverloaded) {
		refuseOverloaded(c) // not evaluated, so nothing to record
		return
	}
	if evalErr != nil {
		reason := reasonUnavailable
		d = &pdp.Decision{Status: pdp.StatusBlocked, Reason: &reason}
	}
	d.ActionID = id
	normalizeDecision(d)
	decision, err := encodeJSON(d)
	if err != nil {
		fail(c, fmt.Errorf("encode decision: %w", err))
		return
	}
	rec := store.ActionRecord{
		ID:             id,
		TenantID:       t.ID,
		AgentID:        req.agentID,
		Action:         req.name,
		Connector:      req.connector,
		Operation:      req.operation,
		Params:         req.paramsJSON,
		StepType:       req.stepType,
		Status:         d.Status,
		Decision:       decision,
		RiskScore:      d.RiskScore,
		ViolationCount: len(d.Violations),
		TraceID:        traceID,
	}
	if d.TriggeredPolicy != nil {
		rec.TriggeredPolicy = *d.TriggeredPolicy
	}
	if d.Severity != nil {
		rec.Severity = *d.Severity
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.RecordTimeout)
	defer cancel()
	if err := s.recordAction(rctx, c, rec, d); err != nil {
		fail(c, fmt.Errorf("record action %s: %w", id, err))
		return
	}
	s.logAction(ctx, c, &rec, d) // non-blocking (decisionlog.go)
	if evalErr != nil {
		s.log.WarnContext(ctx, "evaluation failed; action recorded as blocked",
			slog.String("request_id", c.GetString(ctxRequestID)),
			slog.String("tenant_id", t.ID), slog.String("action_id", id), slog.Any("error", evalErr))
		fail(c, &apiError{Status: http.StatusServiceUnavailable, Code: pdp.CodeEvaluationUnavailable,
			Message: "Policy evaluation is unavailable; the action was not allowed",
			Extra:   map[string]any{"action_id": id, "trace_id": traceID}}) // the cause is logged above
		return
	}
	writeJSON(c, http.StatusOK, actionResponse{
		ActionID:     id,
		Action:       req.name,
		AgentID:      agentPtr(req.agentID),
		Status:       d.Status,
		PolicyResult: d,
		Message:      actionMessage(d.Status, d.Reason, id),
		TraceID:      traceID,
	})
}

// traceID is the request span's trace id; without a recording tracer (and
// no incoming traceparent) there is none, so a random one stands in and
// trace_id is always present.
func (s *server) traceID(ctx context.Context) string {
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		return sc.TraceID().String()
	}
	return s.randomHex(16)
}

// normalizeDecision makes lists [] rather than null.
func normalizeDecision(d *pdp.Decision) {
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

func actionMessage(st pdp.Status, reason *string, id string) string {
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

// splitAction derives connector and operation from an action name:
// "slack.send_message" → ("slack", "send_message"); a name without a dot
// has no connector.
func splitAction(name string) (connector, operation string) {
	if c, op, ok := strings.Cut(name, "."); ok {
		return c, op
	}
	return "", name
}

// addProblem appends err's *pdp.ValidationError, if any, to es.
func addProblem(es *pdp.ValidationErrors, err error) {
	var ve *pdp.ValidationError
	if errors.As(err, &ve) {
		*es = append(*es, ve)
	}
}

// decodeParams decodes a params object (numbers as json.Number, so their
// text is kept exactly); absent or null is {}. field names it in errors
// ("" when it is the whole body).
func decodeParams(raw []byte, field string) (map[string]any, error) {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return map[string]any{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, jsonProblem(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &pdp.ValidationError{Reason: "unexpected data after the JSON object"}
	}
	m, ok := v.(map[string]any)
	if !ok {
		if field == "" {
			return nil, &pdp.ValidationError{Reason: "the request body must be a JSON object"}
		}
		return nil, &pdp.ValidationError{Field: field, Reason: "must be an object"}
	}
	return m, nil
}

// takeString removes key from m and returns it as a string ("" when absent
// or null).
func takeString(m map[string]any, key string) (string, error) {
	v, ok := m[key]
	if !ok {
		return "", nil
	}
	delete(m, key)
	switch s := v.(type) {
	case nil:
		return "", nil
	case string:
		return s, nil
	}
	return "", &pdp.ValidationError{Field: key, Reason: "must be a string"}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// actionView is GET /v1/actions/{id} and each item of the listing.
type actionView struct {
	ActionID     string          `json:"action_id"`
	Action       string          `json:"action"`
	AgentID      *string         `json:"agent_id"`
	Status       pdp.Status      `json:"status"`
	PolicyResult json.RawMessage `json:"policy_result"`
	Message      string          `json:"message"`
	Reason       *string         `json:"reason"`
	ApproverID   any             `json:"approver_id"`
	DecidedAt    any             `json:"decided_at"`
	CreatedAt    string          `json:"created_at"`
	TraceID      any             `json:"trace_id"`
}

// storedDecision is what views read back from a record's policy_result.
type storedDecision struct {
	Status          pdp.Status      `json:"status"`
	ShadowStatus    pdp.Status      `json:"shadow_status"`
	Reason          *string         `json:"reason"`
	TriggeredPolicy *string         `json:"triggered_policy"`
	Severity        *string         `json:"severity"`
	Violations      []pdp.Violation `json:"violations"`
	Warnings        []pdp.Violation `json:"warnings"`
	Policies        []string        `json:"policies_evaluated"`
}

func readDecision(rec store.ActionRecord) storedDecision {
	var d storedDecision
	if len(rec.Decision) > 0 {
		_ = json.Unmarshal(rec.Decision, &d) // written by submit; a bad one reads as empty
	}
	return d
}

// view renders a record. reason is the human decision's reason once an
// approver gave one, else the policy_result's reason.
func view(rec store.ActionRecord) actionView {
	d := readDecision(rec)
	reason := d.Reason
	if rec.DecisionReason != "" {
		r := rec.DecisionReason
		reason = &r
	}
	policy := rec.Decision
	if len(policy) == 0 {
		policy = json.RawMessage("null")
	}
	return actionView{
		ActionID:     rec.ID,
		Action:       rec.Action,
		AgentID:      agentPtr(rec.AgentID),
		Status:       rec.Status,
		PolicyResult: policy,
		Message:      actionMessage(rec.Status, d.Reason, rec.ID),
		Reason:       reason,
		ApproverID:   optString(rec.ApproverID),
		DecidedAt:    optTimestamp(rec.DecidedAt),
		CreatedAt:    timestamp(rec.CreatedAt),
		TraceID:      optString(rec.TraceID),
	}
}

// record loads the tenant's action named in the path; another tenant's
// action is as missing as one that never existed.
func (s *server) record(c *gin.Context) (store.ActionRecord, bool) {
	id := c.Param("id")
	notFound := newError(http.StatusNotFound, pdp.CodeActionNotFound, "Action '%s' not found", truncate(id, maxActionIDLen))
	if id == "" || len(id) > maxActionIDLen {
		fail(c, notFound)
		return store.ActionRecord{}, false
	}
	rec, err := s.st.GetAction(c.Request.Context(), tenant(c).ID, id)
	if errors.Is(err, store.ErrNotFound) {
		notFound.cause = err
		fail(c, notFound)
		return store.ActionRecord{}, false
	}
	if err != nil {
		fail(c, err)
		return store.ActionRecord{}, false
	}
	return rec, true
}

func (s *server) getAction(c *gin.Context) {
	if rec, ok := s.record(c); ok {
		writeJSON(c, http.StatusOK, view(rec))
	}
}

func (s *server) listActions(c *gin.Context) {
	var es pdp.ValidationErrors
	limit := queryInt(c, "limit", defaultListLimit, 1, maxListLimit, &es)
	offset := queryInt(c, "offset", 0, 0, maxListOffset, &es)
	status := pdp.Status(c.Query("status"))
	switch status {
	case "", pdp.StatusAllowed, pdp.StatusBlocked, pdp.StatusPendingReview, pdp.StatusApproved, pdp.StatusDenied:
	default:
		es = append(es, &pdp.ValidationError{Field: "status", Reason: "must be one of allowed, blocked, pending_review, approved, denied"})
	}
	if err := es.Err(); err != nil {
		fail(c, err)
		return
	}
	recs, total, err := s.st.ListActions(c.Request.Context(), tenant(c).ID, store.ActionQuery{Status: status, Limit: limit, Offset: offset})
	if err != nil {
		fail(c, err)
		return
	}
	views := make([]actionView, len(recs))
	for i, r := range recs {
		views[i] = view(r)
	}
	writeJSON(c, http.StatusOK, gin.H{"actions": views, "total": total})
}

// queryInt reads an optional integer query parameter within [lo, hi].
func queryInt(c *gin.Context, name string, def, lo, hi int, es *pdp.ValidationErrors) int {
	raw, ok := c.GetQuery(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < lo || n > hi {
		*es = append(*es, &pdp.ValidationError{Field: name, Reason: fmt.Sprintf("must be an integer from %d to %d", lo, hi)})
		return def
	}
	return n
}

// explainView is GET /v1/actions/{id}/explain (CONTRACT A7). approval is
// null for an action that was never held for review (see approvals.go);
// audit_trail lists the action's entries of the audit chain;
// memories_at_time is always null.
type explainView struct {
	ActionID       string          `json:"action_id"`
	Action         string          `json:"action"`
	AgentID        *string         `json:"agent_id"`
	Connector      *string         `json:"connector"`
	Operation      string          `json:"operation"`
	SubmittedAt    string          `json:"submitted_at"`
	PolicyResult   json.RawMessage `json:"policy_result"`
	Approval       any             `json:"approval"`
	AuditTrail     []any           `json:"audit_trail"`
	Summary        string          `json:"summary"`
	MemoriesAtTime any             `json:"memories_at_time"`
}

func (s *server) explainAction(c *gin.Context) {
	rec, ok := s.record(c)
	if !ok {
		return
	}
	v := view(rec)
	approval, trail, err := s.explainGovernance(c.Request.Context(), tenant(c), rec)
	if err != nil {
		fail(c, err)
		return
	}
	writeJSON(c, http.StatusOK, explainView{
		ActionID:     rec.ID,
		Action:       rec.Action,
		AgentID:      agentPtr(rec.AgentID),
		Connector:    agentPtr(rec.Connector),
		Operation:    rec.Operation,
		SubmittedAt:  timestamp(rec.CreatedAt),
		PolicyResult: v.PolicyResult,
		Approval:     approval,
		AuditTrail:   trail,
		Summary:      summary(rec, readDecision(rec)),
	})
}

// summary explains a decision in one or two sentences.
func summary(rec store.ActionRecord, d storedDecision) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Action '%s'", rec.Action)
	if rec.AgentID != "" {
		fmt.Fprintf(&b, " by agent '%s'", rec.AgentID)
	}
	status := d.Status
	if d.ShadowStatus != "" {
		status = d.ShadowStatus
	}
	why := func() string {
		if d.TriggeredPolicy == nil {
			return ""
		}
		s := " by policy '" + *d.TriggeredPolicy + "'"
		if d.Severity != nil {
			s += " (" + *d.Severity + ")"
		}
		if d.Reason != nil && *d.Reason != "" {
			s += ": " + *d.Reason
		}
		return s
	}
	switch {
	case d.Reason != nil && *d.Reason == reasonUnavailable && d.TriggeredPolicy == nil && rec.Status == pdp.StatusBlocked:
		b.WriteString(" was not allowed: policy evaluation was unavailable.")
	case status == pdp.StatusBlocked:
		b.WriteString(" was blocked" + why() + ".")
	case status == pdp.StatusPendingReview:
		b.WriteString(" requires approval" + why() + ".")
	case len(d.Warnings) > 0:
		fmt.Fprintf(&b, " was allowed with %d warning(s)%s.", len(d.Warnings), why())
	default:
		fmt.Fprintf(&b, " was allowed: no policy fired (%d evaluated).", len(d.Policies))
	}
	if d.ShadowStatus != "" {
		fmt.Fprintf(&b, " Shadow mode: reported as allowed; would have been %s.", d.ShadowStatus)
	}
	if rec.Status == pdp.StatusApproved || rec.Status == pdp.StatusDenied {
		fmt.Fprintf(&b, " It was %s", rec.Status)
		if rec.ApproverID != "" {
			fmt.Fprintf(&b, " by '%s'", rec.ApproverID)
		}
		b.WriteString(".")
	}
	return b.String()
}
