package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/sqlite"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/storetest"
)

func newGovernance(t *testing.T, path string, opts ...sqlite.Option) *sqlite.DB {
	t.Helper()
	db := open(t, path, opts...)
	for _, id := range []string{"t0", "t1"} {
		if _, err := db.CreateTenant(t.Context(), store.Tenant{ID: id, Tier: store.TierEnterprise, Mode: pdp.ModeEnforcement}); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// batchSizes records what the committer reports.
type batchSizes struct {
	mu    sync.Mutex
	sizes []int
}

func (b *batchSizes) ObserveAuditBatch(n int) {
	b.mu.Lock()
	b.sizes = append(b.sizes, n)
	b.mu.Unlock()
}

// TestGroupCommitBatches checks that concurrent appends share
// transactions, and that a failing write in a batch fails alone.
func TestGroupCommitBatches(t *testing.T) {
	ctx := t.Context()
	obs := &batchSizes{}
	db := newGovernance(t, filepath.Join(t.TempDir(), "g.db"), sqlite.WithAuditBatchObserver(obs))
	before := db.CommitStats()
	const writers, each = 64, 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		ok   = map[string]int{}
		dups int
	)
	for g := range writers {
		wg.Go(func() {
			tn := []string{"t0", "t1"}[g%2]
			for i := range each {
				// Writers g and g^2 share IDs on one tenant: one of each
				// pair of inserts must fail, inside someone's batch.
				id := fmt.Sprintf("act_%02d_%d", g&^2, i)
				_, _, err := db.InsertActionAudited(ctx, store.ActionRecord{ID: id, TenantID: tn, Action: "x", Status: pdp.StatusAllowed}, store.AuditEvent{})
				mu.Lock()
				switch {
				case err == nil:
					ok[tn]++
				case errors.Is(err, store.ErrDuplicate):
					dups++
				default:
					t.Errorf("%s: %v", id, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if dups != writers*each/2 {
		t.Errorf("%d duplicates refused, want %d", dups, writers*each/2)
	}
	for tn, n := range ok {
		v, err := db.VerifyAudit(ctx, tn)
		if err != nil || !v.Valid || v.Entries != n {
			t.Errorf("%s: %+v, %v; want a valid chain of %d", tn, v, err, n)
		}
	}
	after := db.CommitStats()
	ops, batches := after.Ops-before.Ops, after.Batches-before.Batches
	if ops != writers*each || batches >= ops {
		t.Errorf("%d ops in %d batches: want %d ops sharing batches", ops, batches, writers*each)
	}
	t.Logf("%d ops in %d batches", ops, batches)
	obs.mu.Lock()
	defer obs.mu.Unlock()
	sum := 0
	for _, n := range obs.sizes {
		if n < 1 || n > sqlite.DefaultMaxBatch {
			t.Errorf("observed a batch of %d", n)
		}
		sum += n
	}
	if int64(len(obs.sizes)) != batches || int64(sum) != ops {
		t.Errorf("observer saw %d batches of %d ops, committer counted %d of %d", len(obs.sizes), sum, batches, ops)
	}
}

// TestCloseDrains closes the database while appends are in flight: every
// append either fails or is durable, and none hangs.
func TestCloseDrains(t *testing.T) {
	path := filepath.Join(t.TempDir(), "g.db")
	db := newGovernance(t, path)
	ctx := context.WithoutCancel(t.Context())
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		acked = map[int64]bool{}
	)
	start := make(chan struct{})
	for g := range 32 {
		wg.Go(func() {
			<-start
			for i := range 50 {
				es, err := db.AppendAudit(ctx, "t0", store.AuditEvent{Event: "e", Metadata: fmt.Appendf(nil, `{"g":%d,"i":%d}`, g, i)})
				if err != nil {
					return // closed under us: fine, as long as nothing acked is lost
				}
				mu.Lock()
				acked[es[0].SequenceNumber] = true
				mu.Unlock()
			}
		})
	}
	close(start)
	if err := db.FlushAudit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if _, err := db.AppendAudit(ctx, "t0", store.AuditEvent{Event: "late"}); err == nil {
		t.Error("append after Close succeeded")
	}

	again := open(t, path)
	es, _, err := again.ListAudit(t.Context(), "t0", store.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	stored := map[int64]bool{}
	for _, e := range es {
		stored[e.SequenceNumber] = true
	}
	for seq := range acked {
		if !stored[seq] {
			t.Errorf("acknowledged entry %d lost", seq)
		}
	}
	if len(es) != len(acked) {
		t.Errorf("%d entries stored, %d acknowledged", len(es), len(acked))
	}
	if v, err := again.VerifyAudit(t.Context(), "t0"); err != nil || !v.Valid {
		t.Errorf("after close: %+v, %v", v, err)
	}
}

func TestCancelledBeforeCommit(t *testing.T) {
	db := newGovernance(t, filepath.Join(t.TempDir(), "g.db"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := db.AppendAudit(ctx, "t0", store.AuditEvent{Event: "e"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled append: %v", err)
	}
	if v, _ := db.VerifyAudit(t.Context(), "t0"); v.Entries != 0 {
		t.Errorf("a cancelled append was written: %+v", v)
	}
}

// TestPanickingCallback: a Counts that panics fails its vote alone; the
// committer, which every audited write goes through, survives.
func TestPanickingCallback(t *testing.T) {
	ctx := t.Context()
	db := newGovernance(t, filepath.Join(t.TempDir(), "g.db"))
	if _, _, err := db.InsertActionAudited(ctx, store.ActionRecord{ID: "act_1", TenantID: "t0", Action: "x", Status: pdp.StatusPendingReview}, store.AuditEvent{}); err != nil {
		t.Fatal(err)
	}
	_, err := db.RecordApprovalVote(ctx, store.VoteRequest{
		Vote:         store.ApprovalVote{TenantID: "t0", ActionID: "act_1", ApproverID: "a", Decision: pdp.StatusApproved},
		MinApprovals: 2, Counts: func(store.ApprovalVote) bool { panic("boom") },
	})
	if err == nil {
		t.Fatal("a panicking Counts succeeded")
	}
	if vs, _ := db.ApprovalVotes(ctx, "t0", "act_1"); len(vs) != 0 {
		t.Errorf("the failed vote was kept: %+v", vs)
	}
	if _, err := db.AppendAudit(ctx, "t0", store.AuditEvent{Event: "after"}); err != nil {
		t.Errorf("append after a panic: %v", err)
	}
	if v, _ := db.VerifyAudit(ctx, "t0"); !v.Valid || v.Entries != 2 {
		t.Errorf("chain after a panic: %+v", v)
	}
}

func TestUnpackEntry(t *testing.T) {
	seq, ts, ev, md, prev, hash, ok := sqlite.UnpackEntry([]byte(`12 -34 3 7 4 evt{"a":1}prevsha256:x y`))
	if !ok || seq != 12 || ts != -34 || string(ev) != "evt" || string(md) != `{"a":1}` || string(prev) != "prev" || string(hash) != "sha256:x y" {
		t.Errorf("UnpackEntry = %d %d %q %q %q %q %v", seq, ts, ev, md, prev, hash, ok)
	}
	for _, bad := range []string{``, `1 2 3 4`, `1 2 3 4 5`, `1 2 3 4 99 abc`, `x 2 0 0 0 `, `1 2 -1 0 0 abc`} {
		if _, _, _, _, _, _, ok := sqlite.UnpackEntry([]byte(bad)); ok {
			t.Errorf("UnpackEntry(%q) accepted", bad)
		}
	}
}

func FuzzUnpackEntry(f *testing.F) {
	f.Add([]byte(`12 34 3 7 4 evt{"a":1}prevsha256:x`))
	f.Add([]byte(`1 1 9223372036854775807 1 1 x`))
	f.Fuzz(func(t *testing.T, row []byte) {
		sqlite.UnpackEntry(row) // must not panic
	})
}

// TestHeadCacheSeesOtherWriters checks that the heads a committer
// remembers between batches are read again after anyone else wrote: a
// second store on the same file (another process) appending, and rows
// written behind both stores' backs through a plain connection.
func TestHeadCacheSeesOtherWriters(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "g.db")
	a := newGovernance(t, path)
	b := open(t, path)
	appendOne := func(db *sqlite.DB, i int) ([]store.AuditEntry, error) {
		return db.AppendAudit(ctx, "t0", store.AuditEvent{Event: "note", Metadata: []byte(fmt.Sprintf(`{"i":%d}`, i))})
	}
	// a, b, a, a, b: each must continue the chain the other left.
	for i, db := range []*sqlite.DB{a, b, a, a, b} {
		es, err := appendOne(db, i)
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		if es[0].SequenceNumber != int64(i+1) {
			t.Fatalf("append %d got sequence %d, want %d (a remembered head was stale)", i, es[0].SequenceNumber, i+1)
		}
	}
	if v, err := a.VerifyAudit(ctx, "t0"); err != nil || !v.Valid || v.Entries != 5 {
		t.Fatalf("verify: %+v, %v", v, err)
	}

	// An entry past the head, written by a connection of neither store:
	// a's next append must judge the head again and refuse.
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.ExecContext(ctx, `INSERT INTO audit_log (tenant_id, seq, ts, event, metadata, action_id, prev_hash, entry_hash)
SELECT tenant_id, seq + 1, ts, event, metadata, action_id, entry_hash, entry_hash FROM audit_log WHERE tenant_id = 't0' AND seq = 5`); err != nil {
		t.Fatal(err)
	}
	if _, err := appendOne(a, 6); !errors.Is(err, store.ErrChainBroken) {
		t.Fatalf("append after an entry past the head: %v, want ErrChainBroken", err)
	}
}

// TestBatchedRollupsMatchActions inserts a mix from many writers at once,
// so batches upsert many buckets in multi-row statements, and checks every
// rollup row against a recount of the actions table.
func TestBatchedRollupsMatchActions(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "g.db")
	db := newGovernance(t, path)
	start := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	var recs []store.ActionRecord
	for _, tn := range []string{"t0", "t1"} {
		for a := range storetest.GenerateActions(storetest.ActionMix{TenantID: tn, N: 1500, Since: start, Until: start.Add(200 * time.Hour), Agents: 40, Policies: 9, Seed: 3, IDPrefix: "act_" + tn}) {
			recs = append(recs, a)
		}
	}
	storetest.InsertConcurrently(ctx, t, db, recs, 64)
	if cs := db.CommitStats(); cs.Ops <= cs.Batches {
		t.Logf("no batch held two writes (%+v): the multi-row path went untested this time", cs)
	}
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	const day = `created_at / 86400000000 - (created_at % 86400000000 < 0)`
	for _, q := range []struct{ rollup, recount string }{
		{`SELECT tenant_id, hour, status, n FROM action_counts_hourly WHERE n > 0 ORDER BY 1, 2, 3`,
			`SELECT tenant_id, created_at / 3600000000 - (created_at % 3600000000 < 0) AS h, status, count(*) FROM actions GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`},
		{`SELECT tenant_id, day, policy, severity, n FROM policy_violations_daily WHERE n > 0 ORDER BY 1, 2, 3, 4`,
			`SELECT tenant_id, ` + day + `, triggered_policy, severity, count(*) FROM actions WHERE violation_count > 0 GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4`},
		{`SELECT tenant_id, day, agent_id, n FROM agent_violations_daily WHERE n > 0 ORDER BY 1, 2, 3`,
			`SELECT tenant_id, ` + day + `, agent_id, count(*) FROM actions WHERE violation_count > 0 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`},
	} {
		got, want := dump(t, raw, q.rollup), dump(t, raw, q.recount)
		if len(want) < 100 {
			t.Fatalf("recount %q has only %d rows", q.recount, len(want))
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s\n got %d rows, recount %d rows", q.rollup, len(got), len(want))
		}
	}
}

// dump returns every row of query as text.
func dump(t *testing.T, db *sql.DB, query string) []string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprint(vals...))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBackgroundCheckpoint checks that committed pages reach the database
// file while the store is open, though far fewer than the write
// connection's wal_autocheckpoint were written: the background
// checkpointer copied them.
func TestBackgroundCheckpoint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "g.db")
	db := newGovernance(t, path)
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	// Let the tenants' pages settle first, then measure from there.
	deadline := time.Now().Add(30 * time.Second)
	before := size()
	for i := range 200 {
		if _, _, err := db.InsertActionAudited(t.Context(), store.ActionRecord{ID: fmt.Sprintf("act_%04d", i), TenantID: "t0", Action: "x", Params: []byte(`{"text":"` + strings.Repeat("p", 400) + `"}`), Status: pdp.StatusAllowed}, store.AuditEvent{}); err != nil {
			t.Fatal(err)
		}
	}
	for size() <= before {
		if time.Now().After(deadline) {
			t.Fatalf("the database file stayed at %d bytes: nothing was checkpointed", before)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCloseFinalizesStatements closes a database whose committer has run
// its statements: the last connection closing checkpoints the WAL and
// removes it, which SQLite defers while any statement is left open.
func TestCloseFinalizesStatements(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "g.db")
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateTenant(ctx, store.Tenant{ID: "t0", Tier: store.TierEnterprise, Mode: pdp.ModeEnforcement}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		a := store.ActionRecord{ID: fmt.Sprintf("act_%d", i), TenantID: "t0", Action: "x", Status: pdp.StatusBlocked, ViolationCount: 1, TriggeredPolicy: "p", Severity: pdp.SeverityHigh}
		if _, _, err := db.InsertActionAudited(ctx, a, store.AuditEvent{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Fatalf("no WAL while open: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-wal"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the WAL outlived Close (%v): a statement was left open", err)
	}
}
