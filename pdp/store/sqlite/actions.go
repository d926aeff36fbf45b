package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
	"unsafe"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

const actionCols = `id, tenant_id, agent_id, action, connector, operation, params, step_type, status, decision,
    triggered_policy, severity, risk_score, violation_count, trace_id, created_at, decided_at, approver_id, decision_reason`

// actionOrder is newest first; seq (insertion order) breaks created_at ties.
const actionOrder = ` ORDER BY created_at DESC, seq DESC`

func scanAction(row rowScanner) (store.ActionRecord, error) {
	var (
		a                store.ActionRecord
		params, decision sql.NullString
		created          int64
		decided          sql.NullInt64
	)
	if err := row.Scan(&a.ID, &a.TenantID, &a.AgentID, &a.Action, &a.Connector, &a.Operation, &params, &a.StepType,
		&a.Status, &decision, &a.TriggeredPolicy, &a.Severity, &a.RiskScore, &a.ViolationCount, &a.TraceID,
		&created, &decided, &a.ApproverID, &a.DecisionReason); err != nil {
		return store.ActionRecord{}, err
	}
	a.Params = fromNullJSON(params)
	a.Decision = fromNullJSON(decision)
	a.CreatedAt = fromMicros(created)
	a.DecidedAt = fromNullMicros(decided)
	return a, nil
}

// InsertAction stores a; it is durable when InsertAction returns.
func (db *DB) InsertAction(ctx context.Context, a store.ActionRecord) (store.ActionRecord, error) {
	a, err := db.prepareAction(a)
	if err != nil {
		return store.ActionRecord{}, fmt.Errorf("insert action: %w", err)
	}
	err = db.write(ctx, func(tx *sql.Tx) error { return insertAction(ctx, tx, a) })
	if err != nil {
		return store.ActionRecord{}, db.InsertActionError(a, err)
	}
	return a, nil
}

// prepareAction sets what the store owns on an action about to be
// inserted and validates it (store.PrepareAction).
func (db *DB) prepareAction(a store.ActionRecord) (store.ActionRecord, error) {
	return store.PrepareAction(a, db.now)
}

const sqlInsertAction = `INSERT INTO actions (` + actionCols + `, audit_seq)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// actionArgs are sqlInsertAction's arguments; auditSeq is the sequence
// number of the action's evaluation entry, 0 if it has none (NULL).
//
// They are the values the driver binds as they are — string, int64,
// float64, nil for NULL — so database/sql passes them through: a named
// string type (pdp.Status), an int or a sql.Null* each cost it a
// conversion and an allocation, twenty arguments per action on the
// committer. params and decision are bound as text through views of
// their bytes (textView) instead of string copies.
func actionArgs(a store.ActionRecord, auditSeq int64) []any {
	return appendActionArgs(make([]any, 0, 20), a, auditSeq)
}

// appendActionArgs appends actionArgs(a, auditSeq) to args.
func appendActionArgs(args []any, a store.ActionRecord, auditSeq int64) []any {
	return append(args, a.ID, a.TenantID, a.AgentID, a.Action, a.Connector, a.Operation, textView(a.Params), a.StepType,
		string(a.Status), textView(a.Decision), a.TriggeredPolicy, string(a.Severity), a.RiskScore, int64(a.ViolationCount), a.TraceID,
		toMicros(a.CreatedAt), microsOrNil(a.DecidedAt), a.ApproverID, a.DecisionReason, int64OrNil(auditSeq))
}

// textView is b bound as TEXT (nil: NULL) without copying it: the driver
// copies the text into SQLite as it binds, and the caller does not change
// b while its statement runs.
func textView(b []byte) any {
	if b == nil {
		return nil
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// microsOrNil is t in microseconds, nil (NULL) for none.
func microsOrNil(t *time.Time) any {
	if t == nil {
		return nil
	}
	return toMicros(*t)
}

// int64OrNil is n, nil (NULL) for 0.
func int64OrNil(n int64) any {
	if n == 0 {
		return nil
	}
	return n
}

// insertAction inserts a prepared action without an entry, and its
// rollups.
func insertAction(ctx context.Context, e execer, a store.ActionRecord) error {
	if _, err := e.ExecContext(ctx, sqlInsertAction, actionArgs(a, 0)...); err != nil {
		return err
	}
	var r rollups
	r.add(a)
	return r.writeTo(ctx, e)
}

// GetAction returns the tenant's action with this ID.
func (db *DB) GetAction(ctx context.Context, tenantID, id string) (store.ActionRecord, error) {
	a, err := scanAction(db.r.QueryRowContext(ctx, `SELECT `+actionCols+` FROM actions WHERE id = ? AND tenant_id = ?`, id, tenantID))
	if err != nil {
		return store.ActionRecord{}, fmt.Errorf("get action %q: %w", id, noRows(err))
	}
	return a, nil
}

// ListActions returns one page of the tenant's actions, newest first, and
// the total matching q; both from one snapshot.
func (db *DB) ListActions(ctx context.Context, tenantID string, q store.ActionQuery) ([]store.ActionRecord, int, error) {
	where := ` WHERE tenant_id = ?`
	args := []any{tenantID}
	if q.Status != "" {
		where += ` AND status = ?`
		args = append(args, q.Status)
	}
	limit := int64(q.Limit)
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	offset := max(q.Offset, 0)
	var (
		total int
		as    = []store.ActionRecord{}
	)
	err := db.read(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM actions`+where, args...).Scan(&total); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+actionCols+` FROM actions`+where+actionOrder+` LIMIT ? OFFSET ?`,
			append(args, limit, offset)...)
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
