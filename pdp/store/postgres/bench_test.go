package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/postgres"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/storetest"
)

// The benchmarks run against the server pgtest names, each in a fresh
// database dropped afterwards; the 1M-row ones build it once per run and
// share it between their sub-benchmarks.

func benchOpen(b *testing.B, u string, opts ...postgres.Option) *postgres.DB {
	b.Helper()
	db, err := postgres.Open(b.Context(), u, opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	return db
}

func benchTenant(ctx context.Context, db *postgres.DB, id string) error {
	_, err := db.CreateTenant(ctx, store.Tenant{ID: id, Tier: store.TierEnterprise, Mode: pdp.ModeEnforcement})
	return err
}

// BenchmarkAppendAudit measures durable appends per second with N
// concurrent appenders over 3 tenants, group committed, and without
// batching (maxBatch 1: one transaction and WAL flush per append) for
// comparison; handles=2 splits the appenders over two DBs on one
// database, as two replicas, which serialize on the tenants' heads.
//
//	go test ./pdp/store/postgres -run '^$' -bench AppendAudit -benchtime 5000x
func BenchmarkAppendAudit(b *testing.B) {
	for _, c := range []struct{ maxBatch, handles int }{{postgres.DefaultMaxBatch, 1}, {postgres.DefaultMaxBatch, 2}, {1, 1}} {
		for _, writers := range []int{1, 8, 32, 128} {
			b.Run(fmt.Sprintf("batch=%d/handles=%d/writers=%d", c.maxBatch, c.handles, writers), func(b *testing.B) {
				ctx := b.Context()
				u := newDatabase(b)
				var dbs []*postgres.DB
				for range c.handles {
					dbs = append(dbs, benchOpen(b, u, postgres.WithMaxBatch(c.maxBatch)))
				}
				tenants := []string{"t0", "t1", "t2"}
				for _, tn := range tenants {
					if err := benchTenant(ctx, dbs[0], tn); err != nil {
						b.Fatal(err)
					}
				}
				ev := store.AuditEvent{Event: store.EventActionExecuted, Metadata: []byte(`{"action_id":"act_0123456789abcdef01234567","agent_id":"billing-bot","risk_score":0.68}`)}
				var before []store.CommitStats
				for _, db := range dbs {
					before = append(before, db.CommitStats())
				}
				var next atomic.Int64
				b.ResetTimer()
				var wg sync.WaitGroup
				for w := range writers {
					db := dbs[w%len(dbs)]
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
				var ops, batches int64
				for i, db := range dbs {
					after := db.CommitStats()
					ops += after.Ops - before[i].Ops
					batches += after.Batches - before[i].Batches
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
				b.ReportMetric(float64(ops)/float64(max(batches, 1)), "ops/batch")
			})
		}
	}
}

// BenchmarkInsertActionAudited measures actions recorded with their
// evaluation entries, as POST /v1/actions does, with 64 concurrent callers.
//
//	go test ./pdp/store/postgres -run '^$' -bench InsertActionAudited -benchtime 20000x
func BenchmarkInsertActionAudited(b *testing.B) {
	ctx := b.Context()
	db := benchOpen(b, newDatabase(b))
	if err := benchTenant(ctx, db, "acme"); err != nil {
		b.Fatal(err)
	}
	recs := slices.Collect(storetest.GenerateActions(storetest.ActionMix{TenantID: "acme", N: b.N, Since: time.Now().Add(-time.Hour), Until: time.Now(), Agents: 10, Policies: 5, Seed: 3}))
	before := db.CommitStats()
	b.ResetTimer()
	storetest.InsertConcurrently(ctx, b, db, recs, 64)
	b.StopTimer()
	after := db.CommitStats()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "actions/s")
	b.ReportMetric(float64(after.Ops-before.Ops)/float64(max(after.Batches-before.Batches, 1)), "ops/batch")
}

// BenchmarkVerifyAudit1M recomputes a chain of 1,000,000 entries, streamed
// over 1, 2 and 4 connections.
//
//	go test ./pdp/store/postgres -run '^$' -bench VerifyAudit1M -benchtime 3x
func BenchmarkVerifyAudit1M(b *testing.B) {
	const entries, perCall = 1_000_000, 10_000
	ctx := b.Context()
	u := newDatabase(b)
	build := benchOpen(b, u)
	start := time.Now()
	if err := benchTenant(ctx, build, "acme"); err != nil {
		b.Fatal(err)
	}
	evs := make([]store.AuditEvent, perCall)
	at := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < entries; i += perCall {
		for j := range evs {
			n := i + j
			evs[j] = store.AuditEvent{Event: store.EventActionExecuted, Timestamp: at.Add(time.Duration(n) * time.Second),
				Metadata: fmt.Appendf(nil, `{"action_id":"act_%024x","agent_id":"agent-%03d","risk_score":0.25}`, n, n%50)}
		}
		if _, err := build.AppendAudit(ctx, "acme", evs...); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("built a chain of %d entries in %v", entries, time.Since(start).Round(time.Millisecond))
	_ = build.ExecRaw(ctx, `VACUUM ANALYZE audit_log`)
	for _, workers := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			db := benchOpen(b, u, postgres.WithMaxConns(8), postgres.WithVerifyParallelism(workers, 50_000))
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

// BenchmarkDashboard1M computes dashboards over 1,000,000 evaluations
// spread over the 30 days before until (not on an hour boundary, so the
// edge scans run too), loaded with BulkInsertActions (COPY).
//
//	go test ./pdp/store/postgres -run '^$' -bench Dashboard1M -benchtime 50x
func BenchmarkDashboard1M(b *testing.B) {
	const n = 1_000_000
	ctx := b.Context()
	until := time.Date(2025, 7, 1, 13, 37, 42, 123456000, time.UTC)
	u := newDatabase(b)
	db := benchOpen(b, u)
	if err := benchTenant(ctx, db, "acme"); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	got, err := db.BulkInsertActions(ctx, storetest.GenerateActions(storetest.DefaultMix("acme", n, until)))
	if err != nil {
		b.Fatal(err)
	}
	if got != n {
		b.Fatalf("loaded %d actions, want %d", got, n)
	}
	b.Logf("bulk insert (COPY): %d actions in %v", n, time.Since(start).Round(time.Millisecond))
	// What autovacuum would do shortly after a load this size: statistics,
	// and the visibility map index-only scans rely on.
	if err := db.ExecRaw(ctx, `VACUUM ANALYZE actions`); err != nil {
		b.Fatal(err)
	}
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
		var took []time.Duration
		for b.Loop() {
			start := time.Now()
			if _, _, err := db.AgentViolations(b.Context(), "acme", "agent-007", store.ViolationQuery{Limit: 50, Since: until.Add(-30 * 24 * time.Hour), Until: until}); err != nil {
				b.Fatal(err)
			}
			took = append(took, time.Since(start))
		}
		slices.Sort(took)
		b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	})
}
