package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// Rollup resolutions in Unix microseconds, as the triggers of migration
// 0002 compute them.
const (
	hourUS = int64(time.Hour / time.Microsecond)
	dayUS  = 24 * hourUS
)

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

func ceilDiv(a, b int64) int64 { return -floorDiv(-a, b) }

// span is a half-open range of microseconds.
type span struct{ lo, hi int64 }

// split cuts [lo, hi) into the whole units of length unit inside it —
// rollup rows [first, last) — and the edges before and after them, which
// must be scanned. With no whole unit inside, all of it is an edge.
func split(lo, hi, unit int64) (first, last int64, edges []span) {
	first, last = ceilDiv(lo, unit), floorDiv(hi, unit)
	if first >= last {
		return 0, 0, []span{{lo, hi}}
	}
	if lo < first*unit {
		edges = append(edges, span{lo, first * unit})
	}
	if last*unit < hi {
		edges = append(edges, span{last * unit, hi})
	}
	return first, last, edges
}

// Dashboard sums the hourly and daily rollups over the whole hours and
// days inside the window and scans the actions of the partial ones at its
// edges, all in one snapshot: its cost is bounded by the window's length
// plus two partial days of actions, not by the number of actions.
func (db *DB) Dashboard(ctx context.Context, tenantID string, q store.DashboardQuery) (store.DashboardReport, error) {
	if err := q.Validate(); err != nil {
		return store.DashboardReport{}, fmt.Errorf("dashboard: %w", err)
	}
	b := store.NewDashboardBuilder(q)
	lo, hi := toMicros(store.StampUp(q.Since)), toMicros(store.StampUp(q.Until))
	err := db.read(ctx, func(tx *sql.Tx) error {
		if err := countStatuses(ctx, tx, b, tenantID, lo, hi); err != nil {
			return err
		}
		return countViolations(ctx, tx, b, tenantID, lo, hi)
	})
	if err != nil {
		return store.DashboardReport{}, fmt.Errorf("dashboard of %q: %w", tenantID, err)
	}
	return b.Report(), nil
}

// sqlEdgeStatuses counts the actions of a partial hour by hour and
// status, along actions_tenant_created, which carries status (migration
// 0013): covering.
const sqlEdgeStatuses = `SELECT created_at / 3600000000 - (created_at % 3600000000 < 0), status, count(*)
FROM actions WHERE tenant_id = ? AND created_at >= ? AND created_at < ? GROUP BY 1, 2`

func countStatuses(ctx context.Context, tx *sql.Tx, b *store.DashboardBuilder, tenantID string, lo, hi int64) error {
	first, last, edges := split(lo, hi, hourUS)
	add := func(rows *sql.Rows, err error) error {
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				hour, n int64
				st      pdp.Status
			)
			if err := rows.Scan(&hour, &st, &n); err != nil {
				return err
			}
			b.Count(fromMicros(hour*hourUS), st, n)
		}
		return rows.Err()
	}
	if first < last {
		if err := add(tx.QueryContext(ctx, `SELECT hour, status, n FROM action_counts_hourly
WHERE tenant_id = ? AND hour >= ? AND hour < ? AND n != 0`, tenantID, first, last)); err != nil {
			return err
		}
	}
	for _, e := range edges {
		if err := add(tx.QueryContext(ctx, sqlEdgeStatuses, tenantID, e.lo, e.hi)); err != nil {
			return err
		}
	}
	return nil
}

func countViolations(ctx context.Context, tx *sql.Tx, b *store.DashboardBuilder, tenantID string, lo, hi int64) error {
	first, last, edges := split(lo, hi, dayUS)
	if first < last {
		rows, err := tx.QueryContext(ctx, `SELECT policy, severity, sum(n) FROM policy_violations_daily
WHERE tenant_id = ? AND day >= ? AND day < ? GROUP BY policy, severity`, tenantID, first, last)
		if err != nil {
			return err
		}
		err = eachRow(rows, func(r *sql.Rows) error {
			var (
				policy string
				sev    pdp.Severity
				n      int64
			)
			if err := r.Scan(&policy, &sev, &n); err != nil {
				return err
			}
			b.PolicyViolations(policy, sev, n)
			return nil
		})
		if err != nil {
			return err
		}
		rows, err = tx.QueryContext(ctx, `SELECT agent_id, sum(n) FROM agent_violations_daily
WHERE tenant_id = ? AND day >= ? AND day < ? GROUP BY agent_id`, tenantID, first, last)
		if err != nil {
			return err
		}
		err = eachRow(rows, func(r *sql.Rows) error {
			var (
				agent string
				n     int64
			)
			if err := r.Scan(&agent, &n); err != nil {
				return err
			}
			b.AgentViolations(agent, n)
			return nil
		})
		if err != nil {
			return err
		}
	}
	for _, e := range edges {
		rows, err := tx.QueryContext(ctx, sqlEdgeViolations, tenantID, e.lo, e.hi, floorDiv(e.lo, dayUS), floorDiv(e.hi-1, dayUS))
		if err != nil {
			return err
		}
		err = eachRow(rows, func(r *sql.Rows) error {
			var (
				policy, agent string
				sev           pdp.Severity
				n             int64
			)
			if err := r.Scan(&policy, &sev, &agent, &n); err != nil {
				return err
			}
			b.PolicyViolations(policy, sev, n)
			b.AgentViolations(agent, n)
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// sqlEdgeViolations counts the violations of a partial day (or two, for a
// window without a whole day inside) by policy, severity and agent. Since
// migration 0013 there is no index of a tenant's violations by time
// alone: they are read agent by agent, each a range of the covering
// partial index actions_agent_violations, for the agents that
// agent_violations_daily counts on the edge's days (every violation is
// counted there, agentless ones under "", in the transaction that records
// it; a count fallen to 0 is skipped). violation_count > 0 is written
// literally, so the planner can use the partial index.
const sqlEdgeViolations = `SELECT triggered_policy, severity, agent_id, count(*) FROM actions INDEXED BY actions_agent_violations
WHERE tenant_id = ?1 AND agent_id IN (SELECT agent_id FROM agent_violations_daily WHERE tenant_id = ?1 AND day >= ?4 AND day <= ?5 AND n != 0)
  AND created_at >= ?2 AND created_at < ?3 AND violation_count > 0 GROUP BY 1, 2, 3`

// eachRow calls fn for every row and closes rows.
func eachRow(rows *sql.Rows, fn func(*sql.Rows) error) error {
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// bounds turns an optional window into microseconds, unbounded sides
// becoming the extremes.
func bounds(since, until time.Time) (lo, hi int64) {
	lo, hi = math.MinInt64, math.MaxInt64
	if !since.IsZero() {
		lo = toMicros(store.StampUp(since))
	}
	if !until.IsZero() {
		hi = toMicros(store.StampUp(until))
	}
	return lo, hi
}

// AgentViolations' queries: the number of the agent's violations in a
// window, and one page of them, newest first, each with its evaluation
// entry's hash (by the action's audit_seq).
const (
	violationsWhere    = ` WHERE a.tenant_id = ? AND a.agent_id = ? AND a.violation_count > 0 AND a.created_at >= ? AND a.created_at < ?`
	sqlCountViolations = `SELECT count(*) FROM actions a` + violationsWhere
	sqlAgentViolations = `SELECT a.id, a.action, a.created_at, a.status, a.triggered_policy, a.severity,
    a.decision, a.risk_score, a.violation_count, a.audit_seq, l.entry_hash
FROM actions a LEFT JOIN audit_log l ON l.tenant_id = a.tenant_id AND l.seq = a.audit_seq` + violationsWhere + `
ORDER BY a.created_at DESC, a.seq DESC LIMIT ? OFFSET ?`
)

// AgentViolations returns one page of the agent's violations, newest
// first, and their number in the window, from one snapshot.
func (db *DB) AgentViolations(ctx context.Context, tenantID, agentID string, q store.ViolationQuery) ([]store.AgentViolation, int, error) {
	lo, hi := bounds(q.Since, q.Until)
	limit := int64(q.Limit)
	if limit <= 0 {
		limit = -1
	}
	var (
		total int
		out   = []store.AgentViolation{}
	)
	err := db.read(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, sqlCountViolations, tenantID, agentID, lo, hi).Scan(&total); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, sqlAgentViolations, tenantID, agentID, lo, hi, limit, max(q.Offset, 0))
		if err != nil {
			return err
		}
		return eachRow(rows, func(r *sql.Rows) error {
			var (
				v        store.AgentViolation
				at       int64
				decision sql.NullString
				seq      sql.NullInt64
				hash     sql.NullString
			)
			if err := r.Scan(&v.ActionID, &v.Action, &at, &v.Status, &v.TriggeredPolicy, &v.Severity,
				&decision, &v.RiskScore, &v.ViolationCount, &seq, &hash); err != nil {
				return err
			}
			v.Timestamp = fromMicros(at)
			v.Event = store.ViolationEvent(v.Status)
			v.Reason = decisionReason(decision)
			v.AuditSequence, v.AuditHash = seq.Int64, hash.String
			out = append(out, v)
			return nil
		})
	})
	if err != nil {
		return nil, 0, fmt.Errorf("violations of agent %q: %w", agentID, err)
	}
	return out, total, nil
}

// decisionReason is policy_result.reason of a stored decision, "" when
// there is none.
func decisionReason(decision sql.NullString) string {
	var d struct {
		Reason *string `json:"reason"`
	}
	if !decision.Valid || json.Unmarshal([]byte(decision.String), &d) != nil || d.Reason == nil {
		return ""
	}
	return *d.Reason
}
