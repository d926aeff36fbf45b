package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

const policyCols = `agent_id, name, description, step_types, whitelisted_domains, rules, enabled, version, created_at, updated_at`

// policyOrder is the order of every policy listing: tenant-wide (”) first.
const policyOrder = ` ORDER BY agent_id, name`

func scanPolicy(row rowScanner) (pdp.Policy, error) {
	var (
		p                     pdp.Policy
		steps, domains, rules string
		created, updated      int64
	)
	if err := row.Scan(&p.AgentID, &p.Name, &p.Description, &steps, &domains, &rules, &p.Enabled, &p.Version, &created, &updated); err != nil {
		return pdp.Policy{}, err
	}
	if err := errors.Join(
		json.Unmarshal([]byte(steps), &p.StepTypes),
		json.Unmarshal([]byte(domains), &p.WhitelistedDomains),
		json.Unmarshal([]byte(rules), &p.Rules),
	); err != nil {
		return pdp.Policy{}, fmt.Errorf("policy %q: decode: %w", p.Name, err)
	}
	normalizePolicy(&p)
	p.CreatedAt = fromMicros(created)
	p.UpdatedAt = fromMicros(updated)
	return p, nil
}

// normalizePolicy makes absent lists empty, so a policy reads back the same
// whether it was written with nil or empty lists and encodes as [] not null.
func normalizePolicy(p *pdp.Policy) {
	if p.StepTypes == nil {
		p.StepTypes = []string{}
	}
	if p.WhitelistedDomains == nil {
		p.WhitelistedDomains = []string{}
	}
	if p.Rules == nil {
		p.Rules = []pdp.Rule{}
	}
}

func scanPolicies(rows *sql.Rows) ([]pdp.Policy, error) {
	defer rows.Close()
	ps := []pdp.Policy{}
	for rows.Next() {
		p, err := scanPolicy(rows)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, rows.Err()
}

// bumpRevision increments the tenant's revision as the first statement of
// a policy write. Besides numbering the write, it checks that the tenant
// exists and (in a server database) would lock the tenant's row, which is
// what serializes a tenant's writes there; here the single write connection
// and BEGIN IMMEDIATE already do.
func bumpRevision(ctx context.Context, tx *sql.Tx, tenantID string) (uint64, error) {
	var rev uint64
	err := tx.QueryRowContext(ctx, `UPDATE tenants SET revision = revision + 1 WHERE id = ? RETURNING revision`, tenantID).Scan(&rev)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("tenant %q: %w", tenantID, store.ErrNotFound)
	}
	return rev, err
}

func getPolicy(ctx context.Context, q queryRower, key store.PolicyKey) (pdp.Policy, error) {
	return scanPolicy(q.QueryRowContext(ctx, `SELECT `+policyCols+` FROM policies
WHERE tenant_id = ? AND agent_id = ? AND name = ?`, key.TenantID, key.AgentID, key.Name))
}

// PutPolicy inserts or replaces a policy, checking the limit when the write
// adds an enabled policy; see store.PutPolicyRequest.
func (db *DB) PutPolicy(ctx context.Context, req store.PutPolicyRequest) (store.PolicyWrite, error) {
	pw, err := db.preparePut(req)
	if err != nil {
		return store.PolicyWrite{}, err
	}
	var out store.PolicyWrite
	err = db.write(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = db.putPolicy(ctx, tx, pw)
		return err
	})
	if err != nil {
		return store.PolicyWrite{}, fmt.Errorf("put policy %s: %w", keyString(pw.key), err)
	}
	return out, nil
}

// preparedPut is a validated policy write, encoded for its statement.
type preparedPut struct {
	req     store.PutPolicyRequest
	p       pdp.Policy
	key     store.PolicyKey
	content encodedContent
}

func (db *DB) preparePut(req store.PutPolicyRequest) (preparedPut, error) {
	if err := req.Validate(); err != nil {
		return preparedPut{}, fmt.Errorf("put policy: %w", err)
	}
	p := req.Policy
	normalizePolicy(&p)
	key := store.PolicyKey{TenantID: req.TenantID, AgentID: p.AgentID, Name: p.Name}
	content, err := encodeContent(p)
	if err != nil {
		return preparedPut{}, fmt.Errorf("put policy %s: %w", keyString(key), err)
	}
	return preparedPut{req: req, p: p, key: key, content: content}, nil
}

// putPolicy is PutPolicy's transaction: PutPolicy and PutPolicyAudited
// run it.
func (db *DB) putPolicy(ctx context.Context, tx *sql.Tx, pw preparedPut) (store.PolicyWrite, error) {
	req, p, key, content := pw.req, pw.p, pw.key, pw.content
	rev, err := bumpRevision(ctx, tx, req.TenantID)
	if err != nil {
		return store.PolicyWrite{}, err
	}
	old, err := getPolicy(ctx, tx, key)
	exists := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return store.PolicyWrite{}, err
	}
	if !exists && req.MustExist {
		return store.PolicyWrite{}, store.ErrNotFound
	}
	adds := p.Enabled && (!exists || !old.Enabled)
	if adds && req.Limit != store.Unlimited {
		// This policy is not enabled now, so it is not among those
		// counted: the count is of the others.
		n, err := countEnabled(ctx, tx, req.TenantID)
		if err != nil {
			return store.PolicyWrite{}, err
		}
		if n >= req.Limit {
			return store.PolicyWrite{}, &store.LimitError{Limit: req.Limit, Current: n}
		}
	}
	now := db.nowUTC()
	p.UpdatedAt = now
	if exists {
		p.Version = old.Version + 1
		p.CreatedAt = old.CreatedAt
		_, err = tx.ExecContext(ctx, `UPDATE policies
SET description = ?, step_types = ?, whitelisted_domains = ?, rules = ?, enabled = ?, version = ?, updated_at = ?
WHERE tenant_id = ? AND agent_id = ? AND name = ?`,
			p.Description, content.steps, content.domains, content.rules, p.Enabled, p.Version, toMicros(now),
			key.TenantID, key.AgentID, key.Name)
	} else {
		p.Version = 1
		p.CreatedAt = now
		_, err = tx.ExecContext(ctx, `INSERT INTO policies (tenant_id, `+policyCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			key.TenantID, key.AgentID, key.Name, p.Description, content.steps, content.domains, content.rules,
			p.Enabled, p.Version, toMicros(now), toMicros(now))
	}
	if err != nil {
		return store.PolicyWrite{}, err
	}
	return store.PolicyWrite{Policy: p, Created: !exists, Revision: rev}, nil
}

// DisablePolicy sets enabled=false at version+1.
func (db *DB) DisablePolicy(ctx context.Context, key store.PolicyKey) (store.PolicyWrite, error) {
	var out store.PolicyWrite
	err := db.write(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = db.disablePolicy(ctx, tx, key)
		return err
	})
	if err != nil {
		return store.PolicyWrite{}, fmt.Errorf("disable policy %s: %w", keyString(key), err)
	}
	return out, nil
}

// disablePolicy is DisablePolicy's transaction.
func (db *DB) disablePolicy(ctx context.Context, tx *sql.Tx, key store.PolicyKey) (store.PolicyWrite, error) {
	rev, err := bumpRevision(ctx, tx, key.TenantID)
	if err != nil {
		return store.PolicyWrite{}, err
	}
	p, err := getPolicy(ctx, tx, key)
	if err != nil {
		return store.PolicyWrite{}, noRows(err)
	}
	p.Enabled = false
	p.Version++
	p.UpdatedAt = db.nowUTC()
	if _, err := tx.ExecContext(ctx, `UPDATE policies SET enabled = 0, version = ?, updated_at = ?
WHERE tenant_id = ? AND agent_id = ? AND name = ?`,
		p.Version, toMicros(p.UpdatedAt), key.TenantID, key.AgentID, key.Name); err != nil {
		return store.PolicyWrite{}, err
	}
	return store.PolicyWrite{Policy: p, Revision: rev}, nil
}

// GetPolicy returns one policy, enabled or not.
func (db *DB) GetPolicy(ctx context.Context, key store.PolicyKey) (pdp.Policy, error) {
	p, err := getPolicy(ctx, db.r, key)
	if err != nil {
		return pdp.Policy{}, fmt.Errorf("get policy %s: %w", keyString(key), noRows(err))
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

type encodedContent struct{ steps, domains, rules string }

func encodeContent(p pdp.Policy) (encodedContent, error) {
	steps, err1 := json.Marshal(p.StepTypes)
	domains, err2 := json.Marshal(p.WhitelistedDomains)
	rules, err3 := json.Marshal(p.Rules)
	if err := errors.Join(err1, err2, err3); err != nil {
		return encodedContent{}, fmt.Errorf("encode: %w", err)
	}
	return encodedContent{string(steps), string(domains), string(rules)}, nil
}

// keyString names a policy in errors: tenant/name or tenant/agent/name.
func keyString(k store.PolicyKey) string {
	parts := []string{k.TenantID, k.Name}
	if k.AgentID != "" {
		parts = []string{k.TenantID, k.AgentID, k.Name}
	}
	return fmt.Sprintf("%q", strings.Join(parts, "/"))
}
