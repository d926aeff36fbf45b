package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/approval"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// The approval workflow (docs/api.md §A8). A pending_review action is an
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

// Errors of Decide; classify with errors.Is and errors.As. Besides these,
// Decide returns the store's *store.AlreadyDecidedError and
// store.ErrAlreadyVoted, and pdp/approval's *approval.TooEarlyError and
// *approval.NotEligibleError.
var (
	// ErrApprovalNotFound: no action with that ID is, or was, held for
	// review.
	ErrApprovalNotFound = errors.New("approval not found")
)

// InvalidDecisionError: the decision is missing (Raw nil) or is not one of
// the accepted spellings.
type InvalidDecisionError struct{ Raw *string }

func (e *InvalidDecisionError) Error() string {
	if e.Raw == nil {
		return "decision is required: approve or deny"
	}
	return fmt.Sprintf("decision '%s' is not one of approve, approved, deny, denied, reject, rejected", shorten(*e.Raw, 64))
}

// ConfirmationError: approving the destructive Action in solo mode needs
// approval.Confirmation. It unwraps to approval.ErrConfirmationRequired.
type ConfirmationError struct {
	Action string
	Cause  error
}

func (e *ConfirmationError) Error() string {
	return fmt.Sprintf("Action '%s' is destructive: approving it in solo mode needs confirmation %q", e.Action, approval.Confirmation)
}

// Unwrap returns the cause.
func (e *ConfirmationError) Unwrap() error { return e.Cause }

// DecisionRequest is one approver's decision on an approval, as received.
type DecisionRequest struct {
	TenantID   string
	ApprovalID string
	// Decision is the decision as sent (nil when it was left out, which
	// means approve, as Novyx's query-string form does).
	Decision *string
	Reason   string
	// ApproverID is a display label only (the Novyx MCP server always
	// sends one): kept beside the deciding key's identity, never counted
	// as an approver of its own.
	ApproverID string
	// ApproverRole and IsManager come from the key; sent, they must agree
	// with it (a claim of more than the key holds is refused).
	ApproverRole string
	Confirmation string
	IsManager    bool
	// Confidential keeps the reason on the action and out of the
	// permanent chain.
	Confidential bool
	// KeyID names the API key deciding.
	KeyID string
	// Decider is the deciding key: its owner is the approver, its role and
	// manager flag count in enterprise mode. Zero: an unnamed owner key
	// named KeyID (callers inside the process).
	Decider store.APIKey
	// Problems are what decoding found in the other fields.
	Problems pdp.ValidationErrors
}

// DecisionResult is the approval after a decision or vote.
type DecisionResult struct {
	ApprovalID string
	Decision   approval.Decision
	Reason     string
	// ApproverID is the deciding identity (the key's owner); Label the
	// approver_id the request sent, if any.
	ApproverID string
	Label      string
	Role       string
	Status     pdp.Status
	DecidedAt  *time.Time
	// Vote is set in enterprise mode, where the request was one vote:
	// ApprovalsReceived counted approvals so far out of MinApprovals.
	Vote              bool
	ApprovalsReceived int
	MinApprovals      int
	// Repeated is set when the request repeated this approver's vote on
	// a pending approval: nothing was written.
	Repeated bool
}

// validate checks the request from the outside in: the decision
// (*InvalidDecisionError), then every other field at once.
func (req *DecisionRequest) validate() (approval.Decision, error) {
	d := approval.Approve // left out: approve
	if req.Decision != nil {
		var ok bool
		if d, ok = approval.ParseDecision(*req.Decision); !ok {
			return "", &InvalidDecisionError{Raw: req.Decision}
		}
	}
	es := req.Problems
	checkText(&es, "reason", req.Reason, maxReasonLen, true)
	req.ApproverID = strings.TrimSpace(req.ApproverID)
	checkText(&es, "approver_id", req.ApproverID, maxApproverIDLen, false)
	checkText(&es, "approver_role", req.ApproverRole, maxApproverRoleLen, false)
	checkText(&es, "confirmation", req.Confirmation, maxConfirmationLen, false)
	return d, es.Err()
}

// MaxSoloHold bounds how long Decide holds an early solo-mode approval:
// the solo delay itself, plus a margin for a slow clock check.
const MaxSoloHold = approval.SoloDelay + time.Second

// Decide applies one approver's decision to a held action, once the
// tenant's approval mode (read as stored now, so a mode changed a moment
// ago applies) admits it: the decision in solo and team mode, one vote in
// enterprise mode. Checks run from the request to the approval: the
// decision, the other fields, the approval itself, the decider's identity
// (a key bound to the action's agent never decides it; a sent role or
// manager flag must agree with the key), then the mode's rules.
//
// The approver is the deciding key's owner (store.APIKey.Identity), never
// what the body says. In solo mode an approval that arrives before the
// delay is held here until it has passed and then applied (bounded by
// MaxSoloHold; a caller that gives up first applies nothing). A vote that
// repeats this approver's vote on a pending approval answers its current
// state without writing. The write is detached from ctx: an admitted
// decision is recorded even if the caller hangs up.
func (s *Service) Decide(ctx context.Context, req DecisionRequest) (DecisionResult, error) {
	if s.gov == nil {
		return DecisionResult{}, ErrGovernanceUnavailable
	}
	decision, err := req.validate()
	if err != nil {
		return DecisionResult{}, err
	}
	for held := false; ; held = true {
		res, wait, err := s.decideOnce(ctx, req, decision)
		if wait <= 0 || held {
			return res, err
		}
		if err := s.sleep(ctx, min(wait, MaxSoloHold)); err != nil {
			return DecisionResult{}, err // the caller gave up: nothing applied
		}
	}
}

// decideOnce is one attempt of Decide; wait > 0 when it is a solo-mode
// approval to hold for that long and try again.
func (s *Service) decideOnce(ctx context.Context, req DecisionRequest, decision approval.Decision) (DecisionResult, time.Duration, error) {
	id := req.ApprovalID
	rec, err := s.held(ctx, req.TenantID, id)
	if err != nil {
		return DecisionResult{}, 0, err
	}
	fresh, err := s.reg.Tenant(ctx, req.TenantID)
	if err != nil {
		return DecisionResult{}, 0, err
	}
	pol, err := approvalPolicy(fresh)
	if err != nil {
		return DecisionResult{}, 0, err
	}
	decider := deciderOf(req)
	approver := decider.Identity()
	role := string(decider.Role)
	if err := consistent(req, decider, rec); err != nil {
		return DecisionResult{}, 0, err
	}
	h := approval.Held{ActionID: rec.ID, Action: rec.Action, AgentID: rec.AgentID, SubmittedAt: rec.CreatedAt}
	if pol.Mode == approval.Team {
		if h.SubmitterKey, h.Submitter, err = s.submitter(ctx, req.TenantID, rec.ID); err != nil {
			return DecisionResult{}, 0, err
		}
	}
	verdict, err := s.rules.Check(pol, h, approval.Request{
		Decision: decision, ApproverID: approver, Role: role, IsManager: decider.IsManager, Confirmation: req.Confirmation,
	})
	var tooEarly *approval.TooEarlyError
	if errors.As(err, &tooEarly) && pol.Mode == approval.Solo && !tooEarly.Submitter {
		return DecisionResult{}, tooEarly.RetryAfter, err
	}
	if errors.Is(err, approval.ErrConfirmationRequired) {
		return DecisionResult{}, 0, &ConfirmationError{Action: rec.Action, Cause: err}
	}
	if err != nil {
		return DecisionResult{}, 0, err
	}

	meta := map[string]any{"decision": decision, "mode": pol.Mode, "key_id": optAny(decider.ID),
		"approver_label": optAny(req.ApproverID), "approver_role": role, "is_manager": decider.IsManager}
	if req.Confidential {
		meta["confidential"] = true // the reason stays on the action, out of the permanent chain
	} else {
		meta["reason"] = req.Reason
	}
	metaJSON, err := encodeJSON(meta)
	if err != nil {
		return DecisionResult{}, 0, err
	}
	now := s.now()
	out := DecisionResult{ApprovalID: id, Decision: decision, Reason: req.Reason, ApproverID: approver, Label: req.ApproverID, Role: role}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	if !verdict.Vote {
		a, _, err := s.gov.DecideAction(wctx, store.DecideRequest{
			TenantID: req.TenantID, ActionID: id, Status: decision.Status(), ApproverID: approver, Reason: req.Reason,
			DecidedAt: now, Audit: store.AuditEvent{Metadata: metaJSON},
		})
		if err != nil {
			return DecisionResult{}, 0, decideError(err)
		}
		out.Status, out.DecidedAt = a.Status, a.DecidedAt
		return out, 0, nil
	}
	res, err := s.gov.RecordApprovalVote(wctx, store.VoteRequest{
		Vote: store.ApprovalVote{
			TenantID: req.TenantID, ActionID: id, ApproverID: approver, Role: role, IsManager: decider.IsManager,
			Decision: decision.Status(), Reason: req.Reason, VotedAt: now,
		},
		MinApprovals:  verdict.MinApprovals,
		Counts:        func(v store.ApprovalVote) bool { return verdict.Counts(v.Role, v.IsManager) },
		Audit:         store.AuditEvent{Metadata: metaJSON},
		DecisionAudit: store.AuditEvent{Metadata: metaJSON},
	})
	if errors.Is(err, store.ErrAlreadyVoted) {
		return s.repeatedVote(ctx, req.TenantID, id, approver, decision, verdict, out, err)
	}
	if err != nil {
		return DecisionResult{}, 0, decideError(err)
	}
	out.Status, out.DecidedAt = res.Action.Status, res.Action.DecidedAt
	out.Vote, out.ApprovalsReceived, out.MinApprovals = true, res.Approvals, verdict.MinApprovals
	return out, 0, nil
}

// consistent refuses a decider the rules exclude whatever the mode: a key
// bound to the action's agent, and a request claiming a role or manager
// flag its key does not carry.
func consistent(req DecisionRequest, decider store.APIKey, rec store.ActionRecord) error {
	if decider.AgentID != "" && decider.AgentID == rec.AgentID {
		return &approval.NotEligibleError{Reason: fmt.Sprintf("This API key is bound to agent '%s', and a key bound to an agent never decides that agent's actions", decider.AgentID)}
	}
	if r := strings.TrimSpace(req.ApproverRole); r != "" && !strings.EqualFold(r, string(decider.Role)) {
		return &approval.NotEligibleError{Reason: fmt.Sprintf("approver_role comes from the API key, whose role is '%s', not '%s'", decider.Role, shorten(r, 64))}
	}
	if req.IsManager && !decider.IsManager {
		return &approval.NotEligibleError{Reason: "is_manager comes from the API key, and this key is not a manager's"}
	}
	return nil
}

// repeatedVote answers a vote the approver already cast: the same vote on
// a pending approval is its current state (200, nothing written); a
// changed one stays refused (votes are immutable).
func (s *Service) repeatedVote(ctx context.Context, tenantID, id, approver string, decision approval.Decision, verdict approval.Verdict, out DecisionResult, cause error) (DecisionResult, time.Duration, error) {
	votes, err := s.gov.ApprovalVotes(ctx, tenantID, id)
	if err != nil {
		return DecisionResult{}, 0, err
	}
	i := slices.IndexFunc(votes, func(v store.ApprovalVote) bool { return v.ApproverID == approver })
	if i < 0 || votes[i].Decision != decision.Status() {
		return DecisionResult{}, 0, cause
	}
	rec, err := s.held(ctx, tenantID, id) // decided since: already decided
	if err != nil {
		return DecisionResult{}, 0, err
	}
	counted := 0
	for _, v := range votes {
		if v.Decision == pdp.StatusApproved && verdict.Counts(v.Role, v.IsManager) {
			counted++
		}
	}
	out.Reason = votes[i].Reason
	out.Status, out.DecidedAt = rec.Status, rec.DecidedAt
	out.Vote, out.ApprovalsReceived, out.MinApprovals, out.Repeated = true, counted, verdict.MinApprovals, true
	return out, 0, nil
}

// held loads the approval id: a pending action, or an already decided one
// (*store.AlreadyDecidedError). An action that was never held is not an
// approval.
func (s *Service) held(ctx context.Context, tenantID, id string) (store.ActionRecord, error) {
	if id == "" || len(id) > MaxActionIDLen {
		return store.ActionRecord{}, ErrApprovalNotFound
	}
	rec, err := s.gov.GetAction(ctx, tenantID, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.ActionRecord{}, fmt.Errorf("%w: %w", ErrApprovalNotFound, err)
	}
	if err != nil {
		return store.ActionRecord{}, err
	}
	switch rec.Status {
	case pdp.StatusPendingReview:
		return rec, nil
	case pdp.StatusApproved, pdp.StatusDenied:
		return store.ActionRecord{}, &store.AlreadyDecidedError{ActionID: id, Status: rec.Status, ApproverID: rec.ApproverID, DecidedAt: rec.DecidedAt}
	}
	return store.ActionRecord{}, ErrApprovalNotFound // allowed or blocked: never held for review
}

// decideError classifies the store's refusals of a decision or vote.
func decideError(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %w", ErrApprovalNotFound, err)
	}
	return err
}

// Approvals returns a page of the tenant's approvals and the total that
// match q.
func (s *Service) Approvals(ctx context.Context, tenantID string, q store.ApprovalQuery) ([]store.Approval, int, error) {
	if s.gov == nil {
		return nil, 0, ErrGovernanceUnavailable
	}
	return s.gov.ListApprovals(ctx, tenantID, q)
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
		return approval.Policy{}, fmt.Errorf("tenant %q: stored approval settings: %v", t.ID, err) // not the client's fault
	}
	return approval.Policy{Mode: mode, Settings: settings}, nil
}

// submitter is the ID of the key that submitted the action and the
// identity it submitted as, from its evaluation entry ("" when unknown).
func (s *Service) submitter(ctx context.Context, tenantID, actionID string) (keyID, identity string, err error) {
	trail, err := s.gov.AuditTrail(ctx, tenantID, actionID)
	if err != nil {
		return "", "", err
	}
	for _, e := range trail {
		if e.Event != store.EventActionPendingReview {
			continue
		}
		var m struct {
			KeyID       string `json:"key_id"`
			SubmittedBy string `json:"submitted_by"`
		}
		_ = json.Unmarshal(e.Metadata, &m) // written by record; anything else reads as unknown
		return m.KeyID, m.SubmittedBy, nil
	}
	return "", "", nil
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

func optAny(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// shorten bounds user text echoed in a message.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
