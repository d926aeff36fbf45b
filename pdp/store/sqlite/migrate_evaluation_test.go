package sqlite

import (
	"database/sql"
	"encoding/json"
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// TestMigrationEvaluationEntries opens a database as migration 0009 left
// it (no evaluation column, every entry naming an action in
// audit_log_action) holding audited actions, decisions and an appended
// entry about an action: migration 0010 keeps those entries in the index,
// and actions recorded after it have their evaluation entries left out.
// Trails read the same, old and new; the chain verifies; an edited
// action is found on either side of the migration, also when its
// audit_seq was edited too (the exhaustive pass scans for evaluation
// entries instead of following audit_seq).
func TestMigrationEvaluationEntries(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateTenant(ctx, store.Tenant{ID: "acme", Tier: store.TierEnterprise, Mode: pdp.ModeEnforcement}); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	insert := func(db *DB, id string, st pdp.Status, i int) {
		t.Helper()
		a := store.ActionRecord{ID: id, TenantID: "acme", Action: "github.delete_repo", StepType: pdp.DefaultStepType,
			Status: st, Params: json.RawMessage(`{"repo":"x"}`), CreatedAt: at.Add(time.Duration(i) * time.Minute)}
		if _, _, err := db.InsertActionAudited(ctx, a, store.AuditEvent{}); err != nil {
			t.Fatal(err)
		}
	}
	insert(db, "old_allowed", pdp.StatusAllowed, 0)
	insert(db, "old_held", pdp.StatusPendingReview, 1)
	insert(db, "old_blocked", pdp.StatusBlocked, 2)
	if _, _, err := db.DecideAction(ctx, store.DecideRequest{TenantID: "acme", ActionID: "old_held", Status: pdp.StatusApproved, ApproverID: "alice"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AppendAudit(ctx, "acme", store.AuditEvent{Event: "action_executed", Metadata: json.RawMessage(`{"action_id":"old_allowed","note":"ran"}`)}); err != nil {
		t.Fatal(err)
	}
	trails := func(db *DB, ids ...string) map[string]string {
		t.Helper()
		out := map[string]string{}
		for _, id := range ids {
			es, err := db.AuditTrail(ctx, "acme", id)
			if err != nil {
				t.Fatal(err)
			}
			var seqs []string
			for _, e := range es {
				seqs = append(seqs, e.Event+"@"+e.EntryHash[:8])
			}
			out[id] = strings.Join(seqs, ",")
		}
		return out
	}
	old := []string{"old_allowed", "old_held", "old_blocked"}
	want := trails(db, old...)
	if len(strings.Split(want["old_allowed"], ",")) != 2 || len(strings.Split(want["old_held"], ",")) != 2 {
		t.Fatalf("trails before: %v", want)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// The schema as migration 0009 left it.
	w, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`DROP INDEX audit_log_action`,
		`ALTER TABLE audit_log DROP COLUMN evaluation`,
		`CREATE INDEX audit_log_action ON audit_log (tenant_id, action_id) WHERE action_id IS NOT NULL`,
		`DELETE FROM schema_migrations WHERE version = 10`,
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
	var def string
	if err := db.r.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'audit_log_action'`).Scan(&def); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(def, "evaluation = 0") {
		t.Errorf("audit_log_action after the migration: %s", def)
	}
	indexed := func(id string) int {
		t.Helper()
		var n int
		if err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM audit_log INDEXED BY audit_log_action
WHERE tenant_id = 'acme' AND action_id = ? AND action_id IS NOT NULL AND evaluation = 0`, id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := indexed("old_blocked"); n != 1 {
		t.Errorf("an evaluation entry written before the migration: %d index entries, want 1", n)
	}
	if got := trails(db, old...); !maps.Equal(got, want) {
		t.Errorf("trails after the migration %v, before %v", got, want)
	}

	insert(db, "new_allowed", pdp.StatusAllowed, 3)
	insert(db, "new_held", pdp.StatusPendingReview, 4)
	insert(db, "new_blocked", pdp.StatusBlocked, 5)
	if _, _, err := db.DecideAction(ctx, store.DecideRequest{TenantID: "acme", ActionID: "new_held", Status: pdp.StatusDenied, ApproverID: "bob"}); err != nil {
		t.Fatal(err)
	}
	if n := indexed("new_blocked"); n != 0 {
		t.Errorf("an evaluation entry written after the migration: %d index entries, want 0", n)
	}
	newTrails := trails(db, "new_allowed", "new_held", "new_blocked")
	for id, n := range map[string]int{"new_allowed": 1, "new_held": 2, "new_blocked": 1} {
		if got := strings.Split(newTrails[id], ","); len(got) != n || !strings.HasPrefix(got[0], "action_") {
			t.Errorf("trail of %s: %q, want %d entries from its evaluation", id, newTrails[id], n)
		}
	}
	if v, err := db.VerifyAudit(ctx, "acme"); err != nil || !v.Valid || v.Entries != 9 {
		t.Fatalf("verification after the migration: %+v, %v", v, err)
	}

	tamper := func(q string) {
		t.Helper()
		db.writes.Add(1)
		if _, err := db.w.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ id, edit, undo string }{
		{"old_blocked", `UPDATE actions SET status = 'allowed' WHERE id = 'old_blocked'`, `UPDATE actions SET status = 'blocked' WHERE id = 'old_blocked'`},
		{"new_blocked", `UPDATE actions SET status = 'allowed' WHERE id = 'new_blocked'`, `UPDATE actions SET status = 'blocked' WHERE id = 'new_blocked'`},
		// Out of the fast pass's reach: found by the exhaustive one.
		{"new_blocked", `UPDATE actions SET status = 'allowed', audit_seq = NULL WHERE id = 'new_blocked'`, ""},
	} {
		tamper(c.edit)
		if v, err := db.VerifyAudit(ctx, "acme"); err != nil || v.Valid || !strings.Contains(v.Reason, c.id) {
			t.Errorf("verification after %s: %+v, %v", c.edit, v, err)
		}
		if c.undo != "" {
			tamper(c.undo)
		}
	}
}
