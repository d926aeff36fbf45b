package registry

import (
	"context"
	"errors"
	"fmt"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// ActionRolledBack is what a rollback did, as the API reports it.
const ActionRolledBack = "rolled_back"

// ErrPolicyVersionNotFound: the policy exists at that scope but has no
// such version.
var ErrPolicyVersionNotFound = fmt.Errorf("policy version %w", pdp.ErrNotFound)

type actorKey struct{}

// WithActor returns ctx carrying who writes (an API key's ID): policy
// writes under it record the actor in the policy's version and its audit
// entry.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

func actorOf(ctx context.Context) string {
	a, _ := ctx.Value(actorKey{}).(string)
	return a
}

// Versions returns a custom policy's history at one scope, newest first.
// ErrPolicyNotFound if it was never written there (built-ins have none).
func (r *Registry) Versions(ctx context.Context, tenantID, agentID, name string) ([]store.PolicyVersion, error) {
	if err := CheckAgentID("agent_id", agentID); err != nil {
		return nil, err
	}
	vs, err := r.st.PolicyVersions(ctx, store.PolicyKey{TenantID: tenantID, AgentID: agentID, Name: name})
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %q", ErrPolicyNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("policy versions: %w", err)
	}
	return vs, nil
}

// Version returns one version of a custom policy: ErrPolicyNotFound if the
// policy has no history at that scope, ErrPolicyVersionNotFound if it has
// but not this version.
func (r *Registry) Version(ctx context.Context, tenantID, agentID, name string, version int) (store.PolicyVersion, error) {
	if err := CheckAgentID("agent_id", agentID); err != nil {
		return store.PolicyVersion{}, err
	}
	if version < 1 {
		return store.PolicyVersion{}, pdp.Invalid("version", "must be a positive integer")
	}
	key := store.PolicyKey{TenantID: tenantID, AgentID: agentID, Name: name}
	v, err := r.st.PolicyVersion(ctx, key, version)
	if errors.Is(err, store.ErrNotFound) {
		if _, gerr := r.st.GetPolicy(ctx, key); errors.Is(gerr, store.ErrNotFound) {
			return store.PolicyVersion{}, fmt.Errorf("%w: %q", ErrPolicyNotFound, name)
		}
		return store.PolicyVersion{}, fmt.Errorf("%w: %q version %d", ErrPolicyVersionNotFound, name, version)
	}
	if err != nil {
		return store.PolicyVersion{}, fmt.Errorf("policy version: %w", err)
	}
	return v, nil
}

// Rollback writes a new version of a policy whose content — description,
// step types, whitelist, rules, mode and enabled flag — equals version's. It is
// a write like any other: the tier's feature, validation (the version is
// validated again, as today's rules stand), the regex budget and the
// enabled-policy limit apply, and it is audited (policy_rolled_back).
func (r *Registry) Rollback(ctx context.Context, tenantID, agentID, name string, version int) (Write, error) {
	if err := r.checkWritable(); err != nil {
		return Write{}, err
	}
	v, err := r.Version(ctx, tenantID, agentID, name, version)
	if err != nil {
		return Write{}, err
	}
	w, err := r.put(ctx, tenantID, DocumentOf(v.Policy), name, true, version)
	if err != nil {
		return Write{}, err
	}
	w.Action = ActionRolledBack
	return w, nil
}

// DocumentOf returns the policy document that writes p's content (name,
// scope, description, lists, rules, enabled).
func DocumentOf(p pdp.Policy) *adapter.Document {
	d := &adapter.Document{
		Name: &p.Name, Description: &p.Description, AgentID: &p.AgentID,
		StepTypes: p.StepTypes, WhitelistedDomains: p.WhitelistedDomains, Enabled: &p.Enabled,
		Rules: make([]adapter.RuleDocument, len(p.Rules)),
	}
	if p.AgentID == "" {
		d.AgentID = nil
	}
	mode := p.ModeName()
	d.Mode = &mode
	for i, r := range p.Rules {
		sev, out := string(r.Severity), string(r.OnViolation)
		rd := adapter.RuleDocument{Match: &r.Match, Severity: &sev, OnViolation: &out, Confidence: &r.Confidence}
		if r.Reason != "" {
			rd.Reason = &r.Reason
		}
		if r.ContextRequires != "" {
			rd.ContextRequires = &r.ContextRequires
		}
		d.Rules[i] = rd
	}
	return d
}
