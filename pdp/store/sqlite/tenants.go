package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

const tenantCols = `id, name, tier, mode, approval_mode, approval_settings, revision, created_at, rate_limit_rps, rate_limit_burst, require_agent_keys`

func scanTenant(row rowScanner) (store.Tenant, error) {
	var (
		t        store.Tenant
		settings sql.NullString
		created  int64
		rps      sql.NullFloat64
		burst    sql.NullInt64
	)
	if err := row.Scan(&t.ID, &t.Name, &t.Tier, &t.Mode, &t.ApprovalMode, &settings, &t.Revision, &created, &rps, &burst, &t.RequireAgentKeys); err != nil {
		return store.Tenant{}, err
	}
	t.ApprovalSettings = fromNullJSON(settings)
	t.CreatedAt = fromMicros(created)
	if rps.Valid {
		t.RateLimit = &store.RateLimit{RequestsPerSecond: rps.Float64, Burst: int(burst.Int64)}
	}
	return t, nil
}

// rateLimitArgs returns a tenant's rate limit as the values of its two
// columns, NULL for none.
func rateLimitArgs(l *store.RateLimit) (rps, burst any) {
	if l == nil {
		return nil, nil
	}
	return l.RequestsPerSecond, l.Burst
}

// CreateTenant stores t at revision 1 together with keys.
func (db *DB) CreateTenant(ctx context.Context, t store.Tenant, keys ...store.APIKey) (store.Tenant, error) {
	t.Revision = 1
	if t.CreatedAt.IsZero() {
		t.CreatedAt = db.nowUTC()
	} else {
		t.CreatedAt = stamp(t.CreatedAt)
	}
	if err := t.Validate(); err != nil {
		return store.Tenant{}, fmt.Errorf("create tenant: %w", err)
	}
	keys = append([]store.APIKey(nil), keys...) // the caller's slice is not ours to change
	for i := range keys {
		keys[i] = db.prepareKey(keys[i])
		keys[i].TenantID = t.ID
		if err := keys[i].Validate(); err != nil {
			return store.Tenant{}, fmt.Errorf("create tenant %q: key %d: %w", t.ID, i, err)
		}
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		rps, burst := rateLimitArgs(t.RateLimit)
		if _, err := tx.ExecContext(ctx, `INSERT INTO tenants (`+tenantCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			t.ID, t.Name, t.Tier, t.Mode, t.ApprovalMode, nullJSON(t.ApprovalSettings), t.Revision, toMicros(t.CreatedAt), rps, burst, t.RequireAgentKeys); err != nil {
			return err
		}
		for _, k := range keys {
			if err := insertKey(ctx, tx, k); err != nil {
				return err
			}
		}
		return nil
	})
	switch {
	case isDuplicate(err):
		return store.Tenant{}, fmt.Errorf("create tenant %q: %w", t.ID, store.ErrDuplicate)
	case err != nil:
		return store.Tenant{}, fmt.Errorf("create tenant %q: %w", t.ID, err)
	}
	return t, nil
}

// GetTenant returns one tenant.
func (db *DB) GetTenant(ctx context.Context, id string) (store.Tenant, error) {
	t, err := scanTenant(db.r.QueryRowContext(ctx, `SELECT `+tenantCols+` FROM tenants WHERE id = ?`, id))
	if err != nil {
		return store.Tenant{}, fmt.Errorf("get tenant %q: %w", id, noRows(err))
	}
	return t, nil
}

// ListTenants returns every tenant, oldest first.
func (db *DB) ListTenants(ctx context.Context) ([]store.Tenant, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+tenantCols+` FROM tenants ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	defer rows.Close()
	ts, err := store.Collect(rows, scanTenant)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return ts, nil
}

// UpdateTenant applies u and bumps the tenant's revision.
func (db *DB) UpdateTenant(ctx context.Context, id string, u store.TenantUpdate) (store.Tenant, error) {
	var t store.Tenant
	err := db.write(ctx, func(tx *sql.Tx) error {
		var err error
		t, err = scanTenant(tx.QueryRowContext(ctx, `SELECT `+tenantCols+` FROM tenants WHERE id = ?`, id))
		if err != nil {
			return noRows(err)
		}
		u.Apply(&t)
		if err := t.Validate(); err != nil {
			return err
		}
		t.Revision++
		rps, burst := rateLimitArgs(t.RateLimit)
		_, err = tx.ExecContext(ctx, `UPDATE tenants
SET name = ?, tier = ?, mode = ?, approval_mode = ?, approval_settings = ?, revision = ?, rate_limit_rps = ?, rate_limit_burst = ?,
    require_agent_keys = ?
WHERE id = ?`, t.Name, t.Tier, t.Mode, t.ApprovalMode, nullJSON(t.ApprovalSettings), t.Revision, rps, burst, t.RequireAgentKeys, id)
		return err
	})
	if err != nil {
		return store.Tenant{}, fmt.Errorf("update tenant %q: %w", id, err)
	}
	return t, nil
}

// CountTenants returns how many tenants exist.
func (db *DB) CountTenants(ctx context.Context) (int, error) {
	var n int
	if err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM tenants`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count tenants: %w", err)
	}
	return n, nil
}

// noRows turns sql.ErrNoRows into store.ErrNotFound and passes other
// errors through; callers add what was looked up.
func noRows(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}
