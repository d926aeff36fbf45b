package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

var tenantTests = []test{
	{"CreateGet", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		in := store.Tenant{
			ID: "acme", Name: "Acme", Tier: store.TierEnterprise, Mode: pdp.ModeShadow,
			ApprovalMode: "enterprise", ApprovalSettings: json.RawMessage(`{"min_approvals":2}`),
			Revision: 99, // ignored: a new tenant starts at 1
		}
		got, err := s.CreateTenant(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if got.Revision != 1 {
			t.Errorf("Revision = %d, want 1", got.Revision)
		}
		wantUTC(t, "CreatedAt", got.CreatedAt)
		want := in
		want.Revision, want.CreatedAt = 1, got.CreatedAt
		same(t, "created", got, want)
		read, err := s.GetTenant(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		same(t, "read back", read, want)
	}},
	{"CreatedAtGiven", func(t *testing.T, s store.Store) {
		got, err := s.CreateTenant(t.Context(), store.Tenant{ID: "a", Tier: store.TierFree, Mode: pdp.ModeEnforcement, CreatedAt: base.Add(789)})
		if err != nil {
			t.Fatal(err)
		}
		if !got.CreatedAt.Equal(base) || got.CreatedAt.Location() != base.Location() {
			t.Errorf("CreatedAt = %v, want %v (truncated to %v)", got.CreatedAt, base, store.TimePrecision)
		}
		read, _ := s.GetTenant(t.Context(), "a")
		same(t, "read back", read, got)
	}},
	{"NilSettingsStayNil", func(t *testing.T, s store.Store) {
		newTenant(t, s, "a")
		got, err := s.GetTenant(t.Context(), "a")
		if err != nil {
			t.Fatal(err)
		}
		if got.ApprovalSettings != nil {
			t.Errorf("ApprovalSettings = %s, want nil", got.ApprovalSettings)
		}
	}},
	{"Duplicate", func(t *testing.T, s store.Store) {
		newTenant(t, s, "acme")
		_, err := s.CreateTenant(t.Context(), store.Tenant{ID: "acme", Tier: store.TierFree, Mode: pdp.ModeEnforcement})
		wantErr(t, "second create", err, store.ErrDuplicate)
		wantErr(t, "second create", err, store.ErrConflict)
		wantErr(t, "second create", err, pdp.ErrConflict)
	}},
	{"Invalid", func(t *testing.T, s store.Store) {
		cases := []struct {
			field string
			t     store.Tenant
		}{
			{"id", store.Tenant{Tier: store.TierFree, Mode: pdp.ModeEnforcement}},
			{"tier", store.Tenant{ID: "a", Tier: "gold", Mode: pdp.ModeEnforcement}},
			{"mode", store.Tenant{ID: "a", Tier: store.TierFree, Mode: "audit"}},
			{"approval_settings", store.Tenant{ID: "a", Tier: store.TierFree, Mode: pdp.ModeEnforcement, ApprovalSettings: json.RawMessage(`{`)}},
		}
		for _, c := range cases {
			_, err := s.CreateTenant(t.Context(), c.t)
			wantValidation(t, c.field, err, c.field)
		}
		if n, _ := s.CountTenants(t.Context()); n != 0 {
			t.Errorf("CountTenants = %d after invalid creates, want 0", n)
		}
	}},
	{"GetMissing", func(t *testing.T, s store.Store) {
		_, err := s.GetTenant(t.Context(), "nope")
		wantErr(t, "GetTenant", err, store.ErrNotFound)
		wantErr(t, "GetTenant", err, pdp.ErrNotFound)
	}},
	{"ListAndCount", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		if n, err := s.CountTenants(ctx); err != nil || n != 0 {
			t.Fatalf("CountTenants on empty store = %d, %v", n, err)
		}
		ts, err := s.ListTenants(ctx)
		if err != nil || ts == nil || len(ts) != 0 {
			t.Fatalf("ListTenants on empty store = %#v, %v; want empty, non-nil", ts, err)
		}
		for i, id := range []string{"c", "a", "b"} {
			if _, err := s.CreateTenant(ctx, store.Tenant{ID: id, Tier: store.TierFree, Mode: pdp.ModeEnforcement, CreatedAt: base.Add(time.Duration(i) * time.Second)}); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := s.CountTenants(ctx); err != nil || n != 3 {
			t.Errorf("CountTenants = %d, %v; want 3", n, err)
		}
		ts, err = s.ListTenants(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, tn := range ts {
			ids = append(ids, tn.ID)
		}
		same(t, "ListTenants order (oldest first)", ids, []string{"c", "a", "b"})
	}},
	{"Update", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		orig := newTenant(t, s, "acme")
		got, err := s.UpdateTenant(ctx, "acme", store.TenantUpdate{
			Tier: ptr(store.TierEnterprise), Mode: ptr(pdp.ModeShadow),
			ApprovalMode: ptr("enterprise"), ApprovalSettings: ptr(json.RawMessage(`{"min_approvals":3}`)),
		})
		if err != nil {
			t.Fatal(err)
		}
		want := orig
		want.Tier, want.Mode, want.ApprovalMode = store.TierEnterprise, pdp.ModeShadow, "enterprise"
		want.ApprovalSettings = json.RawMessage(`{"min_approvals":3}`)
		want.Revision = orig.Revision + 1
		same(t, "updated", got, want)
		read, _ := s.GetTenant(ctx, "acme")
		same(t, "read back", read, want)

		// Nil fields are kept; a pointer to nil clears the settings.
		got, err = s.UpdateTenant(ctx, "acme", store.TenantUpdate{Name: ptr("Acme Inc"), ApprovalSettings: ptr(json.RawMessage(nil))})
		if err != nil {
			t.Fatal(err)
		}
		want.Name, want.ApprovalSettings, want.Revision = "Acme Inc", nil, want.Revision+1
		same(t, "second update", got, want)

		// An empty update still bumps the revision: callers cannot tell
		// what decisions depend on.
		got, err = s.UpdateTenant(ctx, "acme", store.TenantUpdate{})
		if err != nil || got.Revision != want.Revision+1 {
			t.Errorf("empty update: revision %d, %v; want %d", got.Revision, err, want.Revision+1)
		}
	}},
	{"UpdateInvalidChangesNothing", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		orig := newTenant(t, s, "acme")
		_, err := s.UpdateTenant(ctx, "acme", store.TenantUpdate{Tier: ptr(store.Tier("gold")), Mode: ptr(pdp.ModeShadow)})
		wantValidation(t, "UpdateTenant", err, "tier")
		read, _ := s.GetTenant(ctx, "acme")
		same(t, "after refused update", read, orig)
	}},
	{"UpdateMissing", func(t *testing.T, s store.Store) {
		_, err := s.UpdateTenant(t.Context(), "nope", store.TenantUpdate{Name: ptr("x")})
		wantErr(t, "UpdateTenant", err, store.ErrNotFound)
	}},
	{"ModeChangeBumpsCompiledRevision", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		before, err := s.TenantPolicies(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpdateTenant(ctx, "acme", store.TenantUpdate{Mode: ptr(pdp.ModeShadow)}); err != nil {
			t.Fatal(err)
		}
		after, err := s.TenantPolicies(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if after.Mode != pdp.ModeShadow || after.Revision <= before.Revision {
			t.Errorf("after mode change: mode %q revision %d; want shadow and > %d", after.Mode, after.Revision, before.Revision)
		}
	}},
}
