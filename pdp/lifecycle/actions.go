package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/approval"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// MaxActionIDLen bounds an action ID a caller names: nothing longer was
// ever issued, so it is not looked up.
const MaxActionIDLen = 64

// ErrActionNotFound: the tenant has no action with that ID (another
// tenant's action is as missing as one that never existed).
var ErrActionNotFound = errors.New("action not found")

// Action returns the tenant's action id.
func (s *Service) Action(ctx context.Context, tenantID, id string) (store.ActionRecord, error) {
	if id == "" || len(id) > MaxActionIDLen {
		return store.ActionRecord{}, ErrActionNotFound
	}
	rec, err := s.st.GetAction(ctx, tenantID, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.ActionRecord{}, fmt.Errorf("%w: %w", ErrActionNotFound, err)
	}
	return rec, err
}

// Actions returns a page of the tenant's actions, newest first, and the
// total that match q.
func (s *Service) Actions(ctx context.Context, tenantID string, q store.ActionQuery) ([]store.ActionRecord, int, error) {
	return s.st.ListActions(ctx, tenantID, q)
}

// StoredDecision is what is read back from a record's policy_result.
type StoredDecision struct {
	Status          pdp.Status      `json:"status"`
	ShadowStatus    pdp.Status      `json:"shadow_status"`
	Reason          *string         `json:"reason"`
	TriggeredPolicy *string         `json:"triggered_policy"`
	Severity        *string         `json:"severity"`
	Violations      []pdp.Violation `json:"violations"`
	Warnings        []pdp.Violation `json:"warnings"`
	Policies        []string        `json:"policies_evaluated"`
	Shadow          []pdp.ShadowHit `json:"shadow"`
}

// ReadDecision reads rec's policy_result; one that does not parse reads
// as empty (Submit wrote it, so only a store edited by hand has one).
func ReadDecision(rec store.ActionRecord) StoredDecision {
	var d StoredDecision
	if len(rec.Decision) > 0 {
		_ = json.Unmarshal(rec.Decision, &d)
	}
	return d
}

// Explanation is everything explain shows of one action.
type Explanation struct {
	Action   store.ActionRecord
	Decision StoredDecision
	// Review is the approval of an action that was held for review, nil
	// for one that never was.
	Review *Review
	// Trail is the action's entries of the audit chain (empty without a
	// chain).
	Trail   []store.AuditEntry
	Summary string
}

// Review is the approval of a held action as explain shows it.
type Review struct {
	// Mode is the mode that decided it (from its decision entry), else
	// the tenant's mode now.
	Mode  string
	Votes []store.ApprovalVote
	// Counted are the votes that approve and are eligible under the
	// settings in force now.
	Counted int
	// MinApprovals is set in enterprise mode, or when votes were cast.
	MinApprovals *int
	Destructive  bool
}

// Explain returns the tenant's action id with its review, audit trail and
// a summary.
func (s *Service) Explain(ctx context.Context, t store.Tenant, id string) (Explanation, error) {
	rec, err := s.Action(ctx, t.ID, id)
	if err != nil {
		return Explanation{}, err
	}
	x := Explanation{Action: rec, Decision: ReadDecision(rec), Trail: []store.AuditEntry{}}
	x.Summary = summary(rec, x.Decision)
	if s.gov == nil {
		return x, nil
	}
	if x.Trail, err = s.gov.AuditTrail(ctx, t.ID, rec.ID); err != nil {
		return Explanation{}, err
	}
	if x.Trail == nil {
		x.Trail = []store.AuditEntry{}
	}
	if !slices.Contains([]pdp.Status{pdp.StatusPendingReview, pdp.StatusApproved, pdp.StatusDenied}, rec.Status) {
		return x, nil
	}
	votes, err := s.gov.ApprovalVotes(ctx, t.ID, rec.ID)
	if err != nil {
		return Explanation{}, err
	}
	pol, err := approvalPolicy(t)
	if err != nil { // settings that no longer parse: show the defaults' counts
		pol = approval.Policy{Mode: t.ApprovalMode, Settings: approval.Settings{MinApprovals: approval.DefaultMinApprovals}}
	}
	// A decided approval shows the mode that decided it, from its entry.
	for _, e := range x.Trail {
		if e.Event == store.EventActionApproved || e.Event == store.EventActionDenied {
			var m struct {
				Mode string `json:"mode"`
			}
			if json.Unmarshal(e.Metadata, &m) == nil && m.Mode != "" {
				pol.Mode = m.Mode
			}
		}
	}
	r := &Review{Mode: pol.Mode, Votes: votes, Destructive: approval.Destructive(rec.Action)}
	for _, v := range votes {
		if v.Decision == pdp.StatusApproved && pol.Settings.Eligible(v.Role, v.IsManager) == nil {
			r.Counted++
		}
	}
	if pol.Mode == approval.Enterprise || len(votes) > 0 {
		need := pol.Settings.MinApprovalsOrDefault()
		r.MinApprovals = &need
	}
	x.Review = r
	return x, nil
}

// summary explains a decision in one or two sentences.
func summary(rec store.ActionRecord, d StoredDecision) string {
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
	case d.Reason != nil && *d.Reason == ReasonUnavailable && d.TriggeredPolicy == nil && rec.Status == pdp.StatusBlocked:
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
