package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// Keys carry identities (README "Who may do what"): an owner's name, a
// role, a manager flag, scopes, and optionally a bound agent and allowed
// step types. KeyManagement stores the self-service key operations, each
// with its entry on the tenant's audit chain in the same transaction.

// KeyManagement is the self-service side of API keys. Both drivers
// implement it as part of GovernanceStore.
type KeyManagement interface {
	// ListAPIKeys returns the tenant's keys, revoked ones included, oldest
	// first. An unknown tenant has none.
	ListAPIKeys(ctx context.Context, tenantID string) ([]APIKey, error)
	// CreateAPIKeyAudited is CreateAPIKey plus its entry (key_created by
	// default; the store sets metadata key_id, name, role, scopes,
	// agent_id, is_manager, step_types and created_by).
	CreateAPIKeyAudited(ctx context.Context, k APIKey, ev AuditEvent) (APIKey, AuditEntry, error)
	// RevokeAPIKeyAudited revokes the tenant's key id and appends its entry
	// (key_revoked; metadata key_id, name), bumping the tenant's revision
	// as RevokeAPIKey does. ErrNotFound if the tenant has no such key;
	// revoking a revoked key changes nothing, appends nothing and returns
	// the key as it is.
	RevokeAPIKeyAudited(ctx context.Context, tenantID, id string, ev AuditEvent) (APIKey, AuditEntry, error)
	// RotateAPIKeyAudited stores next (an unrevoked copy of the tenant's
	// key oldID's identity under a new ID and hash) and makes the old key
	// expire at oldExpires (or keeps an earlier expiry), with one entry
	// (key_rotated; metadata key_id = the new key, rotated_key_id,
	// old_expires_at). ErrNotFound if the tenant has no such unrevoked key.
	RotateAPIKeyAudited(ctx context.Context, tenantID, oldID string, next APIKey, oldExpires time.Time, ev AuditEvent) (APIKey, AuditEntry, error)
}

// Events of key operations on the audit chain.
const (
	EventKeyCreated = "key_created"
	EventKeyRevoked = "key_revoked"
	EventKeyRotated = "key_rotated"
)

// KeyTx is what a key write needs of a driver's write transaction; a
// driver's PolicyTx implements it too.
type KeyTx interface {
	// InsertKey stores a prepared key.
	InsertKey(k APIKey) error
	// GetKey reads the tenant's key id; found is false when there is none.
	GetKey(tenantID, id string) (k APIKey, found bool, err error)
	// RevokeKey sets the key's revoked_at.
	RevokeKey(id string, at time.Time) error
	// ExpireKey sets the key's expires_at.
	ExpireKey(id string, at time.Time) error
	// BumpRevision increments the tenant's revision.
	BumpRevision(tenantID string) (uint64, error)
}

// Bounds of a key's identity.
const (
	MaxKeyNameLen  = 128
	MaxKeyAgentLen = 128
)

// Identity is who speaks with the key: its owner's name, or its ID for an
// unnamed key (every key stored before identities existed).
func (k APIKey) Identity() string {
	if k.Name != "" {
		return k.Name
	}
	return k.ID
}

// Has reports whether the key holds scope s.
func (k APIKey) Has(s pdp.KeyScope) bool { return slices.Contains(k.Scopes, s) }

// ExpiredAt reports whether the key has expired at now.
func (k APIKey) ExpiredAt(now time.Time) bool {
	return k.ExpiresAt != nil && !now.Before(*k.ExpiresAt)
}

// OwnerKey sets the identity of a key an operator issues, and of keys that
// existed before identities: role owner, every scope, manager.
func OwnerKey(k APIKey) APIKey {
	k.Role, k.Scopes, k.IsManager = pdp.RoleOwner, slices.Clone(pdp.AllScopes), true
	return k
}

func (k APIKey) identityProblems() pdp.ValidationErrors {
	var es pdp.ValidationErrors
	if !pdp.ValidRole(k.Role) {
		es = append(es, invalid("role", "must be owner, admin, member or readonly, got %q", k.Role))
	}
	if len(k.Scopes) == 0 {
		es = append(es, invalid("scopes", "required"))
	}
	for _, s := range k.Scopes {
		if !pdp.ValidScope(s) {
			es = append(es, invalid("scopes", "unknown scope %q", s))
		}
	}
	if len(k.Name) > MaxKeyNameLen*4 || len(k.AgentID) > MaxKeyAgentLen*4 {
		es = append(es, invalid("name", "too long"))
	}
	for _, st := range k.StepTypes {
		if !slices.Contains(pdp.StepTypes, st) {
			es = append(es, invalid("step_types", "unknown step type %q", st))
		}
	}
	if err := CheckText(Text{"name", k.Name}, Text{"agent_id", k.AgentID}, Text{"created_by", k.CreatedBy}); err != nil {
		es = append(es, invalid("name", "%v", err))
	}
	return es
}

// keyFacts are the metadata a key's entry gets from the store.
func keyFacts(k APIKey) map[string]any {
	scopes := make([]string, len(k.Scopes))
	for i, s := range k.Scopes {
		scopes[i] = string(s)
	}
	steps := k.StepTypes
	if steps == nil {
		steps = []string{}
	}
	return map[string]any{
		"key_id": k.ID, "name": k.Identity(), "role": string(k.Role), "scopes": scopes,
		"agent_id": optional(k.AgentID), "is_manager": k.IsManager, "step_types": steps,
		"created_by": optional(k.CreatedBy),
	}
}

func optional(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func keyTx(b BatchTx) (KeyTx, error) {
	tx, err := b.PolicyTx()
	if err != nil {
		return nil, err
	}
	kt, ok := tx.(KeyTx)
	if !ok {
		return nil, fmt.Errorf("store: the driver's transaction cannot write keys")
	}
	return kt, nil
}

// PrepareKey sets what the store owns on a key about to be created: its
// creation time (now when zero), no revocation, sorted scopes.
func PrepareKey(k APIKey, now func() time.Time) APIKey {
	k.CreatedAt = stampNow(k.CreatedAt, now)
	k.RevokedAt = nil
	k.Scopes = pdp.SortScopes(k.Scopes)
	if k.ExpiresAt != nil {
		e := k.ExpiresAt.UTC().Truncate(TimePrecision)
		k.ExpiresAt = &e
	}
	return k
}

// CreateAPIKeyAudited stores k and its entry in one group-committed
// transaction.
func (w *AuditedWriter[B]) CreateAPIKeyAudited(ctx context.Context, k APIKey, ev AuditEvent) (APIKey, AuditEntry, error) {
	k = PrepareKey(k, w.Now)
	if err := k.Validate(); err != nil {
		return APIKey{}, AuditEntry{}, fmt.Errorf("create key: %w", err)
	}
	if !AllStorable(k.TenantID, k.ID, k.Hash, k.Prefix) {
		return APIKey{}, AuditEntry{}, fmt.Errorf("create key: %w", ErrNotFound)
	}
	if ev.Timestamp.IsZero() {
		ev.Timestamp = k.CreatedAt
	}
	ev, err := CanonicalEvent(ev, EventKeyCreated, keyFacts(k))
	if err != nil {
		return APIKey{}, AuditEntry{}, fmt.Errorf("create key: audit: %w", err)
	}
	var entry AuditEntry
	err = w.GC.Do(ctx, k.TenantID, func(b B) error {
		tx, err := keyTx(b)
		if err != nil {
			return err
		}
		if err := tx.InsertKey(k); err != nil {
			return err
		}
		entry, err = w.appendEvent(b, k.TenantID, ev, "")
		return err
	})
	switch {
	case err != nil && w.Duplicate(err):
		return APIKey{}, AuditEntry{}, fmt.Errorf("create key %q: %w", k.ID, ErrDuplicate)
	case err != nil && w.MissingParent(err):
		return APIKey{}, AuditEntry{}, fmt.Errorf("create key %q: tenant %q: %w", k.ID, k.TenantID, ErrNotFound)
	case err != nil:
		return APIKey{}, AuditEntry{}, fmt.Errorf("create key %q: %w", k.ID, err)
	}
	return k, entry, nil
}

// RevokeAPIKeyAudited revokes the tenant's key and appends its entry.
func (w *AuditedWriter[B]) RevokeAPIKeyAudited(ctx context.Context, tenantID, id string, ev AuditEvent) (APIKey, AuditEntry, error) {
	if !AllStorable(tenantID, id) {
		return APIKey{}, AuditEntry{}, fmt.Errorf("revoke key %q: %w", id, ErrNotFound)
	}
	if _, err := CanonicalEvent(ev, EventKeyRevoked, nil); err != nil {
		return APIKey{}, AuditEntry{}, fmt.Errorf("revoke key: audit: %w", err)
	}
	at := stampNow(time.Time{}, w.Now)
	var (
		out   APIKey
		entry AuditEntry
	)
	err := w.GC.Do(ctx, tenantID, func(b B) error {
		entry = AuditEntry{}
		tx, err := keyTx(b)
		if err != nil {
			return err
		}
		k, found, err := tx.GetKey(tenantID, id)
		if err != nil {
			return err
		}
		if !found {
			return ErrNotFound
		}
		out = k
		if k.RevokedAt != nil {
			return nil
		}
		if err := tx.RevokeKey(id, at); err != nil {
			return err
		}
		if _, err := tx.BumpRevision(tenantID); err != nil {
			return err
		}
		out.RevokedAt = &at
		e := ev
		if e.Timestamp.IsZero() {
			e.Timestamp = at
		}
		e, err = CanonicalEvent(e, EventKeyRevoked, map[string]any{"key_id": k.ID, "name": k.Identity()})
		if err != nil {
			return err
		}
		entry, err = w.appendEvent(b, tenantID, e, "")
		return err
	})
	if err != nil {
		return APIKey{}, AuditEntry{}, fmt.Errorf("revoke key %q: %w", id, err)
	}
	return out, entry, nil
}

// RotateAPIKeyAudited stores next in place of the tenant's key oldID and
// makes oldID expire at oldExpires.
func (w *AuditedWriter[B]) RotateAPIKeyAudited(ctx context.Context, tenantID, oldID string, next APIKey, oldExpires time.Time, ev AuditEvent) (APIKey, AuditEntry, error) {
	if !AllStorable(tenantID, oldID) {
		return APIKey{}, AuditEntry{}, fmt.Errorf("rotate key %q: %w", oldID, ErrNotFound)
	}
	next.TenantID = tenantID
	next = PrepareKey(next, w.Now)
	if err := next.Validate(); err != nil {
		return APIKey{}, AuditEntry{}, fmt.Errorf("rotate key: %w", err)
	}
	if !AllStorable(next.ID, next.Hash, next.Prefix) {
		return APIKey{}, AuditEntry{}, fmt.Errorf("rotate key: %w", ErrNotFound)
	}
	if _, err := CanonicalEvent(ev, EventKeyRotated, nil); err != nil {
		return APIKey{}, AuditEntry{}, fmt.Errorf("rotate key: audit: %w", err)
	}
	oldExpires = oldExpires.UTC().Truncate(TimePrecision)
	var entry AuditEntry
	err := w.GC.Do(ctx, tenantID, func(b B) error {
		tx, err := keyTx(b)
		if err != nil {
			return err
		}
		old, found, err := tx.GetKey(tenantID, oldID)
		if err != nil {
			return err
		}
		if !found || old.RevokedAt != nil || old.ExpiredAt(next.CreatedAt) {
			return ErrNotFound
		}
		if old.ExpiresAt == nil || oldExpires.Before(*old.ExpiresAt) {
			if err := tx.ExpireKey(oldID, oldExpires); err != nil {
				return err
			}
			old.ExpiresAt = &oldExpires
		}
		if err := tx.InsertKey(next); err != nil {
			return err
		}
		// Other replicas drop the old key's cached copy, which does not
		// know its expiry, when the revision moves.
		if _, err := tx.BumpRevision(tenantID); err != nil {
			return err
		}
		e := ev
		if e.Timestamp.IsZero() {
			e.Timestamp = next.CreatedAt
		}
		facts := keyFacts(next)
		facts["rotated_key_id"] = oldID
		facts["old_expires_at"] = old.ExpiresAt.Format(time.RFC3339Nano)
		if e, err = CanonicalEvent(e, EventKeyRotated, facts); err != nil {
			return err
		}
		entry, err = w.appendEvent(b, tenantID, e, "")
		return err
	})
	switch {
	case err != nil && w.Duplicate(err):
		return APIKey{}, AuditEntry{}, fmt.Errorf("rotate key %q: %w", oldID, ErrDuplicate)
	case err != nil:
		return APIKey{}, AuditEntry{}, fmt.Errorf("rotate key %q: %w", oldID, err)
	}
	return next, entry, nil
}

// ApproverDecisions counts one approver's final decisions.
type ApproverDecisions struct {
	ApproverID string
	Approved   int64
	Denied     int64
}

// MaxApproversListed bounds DecisionsByApprover's answer.
const MaxApproversListed = 100

// ApproverStats counts decisions per approver for the dashboard.
type ApproverStats interface {
	// DecisionsByApprover counts the tenant's actions decided in [since,
	// until) per approver, most decisions first (then by approver), at
	// most MaxApproversListed of them.
	DecisionsByApprover(ctx context.Context, tenantID string, since, until time.Time) ([]ApproverDecisions, error)
}
