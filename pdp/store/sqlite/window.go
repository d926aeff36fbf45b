package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// ActionsInWindow returns one page of the tenant's actions in w, newest
// first. The page after an action starts below its (created_at, seq).
func (db *DB) ActionsInWindow(ctx context.Context, tenantID string, w store.ActionWindow) ([]store.ActionRecord, error) {
	q := `SELECT ` + actionCols + ` FROM actions WHERE tenant_id = ? AND created_at >= ? AND created_at < ?`
	args := []any{tenantID, toMicros(w.Since), toMicros(w.Until)}
	if w.After != nil {
		q += ` AND (created_at, seq) < (?, (SELECT seq FROM actions WHERE id = ?))`
		args = append(args, toMicros(w.After.CreatedAt), w.After.ID)
	}
	rows, err := db.r.QueryContext(ctx, q+actionOrder+` LIMIT ?`, append(args, max(w.Limit, 1))...)
	if err != nil {
		return nil, fmt.Errorf("actions of %q in a window: %w", tenantID, err)
	}
	defer rows.Close()
	as, err := store.Collect(rows, scanAction)
	if err != nil {
		return nil, fmt.Errorf("actions of %q in a window: %w", tenantID, err)
	}
	return as, nil
}

// ShadowHitsByPolicy counts the shadow hits recorded in the window's
// decisions. Only decisions that mention "shadow" are parsed.
func (db *DB) ShadowHitsByPolicy(ctx context.Context, tenantID string, since, until time.Time) ([]store.PolicyHits, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT json_extract(h.value, '$.policy') AS policy, count(*) AS n
FROM actions a, json_each(a.decision, '$.shadow') h
WHERE a.tenant_id = ? AND a.created_at >= ? AND a.created_at < ? AND a.decision LIKE '%"shadow":[%'
GROUP BY policy ORDER BY n DESC, policy`, tenantID, toMicros(store.StampUp(since)), toMicros(store.StampUp(until)))
	if err != nil {
		return nil, fmt.Errorf("shadow hits of %q: %w", tenantID, err)
	}
	defer rows.Close()
	out := []store.PolicyHits{}
	for rows.Next() {
		var h store.PolicyHits
		if err := rows.Scan(&h.Policy, &h.Count); err != nil {
			return nil, fmt.Errorf("shadow hits of %q: %w", tenantID, err)
		}
		out = append(out, h)
	}
	return out, rows.Err()
}
