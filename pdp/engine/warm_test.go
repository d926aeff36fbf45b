package engine

import (
	"errors"
	"testing"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/test/scale"
)

// TestWarm: after Warm, the tenant-wide entry and billing-bot's override
// entry are compiled, and decisions for both hit the cache; a new revision
// needs warming again; an unknown tenant is an error.
func TestWarm(t *testing.T) {
	e := newEngine(t, Config{})
	e.SetTenant(pdp.TenantPolicies{TenantID: "acme", Revision: 1, Mode: pdp.ModeEnforcement, Policies: scale.SeedPolicies()})
	if err := e.Warm(t.Context(), "acme"); err != nil {
		t.Fatal(err)
	}
	if s := e.Stats(); s.Compiles != 2 || s.Misses != 0 || s.Size != 2 {
		t.Fatalf("after Warm: %+v, want 2 compiles (tenant-wide, billing-bot), no misses", s)
	}
	if err := e.Warm(t.Context(), "acme"); err != nil || e.Stats().Compiles != 2 {
		t.Fatalf("a second Warm compiled again: %v, %+v", err, e.Stats())
	}
	for _, agent := range []string{"billing-bot", "support-bot", ""} {
		evaluate(t, e, as(seedAction, agent))
	}
	if s := e.Stats(); s.Misses != 0 || s.Hits != 3 || s.Compiles != 2 {
		t.Fatalf("decisions after Warm: %+v, want 3 hits and nothing compiled", s)
	}
	e.SetTenant(pdp.TenantPolicies{TenantID: "acme", Revision: 2, Mode: pdp.ModeEnforcement, Policies: scale.SeedPolicies()})
	if err := e.Warm(t.Context(), "acme"); err != nil || e.Stats().Compiles != 4 {
		t.Fatalf("Warm at revision 2: %v, %+v", err, e.Stats())
	}
	if err := e.Warm(t.Context(), "nobody"); !errors.Is(err, ErrUnknownTenant) {
		t.Fatalf("unknown tenant: %v", err)
	}
}
