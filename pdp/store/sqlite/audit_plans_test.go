package sqlite_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/gatehouse-pdp/gatehouse/pdp/store/sqlite"
)

// TestAuditLogPlans pins the plan of every query on audit_log since it
// became a rowid table with a unique index on (tenant_id, seq) (migration
// 0011): each reads one tenant's entries by an index, never the whole
// table, and what reads in chain order (the tip, a page, the export, the
// verifier's ranges, pruning) does so along audit_log_seq or along an
// index that ends with seq (an event's entries), without sorting. A window
// is chosen from the time index alone, as before; the export of a window
// sorts, as it did on the clustered table.
func TestAuditLogPlans(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "gatehouse.db"))
	want := map[string][]string{
		"tip":               {"SEARCH audit_log USING INDEX audit_log_seq (tenant_id=?)"},
		"top":               {"SEARCH audit_log USING COVERING INDEX audit_log_seq (tenant_id=?)"},
		"list plain count":  {"SEARCH audit_log USING COVERING INDEX audit_log_ts (tenant_id=?)"},
		"list plain page":   {"SEARCH audit_log USING INDEX audit_log_seq (tenant_id=?)"},
		"export plain":      {"SEARCH audit_log USING INDEX audit_log_seq (tenant_id=?)"},
		"list newest count": {"SEARCH audit_log USING COVERING INDEX audit_log_ts (tenant_id=?)"},
		"list newest page":  {"SEARCH audit_log USING INDEX audit_log_seq (tenant_id=?)"},
		"export newest":     {"SEARCH audit_log USING INDEX audit_log_seq (tenant_id=?)"},
		"list event count":  {"SEARCH audit_log USING COVERING INDEX audit_log_event (tenant_id=? AND event=?)"},
		"list event page":   {"SEARCH audit_log USING INDEX audit_log_event (tenant_id=? AND event=?)"},
		"export event":      {"SEARCH audit_log USING INDEX audit_log_event (tenant_id=? AND event=?)"},
		"list events count": {"SEARCH audit_log USING COVERING INDEX audit_log_event (tenant_id=? AND event=?)"},
		"list events page":  {"SEARCH audit_log USING INDEX audit_log_event (tenant_id=? AND event=?)", "USE TEMP B-TREE FOR ORDER BY"},
		"export events":     {"SEARCH audit_log USING INDEX audit_log_seq (tenant_id=?)"},
		"list window count": {"SEARCH audit_log USING COVERING INDEX audit_log_ts (tenant_id=? AND ts>? AND ts<?)"},
		"list window page":  {"SEARCH audit_log USING INDEX audit_log_seq (tenant_id=? AND seq=?)", "LIST SUBQUERY 1", "SEARCH audit_log USING COVERING INDEX audit_log_ts (tenant_id=? AND ts>? AND ts<?)", "USE TEMP B-TREE FOR ORDER BY"},
		"export window":     {"SEARCH audit_log USING INDEX audit_log_ts (tenant_id=? AND ts>? AND ts<?)", "USE TEMP B-TREE FOR ORDER BY"},
		"verify range":      {"SEARCH audit_log USING INDEX audit_log_seq (tenant_id=? AND seq>? AND seq<?)"},
		"vouched":           {"USE TEMP B-TREE FOR count(DISTINCT)", "SEARCH l USING INDEX audit_log_ts (tenant_id=?)"},
		"orphans":           {"SEARCH l USING INDEX audit_log_ts (tenant_id=?)", "CORRELATED SCALAR SUBQUERY 1", "SEARCH a USING INDEX sqlite_autoindex_actions_1 (id=?)"},
		"prune first":       {"SEARCH audit_log USING COVERING INDEX audit_log_ts (tenant_id=? AND ts>?)"},
		"checkpoint":        {"SEARCH audit_checkpoints USING INDEX sqlite_autoindex_audit_checkpoints_1 (tenant_id=?)"},
		"prune":             {"SEARCH audit_log USING COVERING INDEX audit_log_seq (tenant_id=? AND seq<?)"},
		"agent violations":  {"SEARCH a USING INDEX actions_agent_violations (tenant_id=? AND agent_id=? AND created_at>? AND created_at<?)", "SEARCH l USING INDEX audit_log_seq (tenant_id=? AND seq=?) LEFT-JOIN"},
	}
	seen := map[string]bool{}
	for _, q := range sqlite.AuditLogQueries() {
		seen[q.Name] = true
		got, err := db.QueryPlan(t.Context(), q.SQL, q.Args...)
		if err != nil {
			t.Fatalf("%s: %v", q.Name, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want[q.Name]) {
			t.Errorf("%s: %s\nplan %q\nwant %q", q.Name, q.SQL, got, want[q.Name])
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("no query %q", name)
		}
	}
}

// TestActionReadPlans pins the plans of the reads that used the indexes
// migration 0013 dropped: ListActions reads the hourly rollups by key and
// its page as a range of actions_tenant_created (the status tested on the
// index entry); the dashboard's partial hours are covered by
// actions_tenant_created and its partial days read actions_agent_violations
// agent by agent. None reads a tenant's actions beyond the hours or days
// asked for.
func TestActionReadPlans(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "gatehouse.db"))
	want := map[string][]string{
		"list actions hours":        {"SEARCH action_counts_hourly USING PRIMARY KEY (tenant_id=?)"},
		"list actions hours status": {"SEARCH action_counts_hourly USING PRIMARY KEY (tenant_id=?)"},
		"list actions page":         {"SEARCH actions USING INDEX actions_tenant_created (tenant_id=? AND created_at>? AND created_at<?)"},
		"list actions page status":  {"SEARCH actions USING INDEX actions_tenant_created (tenant_id=? AND created_at>? AND created_at<?)"},
		"dashboard edge statuses":   {"SEARCH actions USING COVERING INDEX actions_tenant_created (tenant_id=? AND created_at>? AND created_at<?)", "USE TEMP B-TREE FOR GROUP BY"},
		"dashboard edge violations": {"SEARCH actions USING INDEX actions_agent_violations (tenant_id=? AND agent_id=? AND created_at>? AND created_at<?)", "LIST SUBQUERY 1",
			"SEARCH agent_violations_daily USING PRIMARY KEY (tenant_id=? AND day>? AND day<?)", "USE TEMP B-TREE FOR GROUP BY"},
	}
	seen := map[string]bool{}
	for _, q := range sqlite.ActionReadQueries() {
		got, err := db.QueryPlan(t.Context(), q.SQL, q.Args...)
		if err != nil {
			t.Fatalf("%s: %v", q.Name, err)
		}
		seen[q.Name] = true
		if fmt.Sprint(got) != fmt.Sprint(want[q.Name]) {
			t.Errorf("%s: %s\nplan %q\nwant %q", q.Name, q.SQL, got, want[q.Name])
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("no query %q", name)
		}
	}
}
