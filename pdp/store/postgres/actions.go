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

func checkActionText(a store.ActionRecord) error {
	// TenantID is left out: a tenant it cannot name does not exist.
	return checkText(
		field{"id", a.ID}, field{"agent_id", a.AgentID}, field{"action", a.Action},
		field{"connector", a.Connector}, field{"operation", a.Operation}, field{"params", string(a.Params)},
		field{"step_type", a.StepType}, field{"status", string(a.Status)}, field{"decision", string(a.Decision)},
		field{"triggered_policy", a.TriggeredPolicy}, field{"severity", string(a.Severity)},
		field{"trace_id", a.TraceID}, field{"approver_id", a.ApproverID}, field{"decision_reason", a.DecisionReason},
	)
}

// InsertAction stores a; it is durable when InsertAction returns (the
// commit waits for the WAL flush unless the server runs with
// synchronous_commit off).
func (db *DB) InsertAction(ctx context.Context, a store.ActionRecord) (store.ActionRecord, error) {
	if a.CreatedAt.IsZero() {
		a.CreatedAt = db.nowUTC()
	} else {
		a.CreatedAt = stamp(a.CreatedAt)
	}
	a.DecidedAt = stampPtr(a.DecidedAt)
	if err := a.Validate(); err != nil {
		return store.ActionRecord{}, fmt.Errorf("insert action: %w", err)
	}
	if err := checkActionText(a); err != nil {
		return store.ActionRecord{}, fmt.Errorf("insert action: %w", err)
	}
	if !storable(a.TenantID) {
		return store.ActionRecord{}, fmt.Errorf("insert action %q: tenant %q: %w", a.ID, a.TenantID, store.ErrNotFound)
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO actions (`+actionCols+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)`,
		a.ID, a.TenantID, a.AgentID, a.Action, a.Connector, a.Operation, []byte(a.Params), a.StepType,
		a.Status, []byte(a.Decision), a.TriggeredPolicy, a.Severity, a.RiskScore, a.ViolationCount, a.TraceID,
		a.CreatedAt, a.DecidedAt, a.ApproverID, a.DecisionReason)
	switch {
	case isDuplicate(err):
		return store.ActionRecord{}, fmt.Errorf("insert action %q: %w", a.ID, store.ErrDuplicate)
	case isMissingParent(err):
		return store.ActionRecord{}, fmt.Errorf("insert action %q: tenant %q: %w", a.ID, a.TenantID, store.ErrNotFound)
	case err != nil:
		return store.ActionRecord{}, fmt.Errorf("insert action %q: %w", a.ID, err)
	}
	return a, nil
}

// GetAction returns the tenant's action with this ID.
func (db *DB) GetAction(ctx context.Context, tenantID, id string) (store.ActionRecord, error) {
	if !allStorable(tenantID, id) {
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
	if !allStorable(tenantID, string(q.Status)) {
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
		for rows.Next() {
			a, err := scanAction(rows)
			if err != nil {
				return err
			}
			as = append(as, a)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list actions of %q: %w", tenantID, err)
	}
	return as, total, nil
}
