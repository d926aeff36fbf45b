package sqlite

import (
	"context"
	"strings"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// rollups adds up the dashboard's counts of inserted actions in Go, so a
// batch writes one upsert per bucket where the per-row triggers it
// replaces (migration 0005) wrote one per action and two more per
// violation. Updates and deletes of actions (a decision moves a count)
// are still kept by triggers: they are one row at a time anyway. Every
// code path that inserts actions adds them here and writes them in the
// same transaction.
type rollups struct {
	counts   map[countBucket]int64
	policies map[policyBucket]int64
	agents   map[agentBucket]int64
}

type countBucket struct {
	tenant string
	hour   int64
	status pdp.Status
}

type policyBucket struct {
	tenant   string
	day      int64
	policy   string
	severity pdp.Severity
}

type agentBucket struct {
	tenant, agent string
	day           int64
}

// rollupTable is one table's upsert, for any number of rows: a batch
// writes its buckets of a rollup table (or its chain heads) in as few
// statements as rollupChunks allow, each prepared once on first use
// (rawStmts). A statement for every row count up to 32 (one statement
// per table and batch) measured no better than these four.
type rollupTable struct {
	head string // up to VALUES
	cols int
	sqls map[int]string // rows → statement
}

func newRollupTable(table, cols string, n int) rollupTable {
	return newUpsertTable(table, cols, n, "ON CONFLICT DO UPDATE SET n = n + excluded.n")
}

// newUpsertTable is the statements inserting rows of n columns into
// table, with the conflict clause onConflict.
func newUpsertTable(table, cols string, n int, onConflict string) rollupTable {
	t := rollupTable{head: "INSERT INTO " + table + " (" + cols + ") VALUES ", cols: n, sqls: map[int]string{}}
	row := "(?" + strings.Repeat(", ?", n-1) + ")"
	for _, k := range rollupChunks {
		t.sqls[k] = t.head + row + strings.Repeat(", "+row, k-1) + "\n" + onConflict
	}
	return t
}

// rollupChunks are the row counts of the upserts, largest first.
var rollupChunks = []int{32, 8, 2, 1}

// The rollup tables.
var (
	countsTable   = newRollupTable("action_counts_hourly", "tenant_id, hour, status, n", 4)
	policiesTable = newRollupTable("policy_violations_daily", "tenant_id, day, policy, severity, n", 5)
	agentsTable   = newRollupTable("agent_violations_daily", "tenant_id, day, agent_id, n", 4)
)

// headsTable writes a batch's chain heads back, several tenants per
// statement (a batch's tenants are distinct keys).
var headsTable = newUpsertTable("audit_heads", "tenant_id, seq, entry_hash", 3,
	"ON CONFLICT (tenant_id) DO UPDATE SET seq = excluded.seq, entry_hash = excluded.entry_hash")

// upsert writes rows (each t.cols values) through exec in chunks.
func (t *rollupTable) upsert(exec func(query string, args []any) error, rows []any) error {
	for len(rows) > 0 {
		n := len(rows) / t.cols
		k := rollupChunks[len(rollupChunks)-1]
		for _, c := range rollupChunks {
			if c <= n {
				k = c
				break
			}
		}
		if err := exec(t.sqls[k], rows[:k*t.cols]); err != nil {
			return err
		}
		rows = rows[k*t.cols:]
	}
	return nil
}

// add counts one inserted action.
func (r *rollups) add(a store.ActionRecord) {
	if r.counts == nil {
		r.counts, r.policies, r.agents = map[countBucket]int64{}, map[policyBucket]int64{}, map[agentBucket]int64{}
	}
	us := toMicros(a.CreatedAt) // buckets as the triggers had them: floor division

	r.counts[countBucket{a.TenantID, floorDiv(us, hourUS), a.Status}]++
	if a.ViolationCount > 0 {
		day := floorDiv(us, dayUS)
		r.policies[policyBucket{a.TenantID, day, a.TriggeredPolicy, a.Severity}]++
		r.agents[agentBucket{a.TenantID, a.AgentID, day}]++
	}
}

// write upserts the buckets through exec, several rows per statement,
// and empties r; rows is scratch space (nil: allocated), returned grown
// and cleared. Buckets are distinct keys, so no statement names a row
// twice.
func (r *rollups) write(exec func(query string, args []any) error, rows []any) ([]any, error) {
	defer func() { clear(rows[:cap(rows)]) }()
	rows = rows[:0]
	for k, n := range r.counts {
		rows = append(rows, k.tenant, k.hour, string(k.status), n) // driver values: see actionArgs
	}
	if err := countsTable.upsert(exec, rows); err != nil {
		return rows[:0], err
	}
	rows = rows[:0]
	for k, n := range r.policies {
		rows = append(rows, k.tenant, k.day, k.policy, string(k.severity), n)
	}
	if err := policiesTable.upsert(exec, rows); err != nil {
		return rows[:0], err
	}
	rows = rows[:0]
	for k, n := range r.agents {
		rows = append(rows, k.tenant, k.day, k.agent, n)
	}
	if err := agentsTable.upsert(exec, rows); err != nil {
		return rows[:0], err
	}
	*r = rollups{}
	return rows[:0], nil
}

// writeTo upserts r's buckets in a transaction of its own code path.
func (r *rollups) writeTo(ctx context.Context, e execer) error {
	_, err := r.write(func(q string, args []any) error {
		_, err := e.ExecContext(ctx, q, args...)
		return err
	}, nil)
	return err
}
