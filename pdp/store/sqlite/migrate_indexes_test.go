package sqlite

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/storetest"
)

// TestMigrationFewerActionIndexes opens a store at schema 0012 holding
// audited, decided and bulk-loaded actions over several days, with and
// without violations and agents; migration 0013 drops
// actions_tenant_status and actions_violations and widens
// actions_tenant_created and actions_agent_violations: every listing,
// page, dashboard and agent's violations reads the same as before, the
// verification too, the database is intact, and what is written after
// lands in the widened indexes.
func TestMigrationFewerActionIndexes(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := Open(ctx, path, withSchemaVersion(12))
	if err != nil {
		t.Fatal(err)
	}
	at := seedApprovalActions(t, db, pdp.StatusBlocked)
	m := storetest.ActionMix{TenantID: "acme", N: 400, Since: at.Add(-50 * time.Hour), Until: at.Add(20 * time.Hour), Agents: 5, Policies: 3, Seed: 5, IDPrefix: "mix_"}
	i := 0
	var bulk []store.ActionRecord
	for a := range storetest.GenerateActions(m) {
		switch i % 3 {
		case 0:
			_, _, err = db.InsertActionAudited(ctx, a, store.AuditEvent{})
		case 1:
			_, err = db.InsertAction(ctx, a)
		default:
			bulk = append(bulk, a)
		}
		if err != nil {
			t.Fatal(err)
		}
		i++
	}
	if _, err := db.BulkInsertActions(ctx, slices.Values(bulk)); err != nil {
		t.Fatal(err)
	}
	before := readActions(t, db, at)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	indexes := dumpRows(t, db.r, `SELECT name || ': ' || sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'actions' AND sql IS NOT NULL ORDER BY name`)
	want := []string{
		"actions_agent_violations: CREATE INDEX actions_agent_violations ON actions (tenant_id, agent_id, created_at DESC, seq DESC, triggered_policy, severity)\n    WHERE violation_count > 0",
		"actions_approvals: CREATE INDEX actions_approvals ON actions (tenant_id, status, audit_seq)\n    WHERE status = 'pending_review' OR status = 'approved' OR status = 'denied'",
		"actions_tenant_created: CREATE INDEX actions_tenant_created ON actions (tenant_id, created_at DESC, seq DESC, status, audit_seq)",
	}
	if !slices.Equal(indexes, want) {
		t.Errorf("indexes on actions after the migration:\n%q\nwant\n%q", indexes, want)
	}
	if after := readActions(t, db, at); !slices.Equal(after, before) {
		for i := range max(len(after), len(before)) {
			if i >= len(after) || i >= len(before) || after[i] != before[i] {
				t.Fatalf("reads differ after the migration from line %d:\nafter  %q\nbefore %q", i, after[i:min(i+3, len(after))], before[i:min(i+3, len(before))])
			}
		}
	}
	var ok string
	if err := db.r.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Errorf("integrity_check: %q, %v", ok, err)
	}
	// Writes after the migration are read through the new indexes.
	a := store.ActionRecord{ID: "act_z", TenantID: "acme", AgentID: "agent-000", Action: "github.delete_repo", StepType: pdp.DefaultStepType,
		Status: pdp.StatusBlocked, TriggeredPolicy: "P00", Severity: pdp.SeverityCritical, ViolationCount: 1, CreatedAt: at.Add(30 * time.Minute)}
	if _, _, err := db.InsertActionAudited(ctx, a, store.AuditEvent{}); err != nil {
		t.Fatal(err)
	}
	blocked, _, err := db.ListActions(ctx, "acme", store.ActionQuery{Status: pdp.StatusBlocked})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("blocked total %d", len(blocked)); !slices.Contains(before, fmt.Sprintf("blocked total %d", len(blocked)-1)) ||
		!slices.ContainsFunc(blocked, func(b store.ActionRecord) bool { return b.ID == "act_z" }) {
		t.Errorf("blocked after an insert: %s, act_z not listed or not one more than before", got)
	}
	vs, _, err := db.AgentViolations(ctx, "acme", "agent-000", store.ViolationQuery{Since: a.CreatedAt, Until: a.CreatedAt.Add(time.Microsecond)})
	if err != nil || len(vs) != 1 || vs[0].ActionID != "act_z" {
		t.Errorf("the new violation: %+v, %v", vs, err)
	}
}

// readActions is everything the store reads of acme's actions, one line
// each: every page of ListActions for every status, dashboards over
// windows with partial hours and days, an agent's violations, the
// verification and the shadow hits.
func readActions(t *testing.T, db *DB, at time.Time) []string {
	t.Helper()
	ctx := t.Context()
	var out []string
	for _, st := range []pdp.Status{"", pdp.StatusAllowed, pdp.StatusBlocked, pdp.StatusPendingReview, pdp.StatusApproved, pdp.StatusDenied} {
		for _, q := range []store.ActionQuery{{}, {Limit: 7}, {Limit: 7, Offset: 7}, {Limit: 50, Offset: 31}, {Offset: 200}} {
			q.Status = st
			as, n, err := db.ListActions(ctx, "acme", q)
			if err != nil {
				t.Fatal(err)
			}
			if q == (store.ActionQuery{Status: st}) {
				out = append(out, fmt.Sprintf("%s total %d", st, n))
			}
			out = append(out, fmt.Sprintf("%+v: %d %v", q, n, ids(as)))
		}
	}
	for _, w := range [][2]time.Duration{{-50 * time.Hour, 20 * time.Hour}, {-26*time.Hour - 13*time.Minute, 3*time.Hour + 7*time.Minute}, {-90 * time.Minute, 40 * time.Minute}} {
		for _, b := range []store.Bucket{store.BucketDay, store.BucketHour} {
			r, err := db.Dashboard(ctx, "acme", store.DashboardQuery{Since: at.Add(w[0]), Until: at.Add(w[1]), Bucket: b})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("dashboard %v %s: %+v", w, b, r))
		}
	}
	for _, agent := range []string{"agent-000", "agent-003", ""} {
		vs, n, err := db.AgentViolations(ctx, "acme", agent, store.ViolationQuery{Limit: 20, Offset: 3, Since: at.Add(-40 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("violations of %q: %d %+v", agent, n, vs))
	}
	v, err := db.VerifyAudit(ctx, "acme")
	if err != nil || !v.Valid {
		t.Fatalf("verification: %+v, %v", v, err)
	}
	out = append(out, fmt.Sprintf("verification %+v", v))
	hits, err := db.ShadowHitsByPolicy(ctx, "acme", at.Add(-50*time.Hour), at.Add(20*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return append(out, fmt.Sprintf("shadow hits %+v", hits))
}

func ids(as []store.ActionRecord) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.ID
	}
	return out
}
