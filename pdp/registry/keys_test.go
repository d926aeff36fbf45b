package registry_test

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/sqlite"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// keyEnv is a registry on a real SQLite store that keeps the audit chain,
// with an injected clock.
func keyEnv(t *testing.T, opts ...registry.Option) (*registry.Registry, *sqlite.DB, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Now().UTC()}
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "g.db"), sqlite.WithNowFunc(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	eng, err := engine.New(engine.Config{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(db, eng, append([]registry.Option{registry.WithNow(clk.Now)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return reg, db, clk
}

func identify(t *testing.T, reg *registry.Registry, secret string) (registry.Identity, error) {
	t.Helper()
	return reg.Identify(t.Context(), secret)
}

func TestKeysNeverGiveMoreRights(t *testing.T) {
	reg, _, _ := keyEnv(t)
	_, secret, err := reg.CreateTenant(t.Context(), registry.NewTenant{Name: "acme", Tier: store.TierPro})
	if err != nil {
		t.Fatal(err)
	}
	owner, err := identify(t, reg, secret)
	if err != nil {
		t.Fatal(err)
	}
	admin, adminSecret, err := reg.CreateTenantKey(t.Context(), owner.Key, registry.NewKey{Name: "ann", Role: pdp.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	if admin.IsManager || len(admin.Scopes) != len(pdp.AllScopes) || admin.TenantID != owner.Tenant.ID {
		t.Fatalf("admin key %+v", admin)
	}
	got, err := identify(t, reg, adminSecret)
	if err != nil || got.Key.Identity() != "ann" || got.Key.Role != pdp.RoleAdmin {
		t.Fatalf("the new secret identifies %+v, %v", got.Key, err)
	}
	bot, _, err := reg.CreateTenantKey(t.Context(), admin, registry.NewKey{Name: "bot", AgentID: "payer-bot",
		Scopes: []pdp.KeyScope{pdp.ScopeActionsSubmit, pdp.ScopeKeysManage}, StepTypes: []string{"action"}})
	if err != nil {
		t.Fatal(err)
	}
	var rights *registry.RightsError
	for name, tc := range map[string]struct {
		creator store.APIKey
		nk      registry.NewKey
	}{
		"an admin making an owner":             {admin, registry.NewKey{Name: "x", Role: pdp.RoleOwner}},
		"a non-manager making a manager":       {admin, registry.NewKey{Name: "x", IsManager: true}},
		"a scope the creator lacks":            {bot, registry.NewKey{Name: "x", AgentID: "payer-bot", StepTypes: []string{"ACTION"}, Scopes: []pdp.KeyScope{pdp.ScopeApprovalsDecide}}},
		"an agent key making an unbound key":   {bot, registry.NewKey{Name: "x", StepTypes: []string{"ACTION"}, Scopes: []pdp.KeyScope{pdp.ScopeActionsSubmit}}},
		"an agent key making another agent's":  {bot, registry.NewKey{Name: "x", AgentID: "other", StepTypes: []string{"ACTION"}, Scopes: []pdp.KeyScope{pdp.ScopeActionsSubmit}}},
		"a step-limited key making any step":   {bot, registry.NewKey{Name: "x", AgentID: "payer-bot", Scopes: []pdp.KeyScope{pdp.ScopeActionsSubmit}}},
		"a member default (decide) from a bot": {bot, registry.NewKey{Name: "x", AgentID: "payer-bot", StepTypes: []string{"ACTION"}}},
	} {
		if _, _, err := reg.CreateTenantKey(t.Context(), tc.creator, tc.nk); !errors.As(err, &rights) {
			t.Errorf("%s: %v, want a RightsError", name, err)
		}
	}
	// Within its rights a bound key creates a key for its agent.
	if _, _, err := reg.CreateTenantKey(t.Context(), bot, registry.NewKey{Name: "bot-2", AgentID: "payer-bot", StepTypes: []string{"ACTION"},
		Scopes: []pdp.KeyScope{pdp.ScopeActionsSubmit}}); err != nil {
		t.Errorf("a bound key within its rights: %v", err)
	}
	// An admin cannot revoke the owner's key; the owner revokes the admin's.
	if _, err := reg.RevokeTenantKey(t.Context(), admin, owner.KeyID); !errors.As(err, &rights) {
		t.Errorf("admin revoking the owner: %v", err)
	}
	if _, err := reg.RevokeTenantKey(t.Context(), owner.Key, admin.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := identify(t, reg, adminSecret); !errors.Is(err, registry.ErrUnauthorized) {
		t.Errorf("a revoked key authenticates: %v", err)
	}
	for _, bad := range []registry.NewKey{{}, {Name: "x", Role: "boss"}, {Name: "x", Scopes: []pdp.KeyScope{"root"}}, {Name: "x", StepTypes: []string{"dream"}}, {Name: "x", AgentID: "a\x01b"}} {
		var ve *pdp.ValidationError
		if _, _, err := reg.CreateTenantKey(t.Context(), owner.Key, bad); !errors.As(err, &ve) {
			t.Errorf("%+v: %v, want a validation error", bad, err)
		}
	}
}

func TestKeysAreTenantIsolated(t *testing.T) {
	reg, _, _ := keyEnv(t)
	_, s1, _ := reg.CreateTenant(t.Context(), registry.NewTenant{Name: "one", Tier: store.TierPro})
	_, s2, _ := reg.CreateTenant(t.Context(), registry.NewTenant{Name: "two", Tier: store.TierPro})
	one, _ := identify(t, reg, s1)
	two, _ := identify(t, reg, s2)
	k, secret, err := reg.CreateTenantKey(t.Context(), one.Key, registry.NewKey{Name: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.RevokeTenantKey(t.Context(), two.Key, k.ID); !errors.Is(err, registry.ErrKeyNotFound) {
		t.Errorf("another tenant revoking: %v", err)
	}
	if _, _, _, err := reg.RotateTenantKey(t.Context(), two.Key, k.ID, nil); !errors.Is(err, registry.ErrKeyNotFound) {
		t.Errorf("another tenant rotating: %v", err)
	}
	ks, err := reg.TenantKeys(t.Context(), two.Tenant.ID)
	if err != nil || len(ks) != 1 || ks[0].ID != two.KeyID || ks[0].Hash != "" {
		t.Errorf("tenant two's keys: %+v, %v", ks, err)
	}
	if id, err := identify(t, reg, secret); err != nil || id.Tenant.ID != one.Tenant.ID {
		t.Errorf("alice's key after the other tenant's attempts: %+v, %v", id, err)
	}
}

func TestKeyRotationGrace(t *testing.T) {
	reg, db, clk := keyEnv(t, registry.WithRotationGrace(time.Hour))
	_, secret, err := reg.CreateTenant(t.Context(), registry.NewTenant{Name: "acme", Tier: store.TierPro})
	if err != nil {
		t.Fatal(err)
	}
	owner, _ := identify(t, reg, secret)
	next, nextSecret, expires, err := reg.RotateTenantKey(t.Context(), owner.Key, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !expires.Equal(clk.Now().Add(time.Hour)) || next.Identity() != owner.Key.Identity() || next.Role != pdp.RoleOwner || !next.IsManager {
		t.Fatalf("rotation: %+v, old key expires %v", next, expires)
	}
	// Within the grace period both secrets work (the old one from the
	// cache, as on a replica, and from the store).
	for _, s := range []string{secret, nextSecret} {
		if _, err := identify(t, reg, s); err != nil {
			t.Fatalf("within the grace period: %v", err)
		}
	}
	clk.Add(time.Hour - time.Second)
	if _, err := identify(t, reg, secret); err != nil {
		t.Fatalf("a second before the end of the grace period: %v", err)
	}
	clk.Add(time.Second)
	if _, err := identify(t, reg, secret); !errors.Is(err, registry.ErrUnauthorized) {
		t.Fatalf("the old secret after its grace period: %v", err)
	}
	if _, err := identify(t, reg, nextSecret); err != nil {
		t.Fatalf("the new secret: %v", err)
	}
	// Every key operation is on the chain.
	es, _, err := db.ListAudit(t.Context(), owner.Tenant.ID, store.AuditQuery{})
	if err != nil || len(es) != 1 || es[0].Event != store.EventKeyRotated {
		t.Fatalf("audit after a rotation: %+v, %v", es, err)
	}
	// Default grace: 24 h; a grace of 0 ends the old key at once.
	reg2, _, clk2 := keyEnv(t)
	_, s2, _ := reg2.CreateTenant(t.Context(), registry.NewTenant{Name: "b", Tier: store.TierPro})
	o2, _ := identify(t, reg2, s2)
	if _, _, exp, err := reg2.RotateTenantKey(t.Context(), o2.Key, "", nil); err != nil || !exp.Equal(clk2.Now().Add(registry.DefaultRotationGrace)) {
		t.Fatalf("default grace: %v, %v", exp, err)
	}
	_, s3, _ := reg2.CreateTenant(t.Context(), registry.NewTenant{Name: "c", Tier: store.TierPro})
	o3, _ := identify(t, reg2, s3)
	zero := time.Duration(0)
	if _, _, _, err := reg2.RotateTenantKey(t.Context(), o3.Key, "", &zero); err != nil {
		t.Fatal(err)
	}
	if _, err := identify(t, reg2, s3); !errors.Is(err, registry.ErrUnauthorized) {
		t.Fatalf("the old secret with no grace: %v", err)
	}
}
