package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// span is a half-open range of instants.
type span struct{ lo, hi time.Time }

// split cuts [lo, hi) into the whole units of length unit inside it —
// rollup rows [first, last) — and the edges before and after them, which
// must be scanned. With no whole unit inside, all of it is an edge. Units
// are aligned in UTC (time.Truncate counts from a UTC midnight), as the
// rollups' date_trunc(…, 'UTC').
func split(lo, hi time.Time, unit time.Duration) (first, last time.Time, edges []span) {
	first, last = lo.Truncate(unit), hi.Truncate(unit)
	if first.Before(lo) {
		first = first.Add(unit)
	}
	if !first.Before(last) {
		return time.Time{}, time.Time{}, []span{{lo, hi}}
	}
	if lo.Before(first) {
		edges = append(edges, span{lo, first})
	}
	if last.Before(hi) {
		edges = append(edges, span{last, hi})
	}
	return first, last, edges
}

// Dashboard sums the hourly and daily rollups over the whole hours and
// days inside the window and scans the actions of the partial ones at its
// edges, all in one snapshot and one round trip: its cost is bounded by
// the window's length plus two partial days of violations, not by the
// number of actions.
func (db *DB) Dashboard(ctx context.Context, tenantID string, q store.DashboardQuery) (store.DashboardReport, error) {
	if err := q.Validate(); err != nil {
		return store.DashboardReport{}, fmt.Errorf("dashboard: %w", err)
	}
	b := store.NewDashboardBuilder(q)
	if !store.Storable(tenantID) {
		return b.Report(), nil
	}
	lo, hi := store.StampUp(q.Since).UTC(), store.StampUp(q.Until).UTC()
	pb := &pgx.Batch{}
	countRows := func(rows pgx.Rows) error {
		var (
			at time.Time
			st pdp.Status
			n  int64
		)
		_, err := pgx.ForEachRow(rows, []any{&at, &st, &n}, func() error {
			b.Count(at, st, n)
			return nil
		})
		return err
	}
	first, last, edges := split(lo, hi, time.Hour)
	if first.Before(last) {
		pb.Queue(`SELECT hour, status, n FROM action_counts_hourly
WHERE tenant_id = $1 AND hour >= $2 AND hour < $3 AND n <> 0`, tenantID, first, last).Query(countRows)
	}
	for _, e := range edges {
		pb.Queue(`SELECT date_trunc('hour', created_at, 'UTC'), status, count(*) FROM actions
WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3 GROUP BY 1, 2`, tenantID, e.lo, e.hi).Query(countRows)
	}
	first, last, edges = split(lo, hi, 24*time.Hour)
	if first.Before(last) {
		pb.Queue(`SELECT policy, severity, sum(n)::bigint FROM policy_violations_daily
WHERE tenant_id = $1 AND day >= $2 AND day < $3 GROUP BY 1, 2`, tenantID, first, last).Query(func(rows pgx.Rows) error {
			var (
				policy string
				sev    pdp.Severity
				n      int64
			)
			_, err := pgx.ForEachRow(rows, []any{&policy, &sev, &n}, func() error {
				b.PolicyViolations(policy, sev, n)
				return nil
			})
			return err
		})
		pb.Queue(`SELECT agent_id, sum(n)::bigint FROM agent_violations_daily
WHERE tenant_id = $1 AND day >= $2 AND day < $3 GROUP BY 1`, tenantID, first, last).Query(func(rows pgx.Rows) error {
			var (
				agent string
				n     int64
			)
			_, err := pgx.ForEachRow(rows, []any{&agent, &n}, func() error {
				b.AgentViolations(agent, n)
				return nil
			})
			return err
		})
	}
	for _, e := range edges {
		// violation_count > 0 literally, so the planner can use the
		// covering partial index actions_violations.
		pb.Queue(`SELECT triggered_policy, severity, agent_id, count(*) FROM actions
WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3 AND violation_count > 0 GROUP BY 1, 2, 3`,
			tenantID, e.lo, e.hi).Query(func(rows pgx.Rows) error {
			var (
				policy, agent string
				sev           pdp.Severity
				n             int64
			)
			_, err := pgx.ForEachRow(rows, []any{&policy, &sev, &agent, &n}, func() error {
				b.PolicyViolations(policy, sev, n)
				b.AgentViolations(agent, n)
				return nil
			})
			return err
		})
	}
	err := db.read(ctx, func(tx pgx.Tx) error { return tx.SendBatch(ctx, pb).Close() })
	if err != nil {
		return store.DashboardReport{}, fmt.Errorf("dashboard of %q: %w", tenantID, err)
	}
	return b.Report(), nil
}

// AgentViolations returns one page of the agent's violations, newest
// first, and their number in the window, from one snapshot.
func (db *DB) AgentViolations(ctx context.Context, tenantID, agentID string, q store.ViolationQuery) ([]store.AgentViolation, int, error) {
	out := []store.AgentViolation{}
	if !store.AllStorable(tenantID, agentID) {
		return out, 0, nil
	}
	w := &where{}
	w.add(`a.tenant_id = ?`, tenantID)
	w.add(`a.agent_id = ?`, agentID)
	// Literally, so the planner can use the partial index
	// actions_agent_violations.
	w.conds = append(w.conds, `a.violation_count > 0`)
	if !q.Since.IsZero() {
		w.add(`a.created_at >= ?`, store.StampUp(q.Since))
	}
	if !q.Until.IsZero() {
		w.add(`a.created_at < ?`, store.StampUp(q.Until))
	}
	page, pageArgs := w.page(q.Limit, q.Offset)
	var total int
	err := db.read(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM actions a`+w.String(), w.args...).Scan(&total); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT a.id, a.action, a.created_at, a.status, a.triggered_policy, a.severity,
    a.decision, a.risk_score, a.violation_count, a.audit_seq, l.entry_hash
FROM actions a LEFT JOIN audit_log l ON l.tenant_id = a.tenant_id AND l.seq = a.audit_seq`+w.String()+`
ORDER BY a.created_at DESC, a.seq DESC`+page, pageArgs...)
		if err != nil {
			return err
		}
		var (
			v        store.AgentViolation
			decision []byte
			seq      *int64
			hash     *string
		)
		_, err = pgx.ForEachRow(rows, []any{&v.ActionID, &v.Action, &v.Timestamp, &v.Status, &v.TriggeredPolicy, &v.Severity,
			&decision, &v.RiskScore, &v.ViolationCount, &seq, &hash}, func() error {
			x := v
			x.Timestamp = x.Timestamp.UTC()
			x.Event = store.ViolationEvent(x.Status)
			x.Reason = decisionReason(decision)
			if seq != nil {
				x.AuditSequence = *seq
			}
			if hash != nil {
				x.AuditHash = *hash
			}
			out = append(out, x)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("violations of agent %q: %w", agentID, err)
	}
	return out, total, nil
}

// decisionReason is policy_result.reason of a stored decision, "" when
// there is none.
func decisionReason(decision []byte) string {
	var d struct {
		Reason *string `json:"reason"`
	}
	if decision == nil || json.Unmarshal(decision, &d) != nil || d.Reason == nil {
		return ""
	}
	return *d.Reason
}
