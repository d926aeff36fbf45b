package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// Self-service keys (README "Who may do what"): a key holding keys:manage
// creates, lists, revokes and rotates its tenant's keys, never giving a
// key more rights than its own. Every operation is on the tenant's audit
// chain, in the transaction of the write; only hashes are stored and a
// secret is returned once.

// Rotation grace periods.
const (
	// DefaultRotationGrace is how long a rotated key keeps working.
	DefaultRotationGrace = 24 * time.Hour
	// MaxRotationGrace bounds any grace period.
	MaxRotationGrace = 30 * 24 * time.Hour
)

// ErrKeysUnavailable: the store keeps no audit chain, so it cannot record
// key operations.
var ErrKeysUnavailable = errors.New("self-service keys need a store that keeps the audit chain")

// RightsError refuses a key operation that would give, or touch, more
// rights than the acting key holds.
type RightsError struct{ Reason string }

func (e *RightsError) Error() string { return e.Reason }

// NewKey is a key to create. A nil Scopes means the role's default scopes
// (pdp.DefaultScopes), and for a key bound to an agent only those of them
// that submit actions and read policies; an empty Role means member.
type NewKey struct {
	Name      string
	Role      pdp.Role
	Scopes    []pdp.KeyScope
	AgentID   string
	StepTypes []string
	IsManager bool
}

// maxKeysPerTenant bounds a tenant's unrevoked keys.
const maxKeysPerTenant = 1000

func (r *Registry) keyStore() (store.KeyManagement, error) {
	km, ok := r.st.(store.KeyManagement)
	if !ok {
		return nil, ErrKeysUnavailable
	}
	return km, nil
}

// normalize validates nk and fills in its defaults.
func (nk *NewKey) normalize() error {
	var es pdp.ValidationErrors
	nk.Name = strings.TrimSpace(nk.Name)
	switch {
	case nk.Name == "":
		es = append(es, &pdp.ValidationError{Field: "name", Reason: "is required"})
	case utf8.RuneCountInString(nk.Name) > store.MaxKeyNameLen:
		es = append(es, &pdp.ValidationError{Field: "name", Reason: fmt.Sprintf("must be at most %d characters", store.MaxKeyNameLen)})
	case !utf8.ValidString(nk.Name) || strings.ContainsFunc(nk.Name, unicode.IsControl):
		es = append(es, &pdp.ValidationError{Field: "name", Reason: "must be valid UTF-8 without control characters"})
	}
	if nk.Role == "" {
		nk.Role = pdp.RoleMember
	}
	nk.Role = pdp.Role(strings.ToLower(string(nk.Role)))
	if !pdp.ValidRole(nk.Role) {
		es = append(es, &pdp.ValidationError{Field: "role", Reason: "must be one of owner, admin, member, readonly"})
	}
	if nk.Scopes == nil {
		nk.Scopes = pdp.DefaultScopes(nk.Role)
		if nk.AgentID != "" {
			// An agent's key submits and reads policies by default; it
			// decides nothing unless given approvals:decide by name.
			nk.Scopes = slices.DeleteFunc(nk.Scopes, func(s pdp.KeyScope) bool {
				return s != pdp.ScopeActionsSubmit && s != pdp.ScopePoliciesRead
			})
		}
	} else {
		if len(nk.Scopes) == 0 {
			es = append(es, &pdp.ValidationError{Field: "scopes", Reason: "must name at least one scope (leave it out for the role's default)"})
		}
		if len(nk.Scopes) > len(pdp.AllScopes)*2 {
			es = append(es, &pdp.ValidationError{Field: "scopes", Reason: "too many entries"})
		}
		for _, s := range nk.Scopes {
			if !pdp.ValidScope(s) {
				es = append(es, &pdp.ValidationError{Field: "scopes", Reason: fmt.Sprintf("unknown scope '%s'; scopes are %s", shorten(string(s)), scopeList(pdp.AllScopes))})
				break
			}
		}
	}
	nk.Scopes = pdp.SortScopes(nk.Scopes)
	if err := CheckAgentID("agent_id", nk.AgentID); err != nil {
		var ve *pdp.ValidationError
		if errors.As(err, &ve) {
			es = append(es, ve)
		}
	}
	if len(nk.StepTypes) > len(pdp.StepTypes) {
		es = append(es, &pdp.ValidationError{Field: "step_types", Reason: "too many entries"})
	}
	var steps []string
	for _, st := range nk.StepTypes {
		up := strings.ToUpper(strings.TrimSpace(st))
		if !slices.Contains(pdp.StepTypes, up) {
			es = append(es, &pdp.ValidationError{Field: "step_types", Reason: "must be among thought, action, observation, output, error, policy_check"})
			break
		}
		if !slices.Contains(steps, up) {
			steps = append(steps, up)
		}
	}
	if nk.StepTypes != nil && len(nk.StepTypes) == 0 {
		es = append(es, &pdp.ValidationError{Field: "step_types", Reason: "must not be empty (leave it out for every step type)"})
	}
	nk.StepTypes = steps
	return es.Err()
}

func scopeList(ss []pdp.KeyScope) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return strings.Join(out, ", ")
}

// covers reports why actor's rights do not include everything of a key
// with role, scopes, manager flag, agent and step types ("" when they do).
func covers(actor store.APIKey, role pdp.Role, scopes []pdp.KeyScope, manager bool, agent string, steps []string) string {
	switch {
	case role.Rank() > actor.Role.Rank():
		return fmt.Sprintf("a %s key cannot create or manage a %s key", actor.Role, role)
	case manager && !actor.IsManager:
		return "only a manager's key can create or manage a manager's key"
	case actor.AgentID != "" && agent != actor.AgentID:
		return fmt.Sprintf("a key bound to agent '%s' can only create or manage keys bound to that agent", actor.AgentID)
	case len(actor.StepTypes) > 0 && (len(steps) == 0 || slices.ContainsFunc(steps, func(s string) bool { return !slices.Contains(actor.StepTypes, s) })):
		return fmt.Sprintf("a key limited to the step types %s cannot create or manage a key with others", strings.Join(actor.StepTypes, ", "))
	}
	for _, s := range scopes {
		if !actor.Has(s) {
			return fmt.Sprintf("this key does not hold the scope '%s', so it cannot give it", s)
		}
	}
	return ""
}

// CreateTenantKey creates a key of creator's tenant with nk's identity,
// and returns it with its secret, once. Refused with a *RightsError when
// nk has any right creator lacks.
func (r *Registry) CreateTenantKey(ctx context.Context, creator store.APIKey, nk NewKey) (store.APIKey, string, error) {
	km, err := r.keyStore()
	if err != nil {
		return store.APIKey{}, "", err
	}
	if err := nk.normalize(); err != nil {
		return store.APIKey{}, "", err
	}
	if why := covers(creator, nk.Role, nk.Scopes, nk.IsManager, nk.AgentID, nk.StepTypes); why != "" {
		return store.APIKey{}, "", &RightsError{Reason: why}
	}
	ks, err := km.ListAPIKeys(ctx, creator.TenantID)
	if err != nil {
		return store.APIKey{}, "", fmt.Errorf("create key: %w", err)
	}
	live := 0
	for _, k := range ks {
		if k.RevokedAt == nil && !k.ExpiredAt(r.now()) {
			live++
		}
	}
	if live >= maxKeysPerTenant {
		return store.APIKey{}, "", pdp.Invalid("name", "the tenant has %d keys, the most it may have; revoke some first", live)
	}
	secret, err := r.newAPIKey()
	if err != nil {
		return store.APIKey{}, "", err
	}
	k, err := r.newKeyRecord(secret)
	if err != nil {
		return store.APIKey{}, "", err
	}
	k.TenantID = creator.TenantID
	k.Name, k.Role, k.Scopes, k.IsManager = nk.Name, nk.Role, nk.Scopes, nk.IsManager
	k.AgentID, k.StepTypes, k.CreatedBy = nk.AgentID, nk.StepTypes, creator.ID
	k.CreatedAt = r.now()
	k, _, err = km.CreateAPIKeyAudited(ctx, k, store.AuditEvent{})
	if err != nil {
		return store.APIKey{}, "", fmt.Errorf("create key: %w", err)
	}
	k.Hash = ""
	return k, secret, nil
}

// TenantKeys returns the tenant's keys (without hashes), oldest first.
func (r *Registry) TenantKeys(ctx context.Context, tenantID string) ([]store.APIKey, error) {
	km, err := r.keyStore()
	if err != nil {
		return nil, err
	}
	ks, err := km.ListAPIKeys(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	for i := range ks {
		ks[i].Hash = ""
	}
	return ks, nil
}

// target reads the key id of actor's tenant that actor may manage: itself,
// or a key whose rights actor's include. ErrKeyNotFound for a key of no
// tenant or of another tenant.
func (r *Registry) target(ctx context.Context, km store.KeyManagement, actor store.APIKey, id string) (store.APIKey, error) {
	ks, err := km.ListAPIKeys(ctx, actor.TenantID)
	if err != nil {
		return store.APIKey{}, err
	}
	i := slices.IndexFunc(ks, func(k store.APIKey) bool { return k.ID == id })
	if i < 0 {
		return store.APIKey{}, fmt.Errorf("%w: %q", ErrKeyNotFound, id)
	}
	k := ks[i]
	if k.ID != actor.ID {
		if why := covers(actor, k.Role, k.Scopes, k.IsManager, k.AgentID, k.StepTypes); why != "" {
			return store.APIKey{}, &RightsError{Reason: why}
		}
	}
	k.Hash = ""
	return k, nil
}

// RevokeTenantKey revokes the key id of actor's tenant: from the moment it
// returns this registry refuses it, and every replica within its
// revision-watch bound (the revocation bumps the tenant's revision).
func (r *Registry) RevokeTenantKey(ctx context.Context, actor store.APIKey, id string) (store.APIKey, error) {
	km, err := r.keyStore()
	if err != nil {
		return store.APIKey{}, err
	}
	if _, err := r.target(ctx, km, actor, id); err != nil {
		return store.APIKey{}, err
	}
	k, _, err := km.RevokeAPIKeyAudited(ctx, actor.TenantID, id, store.AuditEvent{Metadata: revokeMeta(actor)})
	if errors.Is(err, store.ErrNotFound) {
		return store.APIKey{}, fmt.Errorf("%w: %q", ErrKeyNotFound, id)
	}
	if err != nil {
		return store.APIKey{}, fmt.Errorf("revoke key: %w", err)
	}
	r.auth.revokeKey(id)
	k.Hash = ""
	return k, nil
}

func revokeMeta(actor store.APIKey) []byte {
	return fmt.Appendf(nil, `{"revoked_by":%q}`, actor.ID)
}

// RotateTenantKey replaces the key id of actor's tenant ("" for actor
// itself) with a new secret of the same identity, returned once; the old
// secret keeps working for grace (nil: the registry's default), then
// stops.
func (r *Registry) RotateTenantKey(ctx context.Context, actor store.APIKey, id string, grace *time.Duration) (store.APIKey, string, time.Time, error) {
	km, err := r.keyStore()
	if err != nil {
		return store.APIKey{}, "", time.Time{}, err
	}
	if id == "" {
		id = actor.ID
	}
	g := r.grace
	if grace != nil {
		if *grace < 0 || *grace > MaxRotationGrace {
			return store.APIKey{}, "", time.Time{}, pdp.Invalid("grace_period_seconds", "must be between 0 and %d", int(MaxRotationGrace.Seconds()))
		}
		g = *grace
	}
	old, err := r.target(ctx, km, actor, id)
	if err != nil {
		return store.APIKey{}, "", time.Time{}, err
	}
	secret, err := r.newAPIKey()
	if err != nil {
		return store.APIKey{}, "", time.Time{}, err
	}
	next, err := r.newKeyRecord(secret)
	if err != nil {
		return store.APIKey{}, "", time.Time{}, err
	}
	next.Name, next.Role, next.Scopes, next.IsManager = old.Name, old.Role, old.Scopes, old.IsManager
	next.AgentID, next.StepTypes, next.CreatedBy = old.AgentID, old.StepTypes, actor.ID
	now := r.now()
	next.CreatedAt = now
	if next.Name == "" {
		next.Name = old.Identity() // the identity survives the rotation
	}
	expires := now.Add(g)
	next, _, err = km.RotateAPIKeyAudited(ctx, actor.TenantID, id, next, expires, store.AuditEvent{})
	if errors.Is(err, store.ErrNotFound) {
		return store.APIKey{}, "", time.Time{}, fmt.Errorf("%w: %q", ErrKeyNotFound, id)
	}
	if err != nil {
		return store.APIKey{}, "", time.Time{}, fmt.Errorf("rotate key: %w", err)
	}
	r.auth.revokeKey(id) // its cached copy does not know its expiry yet
	next.Hash = ""
	return next, secret, expires, nil
}
