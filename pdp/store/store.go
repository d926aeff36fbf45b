// Package store defines what Gatehouse persists — tenants, API keys,
// policies and the actions agents submit — as small capability interfaces
// composed into Store, plus the typed errors every driver returns. Drivers
// live in subpackages (sqlite/, later postgres/) and keep all of their SQL
// to themselves; storetest/ is the conformance suite each driver must pass.
//
// Timestamps come back in UTC at TimePrecision, whatever the backend, so the
// same value reads back equal from every driver.
package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// Store is everything Gatehouse persists. A driver implements all of it, so
// callers depend on the smallest capability they need (a registry on
// Policies, the auth middleware on APIKeys) and main wires one Store.
type Store interface {
	Driver
	Tenants
	APIKeys
	Policies
	PolicyVersions
	Actions
	ActionWindows
	ShadowHitCounter
}

// Driver is the base every backend implements.
type Driver interface {
	// Backend names the driver as the dashboard reports it ("sqlite",
	// "postgres").
	Backend() string
	// Ping reports whether the database answers.
	Ping(ctx context.Context) error
	// Close releases the database; the store is unusable afterwards.
	Close() error
}

// Tenants stores tenants and their settings.
type Tenants interface {
	// CreateTenant stores a new tenant with revision 1, together with keys
	// (their TenantID is set to t.ID) in the same transaction, so a tenant
	// never exists without the key it was created for. A zero CreatedAt is
	// set to now. ErrDuplicate if the ID (or a key's ID or hash) is taken.
	CreateTenant(ctx context.Context, t Tenant, keys ...APIKey) (Tenant, error)
	// GetTenant returns one tenant or ErrNotFound.
	GetTenant(ctx context.Context, id string) (Tenant, error)
	// ListTenants returns every tenant, oldest first.
	ListTenants(ctx context.Context) ([]Tenant, error)
	// UpdateTenant applies the non-nil fields of u and bumps the tenant's
	// revision (the mode is compiled into decisions, so any change must
	// invalidate what was compiled at the old revision). ErrNotFound if the
	// tenant does not exist.
	UpdateTenant(ctx context.Context, id string, u TenantUpdate) (Tenant, error)
	// CountTenants returns how many tenants exist (bootstrap checks for 0).
	CountTenants(ctx context.Context) (int, error)
}

// APIKeys stores the hashes of tenants' API keys.
type APIKeys interface {
	// CreateAPIKey stores k. A zero CreatedAt is set to now; RevokedAt is
	// ignored. ErrNotFound if k.TenantID does not exist, ErrDuplicate if the
	// ID or hash is taken.
	CreateAPIKey(ctx context.Context, k APIKey) (APIKey, error)
	// TenantByKeyHash returns the tenant owning the unrevoked key whose hash
	// is hash (see HashAPIKey), or ErrNotFound for an unknown or revoked key.
	TenantByKeyHash(ctx context.Context, hash string) (Tenant, APIKey, error)
	// RevokeAPIKey revokes the key with this ID. Revoking a revoked key is a
	// no-op that keeps the first revocation time. ErrNotFound if no such key.
	RevokeAPIKey(ctx context.Context, id string) error
}

// Policies stores custom policies keyed by (tenant, agent or "", name).
// Every write runs in one transaction that also increments the tenant's
// revision and returns the new value, so a revision names exactly one set
// of policies and mode (the engine's cache keys rely on that).
type Policies interface {
	// PutPolicy inserts a policy at version 1 or replaces an existing one's
	// content and enabled flag at version+1. See PutPolicyRequest for the
	// limit check. ErrNotFound if the tenant does not exist, or if
	// MustExist is set and the policy does not.
	PutPolicy(ctx context.Context, req PutPolicyRequest) (PolicyWrite, error)
	// DisablePolicy sets enabled=false at version+1, also when the policy is
	// already disabled (whether to call it is the registry's decision).
	// ErrNotFound if the policy does not exist.
	DisablePolicy(ctx context.Context, key PolicyKey) (PolicyWrite, error)
	// GetPolicy returns one policy, enabled or not, or ErrNotFound.
	GetPolicy(ctx context.Context, key PolicyKey) (pdp.Policy, error)
	// ListPolicies returns the tenant's policies matching f, tenant-wide
	// first, then by agent ID, then by name. An unknown tenant has none.
	ListPolicies(ctx context.Context, tenantID string, f PolicyFilter) ([]pdp.Policy, error)
	// CountEnabledPolicies counts the tenant's enabled policies in both
	// scopes (what the tier limit counts).
	CountEnabledPolicies(ctx context.Context, tenantID string) (int, error)
	// TenantPolicies reads the tenant's revision, mode and enabled policies
	// (both scopes, ordered as ListPolicies) from one snapshot: what the
	// engine compiles. ErrNotFound if the tenant does not exist.
	TenantPolicies(ctx context.Context, tenantID string) (pdp.TenantPolicies, error)
}

// Actions stores submitted actions and their decisions.
type Actions interface {
	// InsertAction stores a; it is durable when InsertAction returns. A zero
	// CreatedAt is set to now. ErrNotFound if the tenant does not exist,
	// ErrDuplicate if the ID is taken.
	InsertAction(ctx context.Context, a ActionRecord) (ActionRecord, error)
	// GetAction returns the tenant's action with this ID. Another tenant's
	// action is ErrNotFound, exactly like a missing one.
	GetAction(ctx context.Context, tenantID, id string) (ActionRecord, error)
	// ListActions returns one page of the tenant's actions matching q, newest
	// first, and how many match q in total.
	ListActions(ctx context.Context, tenantID string, q ActionQuery) ([]ActionRecord, int, error)
}

// Tier is a tenant's plan.
type Tier string

// Tiers, weakest first.
const (
	TierFree       Tier = "free"
	TierStarter    Tier = "starter"
	TierPro        Tier = "pro"
	TierEnterprise Tier = "enterprise"
)

// Valid reports whether t is one of the four tiers.
func (t Tier) Valid() bool {
	switch t {
	case TierFree, TierStarter, TierPro, TierEnterprise:
		return true
	}
	return false
}

// Tenant is one customer of Gatehouse. Revision increases by one on every
// write that changes what decisions depend on (policies, mode, settings).
type Tenant struct {
	ID               string
	Name             string
	Tier             Tier
	Mode             pdp.Mode
	ApprovalMode     string
	ApprovalSettings json.RawMessage // JSON, or nil
	RateLimit        *RateLimit      // the tenant's own rate limit; nil: its tier's default
	// RequireAgentKeys makes every action come from an agent-bound key.
	RequireAgentKeys bool
	Revision         uint64
	CreatedAt        time.Time
}

// TenantUpdate lists the tenant fields to change; nil fields are kept.
type TenantUpdate struct {
	Name             *string
	Tier             *Tier
	Mode             *pdp.Mode
	ApprovalMode     *string
	ApprovalSettings *json.RawMessage // pointer to nil clears the settings
	// SetRateLimit makes RateLimit replace the tenant's own rate limit;
	// a nil RateLimit then removes it (back to the tier's default).
	SetRateLimit bool
	RateLimit    *RateLimit
	// RequireAgentKeys, when set, replaces the tenant's setting.
	RequireAgentKeys *bool
}

// Apply sets the fields of t that u changes.
func (u TenantUpdate) Apply(t *Tenant) {
	if u.Name != nil {
		t.Name = *u.Name
	}
	if u.Tier != nil {
		t.Tier = *u.Tier
	}
	if u.Mode != nil {
		t.Mode = *u.Mode
	}
	if u.ApprovalMode != nil {
		t.ApprovalMode = *u.ApprovalMode
	}
	if u.ApprovalSettings != nil {
		t.ApprovalSettings = *u.ApprovalSettings
	}
	if u.SetRateLimit {
		t.RateLimit = u.RateLimit
	}
	if u.RequireAgentKeys != nil {
		t.RequireAgentKeys = *u.RequireAgentKeys
	}
}

// StampUp rounds t up to TimePrecision, in UTC, so a query bound between
// two stored instants selects what a full-precision comparison would.
func StampUp(t time.Time) time.Time {
	s := t.UTC().Truncate(TimePrecision)
	if s.Before(t) {
		s = s.Add(TimePrecision)
	}
	return s
}

// APIKey is the stored form of an API key: only its hash and a display
// prefix, never the key.
type APIKey struct {
	ID        string
	TenantID  string
	Hash      string // HashAPIKey of the full key
	Prefix    string // KeyPrefix of the full key
	CreatedAt time.Time
	RevokedAt *time.Time

	// The key's identity (keys_identity.go): who speaks with it and what
	// it may do. Keys stored before identities existed read as owners
	// with every scope and the manager flag.

	// Name is the owner's name, a person's or an agent's; "" for an
	// unnamed key, whose identity is then its ID (Identity).
	Name      string
	Role      pdp.Role
	IsManager bool
	Scopes    []pdp.KeyScope // required; in pdp.AllScopes order
	// AgentID binds the key to one agent: it submits as that agent and
	// never decides that agent's actions. "" for none.
	AgentID string
	// StepTypes are the step types the key may submit (upper-case); empty
	// for every one.
	StepTypes []string
	// ExpiresAt ends a key that was rotated, after its grace period; nil
	// for a key that does not expire.
	ExpiresAt *time.Time
	// CreatedBy is the ID of the key that created this one ("" when an
	// operator did).
	CreatedBy string
}

// PolicyKey names one policy. AgentID is "" for a tenant-wide policy.
type PolicyKey struct {
	TenantID string
	AgentID  string
	Name     string
}

// TimePrecision is the resolution stored timestamps keep: microseconds,
// what PostgreSQL's timestamptz holds.
const TimePrecision = time.Microsecond

// Unlimited is the PutPolicyRequest.Limit that disables the limit check.
const Unlimited = -1

// PutPolicyRequest is one policy write.
type PutPolicyRequest struct {
	TenantID string
	// Policy carries the key (AgentID, Name), the content and Enabled.
	// Version and timestamps are ignored: the store keeps them.
	Policy pdp.Policy
	// Limit is the most enabled policies the tenant may have (both scopes),
	// or Unlimited. It is checked only when this write adds an enabled
	// policy — it creates one enabled, or enables a disabled one — and then
	// inside the write's transaction, so concurrent writes cannot together
	// pass it. Whether the write adds one is decided in that transaction
	// too, not by the caller from an earlier read. A refused write returns
	// a *LimitError and changes nothing.
	Limit int
	// MustExist makes the write an update only (PUT): ErrNotFound if the
	// policy does not exist at this scope.
	MustExist bool
	// Actor names who writes (kept in the version), or "".
	Actor string
	// RollbackOf, when > 0, is the earlier version whose content Policy
	// restores: the version is recorded as rolled_back from it. The
	// write is otherwise an ordinary update.
	RollbackOf int
}

// PolicyWrite is the result of a policy write.
type PolicyWrite struct {
	Policy   pdp.Policy // as stored, with its version and timestamps
	Created  bool       // true when the write inserted the policy
	Revision uint64     // the tenant's revision after the write
	// Version is the history entry the write stored (Version.Action says
	// what it did).
	Version PolicyVersion
}

// PolicyFilter selects policies. The zero value selects all of them.
type PolicyFilter struct {
	// AgentID selects one scope: nil for every scope, "" for tenant-wide
	// policies only, a non-empty ID for that agent's policies only.
	AgentID *string
	// EnabledOnly leaves out disabled policies.
	EnabledOnly bool
}

// ActionRecord is a submitted action with its decision. Decision holds the
// policy_result JSON; the flat fields beside it (TriggeredPolicy …
// ViolationCount) repeat parts of it so listings, approvals and the
// dashboard can filter and aggregate without decoding it.
type ActionRecord struct {
	ID              string // chosen by the caller, e.g. "act_" + 24 hex digits (pdp/lifecycle: time, then random)
	TenantID        string
	AgentID         string
	Action          string
	Connector       string
	Operation       string
	Params          json.RawMessage // JSON, or nil
	StepType        string
	Status          pdp.Status
	Decision        json.RawMessage // JSON policy_result, or nil
	TriggeredPolicy string          // "" when nothing fired
	Severity        pdp.Severity    // "" when nothing fired
	RiskScore       float64
	ViolationCount  int
	TraceID         string
	CreatedAt       time.Time
	DecidedAt       *time.Time
	ApproverID      string
	DecisionReason  string
	// JSONEncoded is set by a writer that produced Params and Decision
	// with encoding/json (or an encoder held to its output, as the
	// lifecycle's decision encoder is): ValidateAction then does not parse
	// them again to prove they are JSON; every other check (UTF-8, NUL,
	// sizes) still runs. It is not stored: PrepareAction clears it, and a
	// record read back never has it.
	JSONEncoded bool
}

// ActionQuery selects a page of actions.
type ActionQuery struct {
	Status pdp.Status // "" for every status
	Limit  int        // ≤ 0 for no limit; the API layer bounds it
	Offset int
}
