package sqlite

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// TestMigrationApprovalsPredicate opens a store at schema 0011 (the
// approvals index's predicate an IN list) holding audited actions of
// every status, decisions and a bulk-loaded action; migration 0012
// rewrites the predicate as equalities: the index holds the same rows,
// the approvals queue reads the same, the database is intact, and an
// action insert no longer builds an ephemeral B-tree.
func TestMigrationApprovalsPredicate(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := Open(ctx, path, withSchemaVersion(11))
	if err != nil {
		t.Fatal(err)
	}
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
	bulk := store.ActionRecord{ID: "act_bulk", TenantID: "acme", Action: "http.get", StepType: pdp.DefaultStepType, Status: pdp.StatusPendingReview, CreatedAt: at}
	if _, err := db.BulkInsertActions(ctx, slices.Values([]store.ActionRecord{bulk})); err != nil {
		t.Fatal(err)
	}
	// The index's entries, read through it alone.
	entries := func(db *DB, pred string) []string {
		t.Helper()
		return dumpRows(t, db.r, `SELECT quote(id) || ',' || quote(status) || ',' || quote(audit_seq) FROM actions INDEXED BY actions_approvals WHERE tenant_id = 'acme' AND `+pred+` ORDER BY id`)
	}
	approvals := func(db *DB) []string {
		t.Helper()
		var out []string
		for _, st := range []pdp.Status{"", pdp.StatusPendingReview, pdp.StatusApproved, pdp.StatusDenied} {
			as, n, err := db.ListApprovals(ctx, "acme", store.ApprovalQuery{Status: st})
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
	const oldPred = `status IN ('pending_review', 'approved', 'denied')`
	wantEntries, wantApprovals := entries(db, oldPred), approvals(db)
	if len(wantEntries) != 4 { // act_b, act_d, act_e, act_bulk: held or decided; none allowed or blocked
		t.Fatalf("the old index holds %q", wantEntries)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var def string
	if err := db.r.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'actions_approvals'`).Scan(&def); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(def, "WHERE "+strings.Trim(approvalStatuses, "()")) {
		t.Errorf("actions_approvals after the migration: %s", def)
	}
	if got := entries(db, approvalStatuses); !slices.Equal(got, wantEntries) {
		t.Errorf("the index holds %q after the migration, %q before", got, wantEntries)
	}
	if got := approvals(db); !slices.Equal(got, wantApprovals) {
		t.Errorf("approvals after the migration %q, before %q", got, wantApprovals)
	}
	var ok string
	if err := db.r.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Errorf("integrity_check: %q, %v", ok, err)
	}
	ops, err := db.Explain(ctx, sqlInsertAction, make([]any, 20)...)
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		if strings.Contains(op, "OpenEphemeral") {
			t.Errorf("the action insert builds an ephemeral B-tree: %s", op)
		}
	}
	// Writes after the migration land in the index as before.
	a := store.ActionRecord{ID: "act_z", TenantID: "acme", Action: "github.delete_repo", StepType: pdp.DefaultStepType, Status: pdp.StatusPendingReview, CreatedAt: at.Add(time.Hour)}
	if _, _, err := db.InsertActionAudited(ctx, a, store.AuditEvent{}); err != nil {
		t.Fatal(err)
	}
	if got := entries(db, approvalStatuses); len(got) != len(wantEntries)+1 {
		t.Errorf("the index after an insert: %q", got)
	}
}
