package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

const policyCols = `agent_id, name, description, step_types, whitelisted_domains, rules, enabled, mode, version, created_at, updated_at`

// policyOrder is the order of every policy listing: tenant-wide (empty
// agent_id) first. The columns are COLLATE "C", so this is byte order.
const policyOrder = ` ORDER BY agent_id, name`

func scanPolicy(row rowScanner) (pdp.Policy, error) {
	var (
		p                     pdp.Policy
		steps, domains, rules []byte
		mode                  string
	)
	if err := row.Scan(&p.AgentID, &p.Name, &p.Description, &steps, &domains, &rules, &p.Enabled, &mode, &p.Version, &p.CreatedAt, &p.UpdatedAt); err != nil {
		return pdp.Policy{}, err
	}
	if err := store.DecodePolicyLists(&p, steps, domains, rules); err != nil {
		return pdp.Policy{}, err
	}
	p.Mode = store.DecodeMode(mode)
	p.CreatedAt = p.CreatedAt.UTC()
	p.UpdatedAt = p.UpdatedAt.UTC()
	return p, nil
}

func scanPolicies(rows pgx.Rows) ([]pdp.Policy, error) {
	defer rows.Close()
	return store.Collect(rows, scanPolicy)
}

func getPolicy(ctx context.Context, q querier, key store.PolicyKey) (pdp.Policy, error) {
	return scanPolicy(q.QueryRow(ctx, `SELECT `+policyCols+` FROM policies
WHERE tenant_id = $1 AND agent_id = $2 AND name = $3`, key.TenantID, key.AgentID, key.Name))
}

// policyTx is store.PolicyTx on a write transaction.
type policyTx struct {
	ctx   context.Context
	tx    pgx.Tx
	wrote func() // nil, or told of every write
}

func (t policyTx) written(err error) error {
	if err == nil && t.wrote != nil {
		t.wrote()
	}
	return err
}

// LockTenant takes the tenant's row lock, so whether a write adds a
// policy, the count it is checked against and the revision it gets are
// all decided after every earlier write of the tenant, from any replica,
// has committed.
func (t policyTx) LockTenant(tenantID string) error {
	_, err := lockTenant(t.ctx, t.tx, tenantID)
	return err
}

func (t policyTx) GetPolicy(key store.PolicyKey) (pdp.Policy, bool, error) {
	p, err := getPolicy(t.ctx, t.tx, key)
	if errors.Is(err, pgx.ErrNoRows) {
		return pdp.Policy{}, false, nil
	}
	return p, err == nil, err
}

func (t policyTx) CountEnabled(tenantID string) (int, error) {
	return countEnabled(t.ctx, t.tx, tenantID)
}

func (t policyTx) SavePolicy(key store.PolicyKey, p pdp.Policy, insert bool) error {
	l, err := store.EncodePolicyLists(p)
	if err != nil {
		return err
	}
	if insert {
		_, err = t.tx.Exec(t.ctx, `INSERT INTO policies (tenant_id, `+policyCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			key.TenantID, key.AgentID, key.Name, p.Description, l.Steps, l.Domains, l.Rules, p.Enabled, p.ModeName(), p.Version, p.CreatedAt, p.UpdatedAt)
		return t.written(err)
	}
	_, err = t.tx.Exec(t.ctx, `UPDATE policies
SET description = $1, step_types = $2, whitelisted_domains = $3, rules = $4, enabled = $5, mode = $6, version = $7, updated_at = $8
WHERE tenant_id = $9 AND agent_id = $10 AND name = $11`,
		p.Description, l.Steps, l.Domains, l.Rules, p.Enabled, p.ModeName(), p.Version, p.UpdatedAt, key.TenantID, key.AgentID, key.Name)
	return t.written(err)
}

// BumpRevision increments the tenant's revision as the last statement of
// a write, under the lock LockTenant took, returns the new value and
// notifies it to every replica on commit.
func (t policyTx) BumpRevision(tenantID string) (uint64, error) {
	var rev uint64
	err := t.tx.QueryRow(t.ctx, `UPDATE tenants SET revision = revision + 1 WHERE id = $1
RETURNING revision, `+notifyRevision, tenantID).Scan(&rev, nil)
	return rev, t.written(err)
}

// PutPolicy inserts or replaces a policy, checking the limit when the write
// adds an enabled policy; see store.PutPolicyRequest and store.PutPolicyIn.
func (db *DB) PutPolicy(ctx context.Context, req store.PutPolicyRequest) (store.PolicyWrite, error) {
	p, key, err := store.PreparePut(req)
	if err != nil {
		return store.PolicyWrite{}, err
	}
	var out store.PolicyWrite
	err = db.write(ctx, func(tx pgx.Tx) (err error) {
		out, err = store.PutPolicyIn(policyTx{ctx: ctx, tx: tx}, req, p, db.nowUTC())
		return err
	})
	if err != nil {
		return store.PolicyWrite{}, fmt.Errorf("put policy %s: %w", key, err)
	}
	return out, nil
}

// DisablePolicy sets enabled=false at version+1.
func (db *DB) DisablePolicy(ctx context.Context, key store.PolicyKey) (store.PolicyWrite, error) {
	if !store.AllStorable(key.TenantID, key.AgentID, key.Name) {
		return store.PolicyWrite{}, fmt.Errorf("disable policy %s: %w", key, store.ErrNotFound)
	}
	var out store.PolicyWrite
	err := db.write(ctx, func(tx pgx.Tx) (err error) {
		out, err = store.DisablePolicyIn(policyTx{ctx: ctx, tx: tx}, key, "", db.nowUTC())
		return err
	})
	if err != nil {
		return store.PolicyWrite{}, fmt.Errorf("disable policy %s: %w", key, err)
	}
	return out, nil
}

// GetPolicy returns one policy, enabled or not.
func (db *DB) GetPolicy(ctx context.Context, key store.PolicyKey) (pdp.Policy, error) {
	if !store.AllStorable(key.TenantID, key.AgentID, key.Name) {
		return pdp.Policy{}, fmt.Errorf("get policy %s: %w", key, store.ErrNotFound)
	}
	p, err := getPolicy(ctx, db.pool, key)
	if err != nil {
		return pdp.Policy{}, fmt.Errorf("get policy %s: %w", key, noRows(err))
	}
	return p, nil
}

// ListPolicies returns the tenant's policies matching f.
func (db *DB) ListPolicies(ctx context.Context, tenantID string, f store.PolicyFilter) ([]pdp.Policy, error) {
	if !store.Storable(tenantID) || (f.AgentID != nil && !store.Storable(*f.AgentID)) {
		return []pdp.Policy{}, nil
	}
	q := `SELECT ` + policyCols + ` FROM policies WHERE tenant_id = $1`
	args := []any{tenantID}
	if f.AgentID != nil {
		args = append(args, *f.AgentID)
		q += fmt.Sprintf(` AND agent_id = $%d`, len(args))
	}
	if f.EnabledOnly {
		q += ` AND enabled`
	}
	rows, err := db.pool.Query(ctx, q+policyOrder, args...)
	if err != nil {
		return nil, fmt.Errorf("list policies of %q: %w", tenantID, err)
	}
	ps, err := scanPolicies(rows)
	if err != nil {
		return nil, fmt.Errorf("list policies of %q: %w", tenantID, err)
	}
	return ps, nil
}

func countEnabled(ctx context.Context, q querier, tenantID string) (int, error) {
	var n int
	err := q.QueryRow(ctx, `SELECT count(*) FROM policies WHERE tenant_id = $1 AND enabled`, tenantID).Scan(&n)
	return n, err
}

// CountEnabledPolicies counts the tenant's enabled policies, both scopes.
func (db *DB) CountEnabledPolicies(ctx context.Context, tenantID string) (int, error) {
	if !store.Storable(tenantID) {
		return 0, nil
	}
	n, err := countEnabled(ctx, db.pool, tenantID)
	if err != nil {
		return 0, fmt.Errorf("count policies of %q: %w", tenantID, err)
	}
	return n, nil
}

// TenantPolicies reads revision, mode and enabled policies in one snapshot.
func (db *DB) TenantPolicies(ctx context.Context, tenantID string) (pdp.TenantPolicies, error) {
	if !store.Storable(tenantID) {
		return pdp.TenantPolicies{}, fmt.Errorf("tenant policies of %q: %w", tenantID, store.ErrNotFound)
	}
	tp := pdp.TenantPolicies{TenantID: tenantID}
	err := db.read(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT revision, mode FROM tenants WHERE id = $1`, tenantID).Scan(&tp.Revision, &tp.Mode); err != nil {
			return noRows(err)
		}
		rows, err := tx.Query(ctx, `SELECT `+policyCols+` FROM policies WHERE tenant_id = $1 AND enabled`+policyOrder, tenantID)
		if err != nil {
			return err
		}
		tp.Policies, err = scanPolicies(rows)
		return err
	})
	if err != nil {
		return pdp.TenantPolicies{}, fmt.Errorf("tenant policies of %q: %w", tenantID, err)
	}
	return tp, nil
}
