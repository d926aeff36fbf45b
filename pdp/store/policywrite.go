package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// PolicyTx is what a policy write needs of a driver's write transaction:
// its statements. The rules of a write — versions, timestamps, and the
// limit check of PutPolicyRequest — are PutPolicyIn's and
// DisablePolicyIn's, the same on every driver.
type PolicyTx interface {
	// LockTenant serializes the tenant's writes from here to COMMIT (a
	// row lock where the database has them) and checks it exists
	// (ErrNotFound).
	LockTenant(tenantID string) error
	// GetPolicy reads one policy; found is false when there is none.
	GetPolicy(key PolicyKey) (p pdp.Policy, found bool, err error)
	// CountEnabled counts the tenant's enabled policies, both scopes.
	CountEnabled(tenantID string) (int, error)
	// SavePolicy inserts (insert) or updates the policy with p's content,
	// enabled flag, version and timestamps.
	SavePolicy(key PolicyKey, p pdp.Policy, insert bool) error
	// SaveVersion stores v, the version the write made, in the policy's
	// history.
	SaveVersion(key PolicyKey, v PolicyVersion) error
	// BumpRevision increments the tenant's revision and returns it: the
	// write's last statement.
	BumpRevision(tenantID string) (uint64, error)
}

// PreparePut checks a policy write before any transaction and returns its
// policy, normalized (NormalizePolicy), and key.
func PreparePut(req PutPolicyRequest) (pdp.Policy, PolicyKey, error) {
	if err := req.Validate(); err != nil {
		return pdp.Policy{}, PolicyKey{}, fmt.Errorf("put policy: %w", err)
	}
	p := req.Policy
	NormalizePolicy(&p)
	key := PolicyKey{TenantID: req.TenantID, AgentID: p.AgentID, Name: p.Name}
	if !Storable(key.TenantID) {
		return pdp.Policy{}, PolicyKey{}, fmt.Errorf("put policy %s: tenant: %w", key, ErrNotFound)
	}
	// The lists are stored JSON-encoded, which escapes whatever they hold.
	if err := CheckText(Text{"agent_id", p.AgentID}, Text{"name", p.Name}, Text{"description", p.Description}); err != nil {
		return pdp.Policy{}, PolicyKey{}, fmt.Errorf("put policy %s: %w", key, err)
	}
	return p, key, nil
}

// PutPolicyIn is a policy write (see PutPolicyRequest) in tx, p prepared
// by PreparePut and now its time. A refusal (ErrNotFound, *LimitError) is
// decided before anything is written: whether the write adds an enabled
// policy, and the count it is checked against, are read after LockTenant,
// so concurrent writes cannot together pass the limit.
func PutPolicyIn(tx PolicyTx, req PutPolicyRequest, p pdp.Policy, now time.Time) (PolicyWrite, error) {
	key := PolicyKey{TenantID: req.TenantID, AgentID: p.AgentID, Name: p.Name}
	if err := tx.LockTenant(key.TenantID); err != nil {
		return PolicyWrite{}, err
	}
	old, exists, err := tx.GetPolicy(key)
	if err != nil {
		return PolicyWrite{}, err
	}
	if !exists && req.MustExist {
		return PolicyWrite{}, ErrNotFound
	}
	if adds := p.Enabled && (!exists || !old.Enabled); adds && req.Limit != Unlimited {
		// This policy is not enabled now, so it is not among those
		// counted: the count is of the others.
		n, err := tx.CountEnabled(key.TenantID)
		if err != nil {
			return PolicyWrite{}, err
		}
		if n >= req.Limit {
			return PolicyWrite{}, &LimitError{Limit: req.Limit, Current: n}
		}
	}
	p.UpdatedAt, p.CreatedAt, p.Version = now, now, 1
	if exists {
		p.CreatedAt, p.Version = old.CreatedAt, old.Version+1
	}
	if err := tx.SavePolicy(key, p, !exists); err != nil {
		return PolicyWrite{}, err
	}
	v := PolicyVersion{Policy: p, Action: VersionUpdated, Actor: req.Actor}
	switch {
	case !exists:
		v.Action = VersionCreated
	case req.RollbackOf > 0:
		v.Action, v.RolledBackFrom = VersionRolledBack, req.RollbackOf
	case p.Enabled && !old.Enabled:
		v.Action = VersionEnabled
	}
	if err := tx.SaveVersion(key, v); err != nil {
		return PolicyWrite{}, err
	}
	rev, err := tx.BumpRevision(key.TenantID)
	if err != nil {
		return PolicyWrite{}, err
	}
	return PolicyWrite{Policy: p, Created: !exists, Revision: rev, Version: v}, nil
}

// DisablePolicyIn sets the policy's enabled=false at version+1 in tx
// (also when it is disabled already), a version written by actor.
// ErrNotFound is decided before anything is written.
func DisablePolicyIn(tx PolicyTx, key PolicyKey, actor string, now time.Time) (PolicyWrite, error) {
	if err := tx.LockTenant(key.TenantID); err != nil {
		return PolicyWrite{}, err
	}
	p, found, err := tx.GetPolicy(key)
	switch {
	case err != nil:
		return PolicyWrite{}, err
	case !found:
		return PolicyWrite{}, ErrNotFound
	}
	p.Enabled, p.Version, p.UpdatedAt = false, p.Version+1, now
	if err := tx.SavePolicy(key, p, false); err != nil {
		return PolicyWrite{}, err
	}
	v := PolicyVersion{Policy: p, Action: VersionDisabled, Actor: actor}
	if err := tx.SaveVersion(key, v); err != nil {
		return PolicyWrite{}, err
	}
	rev, err := tx.BumpRevision(key.TenantID)
	if err != nil {
		return PolicyWrite{}, err
	}
	return PolicyWrite{Policy: p, Revision: rev, Version: v}, nil
}

// NormalizePolicy makes absent lists empty, so a policy reads back the
// same whether it was written with nil or empty lists and encodes as []
// not null.
func NormalizePolicy(p *pdp.Policy) {
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

// PolicyLists is a policy's lists as stored: JSON.
type PolicyLists struct{ Steps, Domains, Rules []byte }

// EncodePolicyLists encodes p's lists for storage.
func EncodePolicyLists(p pdp.Policy) (PolicyLists, error) {
	steps, err1 := json.Marshal(p.StepTypes)
	domains, err2 := json.Marshal(p.WhitelistedDomains)
	rules, err3 := json.Marshal(p.Rules)
	if err := errors.Join(err1, err2, err3); err != nil {
		return PolicyLists{}, fmt.Errorf("encode: %w", err)
	}
	return PolicyLists{steps, domains, rules}, nil
}

// DecodePolicyLists decodes stored lists into p and normalizes it.
func DecodePolicyLists(p *pdp.Policy, steps, domains, rules []byte) error {
	if err := errors.Join(
		json.Unmarshal(steps, &p.StepTypes),
		json.Unmarshal(domains, &p.WhitelistedDomains),
		json.Unmarshal(rules, &p.Rules),
	); err != nil {
		return fmt.Errorf("policy %q: decode: %w", p.Name, err)
	}
	NormalizePolicy(p)
	return nil
}

// String names a policy in errors: "tenant/name" or "tenant/agent/name",
// quoted.
func (k PolicyKey) String() string {
	parts := []string{k.TenantID, k.Name}
	if k.AgentID != "" {
		parts = []string{k.TenantID, k.AgentID, k.Name}
	}
	return fmt.Sprintf("%q", strings.Join(parts, "/"))
}
