package sqlite_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/sqlite"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/storetest"
)

// The large benchmarks build their databases once per run; set
// GATEHOUSE_BENCH_DIR to keep them between runs (they are rebuilt when
// missing).
func benchDB(b *testing.B, name string, build func(ctx context.Context, db *sqlite.DB) error, opts ...sqlite.Option) *sqlite.DB {
	b.Helper()
	dir := os.Getenv("GATEHOUSE_BENCH_DIR")
	keep := dir != ""
	if !keep {
		dir = b.TempDir()
	}
	path := filepath.Join(dir, name+".db")
	_, statErr := os.Stat(path)
	db, err := sqlite.Open(b.Context(), path, opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	if statErr == nil {
		return db // kept from an earlier run, or built by an earlier sub-benchmark
	}
	start := time.Now()
	if err := build(b.Context(), db); err != nil {
		_ = db.Close()
		_ = os.Remove(path)
		b.Fatal(err)
	}
	b.Logf("built %s in %v", name, time.Since(start).Round(time.Millisecond))
	return db
}

func benchTenant(ctx context.Context, db *sqlite.DB, id string) error {
	_, err := db.CreateTenant(ctx, store.Tenant{ID: id, Tier: store.TierEnterprise, Mode: pdp.ModeEnforcement})
	return err
}

// BenchmarkAppendAudit measures durable appends per second with N
// concurrent appenders over 3 tenants, group committed, and without
// batching (maxBatch 1: one transaction and fsync per append) for
// comparison.
//
//	go test ./pdp/store/sqlite -run '^$' -bench AppendAudit -benchtime 2000x
func BenchmarkAppendAudit(b *testing.B) {
	for _, maxBatch := range []int{sqlite.DefaultMaxBatch, 1} {
		for _, writers := range []int{1, 8, 32, 128} {
			b.Run(fmt.Sprintf("batch=%d/writers=%d", maxBatch, writers), func(b *testing.B) {
				ctx := b.Context()
				db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "g.db"), sqlite.WithMaxBatch(maxBatch))
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				tenants := []string{"t0", "t1", "t2"}
				for _, tn := range tenants {
					if err := benchTenant(ctx, db, tn); err != nil {
						b.Fatal(err)
					}
				}
				ev := store.AuditEvent{Event: store.EventActionExecuted, Metadata: []byte(`{"action_id":"act_0123456789abcdef01234567","agent_id":"billing-bot","risk_score":0.68}`)}
				before := db.CommitStats()
				var next atomic.Int64
				b.ResetTimer()
				var wg sync.WaitGroup
				for w := range writers {
					wg.Go(func() {
						for next.Add(1) <= int64(b.N) {
							if _, err := db.AppendAudit(ctx, tenants[w%len(tenants)], ev); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				after := db.CommitStats()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
				b.ReportMetric(float64(after.Ops-before.Ops)/float64(max(after.Batches-before.Batches, 1)), "ops/batch")
			})
		}
	}
}

// BenchmarkInsertActionAudited measures actions recorded with their
// evaluation entries, as POST /v1/actions will, with 64 concurrent callers.
func BenchmarkInsertActionAudited(b *testing.B) {
	ctx := b.Context()
	db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "g.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := benchTenant(ctx, db, "acme"); err != nil {
		b.Fatal(err)
	}
	recs := slices.Collect(storetest.GenerateActions(storetest.ActionMix{TenantID: "acme", N: b.N, Since: time.Now().Add(-time.Hour), Until: time.Now(), Agents: 10, Policies: 5, Seed: 3}))
	b.ResetTimer()
	storetest.InsertConcurrently(ctx, b, db, recs, 64)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "actions/s")
}

// BenchmarkVerifyAudit1M recomputes a chain of 1,000,000 entries.
//
//	go test ./pdp/store/sqlite -run '^$' -bench VerifyAudit1M -benchtime 3x
func BenchmarkVerifyAudit1M(b *testing.B) {
	const entries, perCall = 1_000_000, 10_000
	build := func(ctx context.Context, db *sqlite.DB) error {
		if err := benchTenant(ctx, db, "acme"); err != nil {
			return err
		}
		evs := make([]store.AuditEvent, perCall)
		at := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
		for i := 0; i < entries; i += perCall {
			for j := range evs {
				n := i + j
				evs[j] = store.AuditEvent{Event: store.EventActionExecuted, Timestamp: at.Add(time.Duration(n) * time.Second),
					Metadata: fmt.Appendf(nil, `{"action_id":"act_%024x","agent_id":"agent-%03d","risk_score":0.25}`, n, n%50)}
			}
			if _, err := db.AppendAudit(ctx, "acme", evs...); err != nil {
				return err
			}
		}
		return nil
	}
	dir := b.TempDir()
	if os.Getenv("GATEHOUSE_BENCH_DIR") == "" {
		b.Setenv("GATEHOUSE_BENCH_DIR", dir) // build once for every sub-benchmark
	}
	for _, workers := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			db := benchDB(b, "verify-1m", build, sqlite.WithVerifyParallelism(workers, 50_000))
			var v store.AuditVerification
			for b.Loop() {
				var err error
				if v, err = db.VerifyAudit(b.Context(), "acme"); err != nil {
					b.Fatal(err)
				}
			}
			if !v.Valid || v.Entries != entries {
				b.Fatalf("verification %+v", v)
			}
			b.ReportMetric(float64(b.N*entries)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// BenchmarkVerifyAudit200K recomputes a chain of 200,000 entries written
// alone (appended 10,000 at a time: the entries stored in chain order) and
// interleaved with as many entries of three other tenants (32 writers,
// 8 entries per append, spread over the four tenants: what a server with
// several busy tenants writes), with one verification worker and two.
//
//	go test ./pdp/store/sqlite -run '^$' -bench VerifyAudit200K -benchtime 5x
func BenchmarkVerifyAudit200K(b *testing.B) {
	const entries = 200_000
	at := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	event := func(tenant string, n int) store.AuditEvent {
		return store.AuditEvent{Event: store.EventActionExecuted, Timestamp: at.Add(time.Duration(n) * time.Second),
			Metadata: fmt.Appendf(nil, `{"action_id":"act_%024x","agent_id":"agent-%03d","tenant":%q,"risk_score":0.25}`, n, n%50, tenant)}
	}
	builds := map[string]func(ctx context.Context, db *sqlite.DB) error{
		"alone": func(ctx context.Context, db *sqlite.DB) error {
			if err := benchTenant(ctx, db, "acme"); err != nil {
				return err
			}
			evs := make([]store.AuditEvent, 10_000)
			for i := 0; i < entries; i += len(evs) {
				for j := range evs {
					evs[j] = event("acme", i+j)
				}
				if _, err := db.AppendAudit(ctx, "acme", evs...); err != nil {
					return err
				}
			}
			return nil
		},
		"interleaved": func(ctx context.Context, db *sqlite.DB) error {
			tenants := []string{"acme", "t1", "t2", "t3"}
			for _, tn := range tenants {
				if err := benchTenant(ctx, db, tn); err != nil {
					return err
				}
			}
			const per = 8
			var (
				next     atomic.Int64
				wg       sync.WaitGroup
				firstErr atomic.Value
			)
			// acme gets half the appends, the other three the other half.
			for range 32 {
				wg.Go(func() {
					for call := next.Add(1) - 1; call < 2*entries/per; call = next.Add(1) - 1 {
						tn := "acme"
						if call%2 == 1 {
							tn = tenants[1+int(call/2)%3]
						}
						evs := make([]store.AuditEvent, per)
						for j := range evs {
							evs[j] = event(tn, int(call)*per+j)
						}
						if _, err := db.AppendAudit(ctx, tn, evs...); err != nil {
							firstErr.CompareAndSwap(nil, err)
							return
						}
					}
				})
			}
			wg.Wait()
			if err, ok := firstErr.Load().(error); ok {
				return err
			}
			return nil
		},
	}
	dir := b.TempDir()
	if os.Getenv("GATEHOUSE_BENCH_DIR") == "" {
		b.Setenv("GATEHOUSE_BENCH_DIR", dir) // build once for every sub-benchmark
	}
	for _, layout := range []string{"alone", "interleaved"} {
		for _, workers := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/workers=%d", layout, workers), func(b *testing.B) {
				db := benchDB(b, "verify-200k-"+layout, builds[layout], sqlite.WithVerifyParallelism(workers, 50_000))
				benchVerifyLoop(b, db, entries)
			})
		}
	}
}

// BenchmarkDashboard1M computes dashboards over 1,000,000 evaluations
// spread over the 30 days before until (not on an hour boundary, so the
// edge scans run too), loaded with BulkInsertActions.
//
//	go test ./pdp/store/sqlite -run '^$' -bench Dashboard1M -benchtime 50x
func BenchmarkDashboard1M(b *testing.B) {
	const n = 1_000_000
	until := time.Date(2025, 7, 1, 13, 37, 42, 123456000, time.UTC)
	db := benchDB(b, "dashboard-1m", func(ctx context.Context, db *sqlite.DB) error {
		if err := benchTenant(ctx, db, "acme"); err != nil {
			return err
		}
		start := time.Now()
		got, err := db.BulkInsertActions(ctx, storetest.GenerateActions(storetest.DefaultMix("acme", n, until)))
		if err != nil {
			return err
		}
		if got != n {
			return fmt.Errorf("loaded %d actions, want %d", got, n)
		}
		b.Logf("bulk insert: %d actions in %v", n, time.Since(start).Round(time.Millisecond))
		return nil
	})
	for _, c := range []struct {
		name   string
		window time.Duration
		bucket store.Bucket
	}{
		{"30d-day", 30 * 24 * time.Hour, store.BucketDay},
		{"7d-day", 7 * 24 * time.Hour, store.BucketDay},
		{"24h-hour", 24 * time.Hour, store.BucketHour},
	} {
		b.Run(c.name, func(b *testing.B) {
			q := store.DashboardQuery{Since: until.Add(-c.window), Until: until, Bucket: c.bucket}
			var (
				took []time.Duration
				r    store.DashboardReport
			)
			for b.Loop() {
				start := time.Now()
				var err error
				if r, err = db.Dashboard(b.Context(), "acme", q); err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(start))
			}
			if c.window == 30*24*time.Hour && r.Totals.Evaluations != n {
				b.Fatalf("30-day window counts %d evaluations, want %d", r.Totals.Evaluations, n)
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
	b.Run("agent-violations", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := db.AgentViolations(b.Context(), "acme", "agent-007", store.ViolationQuery{Limit: 50, Since: until.Add(-30 * 24 * time.Hour), Until: until}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkActionWritePath records actions with their evaluation entries
// as POST /v1/actions does (the lifecycle's action IDs and metadata,
// the generated status mix) from 16 callers spread over 1 or 100 tenants,
// and reports the process's CPU per action and the WAL pages written per
// action. Plain, checkpoints are off so the WAL only grows (and
// wal-pages/action counts the pages written); with checkpoints they run
// as the server runs them (the background checkpointer and the write
// connection's safety net), and wal-pages/action is the WAL file's growth.
//
// The last is the server's store under the load tool (issue 11), run
// with -cpu 1 (the server's GOMAXPROCS=1): each caller first spends
// 250 µs of CPU, as a request decides before it records, so batches are
// small (about 7 actions), each action writes more WAL, and the
// background checkpointer competes for the one CPU with 16 callers and
// the committer. store-cpu-µs/action is the CPU per action without the
// callers' work. Its prefilled twin first bulk-loads 300,000 actions over
// the tenants (about a minute): a store that has served a while, whose
// hot pages are ~2.5 times an empty one's (1.5 pages copied per action
// against 0.6) and outgrow the write connection's cache;
// GATEHOUSE_BENCH_WRITE_CACHE_MIB sets that cache for a comparison.
//
//	go test ./pdp/store/sqlite -run '^$' -bench ActionWritePath -benchtime 20000x
//	go test ./pdp/store/sqlite -run '^$' -bench 'ActionWritePath/.*work' -benchtime 20000x -cpu 1
func BenchmarkActionWritePath(b *testing.B) {
	for _, ckpt := range []bool{false, true} {
		for _, tenants := range []int{1, 100} {
			name := fmt.Sprintf("tenants=%d", tenants)
			var opts []sqlite.Option
			if ckpt {
				name += ",checkpoints"
			} else {
				opts = append(opts, sqlite.WithoutCheckpoints())
			}
			b.Run(name, func(b *testing.B) { benchActionWritePath(b, tenants, 0, 0, opts...) })
		}
	}
	b.Run("tenants=100,checkpoints,work=250µs", func(b *testing.B) { benchActionWritePath(b, 100, 250*time.Microsecond, 0) })
	b.Run("tenants=100,checkpoints,work=250µs,prefilled", func(b *testing.B) {
		benchActionWritePath(b, 100, 250*time.Microsecond, prefillActions)
	})
}

// benchActionWritePath writes b.N actions from 16 callers over tenants,
// each caller spending work of CPU before each (spin), into a store
// holding prefill actions already.
func benchActionWritePath(b *testing.B, tenants int, work time.Duration, prefill int, opts ...sqlite.Option) {
	b.ReportAllocs()
	ctx := b.Context()
	path := filepath.Join(b.TempDir(), "g.db")
	var (
		pauseMu sync.Mutex
		pauses  []time.Duration // the committer's catch-ups during the run
		running atomic.Bool
	)
	opts = append(opts, sqlite.WithCatchUpObserver(func(d time.Duration) {
		if running.Load() {
			pauseMu.Lock()
			pauses = append(pauses, d)
			pauseMu.Unlock()
		}
	}))
	if mib, err := strconv.Atoi(os.Getenv("GATEHOUSE_BENCH_WRITE_CACHE_MIB")); err == nil {
		opts = append(opts, sqlite.WithWriteCacheKiB(mib<<10))
	}
	db, err := sqlite.Open(ctx, path, opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ids := writePathTenants(b, db, tenants, prefill)
	recs := writePathActions(b.N, ids)
	metas := make([][]byte, len(recs))
	for i := range recs {
		metas[i] = fmt.Appendf(nil, `{"action":%q,"agent_id":%q,"key_id":"key_0123456789abcdef","status":%q,"triggered_policy":%q,"severity":%q,"risk_score":%g}`,
			recs[i].Action, recs[i].AgentID, recs[i].Status, recs[i].TriggeredPolicy, recs[i].Severity, recs[i].RiskScore)
	}
	walBefore := fileSize(b, path+"-wal")
	ioBefore, ioOK := processIO()
	stats, walStats := db.CommitStats(), db.WALStats()
	var next atomic.Int64
	// Each call's latency, as a client waits for it (its batch and the
	// one before it): the write path's contribution to a request's p99.
	took := make([]time.Duration, len(recs))
	var rounds int // of spin, for work
	if work > 0 {
		rounds = spinRounds(b, work)
	}
	running.Store(true)
	schedBefore := schedLatencies()
	cpuBefore := processCPU(b)
	userBefore, sysBefore := processCPUSplit(b)
	b.ResetTimer()
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(recs)); i = next.Add(1) - 1 {
				spin(rounds)
				start := time.Now()
				if _, _, err := db.InsertActionAudited(ctx, recs[i], store.AuditEvent{Metadata: metas[i]}); err != nil {
					b.Error(err)
					return
				}
				took[i] = time.Since(start)
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	running.Store(false)
	sched := schedLatencies()
	slices.Sort(took)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	// How long goroutines waited, runnable, for a P (the runtime's
	// histogram; a bucket's lower bound): the checkpointer holding the
	// one CPU shows here (issue 11's tail).
	if p99, most, ok := sched.since(schedBefore); ok {
		b.ReportMetric(ms(p99), "sched-p99-ms")
		b.ReportMetric(ms(most), "sched-max-ms")
	}
	b.ReportMetric(ms(took[len(took)/2]), "p50-ms")
	b.ReportMetric(ms(took[len(took)*99/100]), "p99-ms")
	b.ReportMetric(ms(took[len(took)-1]), "max-ms")
	cpu := processCPU(b) - cpuBefore
	user, sys := processCPUSplit(b)
	after := db.CommitStats()
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/action")
	if work > 0 {
		b.ReportMetric(float64((cpu-time.Duration(b.N)*work).Microseconds())/float64(b.N), "store-cpu-µs/action")
	}
	// User time is the Go and SQLite code; system time mostly the WAL's
	// writes and fsyncs, which vary with the disk's other users.
	b.ReportMetric(float64((user-userBefore).Microseconds())/float64(b.N), "user-µs/action")
	b.ReportMetric(float64((sys-sysBefore).Microseconds())/float64(b.N), "sys-µs/action")
	b.ReportMetric(float64(fileSize(b, path+"-wal")-walBefore)/(4096+24)/float64(b.N), "wal-pages/action")
	b.ReportMetric(float64(after.Ops-stats.Ops)/float64(max(after.Batches-stats.Batches, 1)), "ops/batch")
	if w := db.WALStats(); w != (sqlite.WALStats{}) {
		n := float64(b.N)
		b.ReportMetric(float64(w.Restarts-walStats.Restarts), "wal-restarts")
		b.ReportMetric(float64(w.Passes-walStats.Passes), "ckpt-passes")
		b.ReportMetric(float64(fileSize(b, path+"-wal"))/(1<<20), "wal-MiB")
		// What checkpoints cost per action: the pages they copied to the
		// database file, the writes and WAL reads that took, and the
		// syncs of both files (the WAL's: one per batch); then the pauses
		// between batches of the committer's own catch-ups.
		b.ReportMetric(float64(w.DBBytes-walStats.DBBytes)/4096/n, "ckpt-pages/action")
		b.ReportMetric(float64(w.DBWrites-walStats.DBWrites)/n, "db-writes/action")
		b.ReportMetric(float64(w.WALReads-walStats.WALReads)/n, "wal-reads/action")
		b.ReportMetric(float64(w.DBSyncs-walStats.DBSyncs+w.WALSyncs-walStats.WALSyncs)/n, "syncs/action")
		pauseMu.Lock()
		slices.Sort(pauses)
		b.ReportMetric(float64(len(pauses)), "catchups")
		if len(pauses) > 0 {
			b.ReportMetric(ms(pauses[len(pauses)/2]), "catchup-p50-ms")
			b.ReportMetric(ms(pauses[len(pauses)-1]), "catchup-max-ms")
		}
		pauseMu.Unlock()
	}
	if io, ok := processIO(); ok && ioOK {
		b.ReportMetric(float64(io.reads-ioBefore.reads)/float64(b.N), "read-syscalls/action")
		b.ReportMetric(float64(io.writes-ioBefore.writes)/float64(b.N), "write-syscalls/action")
	}
}

// schedHist is the runtime's histogram of goroutines' scheduling
// latencies (/sched/latencies:seconds) at one moment.
type schedHist struct {
	counts  []uint64
	buckets []float64
}

func schedLatencies() schedHist {
	s := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64Histogram {
		return schedHist{}
	}
	h := s[0].Value.Float64Histogram()
	return schedHist{counts: slices.Clone(h.Counts), buckets: h.Buckets}
}

// since returns the 99th percentile and the largest of the latencies
// recorded after before (the lower bounds of their buckets).
func (h schedHist) since(before schedHist) (p99, most time.Duration, ok bool) {
	if len(h.counts) == 0 || len(before.counts) != len(h.counts) {
		return 0, 0, false
	}
	d := make([]uint64, len(h.counts))
	var total uint64
	for i := range d {
		d[i] = h.counts[i] - before.counts[i]
		total += d[i]
	}
	if total == 0 {
		return 0, 0, false
	}
	at := func(i int) time.Duration { return time.Duration(max(h.buckets[i], 0) * float64(time.Second)) }
	var seen uint64
	found := false
	for i, n := range d {
		seen += n
		if n > 0 {
			most = at(i)
		}
		if !found && seen*100 >= total*99 {
			p99, found = at(i), true
		}
	}
	return p99, most, true
}

// prefillActions is how many actions the prefilled variant loads first.
const prefillActions = 300_000

// spinSink keeps spin's work from being optimized away.
var spinSink atomic.Uint64

// writePathTenants creates tenants tenants in db and returns their IDs.
// With prefill > 0 it first bulk-loads that many actions over them and
// checkpoints: a store that has served a while, whose indexes no longer
// fit the write connection's cache as an empty one's do.
func writePathTenants(b *testing.B, db *sqlite.DB, tenants, prefill int) []string {
	ctx := b.Context()
	ids := make([]string, tenants)
	for i := range ids {
		ids[i] = fmt.Sprintf("tenant-%03d", i)
		if err := benchTenant(ctx, db, ids[i]); err != nil {
			b.Fatal(err)
		}
	}
	if prefill > 0 {
		old := slices.Collect(storetest.GenerateActions(storetest.ActionMix{TenantID: "x", N: prefill, Since: time.Now().Add(-48 * time.Hour), Until: time.Now().Add(-time.Hour), Agents: 10, Policies: 5, Seed: 17}))
		for i := range old {
			old[i].TenantID = ids[i%len(ids)]
			old[i].ID = fmt.Sprintf("act_old_%08d", i)
		}
		if n, err := db.BulkInsertActions(ctx, slices.Values(old)); err != nil || n != len(old) {
			b.Fatalf("prefill: %d, %v", n, err)
		}
		if err := db.ExecRaw(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			b.Fatal(err)
		}
	}
	return ids
}

// writePathActions returns n actions of the last hour spread at random
// over the tenants ids, named as pdp/lifecycle names them (milliseconds,
// then 48 random bits); the same ones on every run.
func writePathActions(n int, ids []string) []store.ActionRecord {
	r := rand.New(rand.NewPCG(7, 11))
	recs := slices.Collect(storetest.GenerateActions(storetest.ActionMix{TenantID: "x", N: n, Since: time.Now().Add(-time.Hour), Until: time.Now(), Agents: 10, Policies: 5, Seed: 3}))
	for i := range recs {
		recs[i].TenantID = ids[r.IntN(len(ids))]
		recs[i].ID = fmt.Sprintf("act_%012x%012x", recs[i].CreatedAt.UnixMilli(), r.Uint64()>>16)
	}
	return recs
}

// spin spends CPU: rounds of a cheap hash.
func spin(rounds int) {
	h := uint64(14695981039346656037)
	for i := range rounds {
		h = (h ^ uint64(i)) * 1099511628211
	}
	if rounds > 0 {
		spinSink.Add(h)
	}
}

// spinRounds is how many rounds of spin take d of CPU on this machine
// (the fastest of a few tries, the others interrupted).
func spinRounds(b *testing.B, d time.Duration) int {
	const probe = 1 << 22
	best := time.Duration(1 << 62)
	for range 5 {
		start := processCPU(b)
		spin(probe)
		best = min(best, processCPU(b)-start)
	}
	return int(float64(probe) * float64(d) / float64(max(best, 1)))
}

// ioCounts are the process's read and write system calls so far.
type ioCounts struct{ reads, writes int64 }

// processIO reads /proc/self/io (Linux); ok is false elsewhere.
func processIO() (c ioCounts, ok bool) {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return c, false
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		k, v, _ := strings.Cut(line, ": ")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "syscr":
			c.reads = n
		case "syscw":
			c.writes = n
		}
	}
	return c, true
}

func fileSize(b testing.TB, path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}

// processCPU is the process's user and system CPU time so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// processCPUSplit is the process's user and system CPU time so far.
func processCPUSplit(b *testing.B) (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// BenchmarkTenantByKeyHash is the key lookup every authenticated request
// makes.
func BenchmarkTenantByKeyHash(b *testing.B) {
	ctx := b.Context()
	db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "g.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := benchTenant(ctx, db, "acme"); err != nil {
		b.Fatal(err)
	}
	const secret = "nram_bench_secret_0123456789"
	if _, err := db.CreateAPIKey(ctx, store.OwnerKey(store.APIKey{ID: "key_1", TenantID: "acme", Hash: store.HashAPIKey(secret), Prefix: store.KeyPrefix(secret)})); err != nil {
		b.Fatal(err)
	}
	hash := store.HashAPIKey(secret)
	b.ReportAllocs()
	for b.Loop() {
		if tn, _, err := db.TenantByKeyHash(ctx, hash); err != nil || tn.ID != "acme" {
			b.Fatal(tn, err)
		}
	}
}

// benchVerifyLoop verifies tenant acme's chain b.N times, checks the last
// answer is valid over want entries, and reports the CPU per verification.
func benchVerifyLoop(b *testing.B, db *sqlite.DB, want int) {
	var v store.AuditVerification
	cpu := processCPU(b)
	for b.Loop() {
		var err error
		if v, err = db.VerifyAudit(b.Context(), "acme"); err != nil {
			b.Fatal(err)
		}
	}
	if !v.Valid || v.Entries != want {
		b.Fatalf("verification %+v", v)
	}
	b.ReportMetric(float64((processCPU(b)-cpu).Milliseconds())/float64(b.N), "cpu-ms/op")
}
