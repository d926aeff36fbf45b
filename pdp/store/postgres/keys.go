package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

const keyCols = `id, tenant_id, hash, prefix, created_at, revoked_at, name, role, is_manager, scopes, agent_id, step_types, expires_at, created_by`

// prepareKey sets what the store owns on a key about to be created.
func (db *DB) prepareKey(k store.APIKey) store.APIKey {
	return store.PrepareKey(k, db.now)
}

func validateKey(k store.APIKey) error {
	if err := k.Validate(); err != nil {
		return err
	}
	// TenantID is left out: a tenant it cannot name does not exist, which
	// the foreign key reports as ErrNotFound, as it would in SQLite.
	return store.CheckText(store.Text{Field: "id", Value: k.ID}, store.Text{Field: "hash", Value: k.Hash}, store.Text{Field: "prefix", Value: k.Prefix})
}

func scopeStrings(k store.APIKey) []string {
	out := make([]string, len(k.Scopes))
	for i, s := range k.Scopes {
		out[i] = string(s)
	}
	return out
}

func insertKey(ctx context.Context, tx pgx.Tx, k store.APIKey) error {
	steps := k.StepTypes
	if steps == nil {
		steps = []string{}
	}
	_, err := tx.Exec(ctx, `INSERT INTO api_keys (`+keyCols+`) VALUES ($1, $2, $3, $4, $5, NULL, $6, $7, $8, $9, $10, $11, $12, $13)`,
		k.ID, k.TenantID, k.Hash, k.Prefix, k.CreatedAt,
		k.Name, string(k.Role), k.IsManager, scopeStrings(k), k.AgentID, steps, k.ExpiresAt, k.CreatedBy)
	return err
}

// keyScan holds one key row's columns (keyCols) while it is scanned.
type keyScan struct {
	k      store.APIKey
	role   string
	scopes []string
}

func (s *keyScan) dest() []any {
	return []any{&s.k.ID, &s.k.TenantID, &s.k.Hash, &s.k.Prefix, &s.k.CreatedAt, &s.k.RevokedAt,
		&s.k.Name, &s.role, &s.k.IsManager, &s.scopes, &s.k.AgentID, &s.k.StepTypes, &s.k.ExpiresAt, &s.k.CreatedBy}
}

func (s *keyScan) key() store.APIKey {
	k := s.k
	k.CreatedAt = k.CreatedAt.UTC()
	k.RevokedAt = utcPtr(k.RevokedAt)
	k.ExpiresAt = utcPtr(k.ExpiresAt)
	k.Role = pdp.Role(s.role)
	k.Scopes = make([]pdp.KeyScope, len(s.scopes))
	for i, sc := range s.scopes {
		k.Scopes[i] = pdp.KeyScope(sc)
	}
	if len(k.StepTypes) == 0 {
		k.StepTypes = nil
	}
	return k
}

func scanKey(row rowScanner) (store.APIKey, error) {
	var s keyScan
	if err := row.Scan(s.dest()...); err != nil {
		return store.APIKey{}, err
	}
	return s.key(), nil
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
// Whether it has expired is the caller's to judge (APIKey.ExpiredAt),
// against the caller's clock.
func (db *DB) TenantByKeyHash(ctx context.Context, hash string) (store.Tenant, store.APIKey, error) {
	// The hash is a secret's digest: keep it out of the errors.
	if !store.Storable(hash) {
		return store.Tenant{}, store.APIKey{}, fmt.Errorf("key lookup: %w", store.ErrNotFound)
	}
	var (
		t        store.Tenant
		ks       keyScan
		settings []byte
		rps      *float64
		burst    *int64
	)
	dest := append([]any{&t.ID, &t.Name, &t.Tier, &t.Mode, &t.ApprovalMode, &settings, &t.Revision, &t.CreatedAt,
		&rps, &burst, &t.RequireAgentKeys}, ks.dest()...)
	err := db.pool.QueryRow(ctx, `SELECT
    t.id, t.name, t.tier, t.mode, t.approval_mode, t.approval_settings, t.revision, t.created_at,
    t.rate_limit_rps, t.rate_limit_burst, t.require_agent_keys,
    k.id, k.tenant_id, k.hash, k.prefix, k.created_at, k.revoked_at, k.name, k.role, k.is_manager,
    k.scopes, k.agent_id, k.step_types, k.expires_at, k.created_by
FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
WHERE k.hash = $1 AND k.revoked_at IS NULL`, hash).Scan(dest...)
	if err != nil {
		return store.Tenant{}, store.APIKey{}, fmt.Errorf("key lookup: %w", noRows(err))
	}
	t.ApprovalSettings = settings
	t.CreatedAt = t.CreatedAt.UTC()
	if rps != nil && burst != nil {
		t.RateLimit = &store.RateLimit{RequestsPerSecond: *rps, Burst: int(*burst)}
	}
	return t, ks.key(), nil
}

// ListAPIKeys returns the tenant's keys, oldest first.
func (db *DB) ListAPIKeys(ctx context.Context, tenantID string) ([]store.APIKey, error) {
	if !store.Storable(tenantID) {
		return []store.APIKey{}, nil
	}
	rows, err := db.pool.Query(ctx, `SELECT `+keyCols+` FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	defer rows.Close()
	ks, err := store.Collect(rows, scanKey)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	return ks, nil
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

// InsertKey is store.KeyTx's.
func (t policyTx) InsertKey(k store.APIKey) error {
	if err := validateKey(k); err != nil {
		return err
	}
	return t.written(insertKey(t.ctx, t.tx, k))
}

// GetKey is store.KeyTx's.
func (t policyTx) GetKey(tenantID, id string) (store.APIKey, bool, error) {
	k, err := scanKey(t.tx.QueryRow(t.ctx, `SELECT `+keyCols+` FROM api_keys WHERE tenant_id = $1 AND id = $2`, tenantID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.APIKey{}, false, nil
	}
	return k, err == nil, err
}

// RevokeKey is store.KeyTx's.
func (t policyTx) RevokeKey(id string, at time.Time) error {
	_, err := t.tx.Exec(t.ctx, `UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`, at, id)
	return t.written(err)
}

// ExpireKey is store.KeyTx's.
func (t policyTx) ExpireKey(id string, at time.Time) error {
	_, err := t.tx.Exec(t.ctx, `UPDATE api_keys SET expires_at = $1 WHERE id = $2`, at, id)
	return t.written(err)
}

// DecisionsByApprover counts the tenant's decisions in [since, until) per
// approver.
func (db *DB) DecisionsByApprover(ctx context.Context, tenantID string, since, until time.Time) ([]store.ApproverDecisions, error) {
	if !store.Storable(tenantID) {
		return []store.ApproverDecisions{}, nil
	}
	rows, err := db.pool.Query(ctx, `SELECT approver_id,
    count(*) FILTER (WHERE status = 'approved'), count(*) FILTER (WHERE status = 'denied')
FROM actions
WHERE tenant_id = $1 AND status IN ('approved', 'denied') AND decided_at >= $2 AND decided_at < $3
GROUP BY approver_id
ORDER BY count(*) DESC, approver_id
LIMIT $4`, tenantID, since, until, store.MaxApproversListed)
	if err != nil {
		return nil, fmt.Errorf("decisions by approver: %w", err)
	}
	defer rows.Close()
	out, err := store.Collect(rows, func(r rowScanner) (store.ApproverDecisions, error) {
		var a store.ApproverDecisions
		return a, r.Scan(&a.ApproverID, &a.Approved, &a.Denied)
	})
	if err != nil {
		return nil, fmt.Errorf("decisions by approver: %w", err)
	}
	return out, nil
}
