package store

import (
	"context"
	"fmt"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// Approvals stores the human side of pending_review actions (docs/api.md
// §A8). An approval is a pending_review action; its approval_id is the
// action's ID, and deciding it sets the action's status to approved or
// denied exactly once. How a decision is reached (modes, eligibility,
// waiting times) is the API's; the store guarantees that a decision and its
// audit entry are written together, once, whatever races with them.
type Approvals interface {
	// ListApprovals returns one page of the tenant's approvals matching q,
	// ordered by the sequence number of each action's evaluation entry
	// (actions recorded without one, by InsertAction, come first in
	// insertion order), and how many match q in total.
	ListApprovals(ctx context.Context, tenantID string, q ApprovalQuery) ([]Approval, int, error)
	// ApprovalVotes returns the votes cast on the tenant's action, oldest
	// first. A missing action, or another tenant's, has none.
	ApprovalVotes(ctx context.Context, tenantID, actionID string) ([]ApprovalVote, error)
	// RecordApprovalVote records one approver's vote (enterprise mode) and
	// appends its entry; when the vote completes the decision (see
	// VoteRequest) it also decides the action, as DecideAction would, in
	// the same transaction. Errors: ErrNotFound (no such action, or it is
	// not an approval), an *AlreadyDecidedError, ErrAlreadyVoted (this
	// approver voted before; votes are immutable).
	RecordApprovalVote(ctx context.Context, req VoteRequest) (VoteResult, error)
	// DecideAction applies a final decision to a pending_review action and
	// appends its entry in the same transaction. Of concurrent callers
	// exactly one wins; the others get an *AlreadyDecidedError and change
	// nothing. ErrNotFound if the action does not exist for this tenant or
	// was never pending_review (allowed, blocked).
	DecideAction(ctx context.Context, req DecideRequest) (ActionRecord, AuditEntry, error)
}

// ErrAlreadyDecided: the approval was decided before. The error returned
// is an *AlreadyDecidedError, which wraps this; it wraps ErrConflict.
var ErrAlreadyDecided = fmt.Errorf("approval already decided: %w", ErrConflict)

// ErrAlreadyVoted: this approver has voted on this approval before. It
// wraps ErrConflict.
var ErrAlreadyVoted = fmt.Errorf("approver already voted: %w", ErrConflict)

// AlreadyDecidedError refuses a decision or vote on a decided approval and
// says how it was decided.
type AlreadyDecidedError struct {
	ActionID   string
	Status     pdp.Status // approved or denied
	ApproverID string
	DecidedAt  *time.Time
}

// Error returns "approval already decided: <id> was <status>".
func (e *AlreadyDecidedError) Error() string {
	return fmt.Sprintf("approval already decided: %s was %s", e.ActionID, e.Status)
}

// Unwrap returns ErrAlreadyDecided.
func (e *AlreadyDecidedError) Unwrap() error { return ErrAlreadyDecided }

// ApprovalQuery selects a page of approvals.
type ApprovalQuery struct {
	// Status is pending_review, approved or denied; "" selects all three.
	Status pdp.Status
	Limit  int // ≤ 0 for no limit; the API layer bounds it
	Offset int
}

// Validate checks the status filter.
func (q ApprovalQuery) Validate() error {
	if q.Status != "" && !isFinal(q.Status) && q.Status != pdp.StatusPendingReview {
		return invalid("status", "must be pending_review, approved or denied, got %q", q.Status)
	}
	return nil
}

// Approval is an action that was held for review, with the sequence number
// of its evaluation entry (0 when it was recorded without one).
type Approval struct {
	Action        ActionRecord
	AuditSequence int64
}

// ApprovalVote is one approver's vote on one approval.
type ApprovalVote struct {
	TenantID   string
	ActionID   string
	ApproverID string
	Role       string
	IsManager  bool
	Decision   pdp.Status // approved or denied
	Reason     string
	VotedAt    time.Time // zero: now
}

// VoteRequest records a vote and, when it completes the decision, decides.
type VoteRequest struct {
	Vote ApprovalVote
	// MinApprovals is how many counted approving votes approve the action;
	// the vote that reaches it decides, in its own transaction. A counted
	// deny decides at once (docs/api.md §A8: any eligible deny finalizes). ≥ 1.
	MinApprovals int
	// Counts reports whether a stored vote counts — the tenant's
	// allowed_roles and require_manager as they are now, since settings
	// may have changed since earlier votes; nil counts every vote. It runs
	// inside the store's write transaction: it must be quick and must not
	// call the store.
	Counts func(ApprovalVote) bool
	// Audit is the vote's entry: approval_vote by default, at VotedAt; the
	// store sets metadata action_id, approver_id, decision, role and
	// is_manager.
	Audit AuditEvent
	// DecisionAudit is the decision's entry when the vote decides, as in
	// DecideRequest.Audit.
	DecisionAudit AuditEvent
}

// Validate checks a vote request.
func (r VoteRequest) Validate() error {
	var es pdp.ValidationErrors
	v := r.Vote
	for _, f := range []struct{ name, v string }{{"tenant_id", v.TenantID}, {"action_id", v.ActionID}, {"approver_id", v.ApproverID}} {
		if f.v == "" {
			es = append(es, invalid(f.name, "required"))
		}
	}
	if !isFinal(v.Decision) {
		es = append(es, invalid("decision", "must be approved or denied, got %q", v.Decision))
	}
	if r.MinApprovals < 1 {
		es = append(es, invalid("min_approvals", "must be ≥ 1, got %d", r.MinApprovals))
	}
	es = append(es, r.Audit.problems(false)...)
	es = append(es, r.DecisionAudit.problems(false)...)
	return es.Err()
}

// VoteResult is the state of an approval after a vote.
type VoteResult struct {
	Votes     []ApprovalVote // every vote, oldest first
	Approvals int            // counted approving votes
	Decided   bool           // this vote decided the action
	Action    ActionRecord   // the action after the vote
	Entries   []AuditEntry   // the vote's entry, then the decision's if Decided
}

// DecideRequest is a final decision on an approval.
type DecideRequest struct {
	TenantID   string
	ActionID   string
	Status     pdp.Status // approved or denied
	ApproverID string
	Reason     string
	DecidedAt  time.Time // zero: now
	// Audit is the decision's entry: action_approved or action_denied by
	// default, at DecidedAt; the store sets metadata action_id, status and
	// approver_id.
	Audit AuditEvent
}

// Validate checks a decision.
func (r DecideRequest) Validate() error {
	var es pdp.ValidationErrors
	for _, f := range []struct{ name, v string }{{"tenant_id", r.TenantID}, {"action_id", r.ActionID}} {
		if f.v == "" {
			es = append(es, invalid(f.name, "required"))
		}
	}
	if !isFinal(r.Status) {
		es = append(es, invalid("status", "must be approved or denied, got %q", r.Status))
	}
	es = append(es, r.Audit.problems(false)...)
	return es.Err()
}

func isFinal(st pdp.Status) bool { return st == pdp.StatusApproved || st == pdp.StatusDenied }
