package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
	"unsafe"

	"github.com/gatehouse-pdp/gatehouse/pdp"
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
//
// Both are found through the hourly rollups (action_counts_hourly: every
// action is counted in the hour of its created_at under its status, in
// the transaction that inserts, decides or deletes it, whatever the code
// path): the total is their sum, and the page lies in the hours where the
// running count, newest hour first, passes the offset and then
// offset + limit (actionPage). The page query reads only those hours along
// actions_tenant_created, newest first, the status tested on the index
// entry, skipping the matches of the page's first hour that come before
// it. So neither counts a tenant's actions one by one, and a rare
// status's page does not walk every newer action of the tenant to reach
// its matches (migration 0013 dropped actions_tenant_status, which served
// the status filter, to save its leaf in every action's commit). The
// cost is reading the tenant's rollup rows, at most one per hour and
// status that has actions.
func (db *DB) ListActions(ctx context.Context, tenantID string, q store.ActionQuery) ([]store.ActionRecord, int, error) {
	var (
		total int64
		as    = []store.ActionRecord{}
	)
	err := db.read(ctx, func(tx *sql.Tx) error {
		hours, err := actionHours(ctx, tx, tenantID, q.Status)
		if err != nil {
			return err
		}
		var p actionPageSpan
		total, p = actionPage(hours, int64(max(q.Offset, 0)), int64(q.Limit))
		if !p.found {
			return nil
		}
		query, args := listActionsPage(tenantID, q.Status, p, int64(q.Limit))
		rows, err := tx.QueryContext(ctx, query, args...)
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
	return as, int(total), nil
}

// hourCount is the number of a tenant's actions (of one status, or all)
// created in one hour (floor(created_at / hourUS)).
type hourCount struct{ hour, n int64 }

// sqlActionHours is actionHours' query without a status, and
// sqlActionHoursStatus with one: the tenant's rollup rows, newest hour
// first, along the table's key.
const (
	sqlActionHours       = `SELECT hour, sum(n) FROM action_counts_hourly WHERE tenant_id = ? GROUP BY hour ORDER BY hour DESC`
	sqlActionHoursStatus = `SELECT hour, n FROM action_counts_hourly WHERE tenant_id = ? AND status = ? ORDER BY hour DESC`
)

// actionHours returns the tenant's action counts by hour, newest first,
// of status st ("" for every status).
func actionHours(ctx context.Context, tx *sql.Tx, tenantID string, st pdp.Status) ([]hourCount, error) {
	query, args := sqlActionHours, []any{tenantID}
	if st != "" {
		query, args = sqlActionHoursStatus, []any{tenantID, string(st)}
	}
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []hourCount
	for rows.Next() {
		var c hourCount
		if err := rows.Scan(&c.hour, &c.n); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// actionPageSpan is where a page of actions lies: created_at in [lo, hi),
// after skip matches (newer ones of the page's first hour); found is false
// for a page past the end.
type actionPageSpan struct {
	lo, hi, skip int64
	found        bool
}

// actionPage returns the total of hours (newest first) and the span of
// the page at offset (≥ 0) of limit actions (≤ 0: no limit): from the
// hour in which the running count passes offset down to the one in which
// it reaches offset + limit (the oldest hour with actions, without a
// limit).
func actionPage(hours []hourCount, offset, limit int64) (total int64, p actionPageSpan) {
	var seen int64 // matches in the hours newer than the one at hand
	for _, h := range hours {
		total += h.n
		if h.n <= 0 || (limit > 0 && p.found && seen >= offset+limit) {
			continue
		}
		if seen+h.n > offset {
			if !p.found {
				p = actionPageSpan{hi: (h.hour + 1) * hourUS, skip: offset - seen, found: true}
			}
			p.lo = h.hour * hourUS
		}
		seen += h.n
	}
	return total, p
}

// listActionsPage is ListActions' page query for span p, with its
// arguments.
func listActionsPage(tenantID string, st pdp.Status, p actionPageSpan, limit int64) (string, []any) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	if st == "" {
		return sqlActionsPage, []any{tenantID, p.lo, p.hi, limit, p.skip}
	}
	return sqlActionsPageStatus, []any{tenantID, string(st), p.lo, p.hi, limit, p.skip}
}

// ListActions' page queries, without and with a status.
const (
	sqlActionsPage       = `SELECT ` + actionCols + ` FROM actions WHERE tenant_id = ? AND created_at >= ? AND created_at < ?` + actionOrder + ` LIMIT ? OFFSET ?`
	sqlActionsPageStatus = `SELECT ` + actionCols + ` FROM actions WHERE tenant_id = ? AND status = ? AND created_at >= ? AND created_at < ?` + actionOrder + ` LIMIT ? OFFSET ?`
)
