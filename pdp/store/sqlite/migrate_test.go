package sqlite

import (
	"database/sql"
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
