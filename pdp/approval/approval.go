// Package approval holds the rules of docs/api.md §A8's approval modes: whether
// one approver's decision on a held (pending_review) action may be applied
// now, and how. It decides nothing about storage — the store applies a
// decision exactly once — and reads the time only through the clock it is
// given, so every waiting rule is tested without sleeping.
//
// The modes, weakest first:
//   - solo: one approver decides; an approval not before SoloDelay has
//     passed since the action was submitted (a pause against reflexive
//     clicks, which the lifecycle holds rather than refuses), and
//     approving a destructive action (its name matches Destructive) needs
//     the typed confirmation "ROLLBACK". A deny applies at once.
//   - team: any approver other than the submitter decides at once; the
//     submitter approves only after SubmitterDelay, and denies at once.
//   - enterprise: each distinct eligible approver casts a vote; the action
//     is approved when MinApprovals eligible approvals are in, denied by
//     the first eligible deny. Settings.AllowedRoles and
//     Settings.RequireManager say who is eligible.
package approval

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// Approval modes (docs/api.md §A8), weakest first.
const (
	Solo       = "solo"
	Team       = "team"
	Enterprise = "enterprise"
)

// Modes lists the approval modes, weakest first.
var Modes = []string{Solo, Team, Enterprise}

// Waiting times of the modes (docs/api.md §A8).
const (
	// SoloDelay is how long after submission a solo-mode approval waits
	// (the lifecycle holds an earlier one until then).
	SoloDelay = 5 * time.Second
	// SubmitterDelay is how long after submission the submitter of an
	// action may not decide it in team mode.
	SubmitterDelay = 10 * time.Minute
)

// Confirmation is what an approver must type to approve a destructive
// action in solo mode. It is compared exactly (case-sensitively).
const Confirmation = "ROLLBACK"

// destructive is docs/api.md §A8's test of a destructive action name, matched
// anywhere in the name and in any case.
var destructive = regexp.MustCompile(`(?i)(delete|drop|destroy|remove|truncate|rollback|revoke)`)

// Destructive reports whether the action name marks a destructive action.
func Destructive(action string) bool { return destructive.MatchString(action) }

// Decision is what an approver decides.
type Decision string

// Decisions.
const (
	Approve Decision = "approve"
	Deny    Decision = "deny"
)

// ParseDecision normalizes the spellings docs/api.md §A8 accepts, in any case
// and with surrounding spaces: approve/approved, deny/denied/reject/rejected.
func ParseDecision(s string) (Decision, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "approve", "approved":
		return Approve, true
	case "deny", "denied", "reject", "rejected":
		return Deny, true
	}
	return "", false
}

// Status is the action status the decision leads to.
func (d Decision) Status() pdp.Status {
	if d == Approve {
		return pdp.StatusApproved
	}
	return pdp.StatusDenied
}

// Errors of Check; classify with errors.Is and errors.As.
var (
	// ErrConfirmationRequired: approving this destructive action in solo
	// mode needs Confirmation.
	ErrConfirmationRequired = errors.New("confirmation required")
	// ErrNotEligible: the approver may not decide (enterprise mode's
	// allowed_roles or require_manager). The error is a *NotEligibleError.
	ErrNotEligible = errors.New("approver not eligible")
	// ErrTooEarly: the decision is refused for now. The error is a
	// *TooEarlyError saying until when.
	ErrTooEarly = errors.New("decision too early")
	// ErrUnknownMode: the policy names no known mode (a bug of the caller:
	// the registry only stores known modes).
	ErrUnknownMode = errors.New("unknown approval mode")
)

// TooEarlyError refuses a decision until NotBefore.
type TooEarlyError struct {
	Mode      string
	NotBefore time.Time
	// RetryAfter is NotBefore minus the time of the check (> 0).
	RetryAfter time.Duration
	// Submitter is true when the wait applies because the approver is the
	// submitter (team mode).
	Submitter bool
}

// Error returns a sentence for the API's message.
func (e *TooEarlyError) Error() string {
	if e.Submitter {
		return fmt.Sprintf("In team mode the submitter of an action may approve it only %s after submission; another approver may approve now. Retry in %d s",
			SubmitterDelay, e.RetryAfterSeconds())
	}
	return fmt.Sprintf("In solo mode an approval is accepted %s after submission. Retry in %d s", SoloDelay, e.RetryAfterSeconds())
}

// Unwrap returns ErrTooEarly.
func (e *TooEarlyError) Unwrap() error { return ErrTooEarly }

// RetryAfterSeconds is RetryAfter in whole seconds, rounded up, at least 1:
// a client that waits that long is no longer too early.
func (e *TooEarlyError) RetryAfterSeconds() int {
	return max(1, int(math.Ceil(e.RetryAfter.Seconds())))
}

// NotEligibleError refuses an approver that enterprise mode does not count.
type NotEligibleError struct{ Reason string }

// Error returns a sentence for the API's message.
func (e *NotEligibleError) Error() string { return e.Reason }

// Unwrap returns ErrNotEligible.
func (e *NotEligibleError) Unwrap() error { return ErrNotEligible }

// Policy is a tenant's approval mode and settings.
type Policy struct {
	Mode     string
	Settings Settings
}

// Held is the approval being decided: a pending_review action.
type Held struct {
	ActionID string
	// Action is the action's name (what Destructive looks at).
	Action string
	// AgentID is the agent that submitted it ("" when none was named).
	AgentID string
	// SubmitterKey is the ID of the API key that submitted it ("" when
	// unknown).
	SubmitterKey string
	// Submitter is the identity that submitted it: the submitting key's
	// owner ("" when unknown, for actions recorded before identities).
	Submitter string
	// SubmittedAt is when it was evaluated and recorded.
	SubmittedAt time.Time
}

// IsSubmitter reports whether the identity approverID is the submitter of
// h: the identity that submitted it, the key it was submitted with (the
// identity of an unnamed key is its ID), or its agent.
func (h Held) IsSubmitter(approverID string) bool {
	return approverID != "" && (approverID == h.Submitter || approverID == h.AgentID || approverID == h.SubmitterKey)
}

// Request is one approver's decision.
type Request struct {
	Decision     Decision
	ApproverID   string
	Role         string
	IsManager    bool
	Confirmation string
}

// Verdict says how to apply an admitted request.
type Verdict struct {
	// Vote is set in enterprise mode: the request is one vote, recorded
	// with MinApprovals and Counts, and decides only when it completes the
	// count (or is a deny). Otherwise the request decides the action.
	Vote bool
	// MinApprovals is how many counted approvals approve the action.
	MinApprovals int
	// Counts reports whether a vote with this role and manager flag counts
	// under the settings in force now (earlier votes are recounted).
	Counts func(role string, isManager bool) bool
}

// Rules applies the modes with a clock.
type Rules struct {
	now func() time.Time
}

// New returns the rules reading the time from now (time.Now when nil).
func New(now func() time.Time) *Rules {
	if now == nil {
		now = time.Now
	}
	return &Rules{now: now}
}

// Check decides whether req may be applied to h now under p, and how.
// Problems are checked from the permanent to the temporary, so a client
// that fixes what it is told and then waits what it is told succeeds:
// eligibility (*NotEligibleError), then the confirmation
// (ErrConfirmationRequired), then the waiting times (*TooEarlyError).
func (r *Rules) Check(p Policy, h Held, req Request) (Verdict, error) {
	if req.Decision != Approve && req.Decision != Deny {
		return Verdict{}, fmt.Errorf("decision %q: must be approve or deny", req.Decision)
	}
	now := r.now()
	switch p.Mode {
	case Solo:
		if req.Decision == Approve && Destructive(h.Action) && req.Confirmation != Confirmation {
			return Verdict{}, fmt.Errorf("%w: action '%s' is destructive; approving it in solo mode needs confirmation %q",
				ErrConfirmationRequired, h.Action, Confirmation)
		}
		if req.Decision == Approve {
			if err := wait(p.Mode, h.SubmittedAt.Add(SoloDelay), now, false); err != nil {
				return Verdict{}, err
			}
		}
		return Verdict{}, nil
	case Team:
		if req.Decision == Approve && h.IsSubmitter(req.ApproverID) {
			if err := wait(p.Mode, h.SubmittedAt.Add(SubmitterDelay), now, true); err != nil {
				return Verdict{}, err
			}
		}
		return Verdict{}, nil
	case Enterprise:
		s := p.Settings.withDefaults()
		if err := s.Eligible(req.Role, req.IsManager); err != nil {
			return Verdict{}, err
		}
		return Verdict{
			Vote:         true,
			MinApprovals: s.MinApprovals,
			Counts:       func(role string, isManager bool) bool { return s.Eligible(role, isManager) == nil },
		}, nil
	}
	return Verdict{}, fmt.Errorf("%w: %q", ErrUnknownMode, p.Mode)
}

func wait(mode string, notBefore, now time.Time, submitter bool) error {
	if !now.Before(notBefore) {
		return nil
	}
	return &TooEarlyError{Mode: mode, NotBefore: notBefore, RetryAfter: notBefore.Sub(now), Submitter: submitter}
}

// Eligible returns nil when an approver with this role and manager flag is
// counted under s, else a *NotEligibleError saying why. Roles compare
// case-insensitively; with no allowed_roles every role (and none) counts.
func (s Settings) Eligible(role string, isManager bool) error {
	if s.RequireManager && !isManager {
		return &NotEligibleError{Reason: "This tenant's approvals count only managers' decisions (require_manager), and this API key is not a manager's"}
	}
	if len(s.AllowedRoles) > 0 && !slices.ContainsFunc(s.AllowedRoles, func(r string) bool { return strings.EqualFold(r, strings.TrimSpace(role)) }) {
		got := "a key without a role"
		if role != "" {
			got = fmt.Sprintf("this API key's role '%s'", shorten(role))
		}
		return &NotEligibleError{Reason: fmt.Sprintf("This tenant's approvals count only the roles %s; got %s", strings.Join(s.AllowedRoles, ", "), got)}
	}
	return nil
}

// shorten bounds user text echoed in a message.
func shorten(s string) string {
	const limit = 64
	if r := []rune(s); len(r) > limit {
		return string(r[:limit]) + "…"
	}
	return s
}
