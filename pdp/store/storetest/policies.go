package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

func pkey(tenant, agent, name string) store.PolicyKey {
	return store.PolicyKey{TenantID: tenant, AgentID: agent, Name: name}
}

func names(ps []pdp.Policy) []string {
	out := []string{}
	for _, p := range ps {
		out = append(out, p.AgentID+"/"+p.Name)
	}
	return out
}

var policyTests = []test{
	{"CreateGet", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		in := pdp.Policy{
			Name: "NoSecrets", Description: "Blocks secrets — «ünïcode» too", AgentID: "",
			StepTypes:          []string{"ACTION", "OUTPUT"},
			WhitelistedDomains: []string{"example.com", "api.internal"},
			Rules: []pdp.Rule{
				{Match: `(?i)secret\s*=`, Severity: pdp.SeverityCritical, OnViolation: pdp.OutcomeBlock, Reason: "found {match}", ContextRequires: "prod", Confidence: 0.95},
				{Match: "token", Severity: pdp.SeverityLow, OnViolation: pdp.OutcomeWarn, Confidence: 0.1},
			},
			Enabled: true,
			Version: 42, CreatedAt: base, UpdatedAt: base, // ignored: the store keeps these
		}
		w, err := s.PutPolicy(ctx, store.PutPolicyRequest{TenantID: "acme", Policy: in, Limit: store.Unlimited})
		if err != nil {
			t.Fatal(err)
		}
		if !w.Created || w.Policy.Version != 1 {
			t.Errorf("first write: Created=%v Version=%d, want true, 1", w.Created, w.Policy.Version)
		}
		wantUTC(t, "CreatedAt", w.Policy.CreatedAt)
		if !w.Policy.UpdatedAt.Equal(w.Policy.CreatedAt) {
			t.Errorf("UpdatedAt %v != CreatedAt %v on create", w.Policy.UpdatedAt, w.Policy.CreatedAt)
		}
		want := in
		want.Version, want.CreatedAt, want.UpdatedAt = 1, w.Policy.CreatedAt, w.Policy.UpdatedAt
		same(t, "written", w.Policy, want)
		got, err := s.GetPolicy(ctx, pkey("acme", "", "NoSecrets"))
		if err != nil {
			t.Fatal(err)
		}
		same(t, "read back", got, want)
	}},
	{"NilListsReadBackEmpty", func(t *testing.T, s store.Store) {
		newTenant(t, s, "acme")
		w := put(t, s, "acme", pdp.Policy{Name: "Bare", Enabled: true})
		got, err := s.GetPolicy(t.Context(), pkey("acme", "", "Bare"))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []pdp.Policy{w.Policy, got} {
			if p.StepTypes == nil || p.WhitelistedDomains == nil || p.Rules == nil {
				t.Errorf("nil lists in %+v, want empty", p)
			}
		}
	}},
	{"GetMissing", func(t *testing.T, s store.Store) {
		newTenant(t, s, "acme")
		put(t, s, "acme", policy("bot", "OnlyAgent", true))
		_, err := s.GetPolicy(t.Context(), pkey("acme", "", "OnlyAgent"))
		wantErr(t, "tenant-wide copy of an agent-only policy", err, store.ErrNotFound)
		_, err = s.GetPolicy(t.Context(), pkey("acme", "other-bot", "OnlyAgent"))
		wantErr(t, "another agent's", err, store.ErrNotFound)
	}},
	{"UpdateVersions", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		first := put(t, s, "acme", policy("", "P", true))
		p2 := policy("", "P", true)
		p2.Description = "replaced"
		p2.Rules = []pdp.Rule{{Match: "drop", Severity: pdp.SeverityMedium, OnViolation: pdp.OutcomeWarn, Confidence: 0.5}}
		w := put(t, s, "acme", p2)
		if w.Created || w.Policy.Version != 2 {
			t.Errorf("second write: Created=%v Version=%d, want false, 2", w.Created, w.Policy.Version)
		}
		if !w.Policy.CreatedAt.Equal(first.Policy.CreatedAt) || w.Policy.UpdatedAt.Before(first.Policy.UpdatedAt) {
			t.Errorf("timestamps: created %v→%v updated %v→%v", first.Policy.CreatedAt, w.Policy.CreatedAt, first.Policy.UpdatedAt, w.Policy.UpdatedAt)
		}
		got, _ := s.GetPolicy(ctx, pkey("acme", "", "P"))
		want := p2
		want.Version, want.CreatedAt, want.UpdatedAt = 2, first.Policy.CreatedAt, w.Policy.UpdatedAt
		same(t, "replaced content", got, want)
		if w3 := put(t, s, "acme", p2); w3.Policy.Version != 3 {
			t.Errorf("third write: version %d, want 3", w3.Policy.Version)
		}
	}},
	{"MustExist", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		rev := revision(t, s, "acme")
		_, err := s.PutPolicy(ctx, store.PutPolicyRequest{TenantID: "acme", Policy: policy("", "P", true), Limit: store.Unlimited, MustExist: true})
		wantErr(t, "update of a missing policy", err, store.ErrNotFound)
		if _, err := s.GetPolicy(ctx, pkey("acme", "", "P")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a refused update created the policy: %v", err)
		}
		if r := revision(t, s, "acme"); r != rev {
			t.Errorf("refused write moved the revision %d → %d", rev, r)
		}
		put(t, s, "acme", policy("", "P", true))
		w, err := s.PutPolicy(ctx, store.PutPolicyRequest{TenantID: "acme", Policy: policy("", "P", true), Limit: store.Unlimited, MustExist: true})
		if err != nil || w.Policy.Version != 2 || w.Created {
			t.Errorf("update of an existing policy: %+v, %v", w, err)
		}
	}},
	{"DisableAndReenable", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		put(t, s, "acme", policy("", "P", true))
		d, err := s.DisablePolicy(ctx, pkey("acme", "", "P"))
		if err != nil {
			t.Fatal(err)
		}
		if d.Policy.Enabled || d.Policy.Version != 2 || d.Created {
			t.Errorf("disable: %+v", d)
		}
		got, _ := s.GetPolicy(ctx, pkey("acme", "", "P"))
		same(t, "read after disable", got, d.Policy)
		// Disabling a disabled policy still writes a version.
		d2, err := s.DisablePolicy(ctx, pkey("acme", "", "P"))
		if err != nil || d2.Policy.Enabled || d2.Policy.Version != 3 || d2.Revision != d.Revision+1 {
			t.Errorf("second disable: %+v, %v", d2, err)
		}
		// Re-posting re-enables.
		w := put(t, s, "acme", policy("", "P", true))
		if !w.Policy.Enabled || w.Policy.Version != 4 || w.Created {
			t.Errorf("re-enable: %+v", w)
		}
		// A write may also keep a policy disabled.
		w = put(t, s, "acme", policy("", "P", false))
		if w.Policy.Enabled || w.Policy.Version != 5 {
			t.Errorf("write with enabled=false: %+v", w)
		}
	}},
	{"DisableMissing", func(t *testing.T, s store.Store) {
		newTenant(t, s, "acme")
		rev := revision(t, s, "acme")
		_, err := s.DisablePolicy(t.Context(), pkey("acme", "", "Nope"))
		wantErr(t, "DisablePolicy", err, store.ErrNotFound)
		_, err = s.DisablePolicy(t.Context(), pkey("ghost", "", "Nope"))
		wantErr(t, "DisablePolicy, missing tenant", err, store.ErrNotFound)
		if r := revision(t, s, "acme"); r != rev {
			t.Errorf("refused disable moved the revision %d → %d", rev, r)
		}
	}},
	{"MissingTenant", func(t *testing.T, s store.Store) {
		_, err := s.PutPolicy(t.Context(), store.PutPolicyRequest{TenantID: "ghost", Policy: policy("", "P", true), Limit: store.Unlimited})
		wantErr(t, "PutPolicy", err, store.ErrNotFound)
		_, err = s.TenantPolicies(t.Context(), "ghost")
		wantErr(t, "TenantPolicies", err, store.ErrNotFound)
		ps, err := s.ListPolicies(t.Context(), "ghost", store.PolicyFilter{})
		if err != nil || len(ps) != 0 {
			t.Errorf("ListPolicies of a missing tenant = %v, %v; want none", ps, err)
		}
	}},
	{"InvalidRequest", func(t *testing.T, s store.Store) {
		newTenant(t, s, "acme")
		_, err := s.PutPolicy(t.Context(), store.PutPolicyRequest{TenantID: "acme", Policy: policy("", "", true), Limit: store.Unlimited})
		wantValidation(t, "no name", err, "name")
		_, err = s.PutPolicy(t.Context(), store.PutPolicyRequest{TenantID: "acme", Policy: policy("", "P", true), Limit: -2})
		wantValidation(t, "limit -2", err, "limit")
	}},
	{"ScopesAreIndependent", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		put(t, s, "acme", policy("", "Shared", true))
		wa := put(t, s, "acme", policy("billing-bot", "Shared", true))
		if !wa.Created || wa.Policy.Version != 1 {
			t.Errorf("agent copy of a tenant-wide name: %+v, want a new policy at version 1", wa)
		}
		put(t, s, "acme", policy("", "Shared", true)) // tenant v2
		if _, err := s.DisablePolicy(ctx, pkey("acme", "billing-bot", "Shared")); err != nil {
			t.Fatal(err)
		}
		tw, _ := s.GetPolicy(ctx, pkey("acme", "", "Shared"))
		ag, _ := s.GetPolicy(ctx, pkey("acme", "billing-bot", "Shared"))
		if !tw.Enabled || tw.Version != 2 || tw.AgentID != "" {
			t.Errorf("tenant-wide copy: %+v", tw)
		}
		if ag.Enabled || ag.Version != 2 || ag.AgentID != "billing-bot" {
			t.Errorf("agent copy: %+v", ag)
		}
	}},
	{"List", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		for _, p := range []pdp.Policy{
			policy("zed-bot", "A", true), policy("", "Zeta", true), policy("billing-bot", "B", false),
			policy("", "Alpha", false), policy("billing-bot", "A", true),
		} {
			put(t, s, "acme", p)
		}
		cases := []struct {
			name string
			f    store.PolicyFilter
			want []string
		}{
			{"all", store.PolicyFilter{}, []string{"/Alpha", "/Zeta", "billing-bot/A", "billing-bot/B", "zed-bot/A"}},
			{"all enabled", store.PolicyFilter{EnabledOnly: true}, []string{"/Zeta", "billing-bot/A", "zed-bot/A"}},
			{"tenant-wide", store.PolicyFilter{AgentID: ptr("")}, []string{"/Alpha", "/Zeta"}},
			{"one agent", store.PolicyFilter{AgentID: ptr("billing-bot")}, []string{"billing-bot/A", "billing-bot/B"}},
			{"one agent enabled", store.PolicyFilter{AgentID: ptr("billing-bot"), EnabledOnly: true}, []string{"billing-bot/A"}},
			{"unknown agent", store.PolicyFilter{AgentID: ptr("nobody")}, []string{}},
		}
		for _, c := range cases {
			ps, err := s.ListPolicies(ctx, "acme", c.f)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if ps == nil {
				t.Errorf("%s: nil list, want non-nil", c.name)
			}
			same(t, c.name, names(ps), c.want)
		}
		if n, err := s.CountEnabledPolicies(ctx, "acme"); err != nil || n != 3 {
			t.Errorf("CountEnabledPolicies = %d, %v; want 3 (both scopes)", n, err)
		}
	}},
	{"RevisionBumpsOnEveryWrite", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		tn := newTenant(t, s, "acme")
		last := tn.Revision
		check := func(what string, rev uint64) {
			t.Helper()
			if rev != last+1 {
				t.Errorf("%s: revision %d, want %d", what, rev, last+1)
			}
			if got := revision(t, s, "acme"); got != rev {
				t.Errorf("%s: tenant revision %d, write returned %d", what, got, rev)
			}
			last = rev
		}
		check("create", put(t, s, "acme", policy("", "P", true)).Revision)
		check("update", put(t, s, "acme", policy("", "P", true)).Revision)
		check("agent create", put(t, s, "acme", policy("bot", "P", true)).Revision)
		d, err := s.DisablePolicy(ctx, pkey("acme", "", "P"))
		if err != nil {
			t.Fatal(err)
		}
		check("disable", d.Revision)
		d, _ = s.DisablePolicy(ctx, pkey("acme", "", "P"))
		check("disable again", d.Revision)
		check("re-enable", put(t, s, "acme", policy("", "P", true)).Revision)
		u, err := s.UpdateTenant(ctx, "acme", store.TenantUpdate{Mode: ptr(pdp.ModeShadow)})
		if err != nil {
			t.Fatal(err)
		}
		check("tenant update", u.Revision)
	}},
	{"Limit", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		req := func(p pdp.Policy, limit int) store.PutPolicyRequest {
			return store.PutPolicyRequest{TenantID: "acme", Policy: p, Limit: limit}
		}
		mustPut := func(what string, r store.PutPolicyRequest) {
			t.Helper()
			if _, err := s.PutPolicy(ctx, r); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
		wantLimit := func(what string, r store.PutPolicyRequest, limit, current int) {
			t.Helper()
			rev := revision(t, s, "acme")
			before, _ := s.ListPolicies(ctx, "acme", store.PolicyFilter{})
			_, err := s.PutPolicy(ctx, r)
			var le *store.LimitError
			if !errors.As(err, &le) || !errors.Is(err, store.ErrLimitExceeded) {
				t.Fatalf("%s: error %v, want a *store.LimitError", what, err)
			}
			if le.Limit != limit || le.Current != current {
				t.Errorf("%s: %+v, want Limit %d Current %d", what, *le, limit, current)
			}
			after, _ := s.ListPolicies(ctx, "acme", store.PolicyFilter{})
			same(t, what+": policies after refusal", after, before)
			if r := revision(t, s, "acme"); r != rev {
				t.Errorf("%s: refused write moved the revision %d → %d", what, rev, r)
			}
		}

		mustPut("first", req(policy("", "A", true), 2))
		mustPut("second, other scope", req(policy("bot", "B", true), 2))
		wantLimit("third", req(policy("", "C", true), 2), 2, 2)
		wantLimit("third, agent scope", req(policy("bot2", "C", true), 2), 2, 2)
		mustPut("update of an enabled one at the limit", req(policy("", "A", true), 2))
		mustPut("update over a lowered limit (adds nothing)", req(policy("", "A", true), 1))
		mustPut("a disabled create adds nothing", req(policy("", "C", false), 2))
		wantLimit("re-enable at the limit", req(policy("", "C", true), 2), 2, 2)
		if _, err := s.DisablePolicy(ctx, pkey("acme", "", "A")); err != nil {
			t.Fatal(err)
		}
		mustPut("re-enable after a disable made room", req(policy("", "C", true), 2))
		mustPut("unlimited", req(policy("", "D", true), store.Unlimited))
		wantLimit("limit 0", req(policy("", "E", true), 0), 0, 3)
		if n, _ := s.CountEnabledPolicies(ctx, "acme"); n != 3 {
			t.Errorf("CountEnabledPolicies = %d, want 3", n)
		}
	}},
	{"LimitConcurrent", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		const writers, limit = 20, 5
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			ok       int
			refused  int
			revs     = map[uint64]bool{}
			failures []error
		)
		for i := range writers {
			wg.Go(func() {
				agent := ""
				if i%2 == 1 {
					agent = "bot" // both scopes count against one limit
				}
				w, err := s.PutPolicy(ctx, store.PutPolicyRequest{TenantID: "acme", Policy: policy(agent, fmt.Sprintf("P%02d", i), true), Limit: limit})
				mu.Lock()
				defer mu.Unlock()
				var le *store.LimitError
				switch {
				case err == nil:
					ok++
					revs[w.Revision] = true
				case errors.As(err, &le):
					refused++
				default:
					failures = append(failures, err)
				}
			})
		}
		wg.Wait()
		for _, err := range failures {
			t.Errorf("unexpected error: %v", err)
		}
		if ok != limit || refused != writers-limit {
			t.Errorf("%d succeeded, %d refused; want %d and %d", ok, refused, limit, writers-limit)
		}
		if len(revs) != ok {
			t.Errorf("%d successful writes returned %d distinct revisions", ok, len(revs))
		}
		if n, _ := s.CountEnabledPolicies(ctx, "acme"); n != limit {
			t.Errorf("CountEnabledPolicies = %d, want %d", n, limit)
		}
	}},
	{"ConcurrentRevisionsStrictlyIncrease", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		tn := newTenant(t, s, "acme")
		const writers, each = 8, 10
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			revs = map[uint64]bool{}
		)
		for g := range writers {
			wg.Go(func() {
				last := uint64(0)
				for i := range each {
					w, err := s.PutPolicy(ctx, store.PutPolicyRequest{TenantID: "acme", Policy: policy("", fmt.Sprintf("G%d", g), true), Limit: store.Unlimited})
					if err != nil {
						t.Errorf("writer %d write %d: %v", g, i, err)
						return
					}
					if w.Revision <= last {
						t.Errorf("writer %d: revision %d after %d", g, w.Revision, last)
					}
					last = w.Revision
					mu.Lock()
					if revs[w.Revision] {
						t.Errorf("revision %d returned twice", w.Revision)
					}
					revs[w.Revision] = true
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if got, want := revision(t, s, "acme"), tn.Revision+writers*each; got != want {
			t.Errorf("final revision %d, want %d", got, want)
		}
	}},
	{"TenantPolicies", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		newTenant(t, s, "other")
		put(t, s, "other", policy("", "Foreign", true))
		put(t, s, "acme", policy("", "Zeta", true))
		put(t, s, "acme", policy("bot", "Zeta", true))
		put(t, s, "acme", policy("", "Off", false))
		put(t, s, "acme", policy("bot", "Alpha", true))
		last := put(t, s, "acme", policy("", "Alpha", true))
		tp, err := s.TenantPolicies(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if tp.TenantID != "acme" || tp.Revision != last.Revision || tp.Mode != pdp.ModeEnforcement {
			t.Errorf("TenantPolicies header: %q rev %d mode %q; want acme, %d, enforcement", tp.TenantID, tp.Revision, tp.Mode, last.Revision)
		}
		same(t, "enabled policies", names(tp.Policies), []string{"/Alpha", "/Zeta", "bot/Alpha", "bot/Zeta"})
		enabled, _ := s.ListPolicies(ctx, "acme", store.PolicyFilter{EnabledOnly: true})
		same(t, "same policies as ListPolicies", tp.Policies, enabled)
	}},
	{"TenantPoliciesSnapshot", func(t *testing.T, s store.Store) {
		// Each write adds one enabled policy and one revision, so in a
		// consistent snapshot len(policies) = revision - start.
		ctx := t.Context()
		start := newTenant(t, s, "acme").Revision
		const writes = 40
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			defer close(done)
			for i := range writes {
				if _, err := s.PutPolicy(ctx, store.PutPolicyRequest{TenantID: "acme", Policy: policy("", fmt.Sprintf("P%02d", i), true), Limit: store.Unlimited}); err != nil {
					t.Errorf("write %d: %v", i, err)
					return
				}
			}
		})
		for range 4 {
			wg.Go(func() {
				for {
					tp, err := s.TenantPolicies(ctx, "acme")
					if err != nil {
						t.Errorf("TenantPolicies: %v", err)
						return
					}
					if uint64(len(tp.Policies)) != tp.Revision-start {
						t.Errorf("torn snapshot: revision %d with %d policies", tp.Revision, len(tp.Policies))
						return
					}
					select {
					case <-done:
						return
					default:
					}
				}
			})
		}
		wg.Wait()
	}},
}
