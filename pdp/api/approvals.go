package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/approval"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// The approvals queue (CONTRACT A8). A pending_review action is an
// approval and its approval_id is the action_id; the queue is read from
// the actions, and a decision is applied by the store exactly once
// (store.Approvals) after the tenant's approval mode admitted it
// (pdp/approval).

// Bounds of a decision's fields.
const (
	maxReasonLen       = 1024
	maxApproverIDLen   = 128
	maxApproverRoleLen = 64
	maxConfirmationLen = 64
)

// statusAll is the approvals filter that selects every approval.
const statusAll = "all"

// approvalItem is one entry of GET /v1/approvals.
type approvalItem struct {
	ApprovalID      string     `json:"approval_id"`
	ActionID        string     `json:"action_id"`
	Action          string     `json:"action"`
	Connector       *string    `json:"connector"`
	AgentID         *string    `json:"agent_id"`
	Status          pdp.Status `json:"status"`
	TriggeredPolicy *string    `json:"triggered_policy"`
	SubmittedAt     string     `json:"submitted_at"`
	RiskScore       float64    `json:"risk_score"`
	ApproverID      any        `json:"approver_id"`
	DecidedAt       any        `json:"decided_at"`
}

// parseApprovalStatus reads the queue's filter: pending_review (the
// default), approved, denied or all, in any case.
func parseApprovalStatus(raw string) (pdp.Status, bool) {
	switch v := strings.ToLower(strings.TrimSpace(raw)); v {
	case "":
		return pdp.StatusPendingReview, true
	case statusAll:
		return "", true
	case string(pdp.StatusPendingReview), string(pdp.StatusApproved), string(pdp.StatusDenied):
		return pdp.Status(v), true
	}
	return "", false
}

func (s *server) listApprovals(c *gin.Context) {
	var es pdp.ValidationErrors
	limit := queryInt(c, "limit", defaultListLimit, 1, maxListLimit, &es)
	offset := queryInt(c, "offset", 0, 0, maxListOffset, &es)
	name, raw := "status_filter", c.Query("status_filter")
	if raw == "" {
		name, raw = "status", c.Query("status")
	}
	status, ok := parseApprovalStatus(raw)
	if !ok {
		es = append(es, &pdp.ValidationError{Field: name, Reason: "must be one of pending_review, approved, denied, all"})
	}
	if err := es.Err(); err != nil {
		fail(c, err)
		return
	}
	aps, total, err := s.gov.st.ListApprovals(c.Request.Context(), tenant(c).ID, store.ApprovalQuery{Status: status, Limit: limit, Offset: offset})
	if err != nil {
		fail(c, err)
		return
	}
	items := make([]approvalItem, len(aps))
	for i, ap := range aps {
		a := ap.Action
		items[i] = approvalItem{
			ApprovalID:      a.ID,
			ActionID:        a.ID,
			Action:          a.Action,
			Connector:       agentPtr(a.Connector),
			AgentID:         agentPtr(a.AgentID),
			Status:          a.Status,
			TriggeredPolicy: agentPtr(a.TriggeredPolicy),
			SubmittedAt:     timestamp(a.CreatedAt),
			RiskScore:       a.RiskScore,
			ApproverID:      optString(a.ApproverID),
			DecidedAt:       optTimestamp(a.DecidedAt),
		}
	}
	writeJSON(c, http.StatusOK, gin.H{"approvals": items, "total": total})
}

// decisionInput is a decision as sent: each field from the JSON body or,
// when the body lacks it, from the query string.
type decisionInput struct {
	decision     *string
	reason       string
	approverID   string
	approverRole string
	confirmation string
	isManager    bool
	confidential bool
}

// Decision fields, by their names in the body and the query string.
var (
	decisionStrings = []string{"decision", "reason", "approver_id", "approver_role", "confirmation"}
	decisionBools   = []string{"is_manager", "confidential"}
)

func (in *decisionInput) stringField(name string) *string {
	switch name {
	case "reason":
		return &in.reason
	case "approver_id":
		return &in.approverID
	case "approver_role":
		return &in.approverRole
	case "confirmation":
		return &in.confirmation
	}
	return nil
}

func (in *decisionInput) boolField(name string) *bool {
	if name == "is_manager" {
		return &in.isManager
	}
	return &in.confidential
}

// readDecisionInput reads the decision's fields: the query string first, then
// the JSON body over it (the body wins). Other body fields are ignored, as
// SDKs may send more than Gatehouse reads. A decision that is missing or
// not a string is left nil for the caller's invalid_decision. err is a body
// that cannot be read as a JSON object; problems are the other fields'.
func readDecisionInput(c *gin.Context) (in decisionInput, problems, err error) {
	var es pdp.ValidationErrors
	setString := func(name, v string) {
		if name == "decision" {
			in.decision = &v
			return
		}
		*in.stringField(name) = v
	}
	setBool := func(name, v string) {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			es = append(es, &pdp.ValidationError{Field: name, Reason: "must be true or false"})
			return
		}
		*in.boolField(name) = b
	}
	for _, name := range decisionStrings {
		if v, ok := c.GetQuery(name); ok {
			setString(name, v)
		}
	}
	for _, name := range decisionBools {
		if v, ok := c.GetQuery(name); ok {
			setBool(name, v)
		}
	}
	body, err := readBody(c)
	if err != nil {
		return decisionInput{}, nil, err
	}
	if len(bytes.TrimSpace(body)) > 0 {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(body, &fields); err != nil {
			return decisionInput{}, nil, jsonProblem(err)
		}
		if fields == nil {
			return decisionInput{}, nil, &pdp.ValidationError{Reason: "the request body must be a JSON object"}
		}
		for _, name := range decisionStrings {
			raw, ok := fields[name]
			if !ok || string(raw) == "null" {
				continue
			}
			var v string
			if json.Unmarshal(raw, &v) != nil {
				if name == "decision" {
					in.decision = nil // not a decision at all: invalid_decision
					continue
				}
				es = append(es, &pdp.ValidationError{Field: name, Reason: "must be a string"})
				continue
			}
			setString(name, v)
		}
		for _, name := range decisionBools {
			raw, ok := fields[name]
			if !ok || string(raw) == "null" {
				continue
			}
			var b bool
			if json.Unmarshal(raw, &b) == nil {
				*in.boolField(name) = b
				continue
			}
			var v string
			if json.Unmarshal(raw, &v) == nil {
				setBool(name, v)
				continue
			}
			es = append(es, &pdp.ValidationError{Field: name, Reason: "must be true or false"})
		}
	}
	checkText(&es, "reason", in.reason, maxReasonLen, true)
	in.approverID = strings.TrimSpace(in.approverID)
	checkText(&es, "approver_id", in.approverID, maxApproverIDLen, false)
	checkText(&es, "approver_role", in.approverRole, maxApproverRoleLen, false)
	checkText(&es, "confirmation", in.confirmation, maxConfirmationLen, false)
	return in, es.Err(), nil
}

// checkText bounds a free-text field; multiline allows line breaks.
func checkText(es *pdp.ValidationErrors, field, v string, maxLen int, multiline bool) {
	switch {
	case utf8.RuneCountInString(v) > maxLen:
		*es = append(*es, &pdp.ValidationError{Field: field, Reason: fmt.Sprintf("must be at most %d characters", maxLen)})
	case !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool {
		return unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\r' || r == '\t'))
	}):
		*es = append(*es, &pdp.ValidationError{Field: field, Reason: "must be valid UTF-8 without control characters"})
	}
}

// decisionView is the answer of POST /v1/approvals/{id}/decision.
type decisionView struct {
	ApprovalID string            `json:"approval_id"`
	Decision   approval.Decision `json:"decision"`
	Reason     *string           `json:"reason"`
	Status     pdp.Status        `json:"status"`
	ApproverID string            `json:"approver_id"`
	DecidedAt  any               `json:"decided_at"`
	// In enterprise mode: counted approvals so far, and how many approve.
	ApprovalsReceived *int `json:"approvals_received,omitempty"`
	MinApprovals      *int `json:"min_approvals,omitempty"`
}

func approvalNotFound(id string, cause error) *apiError {
	return &apiError{Status: http.StatusNotFound, Code: pdp.CodeApprovalNotFound,
		Message: fmt.Sprintf("Approval '%s' not found", truncate(id, maxActionIDLen)), cause: cause}
}

func alreadyDecided(id string, ade *store.AlreadyDecidedError) *apiError {
	msg := fmt.Sprintf("Approval '%s' was already %s", id, ade.Status)
	if ade.ApproverID != "" {
		msg += fmt.Sprintf(" by '%s'", ade.ApproverID)
	}
	extra := map[string]any{"approval_id": id, "approval_status": ade.Status, "decided_at": optTimestamp(ade.DecidedAt)}
	return &apiError{Status: http.StatusConflict, Code: pdp.CodeApprovalAlreadyDecided,
		Message: msg + "; decisions are immutable", Extra: extra, cause: ade}
}

func (s *server) decideApproval(c *gin.Context) {
	ctx := c.Request.Context()
	t := tenant(c)
	id := c.Param("id")
	// Checks run from the request to the approval: a body that is not a
	// JSON object, the decision (invalid_decision), the other fields, then
	// the approval itself and the mode's rules.
	in, problems, err := readDecisionInput(c)
	if err != nil {
		fail(c, err)
		return
	}
	if in.decision == nil {
		fail(c, newError(http.StatusBadRequest, pdp.CodeInvalidDecision, "decision is required: approve or deny"))
		return
	}
	decision, ok := approval.ParseDecision(*in.decision)
	if !ok {
		fail(c, newError(http.StatusBadRequest, pdp.CodeInvalidDecision,
			"decision '%s' is not one of approve, approved, deny, denied, reject, rejected", truncate(*in.decision, 64)))
		return
	}
	if problems != nil {
		fail(c, problems)
		return
	}
	if id == "" || len(id) > maxActionIDLen {
		fail(c, approvalNotFound(id, nil))
		return
	}
	rec, err := s.gov.st.GetAction(ctx, t.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		fail(c, approvalNotFound(id, err))
		return
	}
	if err != nil {
		fail(c, err)
		return
	}
	switch rec.Status {
	case pdp.StatusPendingReview:
	case pdp.StatusApproved, pdp.StatusDenied:
		fail(c, alreadyDecided(id, &store.AlreadyDecidedError{ActionID: id, Status: rec.Status, ApproverID: rec.ApproverID, DecidedAt: rec.DecidedAt}))
		return
	default: // allowed or blocked: never held for review
		fail(c, approvalNotFound(id, nil))
		return
	}
	// The tenant as stored now: a mode changed a moment ago applies.
	fresh, err := s.reg.Tenant(ctx, t.ID)
	if err != nil {
		fail(c, err)
		return
	}
	pol, err := approvalPolicy(fresh)
	if err != nil {
		fail(c, err)
		return
	}
	keyID := s.keyID(c)
	approver := in.approverID
	if approver == "" {
		approver = keyID // the key's owner: the key that decides
	}
	if approver == "" {
		approver = "tenant:" + t.ID
	}
	held := approval.Held{ActionID: rec.ID, Action: rec.Action, AgentID: rec.AgentID, SubmittedAt: rec.CreatedAt}
	if pol.Mode == approval.Team {
		if held.SubmitterKey, err = s.submitterKey(ctx, t.ID, rec.ID); err != nil {
			fail(c, err)
			return
		}
	}
	verdict, err := s.gov.rules.Check(pol, held, approval.Request{
		Decision: decision, ApproverID: approver, Role: strings.TrimSpace(in.approverRole), IsManager: in.isManager, Confirmation: in.confirmation,
	})
	if err != nil {
		fail(c, ruleError(c, rec, err))
		return
	}

	meta := map[string]any{"decision": decision, "mode": pol.Mode, "key_id": optString(keyID)}
	if in.confidential {
		meta["confidential"] = true // the reason stays on the action, out of the permanent chain
	} else {
		meta["reason"] = in.reason
	}
	metaJSON, err := encodeJSON(meta)
	if err != nil {
		fail(c, err)
		return
	}
	now := s.gov.now()
	out := decisionView{ApprovalID: id, Decision: decision, Reason: reasonPtr(in.reason), ApproverID: approver}
	// The decision is written even if the client hangs up now: it was
	// admitted, and a half-known outcome helps nobody.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.RecordTimeout)
	defer cancel()
	if !verdict.Vote {
		a, _, err := s.gov.st.DecideAction(wctx, store.DecideRequest{
			TenantID: t.ID, ActionID: id, Status: decision.Status(), ApproverID: approver, Reason: in.reason,
			DecidedAt: now, Audit: store.AuditEvent{Metadata: metaJSON},
		})
		if err != nil {
			fail(c, decideError(id, err))
			return
		}
		out.Status, out.DecidedAt = a.Status, optTimestamp(a.DecidedAt)
		writeJSON(c, http.StatusOK, out)
		return
	}
	res, err := s.gov.st.RecordApprovalVote(wctx, store.VoteRequest{
		Vote: store.ApprovalVote{
			TenantID: t.ID, ActionID: id, ApproverID: approver, Role: strings.TrimSpace(in.approverRole), IsManager: in.isManager,
			Decision: decision.Status(), Reason: in.reason, VotedAt: now,
		},
		MinApprovals:  verdict.MinApprovals,
		Counts:        func(v store.ApprovalVote) bool { return verdict.Counts(v.Role, v.IsManager) },
		Audit:         store.AuditEvent{Metadata: metaJSON},
		DecisionAudit: store.AuditEvent{Metadata: metaJSON},
	})
	if err != nil {
		fail(c, decideError(id, err))
		return
	}
	received, need := res.Approvals, verdict.MinApprovals
	out.Status, out.DecidedAt = res.Action.Status, optTimestamp(res.Action.DecidedAt)
	out.ApprovalsReceived, out.MinApprovals = &received, &need
	writeJSON(c, http.StatusOK, out)
}

func reasonPtr(r string) *string {
	if r == "" {
		return nil
	}
	return &r
}

// approvalPolicy is the tenant's approval mode and settings. A mode its
// tier does not allow (a tier lowered by hand in the store) is read as the
// tier's default; settings that no longer parse fail the decision rather
// than fall back to weaker defaults.
func approvalPolicy(t store.Tenant) (approval.Policy, error) {
	mode := t.ApprovalMode
	if !slices.Contains(registry.ApprovalModes(t.Tier), mode) {
		mode = registry.DefaultApprovalMode(t.Tier)
	}
	settings, err := approval.ParseSettings(t.ApprovalSettings)
	if err != nil {
		return approval.Policy{}, fmt.Errorf("tenant %q: stored approval settings: %v", t.ID, err) // not the client's fault: 500
	}
	return approval.Policy{Mode: mode, Settings: settings}, nil
}

// submitterKey is the ID of the key that submitted the action, from its
// evaluation entry ("" when it has none).
func (s *server) submitterKey(ctx context.Context, tenantID, actionID string) (string, error) {
	trail, err := s.gov.st.AuditTrail(ctx, tenantID, actionID)
	if err != nil {
		return "", err
	}
	for _, e := range trail {
		if e.Event != store.EventActionPendingReview {
			continue
		}
		var m struct {
			KeyID string `json:"key_id"`
		}
		_ = json.Unmarshal(e.Metadata, &m) // written by recordAction; anything else reads as unknown
		return m.KeyID, nil
	}
	return "", nil
}

// ruleError maps a refusal of pdp/approval to its response.
func ruleError(c *gin.Context, rec store.ActionRecord, err error) error {
	var (
		tooEarly *approval.TooEarlyError
		notElig  *approval.NotEligibleError
	)
	switch {
	case errors.As(err, &tooEarly):
		secs := tooEarly.RetryAfterSeconds()
		c.Header("Retry-After", strconv.Itoa(secs))
		return &apiError{Status: http.StatusConflict, Code: pdp.CodeApprovalTooEarly, Message: tooEarly.Error(),
			Extra: map[string]any{"retry_after_seconds": secs, "not_before": timestamp(tooEarly.NotBefore)}, cause: err}
	case errors.As(err, &notElig):
		return &apiError{Status: http.StatusForbidden, Code: pdp.CodeApproverNotEligible, Message: notElig.Error(), cause: err}
	case errors.Is(err, approval.ErrConfirmationRequired):
		return &apiError{Status: http.StatusBadRequest, Code: pdp.CodeConfirmationRequired,
			Message: fmt.Sprintf("Action '%s' is destructive: approving it in solo mode needs confirmation %q", rec.Action, approval.Confirmation),
			Extra:   map[string]any{"confirmation": approval.Confirmation}, cause: err}
	}
	return err
}

// decideError maps the store's refusals of a decision or vote.
func decideError(id string, err error) error {
	var ade *store.AlreadyDecidedError
	switch {
	case errors.As(err, &ade):
		return alreadyDecided(id, ade)
	case errors.Is(err, store.ErrAlreadyVoted):
		return &apiError{Status: http.StatusConflict, Code: pdp.CodeApprovalAlreadyDecided,
			Message: fmt.Sprintf("This approver has already voted on approval '%s'; votes are immutable", id),
			Extra:   map[string]any{"approval_id": id, "approval_status": pdp.StatusPendingReview}, cause: err}
	case errors.Is(err, store.ErrNotFound):
		return approvalNotFound(id, err)
	}
	return err
}

// approvalView is explain's "approval": the held action's review, null for
// an action that was never held.
type approvalView struct {
	ApprovalID        string     `json:"approval_id"`
	Status            pdp.Status `json:"status"`
	Mode              string     `json:"mode"`
	ApproverID        any        `json:"approver_id"`
	Reason            any        `json:"reason"`
	DecidedAt         any        `json:"decided_at"`
	Votes             []voteView `json:"votes"`
	ApprovalsReceived *int       `json:"approvals_received,omitempty"`
	MinApprovals      *int       `json:"min_approvals,omitempty"`
	Destructive       bool       `json:"destructive"`
}

type voteView struct {
	ApproverID string     `json:"approver_id"`
	Decision   pdp.Status `json:"decision"`
	Role       any        `json:"approver_role"`
	IsManager  bool       `json:"is_manager"`
	Reason     any        `json:"reason"`
	VotedAt    string     `json:"voted_at"`
}

// explainGovernance returns explain's approval (nil when the action was
// never held) and audit trail.
func (s *server) explainGovernance(ctx context.Context, t store.Tenant, rec store.ActionRecord) (any, []any, error) {
	if s.gov.st == nil {
		return nil, []any{}, nil
	}
	entries, err := s.gov.st.AuditTrail(ctx, t.ID, rec.ID)
	if err != nil {
		return nil, nil, err
	}
	trail := make([]any, len(entries))
	for i, e := range entries {
		trail[i] = viewEntry(e)
	}
	if !slices.Contains([]pdp.Status{pdp.StatusPendingReview, pdp.StatusApproved, pdp.StatusDenied}, rec.Status) {
		return nil, trail, nil
	}
	votes, err := s.gov.st.ApprovalVotes(ctx, t.ID, rec.ID)
	if err != nil {
		return nil, nil, err
	}
	pol, err := approvalPolicy(t)
	if err != nil { // settings that no longer parse: show the defaults' counts
		pol = approval.Policy{Mode: t.ApprovalMode, Settings: approval.Settings{MinApprovals: approval.DefaultMinApprovals}}
	}
	// A decided approval shows the mode that decided it, from its entry.
	for _, e := range entries {
		if e.Event == store.EventActionApproved || e.Event == store.EventActionDenied {
			var m struct {
				Mode string `json:"mode"`
			}
			if json.Unmarshal(e.Metadata, &m) == nil && m.Mode != "" {
				pol.Mode = m.Mode
			}
		}
	}
	v := approvalView{
		ApprovalID:  rec.ID,
		Status:      rec.Status,
		Mode:        pol.Mode,
		ApproverID:  optString(rec.ApproverID),
		Reason:      optString(rec.DecisionReason),
		DecidedAt:   optTimestamp(rec.DecidedAt),
		Votes:       make([]voteView, len(votes)),
		Destructive: approval.Destructive(rec.Action),
	}
	received := 0
	for i, x := range votes {
		v.Votes[i] = voteView{ApproverID: x.ApproverID, Decision: x.Decision, Role: optString(x.Role), IsManager: x.IsManager,
			Reason: optString(x.Reason), VotedAt: timestamp(x.VotedAt)}
		if x.Decision == pdp.StatusApproved && pol.Settings.Eligible(x.Role, x.IsManager) == nil {
			received++
		}
	}
	if pol.Mode == approval.Enterprise || len(votes) > 0 {
		need := pol.Settings.MinApprovalsOrDefault()
		v.ApprovalsReceived, v.MinApprovals = &received, &need
	}
	return v, trail, nil
}
