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

// approvalStatuses is the predicate of the partial index actions_approvals
// (migrations 0009, 0012), repeated in every query that should use it,
// parenthesized as one term: SQLite uses a partial index only when the
// query's WHERE has its terms. It is three equalities, not an IN list,
// so that an insert evaluates it without building an ephemeral B-tree
// (0012).
const approvalStatuses = `(status = 'pending_review' OR status = 'approved' OR status = 'denied')`

// approvalsWhere is ListApprovals' WHERE clause and its arguments. With
// a status, its term comes before approvalStatuses: so ordered, SQLite
// seeks actions_approvals to that one status and reads it in audit order,
// where the other order sorts the page (TestApprovalPlans).
func approvalsWhere(tenantID string, st pdp.Status) (string, []any) {
	if st == "" {
		return ` WHERE tenant_id = ? AND ` + approvalStatuses, []any{tenantID}
	}
	return ` WHERE tenant_id = ? AND status = ? AND ` + approvalStatuses, []any{tenantID, st}
}

// ListApprovals returns one page of the tenant's approvals in audit order
// and the total matching q, from one snapshot.
func (db *DB) ListApprovals(ctx context.Context, tenantID string, q store.ApprovalQuery) ([]store.Approval, int, error) {
	if err := q.Validate(); err != nil {
		return nil, 0, fmt.Errorf("list approvals: %w", err)
	}
	where, args := approvalsWhere(tenantID, q.Status)
	limit := int64(q.Limit)
	if limit <= 0 {
		limit = -1
	}
	var (
		total int
		out   = []store.Approval{}
	)
	err := db.read(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, sqlCountActions+where, args...).Scan(&total); err != nil {
			return err
		}
		// NULLs (actions recorded without an entry) sort first, as in
		// PostgreSQL with NULLS FIRST.
		rows, err := tx.QueryContext(ctx, sqlApprovalsPage(where), append(args, limit, max(q.Offset, 0))...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				ap  store.Approval
				seq sql.NullInt64
			)
			if ap.Action, err = scanAction(store.ScanExtra{Row: rows, Extra: []any{&seq}}); err != nil {
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

const sqlCountActions = `SELECT count(*) FROM actions`

// sqlApprovalsPage is ListApprovals' page query with this WHERE clause.
func sqlApprovalsPage(where string) string {
	return `SELECT ` + actionCols + `, audit_seq FROM actions` + where + ` ORDER BY audit_seq, seq LIMIT ? OFFSET ?`
}

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

// CheckPending returns nil if the tenant's action is pending_review, else
// why not (store.NotPendingError).
func (b *batch) CheckPending(tenantID, actionID string) error {
	var (
		st       pdp.Status
		approver string
		decided  sql.NullInt64
	)
	err := b.tx.QueryRowContext(b.ctx, `SELECT status, approver_id, decided_at FROM actions WHERE tenant_id = ? AND id = ?`,
		tenantID, actionID).Scan(&st, &approver, &decided)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.ErrNotFound
	case err != nil:
		return err
	case st == pdp.StatusPendingReview:
		return nil
	}
	return store.NotPendingError(actionID, st, approver, fromNullMicros(decided))
}

// Decide applies a final status to a pending_review action with a
// conditional update — the one statement that makes a decision happen
// once.
func (b *batch) Decide(tenantID, actionID string, st pdp.Status, approver, reason string, at time.Time) (store.ActionRecord, error) {
	a, err := scanAction(b.tx.QueryRowContext(b.ctx, `UPDATE actions
SET status = ?, decided_at = ?, approver_id = ?, decision_reason = ?
WHERE tenant_id = ? AND id = ? AND status = 'pending_review'
RETURNING `+actionCols, st, toMicros(at), approver, reason, tenantID, actionID))
	b.wrote(err)
	if errors.Is(err, sql.ErrNoRows) {
		if err := b.CheckPending(tenantID, actionID); err != nil {
			return store.ActionRecord{}, err
		}
		return store.ActionRecord{}, fmt.Errorf("action %q is pending_review but was not decided", actionID)
	}
	return a, err
}

// InsertVote stores v.
func (b *batch) InsertVote(v store.ApprovalVote) error {
	_, err := b.tx.ExecContext(b.ctx, `INSERT INTO approval_votes (`+voteCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		v.TenantID, v.ActionID, v.ApproverID, v.Role, v.IsManager, v.Decision, v.Reason, toMicros(v.VotedAt))
	b.wrote(err)
	if isDuplicate(err) {
		return store.ErrAlreadyVoted
	}
	return err
}

// Votes returns the votes on the tenant's action, oldest first.
func (b *batch) Votes(tenantID, actionID string) ([]store.ApprovalVote, error) {
	return votes(b.ctx, b.tx, tenantID, actionID)
}

// GetAction reads the tenant's action in the batch.
func (b *batch) GetAction(tenantID, actionID string) (store.ActionRecord, error) {
	return scanAction(b.tx.QueryRowContext(b.ctx, `SELECT `+actionCols+` FROM actions WHERE tenant_id = ? AND id = ?`, tenantID, actionID))
}
