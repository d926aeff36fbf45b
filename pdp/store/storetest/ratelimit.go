package storetest

import (
	"testing"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// rateLimitTests: a tenant's own rate limit is stored, read back by every
// read (including the key lookup authentication uses), replaced, removed
// and validated the same way by every driver.
var rateLimitTests = []test{
	{"CreateWithAndReadBack", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		in := store.Tenant{ID: "acme", Tier: store.TierFree, Mode: pdp.ModeEnforcement,
			RateLimit: &store.RateLimit{RequestsPerSecond: 2.5, Burst: 7}}
		k := store.OwnerKey(store.APIKey{ID: "key_1", Hash: store.HashAPIKey("nram_ratelimitkey"), Prefix: "nram_rat"})
		got, err := s.CreateTenant(ctx, in, k)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "created", got.RateLimit, in.RateLimit)
		read, err := s.GetTenant(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		same(t, "GetTenant", read.RateLimit, in.RateLimit)
		byKey, _, err := s.TenantByKeyHash(ctx, k.Hash)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "TenantByKeyHash", byKey.RateLimit, in.RateLimit)
		all, err := s.ListTenants(ctx)
		if err != nil || len(all) != 1 {
			t.Fatalf("ListTenants: %v %v", all, err)
		}
		same(t, "ListTenants", all[0].RateLimit, in.RateLimit)
	}},
	{"NoneIsNil", func(t *testing.T, s store.Store) {
		newTenant(t, s, "a")
		got, err := s.GetTenant(t.Context(), "a")
		if err != nil {
			t.Fatal(err)
		}
		if got.RateLimit != nil {
			t.Errorf("RateLimit = %+v, want nil (the tier's default)", *got.RateLimit)
		}
	}},
	{"SetReplaceUnlimitedClear", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		orig := newTenant(t, s, "acme")
		steps := []struct {
			name string
			u    store.TenantUpdate
			want *store.RateLimit
		}{
			{"set", store.TenantUpdate{SetRateLimit: true, RateLimit: &store.RateLimit{RequestsPerSecond: 10, Burst: 20}}, &store.RateLimit{RequestsPerSecond: 10, Burst: 20}},
			{"kept by an unrelated update", store.TenantUpdate{Name: ptr("Acme")}, &store.RateLimit{RequestsPerSecond: 10, Burst: 20}},
			{"RateLimit without SetRateLimit is ignored", store.TenantUpdate{RateLimit: &store.RateLimit{RequestsPerSecond: 1, Burst: 1}}, &store.RateLimit{RequestsPerSecond: 10, Burst: 20}},
			{"unlimited", store.TenantUpdate{SetRateLimit: true, RateLimit: &store.RateLimit{}}, &store.RateLimit{}},
			{"cleared", store.TenantUpdate{SetRateLimit: true}, nil},
		}
		rev := orig.Revision
		for _, st := range steps {
			got, err := s.UpdateTenant(ctx, "acme", st.u)
			if err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			rev++
			if got.Revision != rev {
				t.Errorf("%s: revision %d, want %d", st.name, got.Revision, rev)
			}
			same(t, st.name, got.RateLimit, st.want)
			read, _ := s.GetTenant(ctx, "acme")
			same(t, st.name+" (read back)", read.RateLimit, st.want)
		}
	}},
	{"Invalid", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		orig := newTenant(t, s, "acme")
		for _, c := range []struct {
			field string
			l     store.RateLimit
		}{
			{"rate_limit.requests_per_second", store.RateLimit{RequestsPerSecond: -1, Burst: 1}},
			{"rate_limit.requests_per_second", store.RateLimit{RequestsPerSecond: 2e6, Burst: 1}},
			{"rate_limit.burst", store.RateLimit{RequestsPerSecond: 1}},
			{"rate_limit.burst", store.RateLimit{RequestsPerSecond: 1, Burst: store.MaxBurst + 1}},
			{"rate_limit.burst", store.RateLimit{Burst: 3}},
		} {
			_, err := s.UpdateTenant(ctx, "acme", store.TenantUpdate{SetRateLimit: true, RateLimit: &c.l})
			wantValidation(t, c.field, err, c.field)
			_, err = s.CreateTenant(ctx, store.Tenant{ID: "b", Tier: store.TierFree, Mode: pdp.ModeEnforcement, RateLimit: &c.l})
			wantValidation(t, c.field, err, c.field)
		}
		read, _ := s.GetTenant(ctx, "acme")
		same(t, "after refused updates", read, orig)
	}},
}
