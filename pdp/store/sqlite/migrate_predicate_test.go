package sqlite

import (
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
	at := seedApprovalActions(t, db, pdp.StatusPendingReview)
	// The index's entries, read through it alone.
	entries := func(db *DB, pred string) []string {
		t.Helper()
		return dumpRows(t, db.r, `SELECT quote(id) || ',' || quote(status) || ',' || quote(audit_seq) FROM actions INDEXED BY actions_approvals WHERE tenant_id = 'acme' AND `+pred+` ORDER BY id`)
	}
	const oldPred = `status IN ('pending_review', 'approved', 'denied')`
	wantEntries, wantApprovals := entries(db, oldPred), listApprovals(t, db)
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
	if got := listApprovals(t, db); !slices.Equal(got, wantApprovals) {
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
