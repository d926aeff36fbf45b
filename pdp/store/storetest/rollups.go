package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// rollupTests check that VerifyAudit compares every rollup with the
// actions it counts (store.Rollups): each kind of edit of each rollup is
// found with a reason naming the rollup and the bucket, and a store
// written through every path that moves a rollup stays valid.
func rollupTests(tamper Tamperer) []govTest {
	hour := base.Truncate(time.Hour).Format(time.RFC3339) // acme's actions' hour
	day := base.Truncate(24 * time.Hour).Format(time.RFC3339)
	otherAt := base.Add(50 * time.Hour) // other's: another hour and day
	otherHour, otherDay := otherAt.Truncate(time.Hour).Format(time.RFC3339), otherAt.Truncate(24*time.Hour).Format(time.RFC3339)
	reason := func(table, bucket, at, keys string, counted, actions int) string {
		return fmt.Sprintf("%s: %s, %s %s, %s: %d counted, %d actions", store.ReasonRollup, table, bucket, at, keys, counted, actions)
	}
	// tampered records acme's actions (two allowed, one blocked by NoDrop
	// by agent "bot", one held and denied: DataExfiltration, "bot") and
	// one of other's, lets f edit the rollups, and checks VerifyAudit's
	// reason; other's verification is untouched.
	tampered := func(f func(t *testing.T, s store.GovernanceStore), want string) func(*testing.T, store.GovernanceStore) {
		return func(t *testing.T, s store.GovernanceStore) {
			ctx := t.Context()
			newTenant(t, s, "acme")
			newTenant(t, s, "other")
			blocked := action("acme", "act_blocked", base.Add(time.Second), pdp.StatusBlocked)
			blocked.AgentID, blocked.TriggeredPolicy, blocked.Severity, blocked.ViolationCount = "bot", "NoDrop", pdp.SeverityCritical, 1
			oth := action("other", "act_other", otherAt, pdp.StatusAllowed)
			oth.AgentID, oth.TriggeredPolicy, oth.Severity, oth.ViolationCount = "spy", "Other", pdp.SeverityLow, 1
			v := verifyTampered(t, s, f,
				action("acme", "act_a1", base, pdp.StatusAllowed), action("acme", "act_a2", base.Add(2*time.Second), pdp.StatusAllowed),
				blocked, heldAction("acme", "act_held", base.Add(3*time.Second)), oth)
			// Every entry verified: the chain is whole, a rollup is not.
			if v.Valid || v.Reason != want || v.FirstBadSequence != nil || v.Entries != 5 || v.LastSequence != 5 || v.Cause != nil {
				t.Errorf("VerifyAudit = %+v (first bad %v)\nwant invalid, 5 entries verified, reason %q", v, deref(v.FirstBadSequence), want)
			}
			if v, err := s.VerifyAudit(ctx, "other"); err != nil || !v.Valid {
				t.Errorf("other's VerifyAudit: %+v, %v; want valid (one tenant's rollups are its own)", v, err)
			}
		}
	}
	// copyOthers adds other's rows of table to acme's: buckets in which
	// acme has no actions.
	copyOthers := func(table, cols string) func(t *testing.T, s store.GovernanceStore) {
		return func(t *testing.T, s store.GovernanceStore) {
			tamper.Exec(t, s, `INSERT INTO `+table+` (tenant_id, `+cols+`) SELECT 'acme', `+cols+` FROM `+table+` WHERE tenant_id = 'other'`)
		}
	}
	return []govTest{
		{"HourlyCountIncremented", tampered(func(t *testing.T, s store.GovernanceStore) {
			tamper.Exec(t, s, `UPDATE action_counts_hourly SET n = n + 1 WHERE tenant_id = ? AND status = 'allowed'`, "acme")
		}, reason("action_counts_hourly", "hour", hour, `status "allowed"`, 3, 2))},
		{"HourlyCountDeleted", tampered(func(t *testing.T, s store.GovernanceStore) {
			tamper.Exec(t, s, `DELETE FROM action_counts_hourly WHERE tenant_id = ? AND status = 'blocked'`, "acme")
		}, reason("action_counts_hourly", "hour", hour, `status "blocked"`, 0, 1))},
		{"HourlyCountAdded", tampered(copyOthers("action_counts_hourly", "hour, status, n"),
			reason("action_counts_hourly", "hour", otherHour, `status "allowed"`, 1, 0))},
		{"HourlyCountMovedToZero", tampered(func(t *testing.T, s store.GovernanceStore) {
			// The decided action's count left where it was held: the row
			// a decision empties is kept at 0, so it must stay 0.
			tamper.Exec(t, s, `UPDATE action_counts_hourly SET n = n + 1 WHERE tenant_id = ? AND status = 'pending_review'`, "acme")
			tamper.Exec(t, s, `UPDATE action_counts_hourly SET n = n - 1 WHERE tenant_id = ? AND status = 'denied'`, "acme")
		}, reason("action_counts_hourly", "hour", hour, `status "denied"`, 0, 1))},
		{"PolicyCountIncremented", tampered(func(t *testing.T, s store.GovernanceStore) {
			tamper.Exec(t, s, `UPDATE policy_violations_daily SET n = n + 1 WHERE tenant_id = ? AND policy = 'NoDrop'`, "acme")
		}, reason("policy_violations_daily", "day", day, `policy "NoDrop", severity "critical"`, 2, 1))},
		{"PolicyCountDeleted", tampered(func(t *testing.T, s store.GovernanceStore) {
			tamper.Exec(t, s, `DELETE FROM policy_violations_daily WHERE tenant_id = ? AND policy = 'DataExfiltration'`, "acme")
		}, reason("policy_violations_daily", "day", day, `policy "DataExfiltration", severity "high"`, 0, 1))},
		{"PolicyCountAdded", tampered(copyOthers("policy_violations_daily", "day, policy, severity, n"),
			reason("policy_violations_daily", "day", otherDay, `policy "Other", severity "low"`, 1, 0))},
		{"AgentCountIncremented", tampered(func(t *testing.T, s store.GovernanceStore) {
			tamper.Exec(t, s, `UPDATE agent_violations_daily SET n = n + 1 WHERE tenant_id = ?`, "acme")
		}, reason("agent_violations_daily", "day", day, `agent_id "bot"`, 3, 2))},
		{"AgentCountDeleted", tampered(func(t *testing.T, s store.GovernanceStore) {
			tamper.Exec(t, s, `DELETE FROM agent_violations_daily WHERE tenant_id = ?`, "acme")
		}, reason("agent_violations_daily", "day", day, `agent_id "bot"`, 0, 2))},
		{"AgentCountAdded", tampered(copyOthers("agent_violations_daily", "day, agent_id, n"),
			reason("agent_violations_daily", "day", otherDay, `agent_id "spy"`, 1, 0))},
		{"AgentCountRenamed", tampered(func(t *testing.T, s store.GovernanceStore) {
			// The counts add up, but under another agent: the first bucket
			// by key is named.
			tamper.Exec(t, s, `UPDATE agent_violations_daily SET agent_id = 'alice' WHERE tenant_id = ?`, "acme")
		}, reason("agent_violations_daily", "day", day, `agent_id "alice"`, 2, 0))},
		{"RollupsMatchAfterEveryWritePath", rollupsMatch},
		{"ChainReasonComesFirst", func(t *testing.T, s store.GovernanceStore) {
			// An entry edited and a rollup edited: the entry is named (the
			// chain is what the rest is checked against).
			newTenant(t, s, "acme")
			if _, _, err := s.InsertActionAudited(t.Context(), action("acme", "act_a1", base, pdp.StatusAllowed), store.AuditEvent{}); err != nil {
				t.Fatal(err)
			}
			appendN(t, s, "acme", 2)
			tamper.SetAuditField(t, s, "acme", 2, "metadata", `{"i":40}`)
			tamper.Exec(t, s, `UPDATE action_counts_hourly SET n = n + 1 WHERE tenant_id = ?`, "acme")
			v, err := s.VerifyAudit(t.Context(), "acme")
			if err != nil || v.Valid || v.FirstBadSequence == nil || *v.FirstBadSequence != 2 || v.Reason != store.ReasonHash {
				t.Errorf("VerifyAudit = %+v (first bad %v), %v; want invalid at 2, reason %q", v, deref(v.FirstBadSequence), err, store.ReasonHash)
			}
		}},
		{"RollupUnreadable", func(t *testing.T, s store.GovernanceStore) {
			newTenant(t, s, "acme")
			if _, _, err := s.InsertActionAudited(t.Context(), action("acme", "act_a1", base, pdp.StatusAllowed), store.AuditEvent{}); err != nil {
				t.Fatal(err)
			}
			tamper.Exec(t, s, `ALTER TABLE agent_violations_daily RENAME TO agent_violations_gone`)
			v, err := s.VerifyAudit(t.Context(), "acme")
			if err != nil {
				t.Fatalf("VerifyAudit with a rollup gone: %v, want an answer", err)
			}
			if v.Valid || v.Reason != store.ReasonUnreadable || v.Cause == nil {
				t.Errorf("VerifyAudit with a rollup gone = %+v, want invalid with reason %q and a cause", v, store.ReasonUnreadable)
			}
		}},
	}
}

// rollupsMatch writes a tenant's actions through every path that moves a
// rollup — audited inserts from concurrent callers, plain inserts, a bulk
// load where the driver has one, decisions (approved and denied), over
// several hours, days and agents, and then prunes the chain's oldest
// entries — and checks that VerifyAudit finds every rollup matching.
func rollupsMatch(t *testing.T, s store.GovernanceStore) {
	ctx := t.Context()
	newTenant(t, s, "acme")
	newTenant(t, s, "other")
	since := base.Add(-4 * 24 * time.Hour).Add(-17 * time.Minute)
	audited := slices.Collect(GenerateActions(ActionMix{TenantID: "acme", N: 240, Since: since, Until: base, Agents: 6, Policies: 3, Seed: 11}))
	// Held actions are recorded held and decided below; final ones as
	// generated are recorded by the plain insert.
	var plain []store.ActionRecord
	audited = slices.DeleteFunc(audited, func(a store.ActionRecord) bool {
		if a.Status == pdp.StatusApproved || a.Status == pdp.StatusDenied {
			plain = append(plain, a)
			return true
		}
		return false
	})
	InsertConcurrently(ctx, t, s, audited, 4)
	for _, a := range plain {
		if _, err := s.InsertAction(ctx, a); err != nil {
			t.Fatalf("InsertAction(%s): %v", a.ID, err)
		}
	}
	if b, ok := s.(store.BulkActions); ok {
		mix := ActionMix{TenantID: "acme", N: 200, Since: since.Add(-24 * time.Hour), Until: base.Add(time.Hour), Agents: 4, Policies: 2, Seed: 12, IDPrefix: "bulk_"}
		if _, err := b.BulkInsertActions(ctx, GenerateActions(mix)); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.InsertActionAudited(ctx, action("other", "act_other", base, pdp.StatusAllowed), store.AuditEvent{}); err != nil {
		t.Fatal(err)
	}
	decided := 0
	for i, a := range audited {
		if a.Status != pdp.StatusPendingReview || i%3 == 2 { // some stay held
			continue
		}
		status := pdp.StatusApproved
		if i%2 == 1 {
			status = pdp.StatusDenied
		}
		if _, _, err := s.DecideAction(ctx, store.DecideRequest{TenantID: "acme", ActionID: a.ID, Status: status, ApproverID: "al", Reason: "checked"}); err != nil {
			t.Fatalf("DecideAction(%s): %v", a.ID, err)
		}
		decided++
	}
	if decided < 2 {
		t.Fatalf("only %d actions decided: the mix must hold some", decided)
	}
	if _, removed, err := archive(t, s).PruneAudit(ctx, "acme", base.Add(-2*24*time.Hour), 0); err != nil || removed == 0 {
		t.Fatalf("PruneAudit: %d removed, %v", removed, err)
	}
	v, err := s.VerifyAudit(ctx, "acme")
	if err != nil || !v.Valid || v.RetainedFrom <= 1 {
		t.Fatalf("VerifyAudit = %+v, %v; want valid, pruned", v, err)
	}
}
