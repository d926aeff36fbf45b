package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

const policyCols = `agent_id, name, description, step_types, whitelisted_domains, rules, enabled, version, created_at, updated_at`

// policyOrder is the order of every policy listing: tenant-wide (empty
// agent_id) first. The columns are COLLATE "C", so this is byte order.
const policyOrder = ` ORDER BY agent_id, name`

func scanPolicy(row rowScanner) (pdp.Policy, error) {
	var (
		p                     pdp.Policy
		steps, domains, rules []byte
	)
	if err := row.Scan(&p.AgentID, &p.Name, &p.Description, &steps, &domains, &rules, &p.Enabled, &p.Version, &p.CreatedAt, &p.UpdatedAt); err != nil {
		return pdp.Policy{}, err
	}
	if err := errors.Join(
		json.Unmarshal(steps, &p.StepTypes),
		json.Unmarshal(domains, &p.WhitelistedDomains),
		json.Unmarshal(rules, &p.Rules),
	); err != nil {
		return pdp.Policy{}, fmt.Errorf("policy %q: decode: %w", p.Name, err)
	}
	normalizePolicy(&p)
	p.CreatedAt = p.CreatedAt.UTC()
	p.UpdatedAt = p.UpdatedAt.UTC()
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

func scanPolicies(rows pgx.Rows) ([]pdp.Policy, error) {
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

func getPolicy(ctx context.Context, q querier, key store.PolicyKey) (pdp.Policy, error) {
	return scanPolicy(q.QueryRow(ctx, `SELECT `+policyCols+` FROM policies
WHERE tenant_id = $1 AND agent_id = $2 AND name = $3`, key.TenantID, key.AgentID, key.Name))
}

// bumpRevision increments the tenant's revision as the last statement of a
// write, under the lock lockTenant took (or, alone, taking the row's lock
// itself), returns the new value and notifies it to every replica on
// commit.
func bumpRevision(ctx context.Context, tx pgx.Tx, tenantID string) (uint64, error) {
	var rev uint64
	err := tx.QueryRow(ctx, `UPDATE tenants SET revision = revision + 1 WHERE id = $1
RETURNING revision, `+notifyRevision, tenantID).Scan(&rev, nil)
	return rev, err
}

// preparedPut is a validated policy write, ready for putPolicy.
type preparedPut struct {
	req     store.PutPolicyRequest
	p       pdp.Policy
	key     store.PolicyKey
	content encodedContent
}

// preparePut checks and encodes a policy write before any transaction.
func preparePut(req store.PutPolicyRequest) (preparedPut, error) {
	if err := req.Validate(); err != nil {
		return preparedPut{}, fmt.Errorf("put policy: %w", err)
	}
	p := req.Policy
	normalizePolicy(&p)
	key := store.PolicyKey{TenantID: req.TenantID, AgentID: p.AgentID, Name: p.Name}
	if !storable(key.TenantID) {
		return preparedPut{}, fmt.Errorf("put policy %s: tenant: %w", keyString(key), store.ErrNotFound)
	}
	// The lists are stored JSON-encoded, which escapes whatever they hold.
	if err := checkText(field{"agent_id", p.AgentID}, field{"name", p.Name}, field{"description", p.Description}); err != nil {
		return preparedPut{}, fmt.Errorf("put policy %s: %w", keyString(key), err)
	}
	content, err := encodeContent(p)
	if err != nil {
		return preparedPut{}, fmt.Errorf("put policy %s: %w", keyString(key), err)
	}
	return preparedPut{req: req, p: p, key: key, content: content}, nil
}

// PutPolicy inserts or replaces a policy, checking the limit when the write
// adds an enabled policy; see store.PutPolicyRequest. The tenant's row lock
// is taken first, so whether the write adds a policy, the count it is
// checked against and the revision it gets are all decided after every
// earlier write of the tenant, from any replica, has committed.
func (db *DB) PutPolicy(ctx context.Context, req store.PutPolicyRequest) (store.PolicyWrite, error) {
	pw, err := preparePut(req)
	if err != nil {
		return store.PolicyWrite{}, err
	}
	var out store.PolicyWrite
	err = db.write(ctx, func(tx pgx.Tx) error {
		var err error
		out, err = db.putPolicy(ctx, tx, pw)
		return err
	})
	if err != nil {
		return store.PolicyWrite{}, fmt.Errorf("put policy %s: %w", keyString(pw.key), err)
	}
	return out, nil
}

// putPolicy is PutPolicy's transaction: PutPolicy and PutPolicyAudited run
// it. A refusal (ErrNotFound, *LimitError) is decided before it writes.
func (db *DB) putPolicy(ctx context.Context, tx pgx.Tx, pw preparedPut) (store.PolicyWrite, error) {
	req, p, key, content := pw.req, pw.p, pw.key, pw.content
	if _, err := lockTenant(ctx, tx, req.TenantID); err != nil {
		return store.PolicyWrite{}, err
	}
	old, err := getPolicy(ctx, tx, key)
	exists := err == nil
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
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
		_, err = tx.Exec(ctx, `UPDATE policies
SET description = $1, step_types = $2, whitelisted_domains = $3, rules = $4, enabled = $5, version = $6, updated_at = $7
WHERE tenant_id = $8 AND agent_id = $9 AND name = $10`,
			p.Description, content.steps, content.domains, content.rules, p.Enabled, p.Version, now,
			key.TenantID, key.AgentID, key.Name)
	} else {
		p.Version = 1
		p.CreatedAt = now
		_, err = tx.Exec(ctx, `INSERT INTO policies (tenant_id, `+policyCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			key.TenantID, key.AgentID, key.Name, p.Description, content.steps, content.domains, content.rules,
			p.Enabled, p.Version, now, now)
	}
	if err != nil {
		return store.PolicyWrite{}, err
	}
	rev, err := bumpRevision(ctx, tx, req.TenantID)
	if err != nil {
		return store.PolicyWrite{}, err
	}
	return store.PolicyWrite{Policy: p, Created: !exists, Revision: rev}, nil
}

// DisablePolicy sets enabled=false at version+1.
func (db *DB) DisablePolicy(ctx context.Context, key store.PolicyKey) (store.PolicyWrite, error) {
	if !allStorable(key.TenantID, key.AgentID, key.Name) {
		return store.PolicyWrite{}, fmt.Errorf("disable policy %s: %w", keyString(key), store.ErrNotFound)
	}
	var out store.PolicyWrite
	err := db.write(ctx, func(tx pgx.Tx) error {
		var err error
		out, err = db.disablePolicy(ctx, tx, key)
		return err
	})
	if err != nil {
		return store.PolicyWrite{}, fmt.Errorf("disable policy %s: %w", keyString(key), err)
	}
	return out, nil
}

// disablePolicy is DisablePolicy's transaction: DisablePolicy and
// DisablePolicyAudited run it. ErrNotFound is decided before it writes.
func (db *DB) disablePolicy(ctx context.Context, tx pgx.Tx, key store.PolicyKey) (store.PolicyWrite, error) {
	if _, err := lockTenant(ctx, tx, key.TenantID); err != nil {
		return store.PolicyWrite{}, err
	}
	p, err := getPolicy(ctx, tx, key)
	if err != nil {
		return store.PolicyWrite{}, noRows(err)
	}
	p.Enabled = false
	p.Version++
	p.UpdatedAt = db.nowUTC()
	if _, err := tx.Exec(ctx, `UPDATE policies SET enabled = false, version = $1, updated_at = $2
WHERE tenant_id = $3 AND agent_id = $4 AND name = $5`,
		p.Version, p.UpdatedAt, key.TenantID, key.AgentID, key.Name); err != nil {
		return store.PolicyWrite{}, err
	}
	rev, err := bumpRevision(ctx, tx, key.TenantID)
	if err != nil {
		return store.PolicyWrite{}, err
	}
	return store.PolicyWrite{Policy: p, Revision: rev}, nil
}

// GetPolicy returns one policy, enabled or not.
func (db *DB) GetPolicy(ctx context.Context, key store.PolicyKey) (pdp.Policy, error) {
	if !allStorable(key.TenantID, key.AgentID, key.Name) {
		return pdp.Policy{}, fmt.Errorf("get policy %s: %w", keyString(key), store.ErrNotFound)
	}
	p, err := getPolicy(ctx, db.pool, key)
	if err != nil {
		return pdp.Policy{}, fmt.Errorf("get policy %s: %w", keyString(key), noRows(err))
	}
	return p, nil
}

// ListPolicies returns the tenant's policies matching f.
func (db *DB) ListPolicies(ctx context.Context, tenantID string, f store.PolicyFilter) ([]pdp.Policy, error) {
	if !storable(tenantID) || (f.AgentID != nil && !storable(*f.AgentID)) {
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
	if !storable(tenantID) {
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
	if !storable(tenantID) {
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

type encodedContent struct{ steps, domains, rules []byte }

func encodeContent(p pdp.Policy) (encodedContent, error) {
	steps, err1 := json.Marshal(p.StepTypes)
	domains, err2 := json.Marshal(p.WhitelistedDomains)
	rules, err3 := json.Marshal(p.Rules)
	if err := errors.Join(err1, err2, err3); err != nil {
		return encodedContent{}, fmt.Errorf("encode: %w", err)
	}
	return encodedContent{steps, domains, rules}, nil
}

// keyString names a policy in errors: tenant/name or tenant/agent/name.
func keyString(k store.PolicyKey) string {
	parts := []string{k.TenantID, k.Name}
	if k.AgentID != "" {
		parts = []string{k.TenantID, k.AgentID, k.Name}
	}
	return fmt.Sprintf("%q", strings.Join(parts, "/"))
}
