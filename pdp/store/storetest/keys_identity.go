package storetest

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// agentKey is a member key bound to agent with restricted step types.
func agentKey(id, secret, tenant, agent string) store.APIKey {
	return store.APIKey{
		ID: id, TenantID: tenant, Hash: store.HashAPIKey(secret), Prefix: store.KeyPrefix(secret),
		Name: agent, Role: pdp.RoleMember, Scopes: []pdp.KeyScope{pdp.ScopeAuditRead, pdp.ScopeActionsSubmit},
		AgentID: agent, StepTypes: []string{"ACTION"}, CreatedBy: "key_owner",
	}
}

var keyIdentityTests = []govTest{
	{"IdentityRoundTrip", func(t *testing.T, s store.GovernanceStore) {
		ctx := t.Context()
		newTenant(t, s, "acme", newKey("key_owner", "nram_owner"))
		k, e, err := s.CreateAPIKeyAudited(ctx, agentKey("key_bot", "nram_bot", "acme", "payer-bot"), store.AuditEvent{})
		if err != nil {
			t.Fatal(err)
		}
		// Scopes come back in pdp.AllScopes order, whatever order they went in.
		same(t, "scopes", k.Scopes, []pdp.KeyScope{pdp.ScopeActionsSubmit, pdp.ScopeAuditRead})
		if e.Event != store.EventKeyCreated || e.SequenceNumber != 1 {
			t.Errorf("entry = %s #%d, want key_created #1", e.Event, e.SequenceNumber)
		}
		var meta map[string]any
		if err := json.Unmarshal(e.Metadata, &meta); err != nil {
			t.Fatal(err)
		}
		if meta["key_id"] != "key_bot" || meta["agent_id"] != "payer-bot" || meta["role"] != "member" || meta["created_by"] != "key_owner" {
			t.Errorf("entry metadata = %s", e.Metadata)
		}
		if _, ok := meta["hash"]; ok {
			t.Errorf("entry metadata holds the key's hash: %s", e.Metadata)
		}
		_, got, err := s.TenantByKeyHash(ctx, store.HashAPIKey("nram_bot"))
		if err != nil {
			t.Fatal(err)
		}
		same(t, "looked-up key", got, k)
		if got.Identity() != "payer-bot" || !got.Has(pdp.ScopeActionsSubmit) || got.Has(pdp.ScopeApprovalsDecide) {
			t.Errorf("identity %q, scopes %v", got.Identity(), got.Scopes)
		}
		// The operator's key: an owner with every scope, manager, unnamed.
		_, owner, err := s.TenantByKeyHash(ctx, store.HashAPIKey("nram_owner"))
		if err != nil {
			t.Fatal(err)
		}
		if owner.Role != pdp.RoleOwner || !owner.IsManager || len(owner.Scopes) != len(pdp.AllScopes) || owner.Identity() != "key_owner" {
			t.Errorf("owner key = %+v", owner)
		}
	}},
	{"InvalidIdentity", func(t *testing.T, s store.GovernanceStore) {
		newTenant(t, s, "acme")
		k := agentKey("key_bad", "nram_bad", "acme", "bot")
		k.Role, k.Scopes, k.StepTypes = "boss", []pdp.KeyScope{"everything"}, []string{"DREAM"}
		_, _, err := s.CreateAPIKeyAudited(t.Context(), k, store.AuditEvent{})
		wantValidation(t, "bad role", err, "role")
		wantValidation(t, "bad scope", err, "scopes")
		wantValidation(t, "bad step type", err, "step_types")
		if es, _, err := s.ListAudit(t.Context(), "acme", store.AuditQuery{}); err != nil || len(es) != 0 {
			t.Errorf("a refused key appended %d entries (%v)", len(es), err)
		}
	}},
	{"ListIsPerTenant", func(t *testing.T, s store.GovernanceStore) {
		ctx := t.Context()
		newTenant(t, s, "acme", newKey("key_a1", "nram_a1"))
		newTenant(t, s, "other", newKey("key_o1", "nram_o1"))
		if _, _, err := s.CreateAPIKeyAudited(ctx, agentKey("key_a2", "nram_a2", "acme", "bot"), store.AuditEvent{}); err != nil {
			t.Fatal(err)
		}
		ks, err := s.ListAPIKeys(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if len(ks) != 2 || ks[0].ID != "key_a1" || ks[1].ID != "key_a2" {
			t.Errorf("acme's keys = %+v", ks)
		}
		if ks, err := s.ListAPIKeys(ctx, "nobody"); err != nil || len(ks) != 0 {
			t.Errorf("unknown tenant's keys = %v, %v", ks, err)
		}
		// Another tenant's key can be neither revoked nor rotated.
		_, _, err = s.RevokeAPIKeyAudited(ctx, "other", "key_a2", store.AuditEvent{})
		wantErr(t, "revoke another tenant's key", err, store.ErrNotFound)
		next := agentKey("key_n", "nram_n", "other", "bot")
		_, _, err = s.RotateAPIKeyAudited(ctx, "other", "key_a2", next, base, store.AuditEvent{})
		wantErr(t, "rotate another tenant's key", err, store.ErrNotFound)
		if _, _, err := s.TenantByKeyHash(ctx, store.HashAPIKey("nram_a2")); err != nil {
			t.Errorf("acme's key after the other tenant's attempts: %v", err)
		}
	}},
	{"RevokeAudited", func(t *testing.T, s store.GovernanceStore) {
		ctx := t.Context()
		newTenant(t, s, "acme", newKey("key_a", "nram_a"))
		before := revision(t, s, "acme")
		k, e, err := s.RevokeAPIKeyAudited(ctx, "acme", "key_a", store.AuditEvent{})
		if err != nil {
			t.Fatal(err)
		}
		if k.RevokedAt == nil || e.Event != store.EventKeyRevoked {
			t.Errorf("revoked key %+v, entry %s", k, e.Event)
		}
		if after := revision(t, s, "acme"); after != before+1 {
			t.Errorf("revision %d after a revocation, want %d", after, before+1)
		}
		_, _, err = s.TenantByKeyHash(ctx, store.HashAPIKey("nram_a"))
		wantErr(t, "revoked key", err, store.ErrNotFound)
		// A repeat changes nothing and appends nothing.
		if _, e, err := s.RevokeAPIKeyAudited(ctx, "acme", "key_a", store.AuditEvent{}); err != nil || e.SequenceNumber != 0 {
			t.Errorf("repeat revocation: entry %d, %v", e.SequenceNumber, err)
		}
		_, _, err = s.RevokeAPIKeyAudited(ctx, "acme", "key_none", store.AuditEvent{})
		wantErr(t, "unknown key", err, store.ErrNotFound)
	}},
	{"RotateAudited", func(t *testing.T, s store.GovernanceStore) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		old, _, err := s.CreateAPIKeyAudited(ctx, agentKey("key_old", "nram_old", "acme", "bot"), store.AuditEvent{})
		if err != nil {
			t.Fatal(err)
		}
		next := agentKey("key_new", "nram_new", "acme", "bot")
		grace := time.Now().Add(24 * time.Hour)
		got, e, err := s.RotateAPIKeyAudited(ctx, "acme", "key_old", next, grace, store.AuditEvent{})
		if err != nil {
			t.Fatal(err)
		}
		if e.Event != store.EventKeyRotated || got.ID != "key_new" || got.AgentID != "bot" {
			t.Errorf("rotation: %s, %+v", e.Event, got)
		}
		_, oldNow, err := s.TenantByKeyHash(ctx, store.HashAPIKey("nram_old"))
		if err != nil {
			t.Fatalf("the old key within its grace period: %v", err)
		}
		if oldNow.ExpiresAt == nil || !oldNow.ExpiresAt.Equal(grace.UTC().Truncate(store.TimePrecision)) {
			t.Errorf("old key expires at %v, want %v", oldNow.ExpiresAt, grace)
		}
		if !oldNow.ExpiredAt(grace) || oldNow.ExpiredAt(grace.Add(-time.Second)) {
			t.Error("ExpiredAt does not end the key at its expiry")
		}
		if old.ExpiresAt != nil {
			t.Error("a new key expires")
		}
		// The new secret's hash must be new.
		dup := agentKey("key_dup", "nram_new", "acme", "bot")
		_, _, err = s.RotateAPIKeyAudited(ctx, "acme", "key_new", dup, grace, store.AuditEvent{})
		if !errors.Is(err, store.ErrDuplicate) {
			t.Errorf("rotation to a taken hash: %v, want ErrDuplicate", err)
		}
	}},
	{"RequireAgentKeys", func(t *testing.T, s store.GovernanceStore) {
		ctx := t.Context()
		newTenant(t, s, "acme", newKey("key_a", "nram_a"))
		on := true
		if _, err := s.UpdateTenant(ctx, "acme", store.TenantUpdate{RequireAgentKeys: &on}); err != nil {
			t.Fatal(err)
		}
		tn, _, err := s.TenantByKeyHash(ctx, store.HashAPIKey("nram_a"))
		if err != nil || !tn.RequireAgentKeys {
			t.Errorf("require_agent_keys after the update: %v (%v)", tn.RequireAgentKeys, err)
		}
		if got, err := s.GetTenant(ctx, "acme"); err != nil || !got.RequireAgentKeys {
			t.Errorf("GetTenant: require_agent_keys %v (%v)", got.RequireAgentKeys, err)
		}
	}},
}

var approverStatsTests = []govTest{
	{"DecisionsByApprover", func(t *testing.T, s store.GovernanceStore) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		newTenant(t, s, "other")
		at := base
		for i, d := range []struct {
			tenant, approver string
			st               pdp.Status
		}{{"acme", "alice", pdp.StatusApproved}, {"acme", "alice", pdp.StatusDenied}, {"acme", "bob", pdp.StatusApproved}, {"other", "alice", pdp.StatusApproved}} {
			id := "act_" + string(rune('a'+i))
			if _, _, err := s.InsertActionAudited(ctx, store.ActionRecord{ID: id, TenantID: d.tenant, Action: "pay", Status: pdp.StatusPendingReview, CreatedAt: at}, store.AuditEvent{}); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.DecideAction(ctx, store.DecideRequest{TenantID: d.tenant, ActionID: id, Status: d.st, ApproverID: d.approver, DecidedAt: at.Add(time.Minute)}); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.DecisionsByApprover(ctx, "acme", base, base.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		same(t, "acme's decisions", got, []store.ApproverDecisions{{ApproverID: "alice", Approved: 1, Denied: 1}, {ApproverID: "bob", Approved: 1}})
		if got, err := s.DecisionsByApprover(ctx, "acme", base.Add(time.Hour), base.Add(2*time.Hour)); err != nil || len(got) != 0 {
			t.Errorf("outside the window: %v, %v", got, err)
		}
	}},
}
