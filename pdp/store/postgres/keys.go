package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

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

func validateKey(k store.APIKey) error {
	if err := k.Validate(); err != nil {
		return err
	}
	// TenantID is left out: a tenant it cannot name does not exist, which
	// the foreign key reports as ErrNotFound, as it would in SQLite.
	return store.CheckText(store.Text{Field: "id", Value: k.ID}, store.Text{Field: "hash", Value: k.Hash}, store.Text{Field: "prefix", Value: k.Prefix})
}

func insertKey(ctx context.Context, tx pgx.Tx, k store.APIKey) error {
	_, err := tx.Exec(ctx, `INSERT INTO api_keys (`+keyCols+`) VALUES ($1, $2, $3, $4, $5, NULL)`,
		k.ID, k.TenantID, k.Hash, k.Prefix, k.CreatedAt)
	return err
}

// CreateAPIKey stores k for an existing tenant.
func (db *DB) CreateAPIKey(ctx context.Context, k store.APIKey) (store.APIKey, error) {
	k = db.prepareKey(k)
	if err := validateKey(k); err != nil {
		return store.APIKey{}, fmt.Errorf("create key: %w", err)
	}
	if !store.Storable(k.TenantID) {
		return store.APIKey{}, fmt.Errorf("create key %q: tenant %q: %w", k.ID, k.TenantID, store.ErrNotFound)
	}
	err := db.write(ctx, func(tx pgx.Tx) error { return insertKey(ctx, tx, k) })
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
	// The hash is a secret's digest: keep it out of the errors.
	if !store.Storable(hash) {
		return store.Tenant{}, store.APIKey{}, fmt.Errorf("key lookup: %w", store.ErrNotFound)
	}
	var (
		t        store.Tenant
		k        store.APIKey
		settings []byte
		rps      *float64
		burst    *int64
	)
	err := db.pool.QueryRow(ctx, `SELECT
    t.id, t.name, t.tier, t.mode, t.approval_mode, t.approval_settings, t.revision, t.created_at,
    t.rate_limit_rps, t.rate_limit_burst,
    k.id, k.tenant_id, k.hash, k.prefix, k.created_at, k.revoked_at
FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
WHERE k.hash = $1 AND k.revoked_at IS NULL`, hash).Scan(
		&t.ID, &t.Name, &t.Tier, &t.Mode, &t.ApprovalMode, &settings, &t.Revision, &t.CreatedAt,
		&rps, &burst,
		&k.ID, &k.TenantID, &k.Hash, &k.Prefix, &k.CreatedAt, &k.RevokedAt)
	if err != nil {
		return store.Tenant{}, store.APIKey{}, fmt.Errorf("key lookup: %w", noRows(err))
	}
	t.ApprovalSettings = settings
	t.CreatedAt = t.CreatedAt.UTC()
	if rps != nil && burst != nil {
		t.RateLimit = &store.RateLimit{RequestsPerSecond: *rps, Burst: int(*burst)}
	}
	k.CreatedAt = k.CreatedAt.UTC()
	k.RevokedAt = utcPtr(k.RevokedAt)
	return t, k, nil
}

// RevokeAPIKey revokes a key; a revoked key keeps its first revocation
// time. The revocation also bumps the owning tenant's revision, in the same
// transaction: that is how other replicas learn to drop the key from their
// authentication caches, by notification or, failing that, by their
// periodic comparison of revisions (store.RevisionNotifier). Revoking a
// revoked key changes nothing and bumps nothing. Concurrent revocations
// need no lock beyond the key row's: the second waits for the first and
// then finds revoked_at set.
func (db *DB) RevokeAPIKey(ctx context.Context, id string) error {
	if !store.Storable(id) {
		return fmt.Errorf("revoke key %q: %w", id, store.ErrNotFound)
	}
	err := db.write(ctx, func(tx pgx.Tx) error {
		var tenantID string
		err := tx.QueryRow(ctx, `UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL
RETURNING tenant_id`, db.nowUTC(), id).Scan(&tenantID)
		if errors.Is(err, pgx.ErrNoRows) {
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM api_keys WHERE id = $1)`, id).Scan(&exists); err != nil {
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
