package postgres

import (
	"context"
	"fmt"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

const versionCols = `agent_id, name, version, action, actor, rolled_back_from, description, step_types, whitelisted_domains, rules, enabled, mode, created_at, updated_at`

func scanVersion(row rowScanner) (store.PolicyVersion, error) {
	var (
		v                     store.PolicyVersion
		steps, domains, rules []byte
		mode                  string
	)
	p := &v.Policy
	if err := row.Scan(&p.AgentID, &p.Name, &p.Version, &v.Action, &v.Actor, &v.RolledBackFrom,
		&p.Description, &steps, &domains, &rules, &p.Enabled, &mode, &p.CreatedAt, &p.UpdatedAt); err != nil {
		return store.PolicyVersion{}, err
	}
	if err := store.DecodePolicyLists(p, steps, domains, rules); err != nil {
		return store.PolicyVersion{}, err
	}
	p.Mode = store.DecodeMode(mode)
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	return v, nil
}

// SaveVersion stores the version a write made.
func (t policyTx) SaveVersion(key store.PolicyKey, v store.PolicyVersion) error {
	p := v.Policy
	l, err := store.EncodePolicyLists(p)
	if err != nil {
		return err
	}
	_, err = t.tx.Exec(t.ctx, `INSERT INTO policy_versions (tenant_id, `+versionCols+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
		key.TenantID, key.AgentID, key.Name, p.Version, v.Action, v.Actor, v.RolledBackFrom,
		p.Description, l.Steps, l.Domains, l.Rules, p.Enabled, p.ModeName(), p.CreatedAt, p.UpdatedAt)
	return t.written(err)
}

// PolicyVersions returns one policy's versions, newest first.
func (db *DB) PolicyVersions(ctx context.Context, key store.PolicyKey) ([]store.PolicyVersion, error) {
	if !store.AllStorable(key.TenantID, key.AgentID, key.Name) {
		return nil, fmt.Errorf("versions of policy %s: %w", key, store.ErrNotFound)
	}
	rows, err := db.pool.Query(ctx, `SELECT `+versionCols+` FROM policy_versions
WHERE tenant_id = $1 AND agent_id = $2 AND name = $3 ORDER BY version DESC`, key.TenantID, key.AgentID, key.Name)
	if err != nil {
		return nil, fmt.Errorf("versions of policy %s: %w", key, err)
	}
	defer rows.Close()
	vs, err := store.Collect(rows, scanVersion)
	if err != nil {
		return nil, fmt.Errorf("versions of policy %s: %w", key, err)
	}
	if len(vs) == 0 {
		return nil, fmt.Errorf("versions of policy %s: %w", key, store.ErrNotFound)
	}
	return vs, nil
}

// PolicyVersion returns one version of one policy.
func (db *DB) PolicyVersion(ctx context.Context, key store.PolicyKey, version int) (store.PolicyVersion, error) {
	if !store.AllStorable(key.TenantID, key.AgentID, key.Name) {
		return store.PolicyVersion{}, fmt.Errorf("version %d of policy %s: %w", version, key, store.ErrNotFound)
	}
	v, err := scanVersion(db.pool.QueryRow(ctx, `SELECT `+versionCols+` FROM policy_versions
WHERE tenant_id = $1 AND agent_id = $2 AND name = $3 AND version = $4`, key.TenantID, key.AgentID, key.Name, version))
	if err != nil {
		return store.PolicyVersion{}, fmt.Errorf("version %d of policy %s: %w", version, key, noRows(err))
	}
	return v, nil
}
