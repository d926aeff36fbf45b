package postgres_test

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/postgres"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/storetest"
)

// governanceStores returns an open func for storetest.RunGovernance: one
// fresh database for the run, dropped when it ends, and a schema of its
// own for each store, so the suite's parallel subtests each get an empty
// store without a CREATE DATABASE apiece.
func governanceStores(t *testing.T, opts ...postgres.Option) func(t *testing.T) store.GovernanceStore {
	u := newDatabase(t)
	admin := connect(t, u)
	var (
		mu sync.Mutex // one pgx.Conn is not for concurrent use
		n  atomic.Int64
	)
	return func(t *testing.T) store.GovernanceStore {
		schema := fmt.Sprintf("governance_%d", n.Add(1))
		mu.Lock()
		_, err := admin.Exec(t.Context(), `CREATE SCHEMA `+schema)
		mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		return open(t, withParam(t, u, "search_path", schema), append([]postgres.Option{postgres.WithMaxConns(4)}, opts...)...)
	}
}

func TestGovernance(t *testing.T) {
	storetest.RunGovernance(t, governanceStores(t), tamperer{})
}

// TestGovernanceSegmented reruns the suite with every chain verified in
// segments of 2 entries over up to 4 connections, so tamper at and between
// segment boundaries must be found as a single pass finds it.
func TestGovernanceSegmented(t *testing.T) {
	storetest.RunGovernance(t, governanceStores(t, postgres.WithVerifyParallelism(4, 2)), tamperer{})
}

// TestGovernanceUnbatched reruns the suite with one write per transaction.
func TestGovernanceUnbatched(t *testing.T) {
	storetest.RunGovernance(t, governanceStores(t, postgres.WithMaxBatch(1)), tamperer{})
}

func TestGovernanceReopen(t *testing.T) {
	storetest.RunGovernanceReopen(t, func(t *testing.T) func(t *testing.T) store.GovernanceStore {
		u := newDatabase(t)
		return func(t *testing.T) store.GovernanceStore {
			db, err := postgres.Open(t.Context(), u)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return db
		}
	})
}

// tamperer edits audit_log rows directly, as someone holding the database
// could.
type tamperer struct{}

func (tamperer) db(t *testing.T, s store.GovernanceStore) *postgres.DB {
	t.Helper()
	db, ok := s.(*postgres.DB)
	if !ok {
		t.Fatalf("tamper: store is a %T, not a *postgres.DB", s)
	}
	return db
}

func (tp tamperer) SetAuditField(t *testing.T, s store.GovernanceStore, tenantID string, seq int64, field, value string) {
	t.Helper()
	col := map[string]string{"event": "event", "metadata": "metadata", "prev_hash": "prev_hash", "entry_hash": "entry_hash"}[field]
	if col == "" {
		t.Fatalf("tamper: unknown field %q", field)
	}
	if err := tp.db(t, s).ExecRaw(t.Context(), fmt.Sprintf(`UPDATE audit_log SET %s = $1 WHERE tenant_id = $2 AND seq = $3`, col), value, tenantID, seq); err != nil {
		t.Fatalf("tamper: %v", err)
	}
}

func (tp tamperer) DeleteAuditEntry(t *testing.T, s store.GovernanceStore, tenantID string, seq int64) {
	t.Helper()
	if err := tp.db(t, s).ExecRaw(t.Context(), `DELETE FROM audit_log WHERE tenant_id = $1 AND seq = $2`, tenantID, seq); err != nil {
		t.Fatalf("tamper: %v", err)
	}
}

// batchSizes is an AuditBatchObserver that remembers what it was told.
type batchSizes struct {
	mu    sync.Mutex
	sizes []int
}

func (o *batchSizes) ObserveAuditBatch(n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sizes = append(o.sizes, n)
}

func (o *batchSizes) sum() (batches, ops int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, n := range o.sizes {
		ops += n
	}
	return len(o.sizes), ops
}

// TestChainAcrossHandles runs two DBs on one database, as two replicas
// would, each with its own group committer: 16 goroutines, 8 on each,
// append events, pairs of events and audited actions for 3 tenants, while
// others insert actions without entries one by one and in bulk (their
// rollup trigger takes the same head locks) and write policies with their
// entries. Every tenant's chain must hold exactly the entries returned,
// numbered without gaps or repeats, and verify from either handle.
func TestChainAcrossHandles(t *testing.T) {
	ctx := t.Context()
	u := newDatabase(t)
	obs := [2]*batchSizes{{}, {}}
	dbs := []*postgres.DB{
		open(t, u, postgres.WithMaxConns(6), postgres.WithAuditBatchObserver(obs[0])),
		open(t, u, postgres.WithMaxConns(6), postgres.WithAuditBatchObserver(obs[1])),
	}
	tenants := []string{"t0", "t1", "t2"}
	for _, tn := range tenants {
		if _, err := dbs[0].CreateTenant(ctx, store.Tenant{ID: tn, Tier: store.TierEnterprise, Mode: pdp.ModeEnforcement}); err != nil {
			t.Fatal(err)
		}
	}
	const (
		writers = 16
		rounds  = 60
	)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		want    = map[string]int{}
		seen    = map[string]map[int64]string{}
		actions atomic.Int64
	)
	for _, tn := range tenants {
		seen[tn] = map[int64]string{}
	}
	record := func(tn, who string, es ...store.AuditEntry) {
		mu.Lock()
		defer mu.Unlock()
		want[tn] += len(es)
		for _, e := range es {
			if prev, dup := seen[tn][e.SequenceNumber]; dup {
				t.Errorf("%s: sequence %d returned to %s and %s", tn, e.SequenceNumber, prev, who)
			}
			seen[tn][e.SequenceNumber] = who
		}
	}
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for g := range writers {
		db := dbs[g%2]
		wg.Go(func() {
			for i := range rounds {
				tn := tenants[(g+i)%len(tenants)]
				who := fmt.Sprintf("h%d/g%02d/%02d", g%2, g, i)
				switch i % 4 {
				case 0:
					es, err := db.AppendAudit(ctx, tn, store.AuditEvent{Event: "note", Metadata: []byte(fmt.Sprintf(`{"who":%q}`, who))})
					if err != nil {
						t.Errorf("%s: %v", who, err)
						return
					}
					record(tn, who, es...)
				case 1:
					es, err := db.AppendAudit(ctx, tn, store.AuditEvent{Event: "first"}, store.AuditEvent{Event: "second"})
					if err != nil {
						t.Errorf("%s: %v", who, err)
						return
					}
					if len(es) != 2 || es[1].SequenceNumber != es[0].SequenceNumber+1 || es[1].PrevHash != es[0].EntryHash {
						t.Errorf("%s: one call's entries are not consecutive: %+v", who, es)
					}
					record(tn, who, es...)
				case 2:
					a := store.ActionRecord{ID: "act_" + who, TenantID: tn, Action: "stripe.payment", Status: pdp.StatusPendingReview,
						AgentID: "bot", TriggeredPolicy: "FinancialSafety", Severity: pdp.SeverityHigh, ViolationCount: 1, CreatedAt: at}
					_, e, err := db.InsertActionAudited(ctx, a, store.AuditEvent{})
					if err != nil {
						t.Errorf("%s: %v", who, err)
						return
					}
					actions.Add(1)
					record(tn, who, e)
				default:
					// Writes without entries, which take the same heads
					// through the rollup trigger, and a policy write with
					// its entry, which also locks the tenant's row.
					if g%4 == 3 {
						recs := func(yield func(store.ActionRecord) bool) {
							for k := range 3 {
								if !yield(store.ActionRecord{ID: fmt.Sprintf("bulk_%s_%d", who, k), TenantID: tn, Action: "x", Status: pdp.StatusAllowed, CreatedAt: at}) {
									return
								}
							}
						}
						if _, err := db.BulkInsertActions(ctx, recs); err != nil {
							t.Errorf("%s: bulk: %v", who, err)
							return
						}
						actions.Add(3)
					} else if _, err := db.InsertAction(ctx, store.ActionRecord{ID: "plain_" + who, TenantID: tn, Action: "x", Status: pdp.StatusBlocked,
						ViolationCount: 1, TriggeredPolicy: "P", Severity: pdp.SeverityCritical, CreatedAt: at}); err != nil {
						t.Errorf("%s: plain insert: %v", who, err)
						return
					} else {
						actions.Add(1)
					}
					_, e, err := db.PutPolicyAudited(ctx, store.PutPolicyRequest{TenantID: tn, Limit: store.Unlimited,
						Policy: pdp.Policy{Name: fmt.Sprintf("P%d", g), Enabled: true}}, store.AuditEvent{})
					if err != nil {
						t.Errorf("%s: policy: %v", who, err)
						return
					}
					record(tn, who, e)
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	total := 0
	for _, tn := range tenants {
		total += want[tn]
		for i, db := range dbs {
			v, err := db.VerifyAudit(ctx, tn)
			if err != nil || !v.Valid || v.Entries != want[tn] || v.LastSequence != int64(want[tn]) {
				t.Errorf("handle %d: VerifyAudit(%s) = %+v, %v; want valid with %d entries", i, tn, v, err, want[tn])
			}
		}
		es, n, err := dbs[1].ListAudit(ctx, tn, store.AuditQuery{})
		if err != nil || n != want[tn] {
			t.Fatalf("ListAudit(%s): %d entries, %v; want %d", tn, n, err, want[tn])
		}
		prev := store.GenesisHash
		for i, e := range es {
			if e.SequenceNumber != int64(i+1) || e.PrevHash != prev {
				t.Fatalf("%s: entry %d has sequence %d, prev %s; want %d after %s", tn, i, e.SequenceNumber, e.PrevHash, i+1, prev)
			}
			if seen[tn][e.SequenceNumber] == "" {
				t.Errorf("%s: stored entry %d was returned to no writer", tn, e.SequenceNumber)
			}
			prev = e.EntryHash
		}
	}
	if want := writers * rounds * 5 / 4; total != want {
		t.Errorf("%d entries across tenants, want %d", total, want)
	}
	// Every committed batch was observed, on the handle that committed it.
	ops := 0
	for i, db := range dbs {
		batches, n := obs[i].sum()
		st := db.CommitStats()
		if int64(batches) != st.Batches || int64(n) != st.Ops {
			t.Errorf("handle %d: observer saw %d batches of %d writes, committer counts %d of %d", i, batches, n, st.Batches, st.Ops)
		}
		ops += n
		t.Logf("handle %d: %d writes in %d batches (%.1f per batch), %d reruns", i, st.Ops, st.Batches, float64(st.Ops)/float64(max(st.Batches, 1)), st.Reruns)
	}
	if want := writers * rounds; ops != want {
		t.Errorf("%d writes group-committed, want %d", ops, want)
	}
	// The dashboard's rollups saw every action, whichever path wrote it.
	var sum int64
	for _, tn := range tenants {
		r, err := dbs[0].Dashboard(ctx, tn, store.DashboardQuery{Since: at.Add(-time.Hour), Until: at.Add(time.Hour), Bucket: store.BucketHour})
		if err != nil {
			t.Fatal(err)
		}
		sum += r.Totals.Evaluations
	}
	if sum != actions.Load() {
		t.Errorf("dashboards count %d evaluations, %d actions were written", sum, actions.Load())
	}
}

// TestDecideAcrossHandles has 20 goroutines, 10 on each of two DBs on one
// database, decide one approval at once, ten times over: exactly one wins
// each time, the others get *AlreadyDecidedError naming the winner, and
// the chain holds one decision entry. Then enterprise votes across both
// handles reach min_approvals exactly once.
func TestDecideAcrossHandles(t *testing.T) {
	ctx := t.Context()
	u := newDatabase(t)
	dbs := []*postgres.DB{open(t, u, postgres.WithMaxConns(4)), open(t, u, postgres.WithMaxConns(4))}
	if _, err := dbs[0].CreateTenant(ctx, store.Tenant{ID: "acme", Tier: store.TierEnterprise, Mode: pdp.ModeEnforcement}); err != nil {
		t.Fatal(err)
	}
	held := func(id string) {
		t.Helper()
		a := store.ActionRecord{ID: id, TenantID: "acme", Action: "crm.export", Status: pdp.StatusPendingReview,
			TriggeredPolicy: "DataExfiltration", Severity: pdp.SeverityHigh, ViolationCount: 1}
		if _, _, err := dbs[1].InsertActionAudited(ctx, a, store.AuditEvent{}); err != nil {
			t.Fatal(err)
		}
	}
	const (
		rounds   = 10
		deciders = 20
	)
	entries := 0
	for r := range rounds {
		id := fmt.Sprintf("act_%02d", r)
		held(id)
		entries++
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			winners []string
			losers  = map[string]string{} // loser → the approver its error names
		)
		start := make(chan struct{})
		for g := range deciders {
			db := dbs[g%2]
			wg.Go(func() {
				st := pdp.StatusApproved
				if g%3 == 0 {
					st = pdp.StatusDenied
				}
				who := fmt.Sprintf("approver-%02d", g)
				<-start
				_, _, err := db.DecideAction(ctx, store.DecideRequest{TenantID: "acme", ActionID: id, Status: st, ApproverID: who})
				var de *store.AlreadyDecidedError
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					winners = append(winners, who)
				case errors.As(err, &de):
					losers[who] = de.ApproverID
				default:
					t.Errorf("%s: %v", who, err)
				}
			})
		}
		close(start)
		wg.Wait()
		if len(winners) != 1 || len(losers) != deciders-1 {
			t.Fatalf("round %d: winners %v, %d losers; want exactly one winner", r, winners, len(losers))
		}
		entries++
		for who, named := range losers {
			if named != winners[0] {
				t.Errorf("round %d: %s was told %s decided, the winner is %s", r, who, named, winners[0])
			}
		}
		a, err := dbs[r%2].GetAction(ctx, "acme", id)
		if err != nil || a.ApproverID != winners[0] {
			t.Errorf("round %d: stored approver %q, %v; winner %s", r, a.ApproverID, err, winners[0])
		}
	}

	// Votes: 12 voters on both handles, 3 approvals needed.
	held("act_votes")
	entries++
	const voters, minApprovals = 12, 3
	var (
		wg                 sync.WaitGroup
		mu                 sync.Mutex
		recorded, deciding int
	)
	start := make(chan struct{})
	for g := range voters {
		db := dbs[g%2]
		wg.Go(func() {
			<-start
			res, err := db.RecordApprovalVote(ctx, store.VoteRequest{
				Vote:         store.ApprovalVote{TenantID: "acme", ActionID: "act_votes", ApproverID: fmt.Sprintf("v%02d", g), Decision: pdp.StatusApproved},
				MinApprovals: minApprovals,
			})
			var de *store.AlreadyDecidedError
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				recorded++
				if res.Decided {
					deciding++
				}
			case errors.As(err, &de):
			default:
				t.Errorf("voter %d: %v", g, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if recorded != minApprovals || deciding != 1 {
		t.Errorf("%d votes recorded, %d decided; want %d and 1", recorded, deciding, minApprovals)
	}
	entries += minApprovals + 1
	// The same approver cannot vote twice, from either handle.
	hold := "act_twice"
	held(hold)
	entries++
	for i, db := range dbs {
		_, err := db.RecordApprovalVote(ctx, store.VoteRequest{
			Vote:         store.ApprovalVote{TenantID: "acme", ActionID: hold, ApproverID: "same", Decision: pdp.StatusApproved},
			MinApprovals: 2,
		})
		switch {
		case i == 0 && err != nil:
			t.Fatalf("first vote: %v", err)
		case i == 1 && !errors.Is(err, store.ErrAlreadyVoted):
			t.Errorf("second vote by the same approver on the other handle: %v, want ErrAlreadyVoted", err)
		}
	}
	entries++
	for i, db := range dbs {
		if v, err := db.VerifyAudit(ctx, "acme"); err != nil || !v.Valid || v.Entries != entries {
			t.Errorf("handle %d: VerifyAudit = %+v, %v; want valid with %d entries", i, v, err, entries)
		}
	}
}

// TestBatchRerunsWithoutTheFailedWrite queues, in one batch, writes that
// fail at the database (duplicate action IDs) among ones that succeed: the
// failed ones get their error, the others commit, numbered without gaps.
func TestBatchRerunsWithoutTheFailedWrite(t *testing.T) {
	ctx := t.Context()
	db := open(t, newDatabase(t))
	if _, err := db.CreateTenant(ctx, store.Tenant{ID: "acme", Tier: store.TierEnterprise, Mode: pdp.ModeEnforcement}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := db.InsertAction(ctx, store.ActionRecord{ID: fmt.Sprintf("taken_%d", i), TenantID: "acme", Action: "x", Status: pdp.StatusAllowed}); err != nil {
			t.Fatal(err)
		}
	}
	const writers = 64
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		dups int
		got  = map[int64]bool{}
	)
	start := make(chan struct{})
	for g := range writers {
		wg.Go(func() {
			id := fmt.Sprintf("act_%02d", g)
			if g%8 == 0 {
				id = fmt.Sprintf("taken_%d", g%5)
			}
			<-start
			_, e, err := db.InsertActionAudited(ctx, store.ActionRecord{ID: id, TenantID: "acme", Action: "x", Status: pdp.StatusAllowed}, store.AuditEvent{})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				got[e.SequenceNumber] = true
			case errors.Is(err, store.ErrDuplicate) && g%8 == 0:
				dups++
			default:
				t.Errorf("writer %d: %v", g, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if dups != writers/8 {
		t.Errorf("%d duplicates refused, want %d", dups, writers/8)
	}
	seqs := slices.Sorted(maps.Keys(got))
	for i, s := range seqs {
		if s != int64(i+1) {
			t.Fatalf("sequences %v: not 1…%d", seqs, len(seqs))
		}
	}
	if v, err := db.VerifyAudit(ctx, "acme"); err != nil || !v.Valid || v.Entries != writers-writers/8 {
		t.Errorf("VerifyAudit = %+v, %v; want valid with %d entries", v, err, writers-writers/8)
	}
	t.Logf("%+v", db.CommitStats())
}

func (tp tamperer) InsertAuditEntry(t *testing.T, s store.GovernanceStore, e store.AuditEntry) {
	t.Helper()
	if err := tp.db(t, s).ExecRaw(t.Context(), `INSERT INTO audit_log (tenant_id, seq, ts, event, metadata, prev_hash, entry_hash) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		e.TenantID, e.SequenceNumber, e.Timestamp, e.Event, string(e.Metadata), e.PrevHash, e.EntryHash); err != nil {
		t.Fatalf("tamper: %v", err)
	}
}

// Exec numbers the ? placeholders of query as PostgreSQL wants them.
func (tp tamperer) Exec(t *testing.T, s store.GovernanceStore, query string, args ...any) {
	t.Helper()
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	if err := tp.db(t, s).ExecRaw(t.Context(), b.String(), args...); err != nil {
		t.Fatalf("tamper: %v", err)
	}
}
