package sqlite

import (
	"database/sql"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// TestMigrationBackfillsRollups opens a database written by a binary that
// knew only migration 0001: the dashboard's rollups must count the actions
// already there, and the chain must start at 1.
func TestMigrationBackfillsRollups(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "old.db")
	w, err := sql.Open("sqlite", path+"?_pragma=journal_mode(wal)")
	if err != nil {
		t.Fatal(err)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.ExecContext(ctx, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`); err != nil {
		t.Fatal(err)
	}
	if err := apply(ctx, w, ms[0], time.Now()); err != nil {
		t.Fatal(err)
	}
	day := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	if _, err := w.ExecContext(ctx, `INSERT INTO tenants VALUES ('acme', 'Acme', 'pro', 'enforcement', 'team', NULL, 1, 0)`); err != nil {
		t.Fatal(err)
	}
	for i, a := range []struct {
		status        pdp.Status
		policy, agent string
		hits          int
	}{
		{pdp.StatusAllowed, "", "bot", 0},
		{pdp.StatusBlocked, "Pii", "bot", 1},
		{pdp.StatusPendingReview, "FinancialSafety", "", 2},
		{pdp.StatusApproved, "FinancialSafety", "bot", 1},
	} {
		if _, err := w.ExecContext(ctx, `INSERT INTO actions (id, tenant_id, agent_id, action, connector, operation, params, step_type,
    status, decision, triggered_policy, severity, risk_score, violation_count, trace_id, created_at, decided_at, approver_id, decision_reason)
VALUES (?, 'acme', ?, 'x', '', 'x', NULL, 'ACTION', ?, NULL, ?, 'high', 0.68, ?, '', ?, NULL, '', '')`,
			"act_"+string(rune('a'+i)), a.agent, a.status, a.policy, a.hits, day.Add(time.Duration(i)*time.Hour).UnixMicro()); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r, err := db.Dashboard(ctx, "acme", store.DashboardQuery{Since: day, Until: day.Add(48 * time.Hour), Bucket: store.BucketDay})
	if err != nil {
		t.Fatal(err)
	}
	if want := (store.DashboardCounts{Evaluations: 4, Executed: 2, Blocked: 1, PendingReview: 1, Approved: 1}); r.Totals != want {
		t.Errorf("totals after migration %+v, want %+v", r.Totals, want)
	}
	if len(r.ByPolicy) != 2 || r.ByPolicy[0].Policy != "FinancialSafety" || r.ByPolicy[0].Count != 2 || r.ByPolicy[0].Severities.High != 2 {
		t.Errorf("by policy after migration %+v", r.ByPolicy)
	}
	if len(r.ByAgent) != 2 || r.ByAgent[0] != (store.AgentViolationCount{AgentID: "bot", Count: 2}) {
		t.Errorf("by agent after migration %+v", r.ByAgent)
	}
	as, _, err := db.ListApprovals(ctx, "acme", store.ApprovalQuery{Status: pdp.StatusPendingReview})
	if err != nil || len(as) != 1 || as[0].AuditSequence != 0 {
		t.Errorf("old pending action: %+v, %v", as, err)
	}
	_, e, err := db.DecideAction(ctx, store.DecideRequest{TenantID: "acme", ActionID: "act_c", Status: pdp.StatusDenied, ApproverID: "al"})
	if err != nil || e.SequenceNumber != 1 || e.PrevHash != store.GenesisHash {
		t.Errorf("first entry after migration: %+v, %v", e, err)
	}
	r, _ = db.Dashboard(ctx, "acme", store.DashboardQuery{Since: day, Until: day.Add(48 * time.Hour), Bucket: store.BucketDay})
	if r.Totals.PendingReview != 0 || r.Totals.Denied != 1 {
		t.Errorf("a decision on an old action moves its count: %+v", r.Totals)
	}
}

// TestMigrationAuditHeads upgrades a store written by the previous
// version's migrations (0001–0003): a tenant with a chain keeps its head
// and its chain continues, a tenant that never appended gets a head, and
// a tenant whose head was deleted stays without one (verification says so
// and appends are refused) rather than being given a fresh head that
// would hide a truncation.
func TestMigrationAuditHeads(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "old.db")
	w, err := sql.Open("sqlite", path+"?_pragma=journal_mode(wal)")
	if err != nil {
		t.Fatal(err)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.ExecContext(ctx, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Version > 3 {
			break
		}
		if err := apply(ctx, w, m, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	prev := store.GenesisHash
	for i, id := range []string{"acme", "quiet", "headless"} {
		if _, err := w.ExecContext(ctx, `INSERT INTO tenants (id, name, tier, mode, approval_mode, approval_settings, revision, created_at)
VALUES (?, ?, 'pro', 'enforcement', 'team', NULL, 1, ?)`, id, id, at.Add(time.Duration(i)).UnixMicro()); err != nil {
			t.Fatal(err)
		}
	}
	// acme and headless have two entries each, as the previous version
	// wrote them; headless's head row has been deleted.
	for _, tenant := range []string{"acme", "headless"} {
		prev = store.GenesisHash
		for seq := int64(1); seq <= 2; seq++ {
			e := store.NewAuditEntry(tenant, seq-1, prev, at.Add(time.Duration(seq)*time.Second), "note", json.RawMessage(`{}`))
			if _, err := w.ExecContext(ctx, `INSERT INTO audit_log (tenant_id, seq, ts, event, metadata, prev_hash, entry_hash) VALUES (?, ?, ?, ?, ?, ?, ?)`,
				tenant, e.SequenceNumber, e.Timestamp.UnixMicro(), e.Event, string(e.Metadata), e.PrevHash, e.EntryHash); err != nil {
				t.Fatal(err)
			}
			prev = e.EntryHash
		}
		if tenant == "acme" {
			if _, err := w.ExecContext(ctx, `INSERT INTO audit_heads (tenant_id, seq, entry_hash) VALUES (?, 2, ?)`, tenant, prev); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for tenant, want := range map[string]bool{"acme": true, "quiet": true, "headless": false} {
		v, err := db.VerifyAudit(ctx, tenant)
		if err != nil || v.Valid != want {
			t.Errorf("VerifyAudit(%s) after upgrade = %+v, %v; want valid %v", tenant, v, err, want)
		}
	}
	if es, err := db.AppendAudit(ctx, "acme", store.AuditEvent{Event: "after"}); err != nil || es[0].SequenceNumber != 3 {
		t.Errorf("acme's chain after upgrade: %+v, %v; want entry 3", es, err)
	}
	if es, err := db.AppendAudit(ctx, "quiet", store.AuditEvent{Event: "first"}); err != nil || es[0].SequenceNumber != 1 {
		t.Errorf("quiet's chain after upgrade: %+v, %v; want entry 1", es, err)
	}
	if _, err := db.AppendAudit(ctx, "headless", store.AuditEvent{Event: "next"}); !errors.Is(err, store.ErrChainBroken) {
		t.Errorf("headless's chain after upgrade: %v, want ErrChainBroken", err)
	}
	// Tenants created after the upgrade have a head from the start.
	if _, err := db.CreateTenant(ctx, store.Tenant{ID: "new", Tier: store.TierPro, Mode: pdp.ModeEnforcement}); err != nil {
		t.Fatal(err)
	}
	if err := db.ExecRaw(ctx, `DELETE FROM audit_heads WHERE tenant_id = 'new'`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AppendAudit(ctx, "new", store.AuditEvent{Event: "x"}); !errors.Is(err, store.ErrChainBroken) {
		t.Errorf("a new tenant whose head was deleted: %v, want ErrChainBroken", err)
	}
}
