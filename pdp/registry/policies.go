package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// What a policy write did, as the API reports it in "action".
const (
	ActionCreated  = "created"
	ActionUpdated  = "updated"
	ActionDisabled = "disabled"
)

// Write is the result of a policy write: the policy as stored now, what
// the write did, and the tenant's revision after it.
type Write struct {
	Policy   pdp.Policy
	Action   string
	Revision uint64
}

// CheckAgentID returns a *pdp.ValidationError naming field unless id is ""
// (no agent) or a valid agent ID.
func CheckAgentID(field, id string) error {
	if id == "" || pdp.ValidAgentID(id) {
		return nil
	}
	return pdp.Invalid(field, "%s", pdp.AgentIDRule)
}

// Builtin returns the built-in policy that name reserves (any case, with or
// without a "Policy" suffix; docs/api.md §A5).
func Builtin(name string) (pdp.Builtin, bool) {
	if !adapter.IsReservedName(name) {
		return pdp.Builtin{}, false
	}
	n := strings.TrimSuffix(strings.ToLower(name), "policy")
	for _, b := range pdp.Builtins {
		if strings.ToLower(b.Name) == n {
			return b, true
		}
	}
	return pdp.Builtin{}, false
}

// Put creates or updates the policy doc describes at its scope (POST,
// docs/api.md §A6): version 1 when created, +1 on every update; a disabled
// policy is re-enabled unless doc says enabled: false. Checks run in the
// contract's order: the tier's feature (agent-scoped or custom policies),
// then the document (pdp.ValidationErrors naming every bad field, reserved
// names included), then the enabled-policy limit (*TierError), the last
// inside the store's write transaction so concurrent writes cannot pass it
// together. The engine sees the result before Put returns.
func (r *Registry) Put(ctx context.Context, tenantID string, doc *adapter.Document) (Write, error) {
	return r.put(ctx, tenantID, doc, "", false, 0)
}

// Replace is PUT: a full replacement of an existing policy named name at
// the scope of doc's agent_id. doc's name, if present, must equal name.
// ErrPolicyNotFound if there is no such policy at that scope; otherwise as
// Put.
func (r *Registry) Replace(ctx context.Context, tenantID, name string, doc *adapter.Document) (Write, error) {
	return r.put(ctx, tenantID, doc, name, true, 0)
}

// put writes doc; rollbackOf > 0 records the write as a rollback to that
// version.
func (r *Registry) put(ctx context.Context, tenantID string, doc *adapter.Document, pathName string, replace bool, rollbackOf int) (Write, error) {
	if err := r.checkWritable(); err != nil {
		return Write{}, err
	}
	if doc == nil {
		return Write{}, &pdp.ValidationError{Reason: "the policy document is required"}
	}
	t, err := r.freshTenant(ctx, tenantID)
	if err != nil {
		return Write{}, err
	}
	agentScoped := doc.AgentID != nil && *doc.AgentID != ""
	if err := RequireFeature(t.Tier, PolicyWriteFeature(agentScoped)); err != nil {
		return Write{}, err
	}
	if replace {
		if doc.Name != nil && *doc.Name != pathName {
			return Write{}, pdp.Invalid("name", "must equal the policy name in the path (%q), or be left out", shorten(pathName))
		}
		d := *doc
		d.Name = &pathName
		doc = &d
	}
	p, cost, err := doc.PolicyWithCost()
	if err != nil {
		return Write{}, err
	}
	// The tenant's lock makes the regex budget check and the write atomic
	// against other writes through this registry.
	l := r.lockFor(tenantID)
	l.Lock()
	defer l.Unlock()
	if err := r.checkBudgets(ctx, tenantID, &p, cost); err != nil {
		return Write{}, err
	}
	w, err := r.putPolicy(ctx, store.PutPolicyRequest{
		TenantID:   tenantID,
		Policy:     p,
		Limit:      PolicyLimit(t.Tier),
		MustExist:  replace,
		Actor:      actorOf(ctx),
		RollbackOf: rollbackOf,
	})
	var le *store.LimitError
	switch {
	case errors.As(err, &le):
		return Write{}, &TierError{Code: pdp.CodeLimitExceeded, CurrentTier: t.Tier, Limit: le.Limit, Current: le.Current}
	case errors.Is(err, store.ErrNotFound) && replace:
		return Write{}, fmt.Errorf("%w: %q", ErrPolicyNotFound, p.Name)
	case err != nil:
		return Write{}, fmt.Errorf("put policy: %w", err)
	}
	if err := r.publishLocked(ctx, tenantID, w.Revision); err != nil {
		return Write{}, err
	}
	r.warm(ctx, tenantID)
	action := ActionUpdated
	if w.Created {
		action = ActionCreated
	}
	return Write{Policy: w.Policy, Action: action, Revision: w.Revision}, nil
}

// checkBudgets refuses a write after which one decision of the tenant
// could run more regex cost than adapter.MaxTenantCost (the tenant's
// enabled policies with p, whose cost its validation measured, in place of
// the one it replaces; a disabled p adds nothing), or after which
// compiling the tenant would cost more than the engine's compile budget
// (engine.CompileCost, a prediction from the translated modules' size made
// before anything is compiled or stored). Both are 400s naming the bound;
// nothing is stored.
func (r *Registry) checkBudgets(ctx context.Context, tenantID string, p *pdp.Policy, cost int) error {
	stored, err := r.st.ListPolicies(ctx, tenantID, store.PolicyFilter{})
	if err != nil {
		return fmt.Errorf("read policies for the regex budget: %w", err)
	}
	if err := adapter.CheckTenantWrite("rules", p, cost, stored); err != nil {
		return err
	}
	next := make([]pdp.Policy, 0, len(stored)+1)
	for _, q := range stored {
		if q.AgentID != p.AgentID || q.Name != p.Name {
			next = append(next, q)
		}
	}
	next = append(next, *p)
	_, err = r.eng.CompileCost(tenantID, next)
	return err
}

// Disable soft-deletes a policy (DELETE, docs/api.md §A6): enabled=false at
// version+1. Disabling a policy that is already disabled changes nothing —
// no new version, no new revision — and returns it as it is, so a repeated
// DELETE is an idempotent 200. A built-in name is ErrCannotDeleteBuiltin;
// a missing policy ErrPolicyNotFound.
func (r *Registry) Disable(ctx context.Context, tenantID, agentID, name string) (Write, error) {
	if err := r.checkWritable(); err != nil {
		return Write{}, err
	}
	if _, ok := Builtin(name); ok {
		return Write{}, ErrCannotDeleteBuiltin
	}
	if err := CheckAgentID("agent_id", agentID); err != nil {
		return Write{}, err
	}
	// The tenant's lock makes read-then-disable atomic against other
	// deletes through this registry (two racing DELETEs add one version).
	l := r.lockFor(tenantID)
	l.Lock()
	defer l.Unlock()
	key := store.PolicyKey{TenantID: tenantID, AgentID: agentID, Name: name}
	p, err := r.st.GetPolicy(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return Write{}, fmt.Errorf("%w: %q", ErrPolicyNotFound, name)
	}
	if err != nil {
		return Write{}, fmt.Errorf("disable policy: %w", err)
	}
	if !p.Enabled {
		rev, _ := r.eng.Revision(tenantID)
		return Write{Policy: p, Action: ActionDisabled, Revision: rev}, nil
	}
	w, err := r.disablePolicy(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return Write{}, fmt.Errorf("%w: %q", ErrPolicyNotFound, name)
	}
	if err != nil {
		return Write{}, fmt.Errorf("disable policy: %w", err)
	}
	if err := r.publishLocked(ctx, tenantID, w.Revision); err != nil {
		return Write{}, err
	}
	r.warm(ctx, tenantID)
	return Write{Policy: w.Policy, Action: ActionDisabled, Revision: w.Revision}, nil
}

// Policy returns the custom policy name at one scope (agentID "" for the
// tenant-wide one), enabled or not. Built-ins are not stored: see Builtin.
func (r *Registry) Policy(ctx context.Context, tenantID, agentID, name string) (pdp.Policy, error) {
	if err := CheckAgentID("agent_id", agentID); err != nil {
		return pdp.Policy{}, err
	}
	p, err := r.st.GetPolicy(ctx, store.PolicyKey{TenantID: tenantID, AgentID: agentID, Name: name})
	if errors.Is(err, store.ErrNotFound) {
		return pdp.Policy{}, fmt.Errorf("%w: %q", ErrPolicyNotFound, name)
	}
	if err != nil {
		return pdp.Policy{}, fmt.Errorf("get policy: %w", err)
	}
	return p, nil
}

// Policies lists the tenant's tenant-wide custom policies, then, when
// agentID is set, that agent's agent-scoped ones; each part by name,
// disabled ones included.
func (r *Registry) Policies(ctx context.Context, tenantID, agentID string) ([]pdp.Policy, error) {
	if err := CheckAgentID("agent_id", agentID); err != nil {
		return nil, err
	}
	tenantWide := ""
	ps, err := r.st.ListPolicies(ctx, tenantID, store.PolicyFilter{AgentID: &tenantWide})
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	if agentID == "" {
		return ps, nil
	}
	scoped, err := r.st.ListPolicies(ctx, tenantID, store.PolicyFilter{AgentID: &agentID})
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	return append(ps, scoped...), nil
}
