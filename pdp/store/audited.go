package store

import (
	"context"
	"fmt"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// BatchTx is what the shared audited writes (AuditedWriter) need of a
// driver's batch: its own SQL, run in the batch's transaction. A driver
// implements it on its batch type; everything else about an audited write
// — defaults, canonical metadata, numbering and hashing, the approval
// workflow's steps and tally — is written once, here.
type BatchTx interface {
	// Chains is the batch's chain bookkeeping.
	Chains() *Chains
	// LoadHead loads the tenant's head into Chains unless it is there
	// (store.ResolveHead judges what was read).
	LoadHead(tenantID string) error
	// WriteEntries stores one tenant's entries, numbered by Chains;
	// actionIDs[i] is entry i's metadata.action_id or "".
	WriteEntries(tenantID string, es []AuditEntry, actionIDs []string) error
	// InsertEvaluated stores a prepared action and its evaluation entry e
	// (numbered by Chains; e.SequenceNumber is the action's audit_seq).
	// The entry is the one whose metadata.action_id is a.ID that a's
	// audit_seq points to, so a driver may find it that way instead of by
	// action ID (sqlite's audit_log_action leaves it out).
	InsertEvaluated(a ActionRecord, e AuditEntry) error
	// Decide sets a final status on the tenant's pending_review action with
	// one conditional update, and returns the action as decided; if it is
	// not pending_review, it writes nothing and returns why
	// (NotPendingError's classes).
	Decide(tenantID, actionID string, st pdp.Status, approver, reason string, at time.Time) (ActionRecord, error)
	// CheckPending returns nil if the tenant's action is pending_review,
	// else why not, as Decide.
	CheckPending(tenantID, actionID string) error
	// InsertVote stores v; ErrAlreadyVoted if its approver voted before.
	InsertVote(v ApprovalVote) error
	// Votes returns the votes on the tenant's action, oldest first.
	Votes(tenantID, actionID string) ([]ApprovalVote, error)
	// GetAction reads the tenant's action.
	GetAction(tenantID, actionID string) (ActionRecord, error)
	// PolicyTx is the batch's transaction for a policy write.
	PolicyTx() (PolicyTx, error)
}

// NotPendingError explains why an action found in status st (with its
// approver and decision time) is not pending_review: decided
// (*AlreadyDecidedError), or never held (ErrNotFound). Drivers call it
// from Decide and CheckPending.
func NotPendingError(actionID string, st pdp.Status, approver string, decidedAt *time.Time) error {
	switch {
	case isFinal(st):
		return &AlreadyDecidedError{ActionID: actionID, Status: st, ApproverID: approver, DecidedAt: decidedAt}
	case st == pdp.StatusPendingReview:
		return fmt.Errorf("action %q is pending_review", actionID) // not reached: the caller found it was not
	}
	return fmt.Errorf("action is %s, not awaiting approval: %w", st, ErrNotFound)
}

// AuditedWriter implements the audited writes (AuditLog's appends,
// AuditedWrites, DecideAction, RecordApprovalVote) on a driver's group
// committer. Drivers embed it.
type AuditedWriter[B BatchTx] struct {
	GC  *Committer[B]
	Now func() time.Time
	// Duplicate and MissingParent classify the driver's errors of a
	// unique and a foreign-key violation.
	Duplicate, MissingParent func(error) bool
}

// appendEvent appends one canonical event to the tenant's chain in b.
func (w *AuditedWriter[B]) appendEvent(b B, tenantID string, ev AuditEvent, actionID string) (AuditEntry, error) {
	if err := b.LoadHead(tenantID); err != nil {
		return AuditEntry{}, err
	}
	es, err := b.Chains().Append(tenantID, ev)
	if err != nil {
		return AuditEntry{}, err
	}
	if err := b.WriteEntries(tenantID, es, []string{actionID}); err != nil {
		return AuditEntry{}, err
	}
	return es[0], nil
}

// AppendAudit appends events to the tenant's chain in one group-committed
// transaction. Canonical forms are computed here, in the caller's
// goroutine, so the committer only numbers, hashes and writes.
func (w *AuditedWriter[B]) AppendAudit(ctx context.Context, tenantID string, events ...AuditEvent) ([]AuditEntry, error) {
	evs, err := PrepareAppend(tenantID, events)
	if err != nil {
		return nil, fmt.Errorf("append audit: %w", err)
	}
	if len(evs) == 0 {
		return []AuditEntry{}, nil
	}
	if !Storable(tenantID) {
		return nil, fmt.Errorf("append audit: tenant %q: %w", tenantID, ErrNotFound)
	}
	aids := make([]string, len(evs))
	for i, ev := range evs {
		aids[i] = MetadataActionID(ev.Metadata)
	}
	var out []AuditEntry
	err = w.GC.Do(ctx, tenantID, func(b B) error {
		if err := b.LoadHead(tenantID); err != nil {
			return err
		}
		es, err := b.Chains().Append(tenantID, evs...)
		if err != nil {
			return err
		}
		out = es
		return b.WriteEntries(tenantID, es, aids)
	})
	if err != nil {
		if w.MissingParent(err) {
			return nil, fmt.Errorf("append audit: tenant %q: %w", tenantID, ErrNotFound)
		}
		return nil, fmt.Errorf("append audit of %q: %w", tenantID, err)
	}
	return out, nil
}

// FlushAudit waits until every audited write queued before it is answered.
func (w *AuditedWriter[B]) FlushAudit(ctx context.Context) error {
	if err := w.GC.Flush(ctx); err != nil {
		return fmt.Errorf("flush audit: %w", err)
	}
	return nil
}

// InsertActionAudited inserts a and appends its evaluation entry in one
// group-committed transaction.
func (w *AuditedWriter[B]) InsertActionAudited(ctx context.Context, a ActionRecord, ev AuditEvent) (ActionRecord, AuditEntry, error) {
	a, err := PrepareAction(a, w.Now)
	if err != nil {
		return ActionRecord{}, AuditEntry{}, fmt.Errorf("insert action: %w", err)
	}
	if ev, err = ActionEvent(a, ev); err != nil {
		return ActionRecord{}, AuditEntry{}, fmt.Errorf("insert action %q: audit: %w", a.ID, err)
	}
	var entry AuditEntry
	err = w.GC.Do(ctx, a.TenantID, func(b B) error {
		if err := b.LoadHead(a.TenantID); err != nil {
			return err
		}
		es, err := b.Chains().Append(a.TenantID, ev)
		if err != nil {
			return err
		}
		entry = es[0]
		return b.InsertEvaluated(a, entry)
	})
	if err != nil {
		return ActionRecord{}, AuditEntry{}, w.InsertActionError(a, err)
	}
	return a, entry, nil
}

// InsertActionError classifies a failed insert of a.
func (w *AuditedWriter[B]) InsertActionError(a ActionRecord, err error) error {
	switch {
	case w.Duplicate(err):
		return fmt.Errorf("insert action %q: %w", a.ID, ErrDuplicate)
	case w.MissingParent(err):
		return fmt.Errorf("insert action %q: tenant %q: %w", a.ID, a.TenantID, ErrNotFound)
	}
	return fmt.Errorf("insert action %q: %w", a.ID, err)
}

// CommitStats returns the group committer's counters; Ops/Batches is the
// mean batch size.
func (w *AuditedWriter[B]) CommitStats() CommitStats { return w.GC.Stats() }

// PutPolicyAudited is PutPolicy plus its entry, in one group-committed
// transaction (see AuditedWrites).
func (w *AuditedWriter[B]) PutPolicyAudited(ctx context.Context, req PutPolicyRequest, ev AuditEvent) (PolicyWrite, AuditEntry, error) {
	p, key, err := PreparePut(req)
	if err != nil {
		return PolicyWrite{}, AuditEntry{}, err
	}
	pw, e, err := w.policyAudited(ctx, req.TenantID, ev, EventPolicyUpdated, func(tx PolicyTx, now time.Time) (PolicyWrite, string, error) {
		if req.Actor == "" {
			req.Actor = metadataString(ev.Metadata, "actor")
		}
		pw, err := PutPolicyIn(tx, req, p, now)
		switch {
		case pw.Created:
			return pw, EventPolicyCreated, err
		case pw.Version.Action == VersionRolledBack:
			return pw, EventPolicyRolledBack, err
		}
		return pw, EventPolicyUpdated, err
	})
	if err != nil {
		return PolicyWrite{}, AuditEntry{}, fmt.Errorf("put policy %s: %w", key, err)
	}
	return pw, e, nil
}

// DisablePolicyAudited is DisablePolicy plus its entry, in one
// group-committed transaction.
func (w *AuditedWriter[B]) DisablePolicyAudited(ctx context.Context, key PolicyKey, ev AuditEvent) (PolicyWrite, AuditEntry, error) {
	pw, e, err := w.policyAudited(ctx, key.TenantID, ev, EventPolicyDisabled, func(tx PolicyTx, now time.Time) (PolicyWrite, string, error) {
		if !AllStorable(key.TenantID, key.AgentID, key.Name) { // it could not have been written
			return PolicyWrite{}, "", ErrNotFound
		}
		pw, err := DisablePolicyIn(tx, key, metadataString(ev.Metadata, "actor"), now)
		return pw, EventPolicyDisabled, err
	})
	if err != nil {
		return PolicyWrite{}, AuditEntry{}, fmt.Errorf("disable policy %s: %w", key, err)
	}
	return pw, e, nil
}

// policyAudited runs a policy write in a batch with its entry: write
// returns what it wrote and its event; event is the default checked
// before queueing. The write refuses before writing (not found, over the
// limit), which appends nothing.
func (w *AuditedWriter[B]) policyAudited(ctx context.Context, tenantID string, ev AuditEvent, event string, write func(tx PolicyTx, now time.Time) (PolicyWrite, string, error)) (PolicyWrite, AuditEntry, error) {
	if _, err := CanonicalEvent(ev, event, nil); err != nil { // refuse bad metadata before queueing
		return PolicyWrite{}, AuditEntry{}, fmt.Errorf("audit: %w", err)
	}
	var (
		out   PolicyWrite
		entry AuditEntry
	)
	err := w.GC.Do(ctx, tenantID, func(b B) error {
		tx, err := b.PolicyTx()
		if err != nil {
			return err
		}
		pw, event, err := write(tx, stampNow(time.Time{}, w.Now))
		if err != nil {
			return err
		}
		pev, err := PolicyEvent(pw, ev, event)
		if err != nil {
			return err
		}
		if entry, err = w.appendEvent(b, tenantID, pev, MetadataActionID(pev.Metadata)); err != nil {
			return err
		}
		out = pw
		return nil
	})
	return out, entry, err
}

// decide applies a final decision in b and appends its entry.
func (w *AuditedWriter[B]) decide(b B, tenantID, actionID string, st pdp.Status, approver, reason string, at time.Time, ev AuditEvent) (ActionRecord, AuditEntry, error) {
	a, err := b.Decide(tenantID, actionID, st, approver, reason, at)
	if err != nil {
		return ActionRecord{}, AuditEntry{}, err
	}
	if ev, err = DecisionEvent(a, ev); err != nil {
		return ActionRecord{}, AuditEntry{}, err
	}
	e, err := w.appendEvent(b, tenantID, ev, actionID)
	if err != nil {
		return ActionRecord{}, AuditEntry{}, err
	}
	return a, e, nil
}

// stampNow is t, or now when t is zero, in UTC at TimePrecision.
func stampNow(t time.Time, now func() time.Time) time.Time {
	if t.IsZero() {
		t = now()
	}
	return t.UTC().Truncate(TimePrecision)
}

// DecideAction decides a pending_review action once and appends its entry.
// Deciders serialize on the tenant's chain (in one process, the
// committer; across replicas, the head's lock), and the conditional update
// lets exactly one of them through.
func (w *AuditedWriter[B]) DecideAction(ctx context.Context, req DecideRequest) (ActionRecord, AuditEntry, error) {
	if err := req.Validate(); err != nil {
		return ActionRecord{}, AuditEntry{}, fmt.Errorf("decide action: %w", err)
	}
	if _, err := CanonicalEvent(req.Audit, EventForStatus(req.Status), nil); err != nil {
		return ActionRecord{}, AuditEntry{}, fmt.Errorf("decide action %q: audit: %w", req.ActionID, err)
	}
	if err := CheckText(Text{"approver_id", req.ApproverID}, Text{"reason", req.Reason}); err != nil {
		return ActionRecord{}, AuditEntry{}, fmt.Errorf("decide action %q: %w", req.ActionID, err)
	}
	if !AllStorable(req.TenantID, req.ActionID) {
		return ActionRecord{}, AuditEntry{}, fmt.Errorf("decide action %q: %w", req.ActionID, ErrNotFound)
	}
	at := stampNow(req.DecidedAt, w.Now)
	var (
		a     ActionRecord
		entry AuditEntry
	)
	err := w.GC.Do(ctx, req.TenantID, func(b B) error {
		var err error
		a, entry, err = w.decide(b, req.TenantID, req.ActionID, req.Status, req.ApproverID, req.Reason, at, req.Audit)
		return err
	})
	if err != nil {
		return ActionRecord{}, AuditEntry{}, fmt.Errorf("decide action %q: %w", req.ActionID, err)
	}
	return a, entry, nil
}

// RecordApprovalVote records a vote and decides when it completes the
// decision (Tally), in one group-committed transaction. Votes on one
// approval serialize on the tenant's chain, so each counts the votes
// before it.
func (w *AuditedWriter[B]) RecordApprovalVote(ctx context.Context, req VoteRequest) (VoteResult, error) {
	if err := req.Validate(); err != nil {
		return VoteResult{}, fmt.Errorf("record vote: %w", err)
	}
	v := req.Vote
	if err := CheckText(Text{"approver_id", v.ApproverID}, Text{"role", v.Role}, Text{"reason", v.Reason}); err != nil {
		return VoteResult{}, fmt.Errorf("record vote: %w", err)
	}
	if !AllStorable(v.TenantID, v.ActionID) {
		return VoteResult{}, fmt.Errorf("record vote on %q: %w", v.ActionID, ErrNotFound)
	}
	v.VotedAt = stampNow(v.VotedAt, w.Now)
	ev := req.Audit
	if ev.Timestamp.IsZero() {
		ev.Timestamp = v.VotedAt
	}
	ev, err := CanonicalEvent(ev, EventApprovalVote, VoteFacts(v))
	if err != nil {
		return VoteResult{}, fmt.Errorf("record vote on %q: audit: %w", v.ActionID, err)
	}
	if _, err := CanonicalEvent(req.DecisionAudit, EventActionApproved, nil); err != nil {
		return VoteResult{}, fmt.Errorf("record vote on %q: decision audit: %w", v.ActionID, err)
	}
	var res VoteResult
	err = w.GC.Do(ctx, v.TenantID, func(b B) error {
		res = VoteResult{}
		if err := b.CheckPending(v.TenantID, v.ActionID); err != nil {
			return err
		}
		if err := b.InsertVote(v); err != nil {
			return err
		}
		e, err := w.appendEvent(b, v.TenantID, ev, v.ActionID)
		if err != nil {
			return err
		}
		res.Entries = append(res.Entries, e)
		if res.Votes, err = b.Votes(v.TenantID, v.ActionID); err != nil {
			return err
		}
		var final pdp.Status
		res.Approvals, final = Tally(res.Votes, v, req.MinApprovals, req.Counts)
		if final == "" {
			res.Action, err = b.GetAction(v.TenantID, v.ActionID)
			return err
		}
		a, de, err := w.decide(b, v.TenantID, v.ActionID, final, v.ApproverID, v.Reason, v.VotedAt, req.DecisionAudit)
		if err != nil {
			return err
		}
		res.Decided, res.Action = true, a
		res.Entries = append(res.Entries, de)
		return nil
	})
	if err != nil {
		return VoteResult{}, fmt.Errorf("record vote of %q on %q: %w", v.ApproverID, v.ActionID, err)
	}
	return res, nil
}
