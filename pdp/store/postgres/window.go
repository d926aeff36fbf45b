package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// ActionsInWindow returns one page of the tenant's actions in w, newest
// first. The page after an action starts below its (created_at, seq).
func (db *DB) ActionsInWindow(ctx context.Context, tenantID string, w store.ActionWindow) ([]store.ActionRecord, error) {
	if !store.Storable(tenantID) {
		return []store.ActionRecord{}, nil
	}
	q := `SELECT ` + actionCols + ` FROM actions WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3`
	args := []any{tenantID, w.Since, w.Until}
	if w.After != nil {
		if !store.Storable(w.After.ID) {
			return []store.ActionRecord{}, nil
		}
		q += ` AND (created_at, seq) < ($4, (SELECT seq FROM actions WHERE id = $5))`
		args = append(args, w.After.CreatedAt, w.After.ID)
	}
	args = append(args, int64(max(w.Limit, 1)))
	rows, err := db.pool.Query(ctx, q+actionOrder+fmt.Sprintf(` LIMIT $%d`, len(args)), args...)
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
	out := []store.PolicyHits{}
	if !store.Storable(tenantID) {
		return out, nil
	}
	rows, err := db.pool.Query(ctx, `SELECT h->>'policy' AS policy, count(*) AS n
FROM actions a, json_array_elements(a.decision->'shadow') h
WHERE a.tenant_id = $1 AND a.created_at >= $2 AND a.created_at < $3 AND a.decision::text LIKE '%"shadow":[%'
GROUP BY policy ORDER BY n DESC, policy`, tenantID, store.StampUp(since), store.StampUp(until))
	if err != nil {
		return nil, fmt.Errorf("shadow hits of %q: %w", tenantID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var h store.PolicyHits
		if err := rows.Scan(&h.Policy, &h.Count); err != nil {
			return nil, fmt.Errorf("shadow hits of %q: %w", tenantID, err)
		}
		out = append(out, h)
	}
	return out, rows.Err()
}
