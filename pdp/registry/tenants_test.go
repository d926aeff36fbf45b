package registry_test

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

var keyPattern = regexp.MustCompile(`^nram_[0-9A-Za-z]{40}$`)

func TestCreateTenant(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	for _, tc := range []struct {
		tier     store.Tier
		approval string
	}{
		// Every tier starts in solo (issue 15: the documented flow works
		// on a fresh tenant); operators move it to team or enterprise.
		{store.TierFree, "solo"},
		{store.TierStarter, "solo"},
		{store.TierPro, "solo"},
		{store.TierEnterprise, "solo"},
	} {
		tn, key, err := e.reg.CreateTenant(ctx, registry.NewTenant{Name: "n", Tier: tc.tier})
		if err != nil {
			t.Fatal(err)
		}
		if !keyPattern.MatchString(key) {
			t.Errorf("key %q does not look like nram_ + 40 base62", key)
		}
		if tn.Mode != pdp.ModeEnforcement || tn.ApprovalMode != tc.approval || tn.Tier != tc.tier || !strings.HasPrefix(tn.ID, "ten_") {
			t.Errorf("%s: %+v", tc.tier, tn)
		}
		// Only the hash is stored: the lookup is by hash.
		got, k, err := e.st.TenantByKeyHash(ctx, store.HashAPIKey(key))
		if err != nil || got.ID != tn.ID || k.Hash == key || k.Prefix != key[:store.KeyPrefixLen] {
			t.Errorf("stored key: %+v %+v %v", got, k, err)
		}
		if _, ok := e.eng.Revision(tn.ID); !ok {
			t.Errorf("new tenant not published")
		}
	}
	if tn, _, _ := e.reg.CreateTenant(ctx, registry.NewTenant{Name: "e", Tier: store.TierEnterprise, ApprovalMode: "enterprise"}); string(tn.ApprovalSettings) != `{"min_approvals":2}` {
		t.Errorf("enterprise approval settings = %s", tn.ApprovalSettings)
	}
	tn, _, err := e.reg.CreateTenant(ctx, registry.NewTenant{Name: "s", Tier: store.TierPro, Mode: pdp.ModeShadow, ApprovalMode: "solo"})
	if err != nil || tn.Mode != pdp.ModeShadow || tn.ApprovalMode != "solo" {
		t.Errorf("explicit settings: %+v, %v", tn, err)
	}

	for _, tc := range []struct {
		nt     registry.NewTenant
		fields []string
	}{
		{registry.NewTenant{Tier: store.TierFree}, []string{"name"}},
		{registry.NewTenant{Name: "x", Tier: "gold"}, []string{"tier"}},
		{registry.NewTenant{Name: "x", Tier: store.TierFree, Mode: "loud"}, []string{"mode"}},
		{registry.NewTenant{Name: "x", Tier: store.TierPro, ApprovalMode: "enterprise"}, []string{"approval_mode"}},
		{registry.NewTenant{Name: strings.Repeat("n", 129), Tier: ""}, []string{"name", "tier"}},
		{registry.NewTenant{Name: "bad\x00name", Tier: store.TierFree}, []string{"name"}},
	} {
		_, _, err := e.reg.CreateTenant(ctx, tc.nt)
		var es pdp.ValidationErrors
		if !errors.As(err, &es) {
			t.Errorf("%+v: %v, want ValidationErrors", tc.nt, err)
			continue
		}
		var got []string
		for _, ve := range es {
			got = append(got, ve.Field)
		}
		if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
			t.Errorf("%+v: fields %v, want %v", tc.nt, got, tc.fields)
		}
	}
}

func TestAuthenticate(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	tn, key := e.tenant(store.TierPro)

	for _, bad := range []string{"", "nram_", "nram_unknown", "sk_" + key[5:], key + "x", strings.Repeat("nram_", 60)} {
		if _, err := e.reg.Authenticate(ctx, bad); !errors.Is(err, registry.ErrUnauthorized) {
			t.Errorf("Authenticate(%.20q) = %v", bad, err)
		}
	}
	before := e.st.keyLookups.Load()
	for range 10 {
		got, err := e.reg.Authenticate(ctx, key)
		if err != nil || got.ID != tn.ID {
			t.Fatalf("Authenticate = %+v, %v", got, err)
		}
	}
	if n := e.st.keyLookups.Load() - before; n != 1 {
		t.Errorf("10 authentications cost %d store lookups, want 1 (cached)", n)
	}

	k2, key2, err := e.reg.CreateKey(ctx, tn.ID)
	if err != nil || !keyPattern.MatchString(key2) || k2.TenantID != tn.ID {
		t.Fatalf("CreateKey = %+v %q %v", k2, key2, err)
	}
	if got, err := e.reg.Authenticate(ctx, key2); err != nil || got.ID != tn.ID {
		t.Fatalf("second key: %v", err)
	}
	// Revoking takes effect at once on this server, even though the key is
	// cached, and leaves the other key working.
	if err := e.reg.RevokeKey(ctx, k2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.Authenticate(ctx, key2); !errors.Is(err, registry.ErrUnauthorized) {
		t.Fatalf("revoked key: %v", err)
	}
	if _, err := e.reg.Authenticate(ctx, key); err != nil {
		t.Fatalf("other key after revoke: %v", err)
	}
	if err := e.reg.RevokeKey(ctx, k2.ID); err != nil {
		t.Errorf("revoking twice: %v", err)
	}
	if err := e.reg.RevokeKey(ctx, "key_missing"); !errors.Is(err, registry.ErrKeyNotFound) {
		t.Errorf("revoke missing = %v", err)
	}
	if _, _, err := e.reg.CreateKey(ctx, "ten_missing"); !errors.Is(err, registry.ErrTenantNotFound) {
		t.Errorf("key for a missing tenant = %v", err)
	}
}

// TestRevocationElsewhere: a key revoked by another process stops working
// here within the cache TTL.
func TestRevocationElsewhere(t *testing.T) {
	path := t.TempDir() + "/gatehouse.db"
	one := newEnvAt(t, path, registry.WithAuthCacheTTL(50*time.Millisecond))
	two := newEnvAt(t, path)
	tn, _ := one.tenant(store.TierPro)
	k, key, err := one.reg.CreateKey(t.Context(), tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := one.reg.Authenticate(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	if err := two.reg.RevokeKey(t.Context(), k.ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, err := one.reg.Authenticate(t.Context(), key)
		if errors.Is(err, registry.ErrUnauthorized) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("key revoked elsewhere still accepted after the TTL: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestUpdateTenant(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	tn, key := e.tenant(store.TierEnterprise)
	e.put(tn.ID, doc(t, seedTenantWide))
	e.put(tn.ID, doc(t, seedBillingBot))

	// Shadow mode applies to the very next decision.
	shadow := pdp.ModeShadow
	got, err := e.reg.UpdateTenant(ctx, tn.ID, registry.TenantUpdate{Mode: &shadow})
	if err != nil || got.Mode != pdp.ModeShadow {
		t.Fatalf("update mode: %+v %v", got, err)
	}
	d := e.decide(tn.ID, "billing-bot", "slack.send_message", seedParams)
	if d.Status != pdp.StatusAllowed || d.ShadowStatus != pdp.StatusBlocked {
		t.Fatalf("shadow decision: %s / %s", d.Status, d.ShadowStatus)
	}
	// Authenticate reports the new settings at once (cached key).
	if a, _ := e.reg.Authenticate(ctx, key); a.Mode != pdp.ModeShadow {
		t.Fatalf("Authenticate after update: mode %s", a.Mode)
	}

	// A downgrade replaces an approval mode the new tier lacks.
	free := store.TierFree
	got, err = e.reg.UpdateTenant(ctx, tn.ID, registry.TenantUpdate{Tier: &free})
	if err != nil || got.Tier != store.TierFree || got.ApprovalMode != "solo" {
		t.Fatalf("downgrade: %+v %v", got, err)
	}
	pro := store.TierPro
	team := "team"
	got, err = e.reg.UpdateTenant(ctx, tn.ID, registry.TenantUpdate{Tier: &pro, ApprovalMode: &team})
	if err != nil || got.ApprovalMode != "team" {
		t.Fatalf("upgrade with mode: %+v %v", got, err)
	}
	settings := json.RawMessage(`{"min_approvals": 3}`)
	if got, err = e.reg.UpdateTenant(ctx, tn.ID, registry.TenantUpdate{ApprovalSettings: &settings}); err != nil || string(got.ApprovalSettings) != `{"min_approvals": 3}` {
		t.Fatalf("settings: %s %v", got.ApprovalSettings, err)
	}
	null := json.RawMessage(`null`)
	if got, err = e.reg.UpdateTenant(ctx, tn.ID, registry.TenantUpdate{ApprovalSettings: &null}); err != nil || got.ApprovalSettings != nil {
		t.Fatalf("clear settings: %s %v", got.ApprovalSettings, err)
	}

	ent := "enterprise"
	gold := store.Tier("gold")
	loud := pdp.Mode("loud")
	list := json.RawMessage(`[1]`)
	for _, tc := range []struct {
		u     registry.TenantUpdate
		field string
	}{
		{registry.TenantUpdate{ApprovalMode: &ent}, "approval_mode"},
		{registry.TenantUpdate{Tier: &gold}, "tier"},
		{registry.TenantUpdate{Mode: &loud}, "mode"},
		{registry.TenantUpdate{ApprovalSettings: &list}, "approval_settings"},
	} {
		if _, err := e.reg.UpdateTenant(ctx, tn.ID, tc.u); validationErr(t, err).Field != tc.field {
			t.Errorf("%+v: %v, want a problem with %s", tc.u, err, tc.field)
		}
	}
	if _, err := e.reg.UpdateTenant(ctx, "ten_missing", registry.TenantUpdate{Mode: &shadow}); !errors.Is(err, registry.ErrTenantNotFound) {
		t.Errorf("missing tenant: %v", err)
	}
	if _, err := e.reg.Tenant(ctx, "ten_missing"); !errors.Is(err, registry.ErrTenantNotFound) {
		t.Errorf("Tenant(missing) = %v", err)
	}
	if ts, err := e.reg.Tenants(ctx); err != nil || len(ts) != 1 {
		t.Errorf("Tenants = %d, %v", len(ts), err)
	}
}

func TestBootstrap(t *testing.T) {
	ctx := t.Context()
	t.Run("given key", func(t *testing.T) {
		e := newEnv(t)
		created, key, err := e.reg.Bootstrap(ctx, "nram_operator_chosen_1")
		if err != nil || !created || key != "nram_operator_chosen_1" {
			t.Fatalf("Bootstrap = %v %q %v", created, key, err)
		}
		tn, err := e.reg.Authenticate(ctx, key)
		if err != nil || tn.ID != registry.BootstrapTenant || tn.Name != "default" || tn.Tier != store.TierEnterprise {
			t.Fatalf("bootstrap tenant: %+v %v", tn, err)
		}
		created, key, err = e.reg.Bootstrap(ctx, "nram_another_key_2")
		if err != nil || created || key != "" {
			t.Fatalf("second Bootstrap = %v %q %v; want a no-op", created, key, err)
		}
	})
	t.Run("generated key", func(t *testing.T) {
		e := newEnv(t)
		created, key, err := e.reg.Bootstrap(ctx, "")
		if err != nil || !created || !keyPattern.MatchString(key) {
			t.Fatalf("Bootstrap = %v %q %v", created, key, err)
		}
		if _, err := e.reg.Authenticate(ctx, key); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("non-empty store", func(t *testing.T) {
		e := newEnv(t)
		e.tenant(store.TierFree)
		if created, _, err := e.reg.Bootstrap(ctx, ""); err != nil || created {
			t.Fatalf("Bootstrap on a store with a tenant = %v, %v", created, err)
		}
	})
	t.Run("bad keys", func(t *testing.T) {
		e := newEnv(t)
		for _, k := range []string{"sk_live_abcdefgh", "nram_short", "nram_has space in", "nram_" + strings.Repeat("x", 300)} {
			if _, _, err := e.reg.Bootstrap(ctx, k); validationErr(t, err).Field != "bootstrap_key" {
				t.Errorf("Bootstrap(%.20q) = %v", k, err)
			}
		}
		if n, _ := e.st.CountTenants(ctx); n != 0 {
			t.Fatalf("a refused bootstrap created %d tenants", n)
		}
	})
}

func TestOptions(t *testing.T) {
	e := newEnv(t)
	for _, opt := range []registry.Option{
		registry.WithAuthCacheTTL(-time.Second),
		registry.WithAuthCacheTTL(time.Hour),
		registry.WithAuthCacheSize(0),
		registry.WithLogger(nil),
		registry.WithRandom(nil),
	} {
		if _, err := registry.New(e.st, e.eng, opt); err == nil {
			t.Errorf("option accepted")
		}
	}
	if _, err := registry.New(nil, e.eng); err == nil {
		t.Error("nil store accepted")
	}
	// A failing random source fails tenant creation instead of making a weak key.
	reg, err := registry.New(e.st, e.eng, registry.WithRandom(strings.NewReader("short")))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := reg.CreateTenant(t.Context(), registry.NewTenant{Name: "x", Tier: store.TierFree}); err == nil {
		t.Fatal("CreateTenant with an exhausted random source succeeded")
	}
}

// TestIdentify: one lookup gives the tenant, the key's ID and its hash,
// from memory after the first time; a revoked key is refused at once even
// though it was cached; and a tenant's first publish compiled it, so its
// first decision does not.
func TestIdentify(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	tn, key := e.tenant(store.TierPro)
	before := e.st.keyLookups.Load()
	var first registry.Identity
	for i := range 5 {
		id, err := e.reg.Identify(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = id
		}
		if id.Tenant.ID != tn.ID || id.KeyHash != store.HashAPIKey(key) || id.KeyID == "" || id.KeyID != first.KeyID {
			t.Fatalf("Identify = %+v", id)
		}
	}
	if n := e.st.keyLookups.Load() - before; n != 1 {
		t.Errorf("5 identifications cost %d store lookups, want 1", n)
	}
	if kid, err := e.reg.KeyID(ctx, key); err != nil || kid != first.KeyID {
		t.Errorf("KeyID = %q, %v; want %q", kid, err, first.KeyID)
	}
	if err := e.reg.RevokeKey(ctx, first.KeyID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.Identify(ctx, key); !errors.Is(err, registry.ErrUnauthorized) {
		t.Fatalf("revoked key: %v", err)
	}
	if s := e.eng.Stats(); s.Compiles == 0 || s.Size == 0 {
		t.Fatalf("the tenant was not compiled when it was published: %+v", s)
	}
	if _, err := e.eng.Evaluate(ctx, pdp.Action{TenantID: tn.ID, Name: "calendar.read"}); err != nil {
		t.Fatal(err)
	}
	if s := e.eng.Stats(); s.Misses != 0 {
		t.Fatalf("the first decision compiled: %+v", s)
	}
}

// TestCreateTenantID: a chosen ID is the tenant's ID (its name by default),
// follows the URL-safe rule, and is refused when taken — the first tenant
// and its key untouched.
func TestCreateTenantID(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	tn, key, err := e.reg.CreateTenant(ctx, registry.NewTenant{ID: "acme", Tier: store.TierPro})
	if err != nil || tn.ID != "acme" || tn.Name != "acme" {
		t.Fatalf("%+v %v: want ID and name acme", tn, err)
	}
	if _, _, err := e.reg.CreateTenant(ctx, registry.NewTenant{ID: "acme", Name: "Other", Tier: store.TierFree}); !errors.Is(err, registry.ErrTenantExists) || !errors.Is(err, pdp.ErrConflict) {
		t.Errorf("duplicate ID: %v, want ErrTenantExists", err)
	}
	if got, err := e.reg.Authenticate(ctx, key); err != nil || got.ID != "acme" || got.Tier != store.TierPro {
		t.Errorf("the first acme after the refused duplicate: %+v %v", got, err)
	}
	for _, bad := range []string{"-acme", "_x", "a b", "a/b", "a.b", "ünï", strings.Repeat("a", 65)} {
		_, _, err := e.reg.CreateTenant(ctx, registry.NewTenant{ID: bad, Tier: store.TierFree})
		var ve *pdp.ValidationError
		if !errors.As(err, &ve) || ve.Field != "id" {
			t.Errorf("ID %q: %v, want a validation error on id", bad, err)
		}
	}
	for _, good := range []string{"a", "A-1_b", strings.Repeat("z", 64)} {
		if _, _, err := e.reg.CreateTenant(ctx, registry.NewTenant{ID: good, Tier: store.TierFree}); err != nil {
			t.Errorf("ID %q: %v", good, err)
		}
	}
}
