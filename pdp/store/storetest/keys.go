package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

var keyTests = []test{
	{"CreateAndLookup", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		tn := newTenant(t, s, "acme")
		in := store.OwnerKey(store.APIKey{ID: "key_1", TenantID: "acme", Hash: store.HashAPIKey("nram_secret_one"), Prefix: store.KeyPrefix("nram_secret_one"),
			RevokedAt: ptr(base)}) // ignored on create
		k, err := s.CreateAPIKey(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		wantUTC(t, "CreatedAt", k.CreatedAt)
		if k.RevokedAt != nil || k.Prefix != "nram_secret_" {
			t.Errorf("created key = %+v", k)
		}
		gotT, gotK, err := s.TenantByKeyHash(ctx, store.HashAPIKey("nram_secret_one"))
		if err != nil {
			t.Fatal(err)
		}
		same(t, "tenant", gotT, tn)
		same(t, "key", gotK, k)
	}},
	{"CreatedWithTenant", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		tn := newTenant(t, s, "acme", newKey("key_a", "nram_a"), newKey("key_b", "nram_b"))
		for _, k := range []string{"nram_a", "nram_b"} {
			gotT, gotK, err := s.TenantByKeyHash(ctx, store.HashAPIKey(k))
			if err != nil {
				t.Fatalf("lookup %s: %v", k, err)
			}
			same(t, "tenant of "+k, gotT, tn)
			if gotK.TenantID != "acme" {
				t.Errorf("key %s TenantID = %q", k, gotK.TenantID)
			}
		}
	}},
	{"TenantAndKeysAtomic", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		newTenant(t, s, "acme", newKey("key_a", "nram_a"))
		// The second key's hash is taken: nothing of the create may remain.
		_, err := s.CreateTenant(ctx, store.Tenant{ID: "other", Tier: store.TierFree, Mode: "enforcement"},
			newKey("key_new", "nram_new"), newKey("key_dup", "nram_a"))
		wantErr(t, "create with a taken hash", err, store.ErrDuplicate)
		if _, err := s.GetTenant(ctx, "other"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("tenant of a failed create: %v, want ErrNotFound", err)
		}
		if _, _, err := s.TenantByKeyHash(ctx, store.HashAPIKey("nram_new")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("key of a failed create: %v, want ErrNotFound", err)
		}
	}},
	{"UnknownHash", func(t *testing.T, s store.Store) {
		newTenant(t, s, "acme", newKey("key_a", "nram_a"))
		_, _, err := s.TenantByKeyHash(t.Context(), store.HashAPIKey("nram_b"))
		wantErr(t, "unknown key", err, store.ErrNotFound)
		_, _, err = s.TenantByKeyHash(t.Context(), "")
		wantErr(t, "empty hash", err, store.ErrNotFound)
	}},
	{"Revoke", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		newTenant(t, s, "acme", newKey("key_a", "nram_a"), newKey("key_b", "nram_b"))
		before, err := s.GetTenant(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeAPIKey(ctx, "key_a"); err != nil {
			t.Fatal(err)
		}
		// The revocation bumps the tenant's revision: that is how other
		// processes learn to drop the key from their caches.
		if after, err := s.GetTenant(ctx, "acme"); err != nil || after.Revision != before.Revision+1 {
			t.Errorf("revision after a revocation: %d (%v), want %d", after.Revision, err, before.Revision+1)
		}
		_, _, err = s.TenantByKeyHash(ctx, store.HashAPIKey("nram_a"))
		wantErr(t, "revoked key", err, store.ErrNotFound)
		if _, _, err := s.TenantByKeyHash(ctx, store.HashAPIKey("nram_b")); err != nil {
			t.Errorf("the tenant's other key after a revocation: %v", err)
		}
		if err := s.RevokeAPIKey(ctx, "key_a"); err != nil {
			t.Errorf("revoking twice: %v, want nil", err)
		}
		if again, err := s.GetTenant(ctx, "acme"); err != nil || again.Revision != before.Revision+1 {
			t.Errorf("revision after revoking twice: %d (%v), want %d (unchanged)", again.Revision, err, before.Revision+1)
		}
		wantErr(t, "revoke missing", s.RevokeAPIKey(ctx, "key_zzz"), store.ErrNotFound)
		// A revoked key's hash stays taken: a key is never reissued.
		_, err = s.CreateAPIKey(ctx, store.OwnerKey(store.APIKey{ID: "key_c", TenantID: "acme", Hash: store.HashAPIKey("nram_a")}))
		wantErr(t, "reuse of a revoked hash", err, store.ErrDuplicate)
	}},
	{"CreateErrors", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		newTenant(t, s, "acme", newKey("key_a", "nram_a"))
		_, err := s.CreateAPIKey(ctx, store.OwnerKey(store.APIKey{ID: "key_x", TenantID: "nope", Hash: store.HashAPIKey("nram_x")}))
		wantErr(t, "missing tenant", err, store.ErrNotFound)
		_, err = s.CreateAPIKey(ctx, store.OwnerKey(store.APIKey{ID: "key_a", TenantID: "acme", Hash: store.HashAPIKey("nram_y")}))
		wantErr(t, "taken ID", err, store.ErrDuplicate)
		_, err = s.CreateAPIKey(ctx, store.OwnerKey(store.APIKey{ID: "key_y", TenantID: "acme", Hash: store.HashAPIKey("nram_a")}))
		wantErr(t, "taken hash", err, store.ErrDuplicate)
		_, err = s.CreateAPIKey(ctx, store.OwnerKey(store.APIKey{ID: "key_z", TenantID: "acme"}))
		wantValidation(t, "no hash", err, "hash")
	}},
	{"CreatedAtGiven", func(t *testing.T, s store.Store) {
		newTenant(t, s, "acme")
		k, err := s.CreateAPIKey(t.Context(), store.OwnerKey(store.APIKey{ID: "k", TenantID: "acme", Hash: "h", CreatedAt: base.Add(999 * time.Nanosecond)}))
		if err != nil || !k.CreatedAt.Equal(base) {
			t.Errorf("CreatedAt = %v, %v; want %v", k.CreatedAt, err, base)
		}
	}},
}
