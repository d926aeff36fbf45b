package sqlite_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/sqlite"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/storetest"
)

func TestGovernance(t *testing.T) {
	storetest.RunGovernance(t, func(t *testing.T) store.GovernanceStore {
		return open(t, filepath.Join(t.TempDir(), "gatehouse.db"))
	}, tamperer{})
}

// TestGovernanceSegmented reruns the suite with every chain verified in
// segments of 2 entries over up to 4 connections, so tamper at and between
// segment boundaries must be found as a single pass finds it.
func TestGovernanceSegmented(t *testing.T) {
	storetest.RunGovernance(t, func(t *testing.T) store.GovernanceStore {
		return open(t, filepath.Join(t.TempDir(), "gatehouse.db"), sqlite.WithVerifyParallelism(4, 2))
	}, tamperer{})
}

func TestGovernanceReopen(t *testing.T) {
	storetest.RunGovernanceReopen(t, func(t *testing.T) func(t *testing.T) store.GovernanceStore {
		path := filepath.Join(t.TempDir(), "gatehouse.db")
		return func(t *testing.T) store.GovernanceStore {
			db, err := sqlite.Open(t.Context(), path)
			if err != nil {
				t.Fatalf("Open(%s): %v", path, err)
			}
			return db
		}
	})
}

// tamperer edits audit_log rows directly, as someone holding the file could.
type tamperer struct{}

func (tamperer) db(t *testing.T, s store.GovernanceStore) *sqlite.DB {
	t.Helper()
	db, ok := s.(*sqlite.DB)
	if !ok {
		t.Fatalf("tamper: store is a %T, not a *sqlite.DB", s)
	}
	return db
}

func (tp tamperer) SetAuditField(t *testing.T, s store.GovernanceStore, tenantID string, seq int64, field, value string) {
	t.Helper()
	col := map[string]string{"event": "event", "metadata": "metadata", "prev_hash": "prev_hash", "entry_hash": "entry_hash"}[field]
	if col == "" {
		t.Fatalf("tamper: unknown field %q", field)
	}
	if err := tp.db(t, s).ExecRaw(t.Context(), fmt.Sprintf(`UPDATE audit_log SET %s = ? WHERE tenant_id = ? AND seq = ?`, col), value, tenantID, seq); err != nil {
		t.Fatalf("tamper: %v", err)
	}
}

func (tp tamperer) DeleteAuditEntry(t *testing.T, s store.GovernanceStore, tenantID string, seq int64) {
	t.Helper()
	if err := tp.db(t, s).ExecRaw(t.Context(), `DELETE FROM audit_log WHERE tenant_id = ? AND seq = ?`, tenantID, seq); err != nil {
		t.Fatalf("tamper: %v", err)
	}
}

func (tp tamperer) InsertAuditEntry(t *testing.T, s store.GovernanceStore, e store.AuditEntry) {
	t.Helper()
	if err := tp.db(t, s).ExecRaw(t.Context(), `INSERT INTO audit_log (tenant_id, seq, ts, event, metadata, prev_hash, entry_hash) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		e.TenantID, e.SequenceNumber, e.Timestamp.UnixMicro(), e.Event, string(e.Metadata), e.PrevHash, e.EntryHash); err != nil {
		t.Fatalf("tamper: %v", err)
	}
}

func (tp tamperer) Exec(t *testing.T, s store.GovernanceStore, query string, args ...any) {
	t.Helper()
	if err := tp.db(t, s).ExecRaw(t.Context(), query, args...); err != nil {
		t.Fatalf("tamper: %v", err)
	}
}

// TestVerifyActionPlans pins the join order of VerifyAudit's fast action
// passes: each starts from the side with few rows (audited undecided
// actions along actions_tenant_created, decision entries by
// audit_log_event) and looks the other up by key. The other order walks
// every entry of the chain, which took seconds per 1,000,000 entries.
func TestVerifyActionPlans(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "gatehouse.db"))
	for i, want := range [][]string{
		{"SEARCH a USING INDEX actions_tenant_created (tenant_id=?)", "SEARCH l USING INDEX audit_log_seq (tenant_id=? AND seq=?)"},
		{"SEARCH l USING INDEX audit_log_event (tenant_id=? AND event=?)", "SEARCH a USING INDEX sqlite_autoindex_actions_1 (id=?)"},
	} {
		got, err := db.QueryPlan(t.Context(), sqlite.FastActionQueries[i], "acme")
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("query %d plan:\n%q\nwant\n%q", i, got, want)
		}
	}
	// The undecided pass tests status and audit_seq > 0 on the index entry
	// (actions_tenant_created ends with them, migration 0013): the table
	// seek is deferred until a row passes, so a decided or bulk-loaded
	// action's row is never read.
	ops, err := db.Explain(t.Context(), sqlite.FastActionQueries[0], "acme")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(ops, func(op string) bool { return strings.Contains(op, " DeferredSeek ") }) {
		t.Errorf("the undecided pass seeks the table before its audit_seq filter:\n%s", strings.Join(ops, "\n"))
	}
}

// TestRollupCheckPlans: VerifyAudit's comparison of each rollup with the
// actions reads the tenant's rollup rows by primary key and its actions
// once, along the index that holds what the rollup groups by (status and
// created_at; the violations' partial index), counting them in one sort
// and grouping the counts with the rows in another: no join, no read of
// a whole table. (The violations' index is reported without COVERING,
// but every column is read from it: its DeferredSeek never runs.)
func TestRollupCheckPlans(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "gatehouse.db"))
	want := map[string][]string{
		"action_counts_hourly":    {"SEARCH action_counts_hourly USING PRIMARY KEY (tenant_id=?)", "SEARCH actions USING COVERING INDEX actions_tenant_created (tenant_id=?)"},
		"policy_violations_daily": {"SEARCH policy_violations_daily USING PRIMARY KEY (tenant_id=?)", "SEARCH actions USING INDEX actions_agent_violations (tenant_id=?)"},
		"agent_violations_daily":  {"SEARCH agent_violations_daily USING PRIMARY KEY (tenant_id=?)", "SEARCH actions USING INDEX actions_agent_violations (tenant_id=?)"},
	}
	for _, r := range store.Rollups {
		got, err := db.QueryPlan(t.Context(), r.MismatchQuery(sqlite.RollupDialect), "acme")
		if err != nil {
			t.Fatal(err)
		}
		w := []string{"CO-ROUTINE u", "COMPOUND QUERY", "LEFT-MOST SUBQUERY", want[r.Table][0], "UNION ALL", want[r.Table][1], "USE TEMP B-TREE FOR GROUP BY", "SCAN u", "USE TEMP B-TREE FOR GROUP BY"}
		if fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("%s plan:\n%q\nwant\n%q", r.Table, got, w)
		}
	}
}

// TestApprovalPlans: ListApprovals counts on a covering index and reads
// its page from the partial index actions_approvals (held actions only,
// migration 0009), with one status in audit order without sorting. Since
// the predicate is written as equalities (0012) the count covers itself
// from actions_approvals too (it used actions_tenant_status, which also
// holds every allowed and blocked action).
func TestApprovalPlans(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "gatehouse.db"))
	for _, c := range []struct {
		status      pdp.Status
		count, page []string
	}{
		{"", []string{"SEARCH actions USING COVERING INDEX actions_approvals (tenant_id=? AND status=?)"},
			[]string{"SEARCH actions USING INDEX actions_approvals (tenant_id=? AND status=?)", "USE TEMP B-TREE FOR ORDER BY"}},
		{pdp.StatusPendingReview, []string{"SEARCH actions USING COVERING INDEX actions_approvals (tenant_id=? AND status=?)"},
			[]string{"SEARCH actions USING INDEX actions_approvals (tenant_id=? AND status=?)"}},
	} {
		count, page := sqlite.ApprovalQueries(c.status)
		args := []any{"acme"}
		if c.status != "" {
			args = append(args, c.status)
		}
		for _, q := range []struct {
			sql  string
			args []any
			want []string
		}{{count, args, c.count}, {page, append(args, 10, 0), c.page}} {
			got, err := db.QueryPlan(t.Context(), q.sql, q.args...)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(q.want) {
				t.Errorf("status %q: %s\nplan %q\nwant %q", c.status, q.sql, got, q.want)
			}
		}
	}
}

// TestEvaluationEntryPlans: AuditTrail seeks audit_log_action for the
// entries it holds and reads the evaluation entry it leaves out (migration
// 0010) by the action's ID and then the entry by (tenant_id, seq) — no pass over
// the chain, no sort (an action has one). The verifier's exhaustive pass reads the index part in its
// order and sorts only the evaluation entries.
func TestEvaluationEntryPlans(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "gatehouse.db"))
	for _, c := range []struct {
		name, sql string
		args      []any
		want      []string
	}{
		{"trail", sqlite.AuditTrailQuery, []any{"acme", "act_1"}, []string{
			"MERGE (UNION ALL)", "LEFT", "SEARCH audit_log USING INDEX audit_log_action (tenant_id=? AND action_id=?)",
			"RIGHT", "SEARCH a USING INDEX sqlite_autoindex_actions_1 (id=?)", "SEARCH l USING INDEX audit_log_seq (tenant_id=? AND seq=?)"}},
		{"exhaustive", sqlite.CheckActionsQuery, []any{"acme"}, []string{
			"MERGE (UNION ALL)", "LEFT", "SEARCH l USING INDEX audit_log_action (tenant_id=? AND action_id>?)", "SEARCH a USING INDEX sqlite_autoindex_actions_1 (id=?)",
			"RIGHT", "SEARCH l USING INDEX audit_log_seq (tenant_id=?)", "SEARCH a USING INDEX sqlite_autoindex_actions_1 (id=?)", "USE TEMP B-TREE FOR ORDER BY"}},
	} {
		got, err := db.QueryPlan(t.Context(), c.sql, c.args...)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s plan:\n%q\nwant\n%q", c.name, got, c.want)
		}
	}
}
