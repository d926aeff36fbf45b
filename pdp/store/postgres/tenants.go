package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

const tenantCols = `id, name, tier, mode, approval_mode, approval_settings, revision, created_at, rate_limit_rps, rate_limit_burst, require_agent_keys`

func scanTenant(row rowScanner) (store.Tenant, error) {
	var (
		t        store.Tenant
		settings []byte // *[]byte scans json verbatim, NULL as nil
		rps      *float64
		burst    *int64
	)
	if err := row.Scan(&t.ID, &t.Name, &t.Tier, &t.Mode, &t.ApprovalMode, &settings, &t.Revision, &t.CreatedAt, &rps, &burst, &t.RequireAgentKeys); err != nil {
		return store.Tenant{}, err
	}
	t.ApprovalSettings = settings
	t.CreatedAt = t.CreatedAt.UTC()
	if rps != nil && burst != nil { // the schema keeps both NULL or neither
		t.RateLimit = &store.RateLimit{RequestsPerSecond: *rps, Burst: int(*burst)}
	}
	return t, nil
}

// rateLimitArgs returns a tenant's rate limit as the values of its two
// columns, NULL for none.
func rateLimitArgs(l *store.RateLimit) (rps *float64, burst *int64) {
	if l == nil {
		return nil, nil
	}
	b := int64(l.Burst)
	return &l.RequestsPerSecond, &b
}

func checkTenantText(t store.Tenant) error {
	return store.CheckText(store.Text{Field: "id", Value: t.ID}, store.Text{Field: "name", Value: t.Name}, store.Text{Field: "approval_mode", Value: t.ApprovalMode},
		store.Text{Field: "approval_settings", Value: string(t.ApprovalSettings)})
}

// CreateTenant stores t at revision 1 together with keys, and notifies
// revision 1 so other replicas publish the tenant before its first request.
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
	if err := checkTenantText(t); err != nil {
		return store.Tenant{}, fmt.Errorf("create tenant: %w", err)
	}
	keys = append([]store.APIKey(nil), keys...) // the caller's slice is not ours to change
	for i := range keys {
		keys[i] = db.prepareKey(keys[i])
		keys[i].TenantID = t.ID
		if err := validateKey(keys[i]); err != nil {
			return store.Tenant{}, fmt.Errorf("create tenant %q: key %d: %w", t.ID, i, err)
		}
	}
	err := db.write(ctx, func(tx pgx.Tx) error {
		rps, burst := rateLimitArgs(t.RateLimit)
		if _, err := tx.Exec(ctx, `INSERT INTO tenants (`+tenantCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
RETURNING `+notifyRevision,
			t.ID, t.Name, t.Tier, t.Mode, t.ApprovalMode, []byte(t.ApprovalSettings), t.Revision, t.CreatedAt, rps, burst, t.RequireAgentKeys); err != nil {
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
	if !store.Storable(id) {
		return store.Tenant{}, fmt.Errorf("get tenant %q: %w", id, store.ErrNotFound)
	}
	t, err := scanTenant(db.pool.QueryRow(ctx, `SELECT `+tenantCols+` FROM tenants WHERE id = $1`, id))
	if err != nil {
		return store.Tenant{}, fmt.Errorf("get tenant %q: %w", id, noRows(err))
	}
	return t, nil
}

// ListTenants returns every tenant, oldest first.
func (db *DB) ListTenants(ctx context.Context) ([]store.Tenant, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+tenantCols+` FROM tenants ORDER BY created_at, id`)
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

// UpdateTenant applies u and bumps (and notifies) the tenant's revision,
// holding the tenant's row lock from the read to the write.
func (db *DB) UpdateTenant(ctx context.Context, id string, u store.TenantUpdate) (store.Tenant, error) {
	if !store.Storable(id) {
		return store.Tenant{}, fmt.Errorf("update tenant %q: %w", id, store.ErrNotFound)
	}
	var t store.Tenant
	err := db.write(ctx, func(tx pgx.Tx) error {
		var err error
		t, err = scanTenant(tx.QueryRow(ctx, `SELECT `+tenantCols+` FROM tenants WHERE id = $1 FOR NO KEY UPDATE`, id))
		if err != nil {
			return noRows(err)
		}
		u.Apply(&t)
		if err := t.Validate(); err != nil {
			return err
		}
		if err := checkTenantText(t); err != nil {
			return err
		}
		rps, burst := rateLimitArgs(t.RateLimit)
		return tx.QueryRow(ctx, `UPDATE tenants
SET name = $1, tier = $2, mode = $3, approval_mode = $4, approval_settings = $5, revision = revision + 1,
    rate_limit_rps = $7, rate_limit_burst = $8, require_agent_keys = $9
WHERE id = $6
RETURNING revision, `+notifyRevision, t.Name, t.Tier, t.Mode, t.ApprovalMode, []byte(t.ApprovalSettings), id, rps, burst, t.RequireAgentKeys).Scan(&t.Revision, nil)
	})
	if err != nil {
		return store.Tenant{}, fmt.Errorf("update tenant %q: %w", id, err)
	}
	return t, nil
}

// CountTenants returns how many tenants exist.
func (db *DB) CountTenants(ctx context.Context) (int, error) {
	var n int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM tenants`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count tenants: %w", err)
	}
	return n, nil
}
