package sqlite

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
		created, updated      int64
	)
	p := &v.Policy
	if err := row.Scan(&p.AgentID, &p.Name, &p.Version, &v.Action, &v.Actor, &v.RolledBackFrom,
		&p.Description, &steps, &domains, &rules, &p.Enabled, &mode, &created, &updated); err != nil {
		return store.PolicyVersion{}, err
	}
	if err := store.DecodePolicyLists(p, steps, domains, rules); err != nil {
		return store.PolicyVersion{}, err
	}
	p.Mode = store.DecodeMode(mode)
	p.CreatedAt, p.UpdatedAt = fromMicros(created), fromMicros(updated)
	return v, nil
}

// SaveVersion stores the version a write made.
func (t policyTx) SaveVersion(key store.PolicyKey, v store.PolicyVersion) error {
	p := v.Policy
	l, err := store.EncodePolicyLists(p)
	if err != nil {
		return err
	}
	_, err = t.tx.ExecContext(t.ctx, `INSERT INTO policy_versions (tenant_id, `+versionCols+`)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		key.TenantID, key.AgentID, key.Name, p.Version, v.Action, v.Actor, v.RolledBackFrom,
		p.Description, string(l.Steps), string(l.Domains), string(l.Rules), p.Enabled, p.ModeName(),
		toMicros(p.CreatedAt), toMicros(p.UpdatedAt))
	return t.written(err)
}

// PolicyVersions returns one policy's versions, newest first.
func (db *DB) PolicyVersions(ctx context.Context, key store.PolicyKey) ([]store.PolicyVersion, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+versionCols+` FROM policy_versions
WHERE tenant_id = ? AND agent_id = ? AND name = ? ORDER BY version DESC`, key.TenantID, key.AgentID, key.Name)
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
	v, err := scanVersion(db.r.QueryRowContext(ctx, `SELECT `+versionCols+` FROM policy_versions
WHERE tenant_id = ? AND agent_id = ? AND name = ? AND version = ?`, key.TenantID, key.AgentID, key.Name, version))
	if err != nil {
		return store.PolicyVersion{}, fmt.Errorf("version %d of policy %s: %w", version, key, noRows(err))
	}
	return v, nil
}
