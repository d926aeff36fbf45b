package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

const actionCols = `id, tenant_id, agent_id, action, connector, operation, params, step_type, status, decision,
    triggered_policy, severity, risk_score, violation_count, trace_id, created_at, decided_at, approver_id, decision_reason`

// actionOrder is newest first; seq (insertion order) breaks created_at ties.
const actionOrder = ` ORDER BY created_at DESC, seq DESC`

func scanAction(row rowScanner) (store.ActionRecord, error) {
	var (
		a                store.ActionRecord
		params, decision []byte // *[]byte scans json verbatim, NULL as nil
	)
	if err := row.Scan(&a.ID, &a.TenantID, &a.AgentID, &a.Action, &a.Connector, &a.Operation, &params, &a.StepType,
		&a.Status, &decision, &a.TriggeredPolicy, &a.Severity, &a.RiskScore, &a.ViolationCount, &a.TraceID,
		&a.CreatedAt, &a.DecidedAt, &a.ApproverID, &a.DecisionReason); err != nil {
		return store.ActionRecord{}, err
	}
	a.Params = params
	a.Decision = decision
	a.CreatedAt = a.CreatedAt.UTC()
	a.DecidedAt = utcPtr(a.DecidedAt)
	return a, nil
}

// InsertAction stores a; it is durable when InsertAction returns (the
// commit waits for the WAL flush unless the server runs with
// synchronous_commit off).
func (db *DB) InsertAction(ctx context.Context, a store.ActionRecord) (store.ActionRecord, error) {
	a, err := db.prepareAction(a)
	if err != nil {
		return store.ActionRecord{}, err
	}
	if _, err := db.pool.Exec(ctx, sqlInsertAction, actionArgs(a, nil)...); err != nil {
		return store.ActionRecord{}, db.InsertActionError(a, err)
	}
	return a, nil
}

// GetAction returns the tenant's action with this ID.
func (db *DB) GetAction(ctx context.Context, tenantID, id string) (store.ActionRecord, error) {
	if !store.AllStorable(tenantID, id) {
		return store.ActionRecord{}, fmt.Errorf("get action %q: %w", id, store.ErrNotFound)
	}
	a, err := scanAction(db.pool.QueryRow(ctx, `SELECT `+actionCols+` FROM actions WHERE id = $1 AND tenant_id = $2`, id, tenantID))
	if err != nil {
		return store.ActionRecord{}, fmt.Errorf("get action %q: %w", id, noRows(err))
	}
	return a, nil
}

// ListActions returns one page of the tenant's actions, newest first, and
// the total matching q; both from one snapshot.
func (db *DB) ListActions(ctx context.Context, tenantID string, q store.ActionQuery) ([]store.ActionRecord, int, error) {
	as := []store.ActionRecord{}
	if !store.AllStorable(tenantID, string(q.Status)) {
		return as, 0, nil
	}
	where := ` WHERE tenant_id = $1`
	args := []any{tenantID}
	if q.Status != "" {
		args = append(args, q.Status)
		where += fmt.Sprintf(` AND status = $%d`, len(args))
	}
	var limit *int64 // NULL: LIMIT NULL is no limit
	if q.Limit > 0 {
		l := int64(q.Limit)
		limit = &l
	}
	offset := int64(max(q.Offset, 0))
	var total int
	err := db.read(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM actions`+where, args...).Scan(&total); err != nil {
			return err
		}
		page := fmt.Sprintf(` LIMIT $%d OFFSET $%d`, len(args)+1, len(args)+2)
		rows, err := tx.Query(ctx, `SELECT `+actionCols+` FROM actions`+where+actionOrder+page, append(args, limit, offset)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		as, err = store.Collect(rows, scanAction)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list actions of %q: %w", tenantID, err)
	}
	return as, total, nil
}
