package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// versionsOf reads the history of every policy in ps (for snapshots).
func versionsOf(t *testing.T, s store.Store, tenant string, ps []pdp.Policy) map[string][]store.PolicyVersion {
	t.Helper()
	out := map[string][]store.PolicyVersion{}
	for _, p := range ps {
		vs, err := s.PolicyVersions(context.WithoutCancel(t.Context()), pkey(tenant, p.AgentID, p.Name))
		if err != nil {
			t.Fatalf("PolicyVersions(%q/%q): %v", p.AgentID, p.Name, err)
		}
		out[p.AgentID+"/"+p.Name] = vs
	}
	return out
}

// wantHistory checks a policy's history, newest first: actions, versions
// 1..n, enabled flags, and that each version equals what its write
// returned (writes[i] is version i+1's write).
func wantHistory(t *testing.T, s store.Store, key store.PolicyKey, writes []store.PolicyWrite, actions ...string) {
	t.Helper()
	ctx := t.Context()
	vs, err := s.PolicyVersions(ctx, key)
	if err != nil {
		t.Fatalf("PolicyVersions(%s): %v", key, err)
	}
	if len(vs) != len(actions) {
		t.Fatalf("%s: %d versions, want %d: %+v", key, len(vs), len(actions), vs)
	}
	for i, v := range vs {
		n := len(vs) - i
		if v.Policy.Version != n || v.Action != actions[n-1] {
			t.Errorf("%s: entry %d is version %d %q, want %d %q", key, i, v.Policy.Version, v.Action, n, actions[n-1])
		}
		same(t, fmt.Sprintf("%s version %d", key, n), v.Policy, writes[n-1].Policy)
		same(t, fmt.Sprintf("%s version %d as the write returned it", key, n), v, writes[n-1].Version)
		one, err := s.PolicyVersion(ctx, key, n)
		if err != nil {
			t.Fatalf("PolicyVersion(%s, %d): %v", key, n, err)
		}
		same(t, fmt.Sprintf("%s PolicyVersion %d", key, n), one, v)
		wantUTC(t, "version CreatedAt", v.CreatedAt())
	}
}

var versionTests = []test{
	{"EveryWriteKindAtBothScopes", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		for _, agent := range []string{"", "billing-bot"} {
			key := pkey("acme", agent, "pii")
			var ws []store.PolicyWrite
			do := func(w store.PolicyWrite, err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
				ws = append(ws, w)
			}
			v1 := policy(agent, "pii", true)
			do(s.PutPolicy(ctx, store.PutPolicyRequest{TenantID: "acme", Policy: v1, Limit: store.Unlimited, Actor: "key_a"}))
			v2 := v1
			v2.Description, v2.Mode = "tightened", pdp.PolicyShadow
			v2.Rules = append([]pdp.Rule{{Match: "ssn", Severity: pdp.SeverityCritical, OnViolation: pdp.OutcomeBlock, Confidence: 1}}, v1.Rules...)
			do(s.PutPolicy(ctx, store.PutPolicyRequest{TenantID: "acme", Policy: v2, Limit: store.Unlimited, MustExist: true, Actor: "key_b"}))
			do(s.DisablePolicy(ctx, key))
			do(s.PutPolicy(ctx, store.PutPolicyRequest{TenantID: "acme", Policy: v2, Limit: store.Unlimited})) // re-enables
			do(s.PutPolicy(ctx, store.PutPolicyRequest{TenantID: "acme", Policy: v1, Limit: store.Unlimited, RollbackOf: 1, Actor: "key_c"}))
			off := v1
			off.Enabled = false
			do(s.PutPolicy(ctx, store.PutPolicyRequest{TenantID: "acme", Policy: off, Limit: store.Unlimited})) // an update that leaves it disabled
			wantHistory(t, s, key, ws, store.VersionCreated, store.VersionUpdated, store.VersionDisabled,
				store.VersionEnabled, store.VersionRolledBack, store.VersionUpdated)
			vs, _ := s.PolicyVersions(ctx, key)
			if vs[5].Actor != "key_a" || vs[4].Actor != "key_b" || vs[3].Actor != "" || vs[1].Actor != "key_c" {
				t.Errorf("actors: %q %q %q %q", vs[5].Actor, vs[4].Actor, vs[3].Actor, vs[1].Actor)
			}
			if vs[1].RolledBackFrom != 1 || vs[0].RolledBackFrom != 0 {
				t.Errorf("rolled_back_from: %d, %d", vs[1].RolledBackFrom, vs[0].RolledBackFrom)
			}
			if store.ContentDigest(vs[1].Policy) != store.ContentDigest(vs[5].Policy) {
				t.Error("a rollback to version 1 has another content digest than version 1")
			}
			if store.ContentDigest(vs[0].Policy) == store.ContentDigest(vs[1].Policy) {
				t.Error("disabled and enabled versions share a content digest")
			}
		}
	}},
	{"ScopesAndTenantsAreSeparate", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		newTenant(t, s, "globex")
		put(t, s, "acme", policy("", "pii", true))
		put(t, s, "acme", policy("", "pii", true))
		put(t, s, "acme", policy("bot", "pii", true))
		if vs, err := s.PolicyVersions(ctx, pkey("acme", "bot", "pii")); err != nil || len(vs) != 1 {
			t.Errorf("agent scope: %d versions, %v; want 1", len(vs), err)
		}
		_, err := s.PolicyVersions(ctx, pkey("globex", "", "pii"))
		wantErr(t, "another tenant's history", err, store.ErrNotFound)
		_, err = s.PolicyVersion(ctx, pkey("globex", "", "pii"), 1)
		wantErr(t, "another tenant's version", err, store.ErrNotFound)
		_, err = s.PolicyVersion(ctx, pkey("acme", "", "pii"), 3)
		wantErr(t, "a version not written yet", err, store.ErrNotFound)
		_, err = s.PolicyVersions(ctx, pkey("acme", "", "missing"))
		wantErr(t, "a policy never written", err, store.ErrNotFound)
	}},
	{"RefusedWritesKeepNoVersion", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		put(t, s, "acme", policy("", "a", true))
		if _, err := s.PutPolicy(ctx, store.PutPolicyRequest{TenantID: "acme", Policy: policy("", "b", true), Limit: 1}); err == nil {
			t.Fatal("write over the limit accepted")
		}
		if _, err := s.PutPolicy(ctx, store.PutPolicyRequest{TenantID: "acme", Policy: policy("", "c", true), Limit: store.Unlimited, MustExist: true}); err == nil {
			t.Fatal("update of a missing policy accepted")
		}
		for _, n := range []string{"b", "c"} {
			_, err := s.PolicyVersions(ctx, pkey("acme", "", n))
			wantErr(t, "refused write "+n, err, store.ErrNotFound)
		}
	}},
}

var auditedVersionTests = []govTest{
	{"HistoryIsOnTheChain", func(t *testing.T, s store.GovernanceStore) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		v1 := policy("bot", "pii", true)
		w1, e1, err := s.PutPolicyAudited(ctx, store.PutPolicyRequest{TenantID: "acme", Policy: v1, Limit: store.Unlimited}, store.AuditEvent{Metadata: meta("actor", "key_1")})
		if err != nil {
			t.Fatal(err)
		}
		v2 := v1
		v2.Description = "changed"
		w2, e2, err := s.PutPolicyAudited(ctx, store.PutPolicyRequest{TenantID: "acme", Policy: v2, Limit: store.Unlimited}, store.AuditEvent{})
		if err != nil {
			t.Fatal(err)
		}
		w3, e3, err := s.PutPolicyAudited(ctx, store.PutPolicyRequest{TenantID: "acme", Policy: v1, Limit: store.Unlimited, RollbackOf: 1, Actor: "key_2"}, store.AuditEvent{})
		if err != nil {
			t.Fatal(err)
		}
		w4, e4, err := s.DisablePolicyAudited(ctx, pkey("acme", "bot", "pii"), store.AuditEvent{Metadata: meta("actor", "key_3")})
		if err != nil {
			t.Fatal(err)
		}
		wantEntry(t, "create", e1, store.EventPolicyCreated, map[string]any{"version": 1, "version_action": "created",
			"content_digest": store.ContentDigest(w1.Policy), "actor": "key_1"})
		wantEntry(t, "update", e2, store.EventPolicyUpdated, map[string]any{"version": 2, "version_action": "updated",
			"content_digest": store.ContentDigest(w2.Policy)})
		wantEntry(t, "rollback", e3, store.EventPolicyRolledBack, map[string]any{"version": 3, "version_action": "rolled_back",
			"rolled_back_from": 1, "content_digest": store.ContentDigest(w1.Policy), "actor": "key_2"})
		wantEntry(t, "disable", e4, store.EventPolicyDisabled, map[string]any{"version": 4, "version_action": "disabled",
			"content_digest": store.ContentDigest(w4.Policy), "actor": "key_3"})
		wantHistory(t, s, pkey("acme", "bot", "pii"), []store.PolicyWrite{w1, w2, w3, w4},
			store.VersionCreated, store.VersionUpdated, store.VersionRolledBack, store.VersionDisabled)
		vs, _ := s.PolicyVersions(ctx, pkey("acme", "bot", "pii"))
		if vs[3].Actor != "key_1" || vs[1].Actor != "key_2" || vs[0].Actor != "key_3" {
			t.Errorf("actors from the audit metadata: %q %q %q", vs[3].Actor, vs[1].Actor, vs[0].Actor)
		}
		wantChain(t, s, "acme", 4)
	}},
}

var windowTests = []test{
	{"PagesNewestFirst", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		newTenant(t, s, "globex")
		// 30 actions, two per instant (ties are broken by insertion order).
		for i := range 30 {
			a := action("acme", fmt.Sprintf("act_w%02d", i), base.Add(time.Duration(i/2)*time.Second), pdp.StatusAllowed)
			if _, err := s.InsertAction(ctx, a); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.InsertAction(ctx, action("globex", "act_other", base.Add(5*time.Second), pdp.StatusAllowed)); err != nil {
			t.Fatal(err)
		}
		w := store.ActionWindow{Since: base.Add(3 * time.Second), Until: base.Add(12 * time.Second), Limit: 4}
		var got []string
		for {
			page, err := s.ActionsInWindow(ctx, "acme", w)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			if len(page) > 4 {
				t.Fatalf("page of %d", len(page))
			}
			for _, a := range page {
				got = append(got, a.ID)
			}
			w.After = &page[len(page)-1]
		}
		var want []string
		for i := 23; i >= 6; i-- { // instants 3 … 11 inclusive
			want = append(want, fmt.Sprintf("act_w%02d", i))
		}
		same(t, "window", got, want)
		other, err := s.ActionsInWindow(ctx, "globex", store.ActionWindow{Since: base, Until: base.Add(time.Hour), Limit: 100})
		if err != nil || len(other) != 1 || other[0].ID != "act_other" {
			t.Errorf("other tenant: %v, %v", other, err)
		}
	}},
}

var shadowCountTests = []test{
	{"ShadowHitsByPolicy", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		newTenant(t, s, "globex")
		dec := func(policies ...string) json.RawMessage {
			var hits []map[string]any
			for _, p := range policies {
				hits = append(hits, map[string]any{"policy": p, "scope": "tenant", "rule": 0, "severity": "high",
					"on_violation": "block", "reason": "r", "match": "m", "would_status": "blocked"})
			}
			m := map[string]any{"status": "allowed", "violations": []any{}}
			if hits != nil {
				m["shadow"] = hits
			}
			b, _ := json.Marshal(m)
			return b
		}
		for i, d := range []json.RawMessage{dec("cards", "pii"), dec("cards"), dec(), dec("cards")} {
			a := action("acme", fmt.Sprintf("act_s%d", i), base.Add(time.Duration(i)*time.Minute), pdp.StatusAllowed)
			a.Decision = d
			if i == 3 {
				a.CreatedAt = base.Add(-time.Hour) // outside the window
			}
			if _, err := s.InsertAction(ctx, a); err != nil {
				t.Fatal(err)
			}
		}
		other := action("globex", "act_g", base, pdp.StatusAllowed)
		other.Decision = dec("cards")
		if _, err := s.InsertAction(ctx, other); err != nil {
			t.Fatal(err)
		}
		got, err := s.ShadowHitsByPolicy(ctx, "acme", base, base.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		same(t, "shadow hits", got, []store.PolicyHits{{Policy: "cards", Count: 2}, {Policy: "pii", Count: 1}})
	}},
}
