package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/approval"
	"github.com/gatehouse-pdp/gatehouse/pdp/lifecycle"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// The approvals queue (docs/api.md §A8): the workflow is pdp/lifecycle's;
// these handlers decode its requests and render its results.

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
	// Votes are who voted (enterprise mode); DecidedBy who decided.
	Votes     []voterView    `json:"votes"`
	DecidedBy *decidedByView `json:"decided_by"`
}

// voterView is one vote as the queue shows it: the identity and its role.
type voterView struct {
	ApproverID string     `json:"approver_id"`
	Role       any        `json:"approver_role"`
	IsManager  bool       `json:"is_manager"`
	Decision   pdp.Status `json:"decision"`
	VotedAt    string     `json:"voted_at"`
}

// decidedByView is who decided an approval: the deciding identity, its
// key's role and manager flag, the key, and the label the request sent.
type decidedByView struct {
	ApproverID    string `json:"approver_id"`
	ApproverRole  any    `json:"approver_role"`
	IsManager     bool   `json:"is_manager"`
	KeyID         any    `json:"key_id"`
	ApproverLabel any    `json:"approver_label"`
}

// viewDecider renders who decided rec (nil while undecided); a decision
// recorded without an entry shows its approver only.
func viewDecider(d *lifecycle.Decider, rec store.ActionRecord) *decidedByView {
	if rec.DecidedAt == nil {
		return nil
	}
	if d == nil {
		return &decidedByView{ApproverID: rec.ApproverID}
	}
	id := d.ApproverID
	if id == "" {
		id = rec.ApproverID
	}
	return &decidedByView{ApproverID: id, ApproverRole: optString(d.Role), IsManager: d.IsManager, KeyID: optString(d.KeyID), ApproverLabel: optString(d.Label)}
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
	raw := c.Query("status_filter")
	if raw == "" {
		raw = c.Query("status")
	}
	status, ok := parseApprovalStatus(raw)
	if err := es.Err(); err != nil {
		fail(c, err)
		return
	}
	if !ok {
		// A status no approval has matches none (docs/api.md §A8): an
		// empty list, not an error.
		writeJSON(c, http.StatusOK, gin.H{"approvals": []approvalItem{}, "total": 0})
		return
	}
	aps, total, err := s.life.Approvals(c.Request.Context(), tenant(c).ID, store.ApprovalQuery{Status: status, Limit: limit, Offset: offset})
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
		d, votes, err := s.life.WhoDecided(c.Request.Context(), a.TenantID, a.ID)
		if err != nil {
			fail(c, err)
			return
		}
		items[i].DecidedBy = viewDecider(d, a)
		items[i].Votes = make([]voterView, len(votes))
		for j, v := range votes {
			items[i].Votes[j] = voterView{ApproverID: v.ApproverID, Role: optString(v.Role), IsManager: v.IsManager, Decision: v.Decision, VotedAt: timestamp(v.VotedAt)}
		}
	}
	writeJSON(c, http.StatusOK, gin.H{"approvals": items, "total": total})
}

// Decision fields, by their names in the body and the query string.
var (
	decisionStrings = []string{"decision", "reason", "approver_id", "approver_role", "confirmation"}
	decisionBools   = []string{"is_manager", "confidential"}
)

func stringField(in *lifecycle.DecisionRequest, name string) *string {
	switch name {
	case "reason":
		return &in.Reason
	case "approver_id":
		return &in.ApproverID
	case "approver_role":
		return &in.ApproverRole
	case "confirmation":
		return &in.Confirmation
	}
	return nil
}

func boolField(in *lifecycle.DecisionRequest, name string) *bool {
	if name == "is_manager" {
		return &in.IsManager
	}
	return &in.Confidential
}

// readDecisionInput reads the decision's fields: the query string first,
// then the JSON body over it (the body wins). Other body fields are
// ignored, as SDKs may send more than Gatehouse reads. A decision that is
// missing or not a string is left nil for the lifecycle's
// invalid_decision; fields of the wrong type are in.Problems. err is a
// body that cannot be read as a JSON object.
func readDecisionInput(c *gin.Context) (in lifecycle.DecisionRequest, err error) {
	setString := func(name, v string) {
		if name == "decision" {
			in.Decision = &v
			return
		}
		*stringField(&in, name) = v
	}
	setBool := func(name, v string) {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			in.Problems = append(in.Problems, &pdp.ValidationError{Field: name, Reason: "must be true or false"})
			return
		}
		*boolField(&in, name) = b
	}
	// An empty query parameter is not given (docs/api.md §A1).
	for _, name := range decisionStrings {
		if v := c.Query(name); v != "" {
			setString(name, v)
		}
	}
	for _, name := range decisionBools {
		if v := c.Query(name); v != "" {
			setBool(name, v)
		}
	}
	body, err := readBody(c)
	if err != nil {
		return lifecycle.DecisionRequest{}, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return in, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return lifecycle.DecisionRequest{}, jsonProblem(err)
	}
	if fields == nil {
		return lifecycle.DecisionRequest{}, &pdp.ValidationError{Reason: "the request body must be a JSON object"}
	}
	for _, name := range decisionStrings {
		raw, ok := fields[name]
		if !ok || string(raw) == "null" {
			continue
		}
		var v string
		if json.Unmarshal(raw, &v) != nil {
			if name == "decision" {
				s := string(raw) // not a decision at all: invalid_decision
				in.Decision = &s
				continue
			}
			in.Problems = append(in.Problems, &pdp.ValidationError{Field: name, Reason: "must be a string"})
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
			*boolField(&in, name) = b
			continue
		}
		var v string
		if json.Unmarshal(raw, &v) == nil {
			setBool(name, v)
			continue
		}
		in.Problems = append(in.Problems, &pdp.ValidationError{Field: name, Reason: "must be true or false"})
	}
	return in, nil
}

// decisionView is the answer of POST /v1/approvals/{id}/decision.
type decisionView struct {
	ApprovalID string            `json:"approval_id"`
	Decision   approval.Decision `json:"decision"`
	Reason     *string           `json:"reason"`
	Status     pdp.Status        `json:"status"`
	ApproverID string            `json:"approver_id"`
	// ApproverLabel is the approver_id the request sent (a display label);
	// ApproverRole the deciding key's role.
	ApproverLabel any `json:"approver_label"`
	ApproverRole  any `json:"approver_role"`
	DecidedAt     any `json:"decided_at"`
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
	in, err := readDecisionInput(c)
	if err != nil {
		fail(c, err)
		return
	}
	id := c.Param("id")
	in.TenantID, in.ApprovalID, in.KeyID, in.Decider = tenant(c).ID, id, s.keyID(c), apiKey(c)
	res, err := s.life.Decide(c.Request.Context(), in)
	if err != nil {
		fail(c, approvalError(c, id, err))
		return
	}
	out := decisionView{ApprovalID: res.ApprovalID, Decision: res.Decision, Reason: reasonPtr(res.Reason), ApproverID: res.ApproverID,
		ApproverLabel: optString(res.Label), ApproverRole: optString(res.Role), Status: res.Status, DecidedAt: optTimestamp(res.DecidedAt)}
	if res.Vote {
		out.ApprovalsReceived, out.MinApprovals = &res.ApprovalsReceived, &res.MinApprovals
	}
	writeJSON(c, http.StatusOK, out)
}

func reasonPtr(r string) *string {
	if r == "" {
		return nil
	}
	return &r
}

// approvalError maps the lifecycle's refusals of a decision on approval id
// to their responses.
func approvalError(c *gin.Context, id string, err error) error {
	var (
		invalid  *lifecycle.InvalidDecisionError
		confirm  *lifecycle.ConfirmationError
		tooEarly *approval.TooEarlyError
		notElig  *approval.NotEligibleError
		ade      *store.AlreadyDecidedError
	)
	switch {
	case errors.As(err, &invalid):
		return &apiError{Status: http.StatusBadRequest, Code: pdp.CodeInvalidDecision, Message: invalid.Error()}
	case errors.Is(err, lifecycle.ErrApprovalNotFound):
		return approvalNotFound(id, err)
	case errors.As(err, &ade):
		return alreadyDecided(id, ade)
	case errors.Is(err, store.ErrAlreadyVoted):
		return &apiError{Status: http.StatusConflict, Code: pdp.CodeApprovalAlreadyDecided,
			Message: fmt.Sprintf("This approver has already voted on approval '%s'; votes are immutable", id),
			Extra:   map[string]any{"approval_id": id, "approval_status": pdp.StatusPendingReview}, cause: err}
	case errors.As(err, &tooEarly):
		secs := tooEarly.RetryAfterSeconds()
		c.Header("Retry-After", strconv.Itoa(secs))
		return &apiError{Status: http.StatusConflict, Code: pdp.CodeApprovalTooEarly, Message: tooEarly.Error(),
			Extra: map[string]any{"retry_after_seconds": secs, "not_before": timestamp(tooEarly.NotBefore)}, cause: err}
	case errors.As(err, &notElig):
		return &apiError{Status: http.StatusForbidden, Code: pdp.CodeApproverNotEligible, Message: notElig.Error(), cause: err}
	case errors.As(err, &confirm):
		return &apiError{Status: http.StatusBadRequest, Code: pdp.CodeConfirmationRequired, Message: confirm.Error(),
			Extra: map[string]any{"confirmation": approval.Confirmation}, cause: err}
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

// viewReview renders explain's approval of a held action.
func viewReview(rec store.ActionRecord, r *lifecycle.Review) approvalView {
	v := approvalView{
		ApprovalID:  rec.ID,
		Status:      rec.Status,
		Mode:        r.Mode,
		ApproverID:  optString(rec.ApproverID),
		Reason:      optString(rec.DecisionReason),
		DecidedAt:   optTimestamp(rec.DecidedAt),
		Votes:       make([]voteView, len(r.Votes)),
		Destructive: r.Destructive,
	}
	for i, x := range r.Votes {
		v.Votes[i] = voteView{ApproverID: x.ApproverID, Decision: x.Decision, Role: optString(x.Role), IsManager: x.IsManager,
			Reason: optString(x.Reason), VotedAt: timestamp(x.VotedAt)}
	}
	if r.MinApprovals != nil {
		received := r.Counted
		v.ApprovalsReceived, v.MinApprovals = &received, r.MinApprovals
	}
	return v
}
