package sqlite

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// withSchemaVersion stops Open's migrations after version v: the store
// then writes to the schema an earlier release left.
func withSchemaVersion(v int) Option {
	return func(o *options) { o.schemaVersion = v }
}

// dumpRows returns every row of query, each as its columns quote()d
// (type and bytes exact), in the order query gives.
func dumpRows(t testing.TB, db *sql.DB, query string) []string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// The rows migration 0011 must keep, in a fixed order, every column
// quote()d, and the rowid of each entry beside it.
const (
	sqlDumpAuditLog = `SELECT quote(tenant_id) || ',' || quote(seq) || ',' || quote(ts) || ',' || quote(event) || ',' || quote(metadata) || ',' ||
    quote(action_id) || ',' || quote(prev_hash) || ',' || quote(entry_hash) || ',' || quote(evaluation) FROM audit_log ORDER BY tenant_id, seq`
	sqlDumpActions = `SELECT quote(id) || ',' || quote(tenant_id) || ',' || quote(status) || ',' || quote(audit_seq) || ',' || quote(decision) || ',' ||
    quote(approver_id) || ',' || quote(created_at) FROM actions ORDER BY tenant_id, id`
	sqlDumpHeads = `SELECT quote(tenant_id) || ',' || quote(seq) || ',' || quote(entry_hash) FROM audit_heads ORDER BY tenant_id`
	sqlDumpVotes = `SELECT quote(tenant_id) || ',' || quote(action_id) || ',' || quote(approver_id) || ',' || quote(decision) FROM approval_votes ORDER BY 1`
)

// TestMigrationAuditLogRowid opens a store at schema 0010 (audit_log
// WITHOUT ROWID, clustered on (tenant_id, seq)) holding, in three tenants,
// audited actions of every status, decisions, enterprise votes and
// appended entries, and reopens it: migration 0011 rebuilds audit_log as
// a rowid table. Every row of audit_log (each column's type and bytes),
// actions, audit_heads and approval_votes is the same after; rowids
// follow each chain; every chain verifies with the same entry count;
// every action's trail reads the same; the database passes
// integrity_check and foreign_key_check. After it, new actions append to
// the same chains, the unique index refuses a second entry at a sequence
// number, the foreign key still refuses an unknown tenant, and a tampered
// entry, old or new, is found.
func TestMigrationAuditLogRowid(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := Open(ctx, path, withSchemaVersion(10))
	if err != nil {
		t.Fatal(err)
	}
	tenants := []string{"acme", "globex", "initech"}
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	var ids []string
	insert := func(db *DB, tenant, id string, st pdp.Status, i int) {
		t.Helper()
		a := store.ActionRecord{ID: id, TenantID: tenant, Action: "github.delete_repo", StepType: pdp.DefaultStepType, AgentID: "bot",
			Status: st, Params: json.RawMessage(`{"repo":"x"}`), CreatedAt: at.Add(time.Duration(i) * time.Minute)}
		if st == pdp.StatusBlocked {
			a.TriggeredPolicy, a.Severity, a.ViolationCount = "no-deletes", "high", 1
		}
		if _, _, err := db.InsertActionAudited(ctx, a, store.AuditEvent{}); err != nil {
			t.Fatal(err)
		}
	}
	statuses := []pdp.Status{pdp.StatusAllowed, pdp.StatusPendingReview, pdp.StatusBlocked, pdp.StatusPendingReview, pdp.StatusPendingReview}
	for _, tn := range tenants {
		if _, err := db.CreateTenant(ctx, store.Tenant{ID: tn, Tier: store.TierEnterprise, Mode: pdp.ModeEnforcement}); err != nil {
			t.Fatal(err)
		}
	}
	// Interleaved across tenants, as a server with several records them.
	for i := range 12 {
		for _, tn := range tenants {
			id := fmt.Sprintf("act_%s_%02d", tn, i)
			insert(db, tn, id, statuses[i%len(statuses)], i)
			ids = append(ids, tn+"/"+id)
		}
	}
	for _, tn := range tenants {
		if _, _, err := db.DecideAction(ctx, store.DecideRequest{TenantID: tn, ActionID: fmt.Sprintf("act_%s_01", tn), Status: pdp.StatusApproved, ApproverID: "alice"}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := db.DecideAction(ctx, store.DecideRequest{TenantID: tn, ActionID: fmt.Sprintf("act_%s_03", tn), Status: pdp.StatusDenied, ApproverID: "bob"}); err != nil {
			t.Fatal(err)
		}
		for _, approver := range []string{"carol", "dave"} {
			if _, err := db.RecordApprovalVote(ctx, store.VoteRequest{MinApprovals: 2, Vote: store.ApprovalVote{TenantID: tn,
				ActionID: fmt.Sprintf("act_%s_04", tn), ApproverID: approver, Role: "admin", Decision: pdp.StatusApproved}}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.AppendAudit(ctx, tn, store.AuditEvent{Event: store.EventActionExecuted,
			Metadata: json.RawMessage(fmt.Sprintf(`{"action_id":"act_%s_00","note":"ran"}`, tn))}); err != nil {
			t.Fatal(err)
		}
	}
	trails := func(db *DB) map[string]string {
		t.Helper()
		out := map[string]string{}
		for _, key := range ids {
			tn, id, _ := strings.Cut(key, "/")
			es, err := db.AuditTrail(ctx, tn, id)
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, e := range es {
				s = append(s, fmt.Sprintf("%d:%s:%s", e.SequenceNumber, e.Event, e.EntryHash))
			}
			out[key] = strings.Join(s, ",")
		}
		return out
	}
	verify := func(db *DB) map[string]int {
		t.Helper()
		out := map[string]int{}
		for _, tn := range tenants {
			v, err := db.VerifyAudit(ctx, tn)
			if err != nil || !v.Valid {
				t.Fatalf("verification of %s: %+v, %v", tn, v, err)
			}
			out[tn] = v.Entries
		}
		return out
	}
	dump := func(db *DB) [][]string {
		t.Helper()
		var out [][]string
		for _, q := range []string{sqlDumpAuditLog, sqlDumpActions, sqlDumpHeads, sqlDumpVotes} {
			out = append(out, dumpRows(t, db.r, q))
		}
		return out
	}
	tableSQL := func(db *DB) string {
		t.Helper()
		var s string
		if err := db.r.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'audit_log'`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s := tableSQL(db); !strings.Contains(s, "WITHOUT ROWID") {
		t.Fatalf("the store before the migration is not 0010's: %s", s)
	}
	wantTrails, wantVerify, wantRows := trails(db), verify(db), dump(db)
	if n := len(wantRows[0]); n != 3*(12+2+3+1) {
		t.Fatalf("%d entries before the migration", n)
	}
	if n := len(wantRows[3]); n != 6 {
		t.Fatalf("%d votes before the migration", n)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if s := tableSQL(db); strings.Contains(s, "WITHOUT ROWID") {
		t.Errorf("audit_log after the migration: %s", s)
	}
	got := dump(db)
	for i, name := range []string{"audit_log", "actions", "audit_heads", "approval_votes"} {
		if !slices.Equal(got[i], wantRows[i]) {
			t.Errorf("%s after the migration:\n%s\nbefore:\n%s", name, strings.Join(got[i], "\n"), strings.Join(wantRows[i], "\n"))
		}
	}
	var misplaced int
	if err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT rowid, row_number() OVER (ORDER BY tenant_id, seq) AS n FROM audit_log) WHERE rowid != n`).Scan(&misplaced); err != nil {
		t.Fatal(err)
	}
	if misplaced != 0 {
		t.Errorf("%d entries' rowids out of (tenant_id, seq) order", misplaced)
	}
	if ok := dumpRows(t, db.r, `PRAGMA integrity_check`); !slices.Equal(ok, []string{"ok"}) {
		t.Errorf("integrity_check: %v", ok)
	}
	if bad := dumpRows(t, db.r, `SELECT quote("table") || ',' || quote(rowid) FROM pragma_foreign_key_check`); len(bad) != 0 {
		t.Errorf("foreign_key_check: %v", bad)
	}
	if got := trails(db); !maps.Equal(got, wantTrails) {
		t.Errorf("trails after the migration %v, before %v", got, wantTrails)
	}
	if got := verify(db); !maps.Equal(got, wantVerify) {
		t.Errorf("verified entries after the migration %v, before %v", got, wantVerify)
	}

	// New entries continue the chains.
	for i, tn := range tenants {
		insert(db, tn, fmt.Sprintf("act_%s_new", tn), pdp.StatusBlocked, 100+i)
		if _, err := db.AppendAudit(ctx, tn, store.AuditEvent{Event: store.EventActionExecuted,
			Metadata: json.RawMessage(fmt.Sprintf(`{"action_id":"act_%s_new"}`, tn))}); err != nil {
			t.Fatal(err)
		}
	}
	for tn, n := range verify(db) {
		if n != wantVerify[tn]+2 {
			t.Errorf("%s: %d entries verified after two more, want %d", tn, n, wantVerify[tn]+2)
		}
	}
	if es, err := db.AuditTrail(ctx, "globex", "act_globex_new"); err != nil || len(es) != 2 {
		t.Errorf("trail of a new action: %d entries, %v", len(es), err)
	}

	tamper := func(q string, args ...any) error {
		t.Helper()
		return db.ExecRaw(ctx, q, args...)
	}
	if err := tamper(`INSERT INTO audit_log (tenant_id, seq, ts, event, metadata, prev_hash, entry_hash) SELECT tenant_id, seq, ts, event, metadata, prev_hash, entry_hash FROM audit_log WHERE tenant_id = 'acme' AND seq = 3`); err == nil || !strings.Contains(err.Error(), "UNIQUE") {
		t.Errorf("a second entry at acme's seq 3: %v", err)
	}
	if err := tamper(`INSERT INTO audit_log (tenant_id, seq, ts, event, metadata, prev_hash, entry_hash) VALUES ('nobody', 1, 0, 'x', '{}', 'p', 'h')`); err == nil || !strings.Contains(err.Error(), "FOREIGN KEY") {
		t.Errorf("an entry of no tenant: %v", err)
	}
	for _, c := range []struct{ tenant, where string }{
		{"globex", `seq = 5`}, // written before the migration
		{"globex", `seq = (SELECT max(seq) - 1 FROM audit_log WHERE tenant_id = 'globex')`}, // after it
	} {
		var seq int64
		var meta string
		if err := db.r.QueryRowContext(ctx, `SELECT seq, metadata FROM audit_log WHERE tenant_id = ? AND `+c.where, c.tenant).Scan(&seq, &meta); err != nil {
			t.Fatal(err)
		}
		edited := strings.Replace(meta, `"`, `"x`, 1)
		if err := tamper(`UPDATE audit_log SET metadata = ? WHERE tenant_id = ? AND seq = ?`, edited, c.tenant, seq); err != nil {
			t.Fatal(err)
		}
		if v, err := db.VerifyAudit(ctx, c.tenant); err != nil || v.Valid || v.FirstBadSequence == nil || *v.FirstBadSequence != seq {
			t.Errorf("verification after editing %s's entry %d: %+v, %v", c.tenant, seq, v, err)
		}
		if err := tamper(`UPDATE audit_log SET metadata = ? WHERE tenant_id = ? AND seq = ?`, meta, c.tenant, seq); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := db.VerifyAudit(ctx, "globex"); err != nil || !v.Valid {
		t.Errorf("verification after undoing the edits: %+v, %v", v, err)
	}
}

// BenchmarkMigrationAuditLogRowid times migration 0011 on a store of
// GATEHOUSE_BENCH_ENTRIES (default 200,000) audited actions, each with its
// evaluation entry, over 10 tenants, written at schema 0010: each round
// copies that store and opens the copy, which rebuilds audit_log.
//
//	go test ./pdp/store/sqlite -run '^$' -bench MigrationAuditLogRowid -benchtime 3x
func BenchmarkMigrationAuditLogRowid(b *testing.B) {
	ctx := b.Context()
	n := 200_000
	if s := os.Getenv("GATEHOUSE_BENCH_ENTRIES"); s != "" {
		if _, err := fmt.Sscan(s, &n); err != nil {
			b.Fatal(err)
		}
	}
	// b.Loop runs this function once: the store is built once.
	src := filepath.Join(b.TempDir(), "0010.db")
	buildMigrationStore(b, src, n)
	i := 0
	for b.Loop() {
		i++
		b.StopTimer()
		dst := filepath.Join(filepath.Dir(src), fmt.Sprintf("copy%d.db", i))
		copyFile(b, src, dst)
		if _, err := os.Stat(src + "-wal"); err == nil {
			copyFile(b, src+"-wal", dst+"-wal")
		}
		b.StartTimer()
		db, err := Open(ctx, dst)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
		_ = os.Remove(dst)
		_ = os.Remove(dst + "-wal")
		b.StartTimer()
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(i), "s/migration")
}

// buildMigrationStore writes n audited actions over 10 tenants to a new
// store at src, at schema 0010.
func buildMigrationStore(b *testing.B, src string, n int) {
	ctx := b.Context()
	db, err := Open(ctx, src, withSchemaVersion(10))
	if err != nil {
		b.Fatal(err)
	}
	const tenants = 10
	for i := range tenants {
		if _, err := db.CreateTenant(ctx, store.Tenant{ID: fmt.Sprintf("t%02d", i), Tier: store.TierEnterprise, Mode: pdp.ModeEnforcement}); err != nil {
			b.Fatal(err)
		}
	}
	at := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	start := time.Now()
	err = func() error {
		errs := make(chan error, 64)
		sem := make(chan struct{}, 64)
		for i := range n {
			sem <- struct{}{}
			go func() {
				defer func() { <-sem }()
				a := store.ActionRecord{ID: fmt.Sprintf("act_%012x%012x", i, i), TenantID: fmt.Sprintf("t%02d", i%tenants), Action: "http.get",
					StepType: pdp.DefaultStepType, AgentID: "bot", Status: pdp.StatusAllowed, Params: json.RawMessage(`{"url":"https://example.com"}`),
					CreatedAt: at.Add(time.Duration(i) * time.Second)}
				if _, _, err := db.InsertActionAudited(ctx, a, store.AuditEvent{}); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}()
		}
		for range cap(sem) {
			sem <- struct{}{}
		}
		select {
		case err := <-errs:
			return err
		default:
			return nil
		}
	}()
	if err != nil {
		b.Fatal(err)
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	b.Logf("built %d entries at schema 0010 in %v", n, time.Since(start).Round(time.Millisecond))
}

func copyFile(b *testing.B, src, dst string) {
	b.Helper()
	in, err := os.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		b.Fatal(err)
	}
	if err := out.Close(); err != nil {
		b.Fatal(err)
	}
}
