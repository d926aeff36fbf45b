package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

const keyCols = `id, tenant_id, hash, prefix, created_at, revoked_at`

// prepareKey sets what the store owns on a key about to be created.
func (db *DB) prepareKey(k store.APIKey) store.APIKey {
	if k.CreatedAt.IsZero() {
		k.CreatedAt = db.nowUTC()
	} else {
		k.CreatedAt = stamp(k.CreatedAt)
	}
	k.RevokedAt = nil
	return k
}

func insertKey(ctx context.Context, tx *sql.Tx, k store.APIKey) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO api_keys (`+keyCols+`) VALUES (?, ?, ?, ?, ?, NULL)`,
		k.ID, k.TenantID, k.Hash, k.Prefix, toMicros(k.CreatedAt))
	return err
}

// CreateAPIKey stores k for an existing tenant.
func (db *DB) CreateAPIKey(ctx context.Context, k store.APIKey) (store.APIKey, error) {
	k = db.prepareKey(k)
	if err := k.Validate(); err != nil {
		return store.APIKey{}, fmt.Errorf("create key: %w", err)
	}
	err := db.write(ctx, func(tx *sql.Tx) error { return insertKey(ctx, tx, k) })
	switch {
	case isDuplicate(err):
		return store.APIKey{}, fmt.Errorf("create key %q: %w", k.ID, store.ErrDuplicate)
	case isMissingParent(err):
		return store.APIKey{}, fmt.Errorf("create key %q: tenant %q: %w", k.ID, k.TenantID, store.ErrNotFound)
	case err != nil:
		return store.APIKey{}, fmt.Errorf("create key %q: %w", k.ID, err)
	}
	return k, nil
}

// TenantByKeyHash returns the tenant of the unrevoked key with this hash.
func (db *DB) TenantByKeyHash(ctx context.Context, hash string) (store.Tenant, store.APIKey, error) {
	var (
		t                  store.Tenant
		k                  store.APIKey
		settings           sql.NullString
		tCreated, kCreated int64
		revoked            sql.NullInt64
		rps                sql.NullFloat64
		burst              sql.NullInt64
	)
	err := db.r.QueryRowContext(ctx, `SELECT
    t.id, t.name, t.tier, t.mode, t.approval_mode, t.approval_settings, t.revision, t.created_at,
    t.rate_limit_rps, t.rate_limit_burst,
    k.id, k.tenant_id, k.hash, k.prefix, k.created_at, k.revoked_at
FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
WHERE k.hash = ? AND k.revoked_at IS NULL`, hash).Scan(
		&t.ID, &t.Name, &t.Tier, &t.Mode, &t.ApprovalMode, &settings, &t.Revision, &tCreated,
		&rps, &burst,
		&k.ID, &k.TenantID, &k.Hash, &k.Prefix, &kCreated, &revoked)
	if err != nil {
		// The hash is a secret's digest: keep it out of the error.
		return store.Tenant{}, store.APIKey{}, fmt.Errorf("key lookup: %w", noRows(err))
	}
	t.ApprovalSettings = fromNullJSON(settings)
	t.CreatedAt = fromMicros(tCreated)
	if rps.Valid {
		t.RateLimit = &store.RateLimit{RequestsPerSecond: rps.Float64, Burst: int(burst.Int64)}
	}
	k.CreatedAt = fromMicros(kCreated)
	k.RevokedAt = fromNullMicros(revoked)
	return t, k, nil
}

// RevokeAPIKey revokes a key; a revoked key keeps its first revocation
// time. As on PostgreSQL, the revocation bumps the owning tenant's
// revision in the same transaction, so another process serving the same
// file drops the key from its authentication cache at its next comparison
// of revisions rather than at the cache's TTL. Revoking a revoked key
// changes nothing and bumps nothing.
func (db *DB) RevokeAPIKey(ctx context.Context, id string) error {
	now := toMicros(db.nowUTC())
	err := db.write(ctx, func(tx *sql.Tx) error {
		var tenantID string
		err := tx.QueryRowContext(ctx, `UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL
RETURNING tenant_id`, now, id).Scan(&tenantID)
		if errors.Is(err, sql.ErrNoRows) {
			var exists bool
			if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM api_keys WHERE id = ?)`, id).Scan(&exists); err != nil {
				return err
			}
			if !exists {
				return store.ErrNotFound
			}
			return nil
		}
		if err != nil {
			return err
		}
		_, err = policyTx{ctx: ctx, tx: tx}.BumpRevision(tenantID)
		return err
	})
	if err != nil {
		return fmt.Errorf("revoke key %q: %w", id, err)
	}
	return nil
}
