package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/trace"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/lifecycle"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// Bounds of the listing.
const (
	defaultListLimit = 50
	maxListLimit     = 500
	maxListOffset    = 1 << 31
	maxActionIDLen   = lifecycle.MaxActionIDLen
)

// actionBody is the body of POST /v1/actions.
type actionBody struct {
	Action *string `json:"action"`
	// Params is decoded with the body in one pass (numbers as
	// json.Number): nil when absent or null.
	Params   any     `json:"params"`
	AgentID  *string `json:"agent_id"`
	StepType *string `json:"step_type"`
}

func (s *server) submitAction(c *gin.Context) {
	body, err := readBody(c)
	if err != nil {
		fail(c, err)
		return
	}
	// Unknown top-level fields are ignored, as Novyx ignores them
	// (docs/api.md §A7): a newer SDK sending a field this server does not
	// know must still be decided. The known ones are checked strictly.
	var b actionFields
	if err := decodeActionBody(body, &b); err != nil {
		fail(c, err)
		return
	}
	// Params sent as the lifecycle would encode them are stored as sent.
	sub := lifecycle.Submission{AgentID: b.AgentID, StepType: b.StepType, ParamsJSON: b.ParamsText, ParamsEncoded: b.ParamsText != nil, ParamsDecoded: true}
	if !b.HasAction {
		sub.Problems = append(sub.Problems, &pdp.ValidationError{Field: "action", Reason: "is required"})
	} else {
		sub.Name = b.Action
	}
	if sub.Params, err = paramsObject(b.Params, "params"); err != nil {
		fail(c, err)
		return
	}
	s.submit(c, sub)
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
	sub := lifecycle.Submission{ParamsDecoded: true} // decodeParams decodes params from JSON
	connector := c.Param("connector")
	op := strings.Trim(c.Param("operation"), "/")
	if op == "" {
		sub.Problems = append(sub.Problems, &pdp.ValidationError{Field: "operation", Reason: "is required: POST /v1/actions/{connector}/{operation}"})
	}
	sub.Name = connector + "." + strings.ReplaceAll(op, "/", ".")
	if len(bytes.TrimSpace(body)) > 0 {
		if sub.Params, err = decodeParams(body, ""); err != nil {
			fail(c, err)
			return
		}
	} else {
		sub.Params = map[string]any{}
	}
	sub.AgentID, err = takeString(sub.Params, "agent_id")
	addProblem(&sub.Problems, err)
	sub.StepType, err = takeString(sub.Params, "step_type")
	addProblem(&sub.Problems, err)
	s.submit(c, sub)
}

// submit hands the decoded action to the lifecycle with who sent it, and
// answers its outcome.
func (s *server) submit(c *gin.Context, sub lifecycle.Submission) {
	ctx := c.Request.Context()
	id, _ := identityOf(c) // set: the route is behind authenticate
	if id == nil {
		id = &registry.Identity{}
	}
	sub.TenantID = id.Tenant.ID
	sub.KeyID = s.keyID(c)
	if id.Key.ID != "" {
		sub.Key = &id.Key
	}
	sub.RequireAgentKeys = id.Tenant.RequireAgentKeys
	sub.TraceID = traceID(ctx)
	sub.RequestedBy = c.Request.RemoteAddr
	res, err := s.life.Submit(ctx, sub)
	if err != nil {
		fail(c, err)
		return
	}
	buf := responseBuffers.Get().(*[]byte)
	b := append(res.AppendJSON((*buf)[:0]), '\n')
	// What c.Data sends, without its per-response header slice and
	// render value.
	if h := c.Writer.Header(); len(h["Content-Type"]) == 0 {
		h["Content-Type"] = jsonContentType
	}
	c.Status(http.StatusOK)
	_, _ = c.Writer.Write(b)
	*buf = b
	responseBuffers.Put(buf)
}

// jsonContentType is the Content-Type header value of JSON responses,
// shared: headers are only read once set (an Add would append to a copy,
// the slice being full).
var jsonContentType = []string{"application/json"}

// responseBuffers are reused for action responses: gin copies the body
// into the connection's buffer before Data returns.
var responseBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// traceID is the request span's trace id; without a recording tracer (and
// no incoming traceparent) there is none, and the lifecycle draws a
// random one, so trace_id is always present.
func traceID(ctx context.Context) string {
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		return sc.TraceID().String()
	}
	return ""
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
// ("" when it is the whole body). Its strings share raw's memory, as
// decodeActionBody's do: raw must not be modified afterwards.
func decodeParams(raw []byte, field string) (map[string]any, error) {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return map[string]any{}, nil
	}
	p := fastParserOver(raw)
	p.space()
	if v, ok := p.value(0); ok && p.end() {
		if m, ok := v.(map[string]any); ok {
			return m, nil // what encoding/json would decode (actionjson.go)
		}
	}
	return decodeParamsJSON(raw, field)
}

// decodeParamsJSON is decodeParams by encoding/json alone.
func decodeParamsJSON(raw []byte, field string) (map[string]any, error) {
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

// paramsObject is a decoded params value as an object: absent or null is
// {}, anything but an object an error naming field.
func paramsObject(v any, field string) (map[string]any, error) {
	switch p := v.(type) {
	case nil:
		return map[string]any{}, nil
	case map[string]any:
		return p, nil
	}
	return nil, &pdp.ValidationError{Field: field, Reason: "must be an object"}
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
	// DecidedBy is who decided a held action (GET /v1/actions/{id} only).
	DecidedBy *decidedByView `json:"decided_by,omitempty"`
}

// view renders a record. reason is the human decision's reason once an
// approver gave one, else the policy_result's reason.
func view(rec store.ActionRecord) actionView {
	d := lifecycle.ReadDecision(rec)
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
		Message:      lifecycle.Message(rec.Status, d.Reason, rec.ID),
		Reason:       reason,
		ApproverID:   optString(rec.ApproverID),
		DecidedAt:    optTimestamp(rec.DecidedAt),
		CreatedAt:    timestamp(rec.CreatedAt),
		TraceID:      optString(rec.TraceID),
	}
}

// record loads the tenant's action named in the path.
func (s *server) record(c *gin.Context) (store.ActionRecord, bool) {
	rec, err := s.life.Action(c.Request.Context(), tenant(c).ID, c.Param("id"))
	if err != nil {
		fail(c, err)
		return store.ActionRecord{}, false
	}
	return rec, true
}

func (s *server) getAction(c *gin.Context) {
	rec, ok := s.record(c)
	if !ok {
		return
	}
	v := view(rec)
	if rec.DecidedAt != nil {
		d, _, err := s.life.WhoDecided(c.Request.Context(), rec.TenantID, rec.ID)
		if err != nil {
			fail(c, err)
			return
		}
		v.DecidedBy = viewDecider(d, rec)
	}
	writeJSON(c, http.StatusOK, v)
}

func (s *server) listActions(c *gin.Context) {
	var es pdp.ValidationErrors
	limit := queryInt(c, "limit", defaultListLimit, 1, maxListLimit, &es)
	offset := queryInt(c, "offset", 0, 0, maxListOffset, &es)
	status := pdp.Status(c.Query("status"))
	if err := es.Err(); err != nil {
		fail(c, err)
		return
	}
	switch status {
	case "", pdp.StatusAllowed, pdp.StatusBlocked, pdp.StatusPendingReview, pdp.StatusApproved, pdp.StatusDenied:
	default:
		// A status no action has matches none (docs/api.md §A7), as a
		// filter does in Novyx: an empty list, not an error.
		writeJSON(c, http.StatusOK, gin.H{"actions": []actionView{}, "total": 0})
		return
	}
	recs, total, err := s.life.Actions(c.Request.Context(), tenant(c).ID, store.ActionQuery{Status: status, Limit: limit, Offset: offset})
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

// queryInt reads an optional integer query parameter within [lo, hi]; an
// empty one is not given (docs/api.md §A1).
func queryInt(c *gin.Context, name string, def, lo, hi int, es *pdp.ValidationErrors) int {
	raw := c.Query(name)
	if raw == "" {
		return def
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < lo || n > hi {
		*es = append(*es, &pdp.ValidationError{Field: name, Reason: fmt.Sprintf("must be an integer from %d to %d", lo, hi)})
		return def
	}
	return n
}

// explainView is GET /v1/actions/{id}/explain (docs/api.md §A7). approval is
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
	x, err := s.life.Explain(c.Request.Context(), tenant(c), c.Param("id"))
	if err != nil {
		fail(c, err)
		return
	}
	rec := x.Action
	trail := make([]any, len(x.Trail))
	for i, e := range x.Trail {
		trail[i] = viewEntry(e)
	}
	var approval any
	if x.Review != nil {
		approval = viewReview(rec, x.Review)
	}
	writeJSON(c, http.StatusOK, explainView{
		ActionID:     rec.ID,
		Action:       rec.Action,
		AgentID:      agentPtr(rec.AgentID),
		Connector:    agentPtr(rec.Connector),
		Operation:    rec.Operation,
		SubmittedAt:  timestamp(rec.CreatedAt),
		PolicyResult: view(rec).PolicyResult,
		Approval:     approval,
		AuditTrail:   trail,
		Summary:      x.Summary,
	})
}
