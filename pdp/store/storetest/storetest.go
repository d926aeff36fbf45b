// Package storetest is the conformance suite every store driver passes:
// one behaviour, checked the same way against SQLite and PostgreSQL, never
// against a mock. A driver's test calls Run with a function opening a new,
// empty store, and RunReopen with one reopening the same database.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// Run runs the suite. open must return a new, empty store each call and
// arrange for it to be closed when t ends (t.Cleanup). Subtests run in
// parallel, each on its own store.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	groups := []struct {
		name  string
		tests []test
	}{
		{"Driver", driverTests},
		{"Tenants", tenantTests},
		{"RateLimits", rateLimitTests},
		{"APIKeys", keyTests},
		{"Policies", policyTests},
		{"PolicyVersions", versionTests},
		{"ActionWindows", windowTests},
		{"ShadowHits", shadowCountTests},
		{"Actions", actionTests},
		{"Isolation", isolationTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.run(t, open(t))
				})
			}
		})
	}
}

type test struct {
	name string
	run  func(t *testing.T, s store.Store)
}

var driverTests = []test{
	{"BackendAndPing", func(t *testing.T, s store.Store) {
		if s.Backend() == "" {
			t.Error("Backend() is empty")
		}
		if err := s.Ping(t.Context()); err != nil {
			t.Errorf("Ping: %v", err)
		}
	}},
}

// base is a fixed instant tests build timestamps from, so ordering does not
// depend on the clock.
var base = time.Date(2025, 6, 1, 12, 0, 0, 123456000, time.UTC)

// newTenant creates a tenant with the given ID and sensible fields.
func newTenant(t *testing.T, s store.Store, id string, keys ...store.APIKey) store.Tenant {
	t.Helper()
	tn, err := s.CreateTenant(t.Context(), store.Tenant{
		ID: id, Name: "Tenant " + id, Tier: store.TierPro, Mode: pdp.ModeEnforcement, ApprovalMode: "team",
	}, keys...)
	if err != nil {
		t.Fatalf("CreateTenant(%q): %v", id, err)
	}
	return tn
}

// newKey returns an APIKey for full key text k.
func newKey(id, k string) store.APIKey {
	return store.OwnerKey(store.APIKey{ID: id, Hash: store.HashAPIKey(k), Prefix: store.KeyPrefix(k)})
}

// policy returns a valid normalized policy.
func policy(agent, name string, enabled bool) pdp.Policy {
	return pdp.Policy{
		Name:               name,
		Description:        "blocks " + name,
		AgentID:            agent,
		StepTypes:          []string{"ACTION"},
		WhitelistedDomains: []string{},
		Rules: []pdp.Rule{{
			Match: name, Severity: pdp.SeverityHigh, OnViolation: pdp.OutcomeRequireApproval,
			Reason: "matched {match}", Confidence: pdp.DefaultConfidence,
		}},
		Enabled: enabled,
	}
}

func put(t *testing.T, s store.Store, tenant string, p pdp.Policy) store.PolicyWrite {
	t.Helper()
	w, err := s.PutPolicy(t.Context(), store.PutPolicyRequest{TenantID: tenant, Policy: p, Limit: store.Unlimited})
	if err != nil {
		t.Fatalf("PutPolicy(%s, %q/%q): %v", tenant, p.AgentID, p.Name, err)
	}
	return w
}

func ptr[T any](v T) *T { return &v }

// same fails t unless got and want encode to the same JSON: timestamps
// compare to the instant and location (UTC), raw JSON compares compacted.
func same(t *testing.T, what string, got, want any) {
	t.Helper()
	g, err1 := json.Marshal(got)
	w, err2 := json.Marshal(want)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatalf("%s: encode: %v", what, err)
	}
	if string(g) != string(w) {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

// wantErr fails t unless errors.Is(err, target).
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error %v, want %v", what, err, target)
	}
}

// wantValidation fails t unless err holds a *pdp.ValidationError for field.
func wantValidation(t *testing.T, what string, err error, field string) {
	t.Helper()
	var ve *pdp.ValidationError
	if !errors.As(err, &ve) {
		t.Errorf("%s: error %v, want a *pdp.ValidationError", what, err)
		return
	}
	for _, e := range unwrapAll(err) {
		if e.Field == field {
			return
		}
	}
	t.Errorf("%s: error %v names no field %q", what, err, field)
}

func unwrapAll(err error) []*pdp.ValidationError {
	var es pdp.ValidationErrors
	if errors.As(err, &es) {
		return es
	}
	var ve *pdp.ValidationError
	if errors.As(err, &ve) {
		return []*pdp.ValidationError{ve}
	}
	return nil
}

func wantUTC(t *testing.T, what string, ts time.Time) {
	t.Helper()
	if ts.IsZero() || ts.Location() != time.UTC || !ts.Equal(ts.Truncate(store.TimePrecision)) {
		t.Errorf("%s = %v, want a non-zero UTC time at %v precision", what, ts, store.TimePrecision)
	}
}

func revision(t *testing.T, s store.Store, tenant string) uint64 {
	t.Helper()
	tn, err := s.GetTenant(t.Context(), tenant)
	if err != nil {
		t.Fatalf("GetTenant(%q): %v", tenant, err)
	}
	return tn.Revision
}

// RunReopen checks that everything written survives closing and reopening
// the database, and that reopening changes nothing (migrations are
// idempotent). database is called once per subtest and returns a function
// that opens that same database every time it is called; the suite closes
// what it opens.
func RunReopen(t *testing.T, database func(t *testing.T) func(t *testing.T) store.Store) {
	t.Run("Reopen", func(t *testing.T) {
		open := database(t)
		ctx := t.Context()
		s := open(t)
		tn := newTenant(t, s, "acme", newKey("key_1", "nram_reopen_key_1"))
		put(t, s, "acme", policy("", "NoDrop", true))
		w := put(t, s, "acme", policy("bot", "NoDrop", true))
		if _, err := s.DisablePolicy(ctx, store.PolicyKey{TenantID: "acme", AgentID: "bot", Name: "NoDrop"}); err != nil {
			t.Fatal(err)
		}
		act := action("acme", "act_reopen", base, pdp.StatusPendingReview)
		if _, err := s.InsertAction(ctx, act); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, s, "acme")
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}

		for i := range 2 { // twice: a reopened database reopens too
			s = open(t)
			after := snapshot(t, s, "acme")
			same(t, fmt.Sprintf("after reopen %d", i+1), after, before)
			if _, k, err := s.TenantByKeyHash(ctx, store.HashAPIKey("nram_reopen_key_1")); err != nil || k.TenantID != tn.ID {
				t.Errorf("key after reopen: %v, %+v", err, k)
			}
			if i == 0 {
				// Revisions continue where they were.
				w2 := put(t, s, "acme", policy("", "Another", true))
				if w2.Revision != w.Revision+2 {
					t.Errorf("revision after reopen = %d, want %d", w2.Revision, w.Revision+2)
				}
				before = snapshot(t, s, "acme")
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
		}
	})
}

type state struct {
	Tenant   store.Tenant
	Policies []pdp.Policy
	Compiled pdp.TenantPolicies
	Actions  []store.ActionRecord
	Total    int
	Versions map[string][]store.PolicyVersion
}

func snapshot(t *testing.T, s store.Store, tenant string) state {
	t.Helper()
	ctx := context.WithoutCancel(t.Context())
	var st state
	var err error
	if st.Tenant, err = s.GetTenant(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	if st.Policies, err = s.ListPolicies(ctx, tenant, store.PolicyFilter{}); err != nil {
		t.Fatal(err)
	}
	if st.Compiled, err = s.TenantPolicies(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	st.Versions = versionsOf(t, s, tenant, st.Policies)
	if st.Actions, st.Total, err = s.ListActions(ctx, tenant, store.ActionQuery{}); err != nil {
		t.Fatal(err)
	}
	return st
}
