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
	if !store.Storable(tenantID) {
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
			if ap.Action, err = scanAction(store.ScanExtra{Row: rows, Extra: []any{&seq}}); err != nil {
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
	if !store.AllStorable(tenantID, actionID) {
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

// CheckPending returns nil if the tenant's action is pending_review, else
// why not (store.NotPendingError).
func (b *batch) CheckPending(tenantID, actionID string) error {
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
	case st == pdp.StatusPendingReview:
		return nil
	}
	return store.NotPendingError(actionID, st, approver, utcPtr(decided))
}

// Decide applies a final status to a pending_review action with a
// conditional update — the one statement that makes a decision happen
// once, in this process or any other. A decision that lost writes
// nothing.
func (b *batch) Decide(tenantID, actionID string, st pdp.Status, approver, reason string, at time.Time) (store.ActionRecord, error) {
	var a store.ActionRecord
	err := b.writeRow(func(r rowScanner) (err error) {
		a, err = scanAction(r)
		return err
	}, `UPDATE actions SET status = $1, decided_at = $2, approver_id = $3, decision_reason = $4
WHERE tenant_id = $5 AND id = $6 AND status = 'pending_review'
RETURNING `+actionCols, st, at, approver, reason, tenantID, actionID)
	if errors.Is(err, pgx.ErrNoRows) {
		if err := b.CheckPending(tenantID, actionID); err != nil {
			return store.ActionRecord{}, err
		}
		return store.ActionRecord{}, fmt.Errorf("action %q is pending_review but was not decided", actionID)
	}
	return a, err
}

// InsertVote stores v; the unique (tenant, action, approver) constraint
// keeps votes distinct per approver whatever else writes them.
func (b *batch) InsertVote(v store.ApprovalVote) error {
	var seq int64
	err := b.writeRow(into(&seq), `INSERT INTO approval_votes (`+voteCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (tenant_id, action_id, approver_id) DO NOTHING RETURNING seq`,
		v.TenantID, v.ActionID, v.ApproverID, v.Role, v.IsManager, v.Decision, v.Reason, v.VotedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrAlreadyVoted
	}
	return err
}

// Votes returns the votes on the tenant's action, oldest first.
func (b *batch) Votes(tenantID, actionID string) (vs []store.ApprovalVote, err error) {
	err = b.query(func(rows pgx.Rows) (err error) {
		vs, err = scanVotes(rows)
		return err
	}, sqlVotes, tenantID, actionID)
	return vs, err
}

// GetAction reads the tenant's action in the batch.
func (b *batch) GetAction(tenantID, actionID string) (a store.ActionRecord, err error) {
	err = b.queryRow(func(r rowScanner) (err error) {
		a, err = scanAction(r)
		return err
	}, `SELECT `+actionCols+` FROM actions WHERE tenant_id = $1 AND id = $2`, tenantID, actionID)
	return a, err
}
