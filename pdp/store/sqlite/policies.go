package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

const policyCols = `agent_id, name, description, step_types, whitelisted_domains, rules, enabled, mode, version, created_at, updated_at`

// policyOrder is the order of every policy listing: tenant-wide (”) first.
const policyOrder = ` ORDER BY agent_id, name`

func scanPolicy(row rowScanner) (pdp.Policy, error) {
	var (
		p                     pdp.Policy
		steps, domains, rules []byte
		created, updated      int64
		mode                  string
	)
	if err := row.Scan(&p.AgentID, &p.Name, &p.Description, &steps, &domains, &rules, &p.Enabled, &mode, &p.Version, &created, &updated); err != nil {
		return pdp.Policy{}, err
	}
	if err := store.DecodePolicyLists(&p, steps, domains, rules); err != nil {
		return pdp.Policy{}, err
	}
	p.Mode = store.DecodeMode(mode)
	p.CreatedAt = fromMicros(created)
	p.UpdatedAt = fromMicros(updated)
	return p, nil
}

func scanPolicies(rows *sql.Rows) ([]pdp.Policy, error) {
	defer rows.Close()
	return store.Collect(rows, scanPolicy)
}

func getPolicy(ctx context.Context, q queryRower, key store.PolicyKey) (pdp.Policy, error) {
	return scanPolicy(q.QueryRowContext(ctx, `SELECT `+policyCols+` FROM policies
WHERE tenant_id = ? AND agent_id = ? AND name = ?`, key.TenantID, key.AgentID, key.Name))
}

// policyTx is store.PolicyTx on a write transaction.
type policyTx struct {
	ctx   context.Context
	tx    *sql.Tx
	wrote func(error) // nil, or told of every write's outcome
}

func (t policyTx) written(err error) error {
	if t.wrote != nil {
		t.wrote(err)
	}
	return err
}

// LockTenant checks the tenant exists. The single write connection and
// BEGIN IMMEDIATE already serialize every write.
func (t policyTx) LockTenant(tenantID string) error {
	var one int
	err := t.tx.QueryRowContext(t.ctx, `SELECT 1 FROM tenants WHERE id = ?`, tenantID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("tenant %q: %w", tenantID, store.ErrNotFound)
	}
	return err
}

func (t policyTx) GetPolicy(key store.PolicyKey) (pdp.Policy, bool, error) {
	p, err := getPolicy(t.ctx, t.tx, key)
	if errors.Is(err, sql.ErrNoRows) {
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
		_, err = t.tx.ExecContext(t.ctx, `INSERT INTO policies (tenant_id, `+policyCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			key.TenantID, key.AgentID, key.Name, p.Description, string(l.Steps), string(l.Domains), string(l.Rules),
			p.Enabled, p.ModeName(), p.Version, toMicros(p.CreatedAt), toMicros(p.UpdatedAt))
		return t.written(err)
	}
	_, err = t.tx.ExecContext(t.ctx, `UPDATE policies
SET description = ?, step_types = ?, whitelisted_domains = ?, rules = ?, enabled = ?, mode = ?, version = ?, updated_at = ?
WHERE tenant_id = ? AND agent_id = ? AND name = ?`,
		p.Description, string(l.Steps), string(l.Domains), string(l.Rules), p.Enabled, p.ModeName(), p.Version, toMicros(p.UpdatedAt),
		key.TenantID, key.AgentID, key.Name)
	return t.written(err)
}

func (t policyTx) BumpRevision(tenantID string) (uint64, error) {
	var rev uint64
	err := t.tx.QueryRowContext(t.ctx, `UPDATE tenants SET revision = revision + 1 WHERE id = ? RETURNING revision`, tenantID).Scan(&rev)
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
	err = db.write(ctx, func(tx *sql.Tx) (err error) {
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
	var out store.PolicyWrite
	err := db.write(ctx, func(tx *sql.Tx) (err error) {
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
	p, err := getPolicy(ctx, db.r, key)
	if err != nil {
		return pdp.Policy{}, fmt.Errorf("get policy %s: %w", key, noRows(err))
	}
	return p, nil
}

// ListPolicies returns the tenant's policies matching f.
func (db *DB) ListPolicies(ctx context.Context, tenantID string, f store.PolicyFilter) ([]pdp.Policy, error) {
	q := `SELECT ` + policyCols + ` FROM policies WHERE tenant_id = ?`
	args := []any{tenantID}
	if f.AgentID != nil {
		q += ` AND agent_id = ?`
		args = append(args, *f.AgentID)
	}
	if f.EnabledOnly {
		q += ` AND enabled = 1`
	}
	rows, err := db.r.QueryContext(ctx, q+policyOrder, args...)
	if err != nil {
		return nil, fmt.Errorf("list policies of %q: %w", tenantID, err)
	}
	ps, err := scanPolicies(rows)
	if err != nil {
		return nil, fmt.Errorf("list policies of %q: %w", tenantID, err)
	}
	return ps, nil
}

func countEnabled(ctx context.Context, q queryRower, tenantID string) (int, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM policies WHERE tenant_id = ? AND enabled = 1`, tenantID).Scan(&n)
	return n, err
}

// CountEnabledPolicies counts the tenant's enabled policies, both scopes.
func (db *DB) CountEnabledPolicies(ctx context.Context, tenantID string) (int, error) {
	n, err := countEnabled(ctx, db.r, tenantID)
	if err != nil {
		return 0, fmt.Errorf("count policies of %q: %w", tenantID, err)
	}
	return n, nil
}

// TenantPolicies reads revision, mode and enabled policies in one snapshot.
func (db *DB) TenantPolicies(ctx context.Context, tenantID string) (pdp.TenantPolicies, error) {
	tp := pdp.TenantPolicies{TenantID: tenantID}
	err := db.read(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT revision, mode FROM tenants WHERE id = ?`, tenantID).Scan(&tp.Revision, &tp.Mode); err != nil {
			return noRows(err)
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+policyCols+` FROM policies WHERE tenant_id = ? AND enabled = 1`+policyOrder, tenantID)
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
