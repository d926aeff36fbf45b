package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// ListApprovals returns one page of the tenant's approvals in audit order
// and the total matching q, from one snapshot.
func (db *DB) ListApprovals(ctx context.Context, tenantID string, q store.ApprovalQuery) ([]store.Approval, int, error) {
	if err := q.Validate(); err != nil {
		return nil, 0, fmt.Errorf("list approvals: %w", err)
	}
	where := ` WHERE tenant_id = ? AND status IN ('pending_review', 'approved', 'denied')`
	args := []any{tenantID}
	if q.Status != "" {
		where = ` WHERE tenant_id = ? AND status = ?`
		args = append(args, q.Status)
	}
	limit := int64(q.Limit)
	if limit <= 0 {
		limit = -1
	}
	var (
		total int
		out   = []store.Approval{}
	)
	err := db.read(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM actions`+where, args...).Scan(&total); err != nil {
			return err
		}
		// NULLs (actions recorded without an entry) sort first, as in
		// PostgreSQL with NULLS FIRST.
		rows, err := tx.QueryContext(ctx, `SELECT `+actionCols+`, audit_seq FROM actions`+where+
			` ORDER BY audit_seq, seq LIMIT ? OFFSET ?`, append(args, limit, max(q.Offset, 0))...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				ap  store.Approval
				seq sql.NullInt64
			)
			if ap.Action, err = scanAction(scanPrefix{rows, &seq}); err != nil {
				return err
			}
			ap.AuditSequence = seq.Int64
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
// columns after them into extra.
type scanPrefix struct {
	rows  rowScanner
	extra *sql.NullInt64
}

func (s scanPrefix) Scan(dest ...any) error { return s.rows.Scan(append(dest, s.extra)...) }

const voteCols = `tenant_id, action_id, approver_id, role, is_manager, decision, reason, voted_at`

// querier is what *sql.DB and *sql.Tx share for queries.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func votes(ctx context.Context, q querier, tenantID, actionID string) ([]store.ApprovalVote, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+voteCols+` FROM approval_votes WHERE tenant_id = ? AND action_id = ? ORDER BY seq`, tenantID, actionID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	vs := []store.ApprovalVote{}
	for rows.Next() {
		var (
			v  store.ApprovalVote
			at int64
		)
		if err := rows.Scan(&v.TenantID, &v.ActionID, &v.ApproverID, &v.Role, &v.IsManager, &v.Decision, &v.Reason, &at); err != nil {
			return nil, err
		}
		v.VotedAt = fromMicros(at)
		vs = append(vs, v)
	}
	return vs, rows.Err()
}

// ApprovalVotes returns the votes on the tenant's action, oldest first.
func (db *DB) ApprovalVotes(ctx context.Context, tenantID, actionID string) ([]store.ApprovalVote, error) {
	vs, err := votes(ctx, db.r, tenantID, actionID)
	if err != nil {
		return nil, fmt.Errorf("approval votes of %q: %w", actionID, err)
	}
	return vs, nil
}

// notPending explains why the tenant's action is not pending_review:
// missing or never held (ErrNotFound), or decided (*AlreadyDecidedError).
func notPending(ctx context.Context, q queryRower, tenantID, actionID string) error {
	var (
		st       pdp.Status
		approver string
		decided  sql.NullInt64
	)
	err := q.QueryRowContext(ctx, `SELECT status, approver_id, decided_at FROM actions WHERE tenant_id = ? AND id = ?`,
		tenantID, actionID).Scan(&st, &approver, &decided)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.ErrNotFound
	case err != nil:
		return err
	case st == pdp.StatusApproved || st == pdp.StatusDenied:
		return &store.AlreadyDecidedError{ActionID: actionID, Status: st, ApproverID: approver, DecidedAt: fromNullMicros(decided)}
	case st == pdp.StatusPendingReview:
		return fmt.Errorf("action %q is pending_review", actionID) // not reached: the caller found it was not
	}
	return fmt.Errorf("action is %s, not awaiting approval: %w", st, store.ErrNotFound)
}

// decide applies a final status to a pending_review action with a
// conditional update — the one statement that makes a decision happen
// once — and appends its entry.
func (b *batch) decide(tenantID, actionID string, st pdp.Status, approver, reason string, at time.Time, ev store.AuditEvent) (store.ActionRecord, store.AuditEntry, error) {
	a, err := scanAction(b.tx.QueryRowContext(b.ctx, `UPDATE actions
SET status = ?, decided_at = ?, approver_id = ?, decision_reason = ?
WHERE tenant_id = ? AND id = ? AND status = 'pending_review'
RETURNING `+actionCols, st, toMicros(at), approver, reason, tenantID, actionID))
	if errors.Is(err, sql.ErrNoRows) {
		return store.ActionRecord{}, store.AuditEntry{}, notPending(b.ctx, b.tx, tenantID, actionID)
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
func (db *DB) DecideAction(ctx context.Context, req store.DecideRequest) (store.ActionRecord, store.AuditEntry, error) {
	if err := req.Validate(); err != nil {
		return store.ActionRecord{}, store.AuditEntry{}, fmt.Errorf("decide action: %w", err)
	}
	if _, err := store.CanonicalEvent(req.Audit, store.EventForStatus(req.Status), nil); err != nil {
		return store.ActionRecord{}, store.AuditEntry{}, fmt.Errorf("decide action %q: audit: %w", req.ActionID, err)
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
// decision, in one group-committed transaction.
func (db *DB) RecordApprovalVote(ctx context.Context, req store.VoteRequest) (store.VoteResult, error) {
	if err := req.Validate(); err != nil {
		return store.VoteResult{}, fmt.Errorf("record vote: %w", err)
	}
	v := req.Vote
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
		err := b.tx.QueryRowContext(b.ctx, `SELECT status FROM actions WHERE tenant_id = ? AND id = ?`, v.TenantID, v.ActionID).Scan(&st)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && st != pdp.StatusPendingReview) {
			return notPending(b.ctx, b.tx, v.TenantID, v.ActionID)
		}
		if err != nil {
			return err
		}
		if _, err := b.tx.ExecContext(b.ctx, `INSERT INTO approval_votes (`+voteCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			v.TenantID, v.ActionID, v.ApproverID, v.Role, v.IsManager, v.Decision, v.Reason, toMicros(v.VotedAt)); err != nil {
			if isDuplicate(err) {
				return store.ErrAlreadyVoted
			}
			return err
		}
		e, err := b.appendEvent(v.TenantID, ev, v.ActionID)
		if err != nil {
			return err
		}
		res.Entries = append(res.Entries, e)
		if res.Votes, err = votes(b.ctx, b.tx, v.TenantID, v.ActionID); err != nil {
			return err
		}
		var final pdp.Status
		res.Approvals, final = store.Tally(res.Votes, v, req.MinApprovals, req.Counts)
		if final == "" {
			res.Action, err = scanAction(b.tx.QueryRowContext(b.ctx, `SELECT `+actionCols+` FROM actions WHERE tenant_id = ? AND id = ?`, v.TenantID, v.ActionID))
			return err
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
