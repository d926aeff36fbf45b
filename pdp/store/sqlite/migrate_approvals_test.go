package sqlite

import (
	"database/sql"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// TestMigrationPartialApprovals opens a database whose actions indexes are
// those migration 0008 left (a full actions_approvals, actions_tenant_status
// without audit_seq, the actions indexes 0013 rebuilds or drops as 0002
// made them) and holds audited actions of every status and a bulk-loaded
// one: migration 0009 rebuilds the first two (0013 then drops the status
// index), and the approvals queue, the verification and its cross-check of
// actions read the same as before.
func TestMigrationPartialApprovals(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	seedApprovalActions(t, db, pdp.StatusAllowed)
	wantApprovals := listApprovals(t, db)
	wantVerify, err := db.VerifyAudit(ctx, "acme")
	if err != nil || !wantVerify.Valid {
		t.Fatalf("before: %+v, %v", wantVerify, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// The indexes as migration 0002 made them, and 0009 not applied.
	w, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`DROP INDEX actions_approvals`,
		`CREATE INDEX actions_approvals ON actions (tenant_id, status, audit_seq)`,
		`CREATE INDEX actions_tenant_status ON actions (tenant_id, status, created_at DESC, seq DESC)`,
		`DROP INDEX actions_tenant_created`,
		`CREATE INDEX actions_tenant_created ON actions (tenant_id, created_at DESC, seq DESC)`,
		`DROP INDEX actions_agent_violations`,
		`CREATE INDEX actions_agent_violations ON actions (tenant_id, agent_id, created_at DESC, seq DESC) WHERE violation_count > 0`,
		`CREATE INDEX actions_violations ON actions (tenant_id, created_at, triggered_policy, severity, agent_id) WHERE violation_count > 0`,
		`DELETE FROM schema_migrations WHERE version IN (9, 13)`,
	} {
		if _, err := w.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for name, want := range map[string]string{
		"actions_approvals":      "WHERE status IN ('pending_review', 'approved', 'denied')",
		"actions_tenant_created": "seq DESC, status, audit_seq)",
	} {
		var def string
		if err := db.r.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?`, name).Scan(&def); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(def, want) {
			t.Errorf("%s after the migration: %s", name, def)
		}
	}
	if got := listApprovals(t, db); !slices.Equal(got, wantApprovals) {
		t.Errorf("approvals after the migration %q, before %q", got, wantApprovals)
	}
	v, err := db.VerifyAudit(ctx, "acme")
	if err != nil || v.Valid != wantVerify.Valid || v.Entries != wantVerify.Entries {
		t.Errorf("verification after the migration %+v, %v; before %+v", v, err, wantVerify)
	}
	// The cross-check still reads undecided actions: a blocked action
	// edited to allowed is found.
	db.writes.Add(1)
	if _, err := db.w.ExecContext(ctx, `UPDATE actions SET status = 'allowed' WHERE id = 'act_c'`); err != nil {
		t.Fatal(err)
	}
	if v, err := db.VerifyAudit(ctx, "acme"); err != nil || v.Valid || !strings.Contains(v.Reason, "act_c") {
		t.Errorf("verification of an edited action: %+v, %v", v, err)
	}
}

// seedApprovalActions creates tenant acme in db with six audited actions
// of every status from at (the returned time) on, act_b approved and act_e
// denied, and one bulk-loaded action, act_bulk, of status bulkStatus: the
// store the approvals-index migrations are tested on.
func seedApprovalActions(t *testing.T, db *DB, bulkStatus pdp.Status) time.Time {
	t.Helper()
	ctx := t.Context()
	if _, err := db.CreateTenant(ctx, store.Tenant{ID: "acme", Tier: store.TierEnterprise, Mode: pdp.ModeEnforcement}); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for i, st := range []pdp.Status{pdp.StatusAllowed, pdp.StatusPendingReview, pdp.StatusBlocked, pdp.StatusPendingReview, pdp.StatusPendingReview, pdp.StatusAllowed} {
		a := store.ActionRecord{ID: "act_" + string(rune('a'+i)), TenantID: "acme", Action: "github.delete_repo", StepType: pdp.DefaultStepType,
			Status: st, Params: json.RawMessage(`{"repo":"x"}`), CreatedAt: at.Add(time.Duration(i) * time.Minute)}
		if _, _, err := db.InsertActionAudited(ctx, a, store.AuditEvent{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []store.DecideRequest{
		{TenantID: "acme", ActionID: "act_b", Status: pdp.StatusApproved, ApproverID: "alice"},
		{TenantID: "acme", ActionID: "act_e", Status: pdp.StatusDenied, ApproverID: "bob"},
	} {
		if _, _, err := db.DecideAction(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	bulk := store.ActionRecord{ID: "act_bulk", TenantID: "acme", Action: "http.get", StepType: pdp.DefaultStepType, Status: bulkStatus, CreatedAt: at}
	if _, err := db.BulkInsertActions(ctx, slices.Values([]store.ActionRecord{bulk})); err != nil {
		t.Fatal(err)
	}
	return at
}

// listApprovals is acme's approvals queue in db as ListApprovals reads it
// for every status filter: "status:ids:count" each.
func listApprovals(t *testing.T, db *DB) []string {
	t.Helper()
	var out []string
	for _, st := range []pdp.Status{"", pdp.StatusPendingReview, pdp.StatusApproved, pdp.StatusDenied} {
		as, n, err := db.ListApprovals(t.Context(), "acme", store.ApprovalQuery{Status: st})
		if err != nil {
			t.Fatal(err)
		}
		ids := []string{}
		for _, a := range as {
			ids = append(ids, a.Action.ID)
		}
		out = append(out, string(st)+":"+strings.Join(ids, ",")+":"+string(rune('0'+n)))
	}
	return out
}
