package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// Bounds of tenant settings.
const (
	maxTenantNameLen       = 128
	maxApprovalSettingsLen = 16 << 10
	minBootstrapRandom     = 8 // characters after "nram_" in an operator-chosen key
)

// BootstrapTenant is the ID and name of the tenant Bootstrap creates.
const BootstrapTenant = "default"

// NewTenant describes a tenant to create. ID defaults to a generated
// "ten_" + 16 hex, Name to a chosen ID (it is required otherwise), Mode to enforcement and ApprovalMode to
// the strongest mode the tier allows.
type NewTenant struct {
	// ID is what the API, bundles (/v1/bundles/{id}.tar.gz) and the admin
	// API name the tenant by: 1-64 letters, digits, '_' and '-', starting
	// with a letter or digit, so it reads the same in every URL and path.
	ID           string
	Name         string
	Tier         store.Tier
	Mode         pdp.Mode
	ApprovalMode string
}

// TenantUpdate lists tenant settings to change; nil fields are kept. When
// the tier changes and ApprovalMode is nil, an approval mode the new tier
// does not allow is replaced by the new tier's default.
type TenantUpdate struct {
	Name             *string
	Tier             *store.Tier
	Mode             *pdp.Mode
	ApprovalMode     *string
	ApprovalSettings *json.RawMessage // a JSON object, or JSON null to clear
	// SetRateLimit makes RateLimit replace the tenant's own rate limit
	// (nil: back to its tier's default). A Burst of 0 with a positive
	// rate becomes the rate rounded up.
	SetRateLimit bool
	RateLimit    *store.RateLimit
	// RequireAgentKeys, when set, makes every action come from an
	// agent-bound key (or lifts that).
	RequireAgentKeys *bool
}

// CreateTenant creates a tenant and its first API key, returning the key
// itself once: only its hash is stored.
// A chosen ID that is taken is ErrTenantExists.
func (r *Registry) CreateTenant(ctx context.Context, nt NewTenant) (store.Tenant, string, error) {
	id := nt.ID
	if id == "" {
		var err error
		if id, err = r.newID("ten_", 8); err != nil {
			return store.Tenant{}, "", err
		}
	} else if !validTenantID(id) {
		return store.Tenant{}, "", pdp.Invalid("id", "must be 1-%d letters, digits, '_' or '-', starting with a letter or digit", maxTenantIDLen)
	}
	if nt.Name == "" && nt.ID != "" {
		nt.Name = nt.ID // a chosen ID names the tenant well enough
	}
	t, key, err := r.createTenant(ctx, id, nt, "")
	if nt.ID != "" && errors.Is(err, store.ErrDuplicate) {
		return store.Tenant{}, "", fmt.Errorf("tenant %q: %w", id, ErrTenantExists)
	}
	return t, key, err
}

// maxTenantIDLen bounds a chosen tenant ID.
const maxTenantIDLen = 64

// validTenantID: ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$.
func validTenantID(id string) bool {
	if id == "" || len(id) > maxTenantIDLen {
		return false
	}
	for i, c := range id {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

func (r *Registry) createTenant(ctx context.Context, id string, nt NewTenant, key string) (store.Tenant, string, error) {
	var es pdp.ValidationErrors
	checkTenantName(&es, nt.Name)
	if !nt.Tier.Valid() {
		es = append(es, tierProblem(nt.Tier))
	}
	if nt.Mode == "" {
		nt.Mode = pdp.ModeEnforcement
	} else if !validMode(nt.Mode) {
		es = append(es, modeProblem(nt.Mode))
	}
	if nt.ApprovalMode == "" && nt.Tier.Valid() {
		nt.ApprovalMode = NewTenantApprovalMode
	} else if nt.Tier.Valid() && !slices.Contains(ApprovalModes(nt.Tier), nt.ApprovalMode) {
		es = append(es, approvalProblem(nt.Tier, nt.ApprovalMode))
	}
	if err := es.Err(); err != nil {
		return store.Tenant{}, "", err
	}
	if key == "" {
		var err error
		if key, err = r.newAPIKey(); err != nil {
			return store.Tenant{}, "", err
		}
	}
	k, err := r.newKeyRecord(key)
	if err != nil {
		return store.Tenant{}, "", err
	}
	t := store.Tenant{ID: id, Name: nt.Name, Tier: nt.Tier, Mode: nt.Mode, ApprovalMode: nt.ApprovalMode}
	if nt.ApprovalMode == ApprovalEnterprise {
		t.ApprovalSettings = json.RawMessage(`{"min_approvals":2}`)
	}
	t, err = r.st.CreateTenant(ctx, t, k)
	if err != nil {
		return store.Tenant{}, "", fmt.Errorf("create tenant: %w", err)
	}
	r.remember(t)
	if err := r.publish(ctx, t.ID, t.Revision); err != nil {
		return store.Tenant{}, "", err
	}
	r.warm(ctx, t.ID)
	return t, key, nil
}

func (r *Registry) newKeyRecord(key string) (store.APIKey, error) {
	id, err := r.newID("key_", 8)
	if err != nil {
		return store.APIKey{}, err
	}
	return store.OwnerKey(store.APIKey{ID: id, Hash: store.HashAPIKey(key), Prefix: store.KeyPrefix(key)}), nil
}

// Tenant returns one tenant as stored, or ErrTenantNotFound.
func (r *Registry) Tenant(ctx context.Context, id string) (store.Tenant, error) {
	return r.freshTenant(ctx, id)
}

// Tenants returns every tenant, oldest first.
func (r *Registry) Tenants(ctx context.Context) ([]store.Tenant, error) {
	ts, err := r.st.ListTenants(ctx)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	for _, t := range ts {
		r.remember(t)
	}
	return ts, nil
}

// UpdateTenant changes a tenant's settings and publishes the new snapshot
// (the mode is compiled into decisions) before returning. ErrTenantNotFound
// if there is no such tenant; every invalid field at once as
// pdp.ValidationErrors.
func (r *Registry) UpdateTenant(ctx context.Context, id string, u TenantUpdate) (store.Tenant, error) {
	l := r.lockFor(id)
	l.Lock()
	defer l.Unlock()
	cur, err := r.freshTenant(ctx, id)
	if err != nil {
		return store.Tenant{}, err
	}
	var es pdp.ValidationErrors
	su := store.TenantUpdate{Name: u.Name, Tier: u.Tier, Mode: u.Mode, ApprovalMode: u.ApprovalMode, RequireAgentKeys: u.RequireAgentKeys}
	if u.Name != nil {
		checkTenantName(&es, *u.Name)
	}
	tier := cur.Tier
	if u.Tier != nil {
		if !u.Tier.Valid() {
			es = append(es, tierProblem(*u.Tier))
		}
		tier = *u.Tier
	}
	if u.Mode != nil && !validMode(*u.Mode) {
		es = append(es, modeProblem(*u.Mode))
	}
	switch {
	case !tier.Valid():
	case u.ApprovalMode != nil:
		if !slices.Contains(ApprovalModes(tier), *u.ApprovalMode) {
			es = append(es, approvalProblem(tier, *u.ApprovalMode))
		}
	case !slices.Contains(ApprovalModes(tier), cur.ApprovalMode):
		m := DefaultApprovalMode(tier)
		su.ApprovalMode = &m
	}
	if u.ApprovalSettings != nil {
		raw := bytes.TrimSpace(*u.ApprovalSettings)
		switch {
		case len(raw) > maxApprovalSettingsLen:
			es = append(es, &pdp.ValidationError{Field: "approval_settings", Reason: fmt.Sprintf("must be at most %d bytes", maxApprovalSettingsLen)})
		case string(raw) == "null":
			var none json.RawMessage
			su.ApprovalSettings = &none
		case len(raw) == 0 || raw[0] != '{' || !json.Valid(raw):
			es = append(es, &pdp.ValidationError{Field: "approval_settings", Reason: "must be a JSON object or null"})
		case !checkApprovalSettings(&es, raw):
		default:
			settings := json.RawMessage(bytes.Clone(raw))
			su.ApprovalSettings = &settings
		}
	}
	if u.SetRateLimit {
		su.SetRateLimit, su.RateLimit = true, normalizeRateLimit(u.RateLimit, &es)
	}
	if err := es.Err(); err != nil {
		return store.Tenant{}, err
	}
	t, err := r.st.UpdateTenant(ctx, id, su)
	if errors.Is(err, store.ErrNotFound) {
		return store.Tenant{}, fmt.Errorf("%w: %q", ErrTenantNotFound, id)
	}
	if err != nil {
		return store.Tenant{}, fmt.Errorf("update tenant: %w", err)
	}
	r.remember(t)
	if err := r.publishLocked(ctx, id, t.Revision); err != nil {
		return store.Tenant{}, err
	}
	r.warm(ctx, id)
	return t, nil
}

// CreateKey adds an API key to a tenant and returns it once.
func (r *Registry) CreateKey(ctx context.Context, tenantID string) (store.APIKey, string, error) {
	key, err := r.newAPIKey()
	if err != nil {
		return store.APIKey{}, "", err
	}
	k, err := r.newKeyRecord(key)
	if err != nil {
		return store.APIKey{}, "", err
	}
	k.TenantID = tenantID
	k.CreatedAt = r.now()
	if km, ok := r.st.(store.KeyManagement); ok {
		k, _, err = km.CreateAPIKeyAudited(ctx, k, store.AuditEvent{Metadata: []byte(`{"created_by_operator":true}`)})
	} else {
		k, err = r.st.CreateAPIKey(ctx, k)
	}
	if errors.Is(err, store.ErrNotFound) {
		return store.APIKey{}, "", fmt.Errorf("%w: %q", ErrTenantNotFound, tenantID)
	}
	if err != nil {
		return store.APIKey{}, "", fmt.Errorf("create key: %w", err)
	}
	return k, key, nil
}

// RevokeKey revokes an API key; from the moment it returns, this registry
// rejects the key. Revoking a revoked key succeeds. ErrKeyNotFound if there
// is no such key.
func (r *Registry) RevokeKey(ctx context.Context, keyID string) error {
	err := r.st.RevokeAPIKey(ctx, keyID)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %q", ErrKeyNotFound, keyID)
	}
	if err != nil {
		return fmt.Errorf("revoke key: %w", err)
	}
	r.auth.revokeKey(keyID)
	return nil
}

// Bootstrap creates tenant "default" (tier enterprise) on an empty store,
// with key as its API key, or a generated one when key is "" (returned for
// the caller to print once). On a store that has any tenant it does
// nothing and returns created=false. An operator-chosen key must start
// with "nram_" and have at least 8 more printable, non-space characters.
func (r *Registry) Bootstrap(ctx context.Context, key string) (created bool, apiKey string, err error) {
	if key != "" {
		if err := checkBootstrapKey(key); err != nil {
			return false, "", err
		}
	}
	n, err := r.st.CountTenants(ctx)
	if err != nil {
		return false, "", fmt.Errorf("bootstrap: %w", err)
	}
	if n > 0 {
		return false, "", nil
	}
	_, apiKey, err = r.createTenant(ctx, BootstrapTenant, NewTenant{Name: BootstrapTenant, Tier: store.TierEnterprise}, key)
	if errors.Is(err, store.ErrDuplicate) {
		return false, "", nil // another process bootstrapped first
	}
	if err != nil {
		return false, "", fmt.Errorf("bootstrap: %w", err)
	}
	return true, apiKey, nil
}

func checkBootstrapKey(key string) error {
	rest, ok := strings.CutPrefix(key, KeyPrefix)
	switch {
	case !ok:
		return pdp.Invalid("bootstrap_key", "must start with %q", KeyPrefix)
	case len(key) > maxKeyLen:
		return pdp.Invalid("bootstrap_key", "must be at most %d characters", maxKeyLen)
	case len(rest) < minBootstrapRandom:
		return pdp.Invalid("bootstrap_key", "must have at least %d characters after %q", minBootstrapRandom, KeyPrefix)
	}
	for _, c := range rest {
		if c <= ' ' || c > '~' {
			return pdp.Invalid("bootstrap_key", "must be printable ASCII without spaces")
		}
	}
	return nil
}

func checkTenantName(es *pdp.ValidationErrors, name string) {
	switch {
	case strings.TrimSpace(name) == "":
		*es = append(*es, &pdp.ValidationError{Field: "name", Reason: "is required"})
	case !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl):
		*es = append(*es, &pdp.ValidationError{Field: "name", Reason: "must be valid UTF-8 without control characters"})
	case utf8.RuneCountInString(name) > maxTenantNameLen:
		*es = append(*es, &pdp.ValidationError{Field: "name", Reason: fmt.Sprintf("must be at most %d characters", maxTenantNameLen)})
	}
}

func validMode(m pdp.Mode) bool { return m == pdp.ModeEnforcement || m == pdp.ModeShadow }

func tierProblem(t store.Tier) *pdp.ValidationError {
	return &pdp.ValidationError{Field: "tier", Reason: fmt.Sprintf("must be one of free, starter, pro, enterprise (got %q)", shorten(string(t)))}
}

func modeProblem(m pdp.Mode) *pdp.ValidationError {
	return &pdp.ValidationError{Field: "mode", Reason: fmt.Sprintf("must be enforcement or shadow (got %q)", shorten(string(m)))}
}

func approvalProblem(t store.Tier, m string) *pdp.ValidationError {
	return &pdp.ValidationError{Field: "approval_mode", Reason: fmt.Sprintf("tier %s allows %s (got %q)", t, strings.Join(ApprovalModes(t), ", "), shorten(m))}
}

// shorten bounds user text echoed in a message.
func shorten(s string) string {
	const limit = 64
	if utf8.RuneCountInString(s) <= limit {
		return s
	}
	return string([]rune(s)[:limit]) + "…"
}
