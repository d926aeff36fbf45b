package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

const keyCols = `id, tenant_id, hash, prefix, created_at, revoked_at, name, role, is_manager, scopes, agent_id, step_types, expires_at, created_by`

// prepareKey sets what the store owns on a key about to be created.
func (db *DB) prepareKey(k store.APIKey) store.APIKey {
	return store.PrepareKey(k, db.now)
}

func insertKey(ctx context.Context, tx *sql.Tx, k store.APIKey) error {
	scopes, err := json.Marshal(k.Scopes)
	if err != nil {
		return err
	}
	steps := k.StepTypes
	if steps == nil {
		steps = []string{}
	}
	stepsJSON, err := json.Marshal(steps)
	if err != nil {
		return err
	}
	var expires sql.NullInt64
	if k.ExpiresAt != nil {
		expires = sql.NullInt64{Int64: toMicros(*k.ExpiresAt), Valid: true}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO api_keys (`+keyCols+`) VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.TenantID, k.Hash, k.Prefix, toMicros(k.CreatedAt),
		k.Name, string(k.Role), k.IsManager, string(scopes), k.AgentID, string(stepsJSON), expires, k.CreatedBy)
	return err
}

// keyScan holds one key row's columns (keyCols) while it is scanned.
type keyScan struct {
	k                 store.APIKey
	created           int64
	revoked, expires  sql.NullInt64
	role, scopes, stp string
}

func (s *keyScan) dest() []any {
	return []any{&s.k.ID, &s.k.TenantID, &s.k.Hash, &s.k.Prefix, &s.created, &s.revoked,
		&s.k.Name, &s.role, &s.k.IsManager, &s.scopes, &s.k.AgentID, &s.stp, &s.expires, &s.k.CreatedBy}
}

func (s *keyScan) key() (store.APIKey, error) {
	k := s.k
	k.CreatedAt = fromMicros(s.created)
	k.RevokedAt = fromNullMicros(s.revoked)
	k.ExpiresAt = fromNullMicros(s.expires)
	k.Role = pdp.Role(s.role)
	if err := json.Unmarshal([]byte(s.scopes), &k.Scopes); err != nil {
		return store.APIKey{}, fmt.Errorf("key %q: scopes: %w", k.ID, err)
	}
	if err := json.Unmarshal([]byte(s.stp), &k.StepTypes); err != nil {
		return store.APIKey{}, fmt.Errorf("key %q: step_types: %w", k.ID, err)
	}
	if len(k.StepTypes) == 0 {
		k.StepTypes = nil
	}
	return k, nil
}

func scanKey(row rowScanner) (store.APIKey, error) {
	var s keyScan
	if err := row.Scan(s.dest()...); err != nil {
		return store.APIKey{}, err
	}
	return s.key()
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
// Whether it has expired is the caller's to judge (APIKey.ExpiredAt),
// against the caller's clock.
// sqlKeyLookup is TenantByKeyHash's query, which every authenticated
// request runs: prepared once per read connection (DB.keyLookup) rather
// than parsed and planned on every call.
const sqlKeyLookup = `SELECT
    t.id, t.name, t.tier, t.mode, t.approval_mode, t.approval_settings, t.revision, t.created_at,
    t.rate_limit_rps, t.rate_limit_burst, t.require_agent_keys,
    k.id, k.tenant_id, k.hash, k.prefix, k.created_at, k.revoked_at, k.name, k.role, k.is_manager,
    k.scopes, k.agent_id, k.step_types, k.expires_at, k.created_by
FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
WHERE k.hash = ? AND k.revoked_at IS NULL`

func (db *DB) TenantByKeyHash(ctx context.Context, hash string) (store.Tenant, store.APIKey, error) {
	var (
		t        store.Tenant
		ks       keyScan
		settings sql.NullString
		tCreated int64
		rps      sql.NullFloat64
		burst    sql.NullInt64
	)
	dest := append([]any{&t.ID, &t.Name, &t.Tier, &t.Mode, &t.ApprovalMode, &settings, &t.Revision, &tCreated,
		&rps, &burst, &t.RequireAgentKeys}, ks.dest()...)
	err := db.keyLookup.QueryRowContext(ctx, hash).Scan(dest...)
	if err != nil {
		// The hash is a secret's digest: keep it out of the error.
		return store.Tenant{}, store.APIKey{}, fmt.Errorf("key lookup: %w", noRows(err))
	}
	t.ApprovalSettings = fromNullJSON(settings)
	t.CreatedAt = fromMicros(tCreated)
	if rps.Valid {
		t.RateLimit = &store.RateLimit{RequestsPerSecond: rps.Float64, Burst: int(burst.Int64)}
	}
	k, err := ks.key()
	if err != nil {
		return store.Tenant{}, store.APIKey{}, fmt.Errorf("key lookup: %w", err)
	}
	return t, k, nil
}

// ListAPIKeys returns the tenant's keys, oldest first.
func (db *DB) ListAPIKeys(ctx context.Context, tenantID string) ([]store.APIKey, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+keyCols+` FROM api_keys WHERE tenant_id = ? ORDER BY created_at, id`, tenantID)
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

// InsertKey is store.KeyTx's.
func (t policyTx) InsertKey(k store.APIKey) error {
	return t.written(insertKey(t.ctx, t.tx, k))
}

// GetKey is store.KeyTx's.
func (t policyTx) GetKey(tenantID, id string) (store.APIKey, bool, error) {
	k, err := scanKey(t.tx.QueryRowContext(t.ctx, `SELECT `+keyCols+` FROM api_keys WHERE tenant_id = ? AND id = ?`, tenantID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.APIKey{}, false, nil
	}
	return k, err == nil, err
}

// RevokeKey is store.KeyTx's.
func (t policyTx) RevokeKey(id string, at time.Time) error {
	_, err := t.tx.ExecContext(t.ctx, `UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, toMicros(at), id)
	return t.written(err)
}

// ExpireKey is store.KeyTx's.
func (t policyTx) ExpireKey(id string, at time.Time) error {
	_, err := t.tx.ExecContext(t.ctx, `UPDATE api_keys SET expires_at = ? WHERE id = ?`, toMicros(at), id)
	return t.written(err)
}

// DecisionsByApprover counts the tenant's decisions in [since, until) per
// approver.
func (db *DB) DecisionsByApprover(ctx context.Context, tenantID string, since, until time.Time) ([]store.ApproverDecisions, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT approver_id,
    sum(status = 'approved'), sum(status = 'denied')
FROM actions
WHERE tenant_id = ? AND status IN ('approved', 'denied') AND decided_at >= ? AND decided_at < ?
GROUP BY approver_id
ORDER BY count(*) DESC, approver_id
LIMIT ?`, tenantID, toMicros(since), toMicros(until), store.MaxApproversListed)
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
