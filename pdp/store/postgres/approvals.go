package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// approvalStatuses is the predicate of the partial index actions_approvals,
// repeated in every query that should use it.
const approvalStatuses = `status IN ('pending_review', 'approved', 'denied')`

// ListApprovals returns one page of the tenant's approvals in audit order
// and the total matching q, from one snapshot.
func (db *DB) ListApprovals(ctx context.Context, tenantID string, q store.ApprovalQuery) ([]store.Approval, int, error) {
	if err := q.Validate(); err != nil {
		return nil, 0, fmt.Errorf("list approvals: %w", err)
	}
	out := []store.Approval{}
	if !storable(tenantID) {
		return out, 0, nil
	}
	w := &where{}
	w.add(`tenant_id = ?`, tenantID)
	w.conds = append(w.conds, approvalStatuses)
	if q.Status != "" {
		w.add(`status = ?`, q.Status)
	}
	page, pageArgs := w.page(q.Limit, q.Offset)
	var total int
	err := db.read(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM actions`+w.String(), w.args...).Scan(&total); err != nil {
			return err
		}
		// Actions recorded without an entry (InsertAction) come first, in
		// insertion order, as SQLite sorts its NULLs.
		rows, err := tx.Query(ctx, `SELECT `+actionCols+`, audit_seq FROM actions`+w.String()+
			` ORDER BY audit_seq NULLS FIRST, seq`+page, pageArgs...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				ap  store.Approval
				seq *int64
			)
			if ap.Action, err = scanAction(scanPrefix{rows, &seq}); err != nil {
				return err
			}
			if seq != nil {
				ap.AuditSequence = *seq
			}
			out = append(out, ap)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list approvals of %q: %w", tenantID, err)
	}
	return out, total, nil
}

// scanPrefix scans the action columns into what scanAction passes and the
// column after them into extra.
type scanPrefix struct {
	rows  rowScanner
	extra any
}

func (s scanPrefix) Scan(dest ...any) error { return s.rows.Scan(append(dest, s.extra)...) }

const voteCols = `tenant_id, action_id, approver_id, role, is_manager, decision, reason, voted_at`

func scanVotes(rows pgx.Rows) ([]store.ApprovalVote, error) {
	defer rows.Close()
	vs := []store.ApprovalVote{}
	for rows.Next() {
		var v store.ApprovalVote
		if err := rows.Scan(&v.TenantID, &v.ActionID, &v.ApproverID, &v.Role, &v.IsManager, &v.Decision, &v.Reason, &v.VotedAt); err != nil {
			return nil, err
		}
		v.VotedAt = v.VotedAt.UTC()
		vs = append(vs, v)
	}
	return vs, rows.Err()
}

const sqlVotes = `SELECT ` + voteCols + ` FROM approval_votes WHERE tenant_id = $1 AND action_id = $2 ORDER BY seq`

// ApprovalVotes returns the votes on the tenant's action, oldest first.
func (db *DB) ApprovalVotes(ctx context.Context, tenantID, actionID string) ([]store.ApprovalVote, error) {
	if !allStorable(tenantID, actionID) {
		return []store.ApprovalVote{}, nil
	}
	rows, err := db.pool.Query(ctx, sqlVotes, tenantID, actionID)
	if err != nil {
		return nil, fmt.Errorf("approval votes of %q: %w", actionID, err)
	}
	vs, err := scanVotes(rows)
	if err != nil {
		return nil, fmt.Errorf("approval votes of %q: %w", actionID, err)
	}
	return vs, nil
}

// notPending explains why the tenant's action is not pending_review:
// missing or never held (ErrNotFound), or decided (*AlreadyDecidedError).
func (b *batch) notPending(tenantID, actionID string) error {
	var (
		st       pdp.Status
		approver string
		decided  *time.Time
	)
	err := b.queryRow(into(&st, &approver, &decided), `SELECT status, approver_id, decided_at FROM actions WHERE tenant_id = $1 AND id = $2`,
		tenantID, actionID)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return store.ErrNotFound
	case err != nil:
		return err
	case st == pdp.StatusApproved || st == pdp.StatusDenied:
		return &store.AlreadyDecidedError{ActionID: actionID, Status: st, ApproverID: approver, DecidedAt: utcPtr(decided)}
	case st == pdp.StatusPendingReview:
		return fmt.Errorf("action %q is pending_review", actionID) // not reached: the caller found it was not
	}
	return fmt.Errorf("action is %s, not awaiting approval: %w", st, store.ErrNotFound)
}

// decide applies a final status to a pending_review action with a
// conditional update — the one statement that makes a decision happen
// once, in this process or any other — and appends its entry. A decision
// that lost writes nothing.
func (b *batch) decide(tenantID, actionID string, st pdp.Status, approver, reason string, at time.Time, ev store.AuditEvent) (store.ActionRecord, store.AuditEntry, error) {
	var a store.ActionRecord
	err := b.writeRow(func(r rowScanner) (err error) {
		a, err = scanAction(r)
		return err
	}, `UPDATE actions SET status = $1, decided_at = $2, approver_id = $3, decision_reason = $4
WHERE tenant_id = $5 AND id = $6 AND status = 'pending_review'
RETURNING `+actionCols, st, at, approver, reason, tenantID, actionID)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ActionRecord{}, store.AuditEntry{}, b.notPending(tenantID, actionID)
	}
	if err != nil {
		return store.ActionRecord{}, store.AuditEntry{}, err
	}
	if ev, err = store.DecisionEvent(a, ev); err != nil {
		return store.ActionRecord{}, store.AuditEntry{}, err
	}
	e, err := b.appendEvent(tenantID, ev, actionID)
	if err != nil {
		return store.ActionRecord{}, store.AuditEntry{}, err
	}
	return a, e, nil
}

// DecideAction decides a pending_review action once and appends its entry.
// Deciders on other replicas serialize on the tenant's audit head, and the
// conditional update lets exactly one of them through.
func (db *DB) DecideAction(ctx context.Context, req store.DecideRequest) (store.ActionRecord, store.AuditEntry, error) {
	if err := req.Validate(); err != nil {
		return store.ActionRecord{}, store.AuditEntry{}, fmt.Errorf("decide action: %w", err)
	}
	if _, err := store.CanonicalEvent(req.Audit, store.EventForStatus(req.Status), nil); err != nil {
		return store.ActionRecord{}, store.AuditEntry{}, fmt.Errorf("decide action %q: audit: %w", req.ActionID, err)
	}
	if err := checkText(field{"approver_id", req.ApproverID}, field{"reason", req.Reason}); err != nil {
		return store.ActionRecord{}, store.AuditEntry{}, fmt.Errorf("decide action %q: %w", req.ActionID, err)
	}
	if !allStorable(req.TenantID, req.ActionID) {
		return store.ActionRecord{}, store.AuditEntry{}, fmt.Errorf("decide action %q: %w", req.ActionID, store.ErrNotFound)
	}
	at := req.DecidedAt
	if at.IsZero() {
		at = db.now()
	}
	at = stamp(at)
	var (
		a     store.ActionRecord
		entry store.AuditEntry
	)
	err := db.gc.Do(ctx, req.TenantID, func(b *batch) error {
		var err error
		a, entry, err = b.decide(req.TenantID, req.ActionID, req.Status, req.ApproverID, req.Reason, at, req.Audit)
		return err
	})
	if err != nil {
		return store.ActionRecord{}, store.AuditEntry{}, fmt.Errorf("decide action %q: %w", req.ActionID, err)
	}
	return a, entry, nil
}

// RecordApprovalVote records a vote and decides when it completes the
// decision, in one group-committed transaction. Votes on one approval,
// from any replica, serialize on the tenant's audit head, so each counts
// the votes before it; the unique (tenant, action, approver) constraint
// keeps votes distinct per approver whatever else writes them.
func (db *DB) RecordApprovalVote(ctx context.Context, req store.VoteRequest) (store.VoteResult, error) {
	if err := req.Validate(); err != nil {
		return store.VoteResult{}, fmt.Errorf("record vote: %w", err)
	}
	v := req.Vote
	if err := checkText(field{"approver_id", v.ApproverID}, field{"role", v.Role}, field{"reason", v.Reason}); err != nil {
		return store.VoteResult{}, fmt.Errorf("record vote: %w", err)
	}
	if !allStorable(v.TenantID, v.ActionID) {
		return store.VoteResult{}, fmt.Errorf("record vote on %q: %w", v.ActionID, store.ErrNotFound)
	}
	if v.VotedAt.IsZero() {
		v.VotedAt = db.now()
	}
	v.VotedAt = stamp(v.VotedAt)
	ev := req.Audit
	if ev.Timestamp.IsZero() {
		ev.Timestamp = v.VotedAt
	}
	ev, err := store.CanonicalEvent(ev, store.EventApprovalVote, store.VoteFacts(v))
	if err != nil {
		return store.VoteResult{}, fmt.Errorf("record vote on %q: audit: %w", v.ActionID, err)
	}
	if _, err := store.CanonicalEvent(req.DecisionAudit, store.EventActionApproved, nil); err != nil {
		return store.VoteResult{}, fmt.Errorf("record vote on %q: decision audit: %w", v.ActionID, err)
	}
	var res store.VoteResult
	err = db.gc.Do(ctx, v.TenantID, func(b *batch) error {
		res = store.VoteResult{}
		var st pdp.Status
		err := b.queryRow(into(&st), `SELECT status FROM actions WHERE tenant_id = $1 AND id = $2`, v.TenantID, v.ActionID)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && st != pdp.StatusPendingReview) {
			return b.notPending(v.TenantID, v.ActionID)
		}
		if err != nil {
			return err
		}
		var seq int64
		err = b.writeRow(into(&seq), `INSERT INTO approval_votes (`+voteCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (tenant_id, action_id, approver_id) DO NOTHING RETURNING seq`,
			v.TenantID, v.ActionID, v.ApproverID, v.Role, v.IsManager, v.Decision, v.Reason, v.VotedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrAlreadyVoted
		}
		if err != nil {
			return err
		}
		e, err := b.appendEvent(v.TenantID, ev, v.ActionID)
		if err != nil {
			return err
		}
		res.Entries = append(res.Entries, e)
		if err := b.query(func(rows pgx.Rows) (err error) {
			res.Votes, err = scanVotes(rows)
			return err
		}, sqlVotes, v.TenantID, v.ActionID); err != nil {
			return err
		}
		var final pdp.Status
		res.Approvals, final = store.Tally(res.Votes, v, req.MinApprovals, req.Counts)
		if final == "" {
			return b.queryRow(func(r rowScanner) (err error) {
				res.Action, err = scanAction(r)
				return err
			}, `SELECT `+actionCols+` FROM actions WHERE tenant_id = $1 AND id = $2`, v.TenantID, v.ActionID)
		}
		a, de, err := b.decide(v.TenantID, v.ActionID, final, v.ApproverID, v.Reason, v.VotedAt, req.DecisionAudit)
		if err != nil {
			return err
		}
		res.Decided, res.Action = true, a
		res.Entries = append(res.Entries, de)
		return nil
	})
	if err != nil {
		return store.VoteResult{}, fmt.Errorf("record vote of %q on %q: %w", v.ApproverID, v.ActionID, err)
	}
	return res, nil
}
