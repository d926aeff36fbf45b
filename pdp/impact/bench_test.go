package impact_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
	"github.com/gatehouse-pdp/gatehouse/pdp/impact"
	"github.com/gatehouse-pdp/gatehouse/pdp/ratelimit"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/sqlite"
	"github.com/gatehouse-pdp/gatehouse/test/scale"
)

var benchActions = flag.Int("impact.actions", 100_000, "recorded actions the impact benchmarks replay")

// world is one tenant of scale M (5 tenant-wide policies of 3 rules, 2
// overrides for 2 of its 10 agents) with benchActions recorded actions
// of M's corpus over the last 7 days, built once per process.
type world struct {
	db      *sqlite.DB
	eng     *engine.Engine
	tenant  string
	until   time.Time
	actions []pdp.Action
	draft   pdp.Policy
}

var (
	worldOnce sync.Once
	theWorld  *world
	worldErr  error
)

func benchWorld(b *testing.B) *world {
	b.Helper()
	worldOnce.Do(func() { theWorld, worldErr = buildWorld(b.TempDir()) })
	if worldErr != nil {
		b.Fatal(worldErr)
	}
	return theWorld
}

func buildWorld(dir string) (*world, error) {
	ctx := context_()
	m := scale.M()
	tp := m.Tenants[0]
	db, err := sqlite.Open(ctx, filepath.Join(dir, "impact.db"))
	if err != nil {
		return nil, err
	}
	if _, err := db.CreateTenant(ctx, store.Tenant{ID: tp.TenantID, Name: tp.TenantID, Tier: store.TierEnterprise, Mode: pdp.ModeEnforcement}); err != nil {
		return nil, err
	}
	for _, p := range tp.Policies {
		if _, err := db.PutPolicy(ctx, store.PutPolicyRequest{TenantID: tp.TenantID, Policy: p, Limit: store.Unlimited}); err != nil {
			return nil, err
		}
	}
	eng, err := engine.New(engine.Config{Timeout: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	reg, err := registry.New(db, eng)
	if err != nil {
		return nil, err
	}
	if err := reg.Load(ctx); err != nil {
		return nil, err
	}
	w := &world{db: db, eng: eng, tenant: tp.TenantID, until: time.Date(2026, 3, 9, 12, 0, 0, 0, time.UTC)}
	r := rand.New(rand.NewPCG(3, 3))
	n := *benchActions
	step := 7 * 24 * time.Hour / time.Duration(n+1)
	recs := func(yield func(store.ActionRecord) bool) {
		for i := range n {
			a := scale.Action(r, tp.TenantID, fmt.Sprintf("agent-%02d", r.IntN(10)))
			if len(w.actions) < 2000 {
				w.actions = append(w.actions, a)
			}
			params, _ := json.Marshal(a.Params)
			if !yield(store.ActionRecord{ID: fmt.Sprintf("act_%024x", i), TenantID: tp.TenantID, AgentID: a.AgentID, Action: a.Name,
				Params: params, StepType: a.StepType, Status: pdp.StatusAllowed, CreatedAt: w.until.Add(-time.Duration(i+1) * step)}) {
				return
			}
		}
	}
	if _, err := db.BulkInsertActions(ctx, recs); err != nil {
		return nil, err
	}
	// The draft: a new tenant-wide policy blocking e-mail addresses and
	// external shares, which some of M's sentences hold.
	w.draft = pdp.Policy{Name: "pii_tightened", StepTypes: []string{"ACTION"}, WhitelistedDomains: []string{}, Enabled: true,
		Rules: []pdp.Rule{{Match: "(alice@example|external partner)", Severity: pdp.SeverityCritical, OnViolation: pdp.OutcomeBlock,
			Reason: "tightened: {match}", Confidence: 0.85}}}
	return w, nil
}

// BenchmarkImpactReplay replays every recorded action of the world
// through its policies and the draft, each compiled once; it reports
// replayed actions per second and the time to the first result.
func BenchmarkImpactReplay(b *testing.B) {
	w := benchWorld(b)
	svc := impact.New(w.db, w.eng, impact.WithRate(ratelimit.Limit{}), impact.WithClock(time.Now))
	var res *impact.Result
	var cpu time.Duration
	for b.Loop() {
		c0 := cpuTime()
		req := impact.Request{TenantID: w.tenant, Change: impact.Change{Policy: &w.draft},
			Since: w.until.Add(-8 * 24 * time.Hour), Until: w.until, Limit: impact.MaxLimit, Budget: time.Hour}
		var err error
		if res, err = svc.Run(b.Context(), req); err != nil {
			b.Fatal(err)
		}
		cpu = cpuTime() - c0
		if res.Evaluated != *benchActions || res.Partial {
			b.Fatalf("evaluated %d of %d, partial %v", res.Evaluated, *benchActions, res.Partial)
		}
	}
	b.ReportMetric(float64(res.Evaluated)/(res.DurationMS/1000), "actions/s")
	b.ReportMetric(res.FirstResultMS, "first_result_ms")
	b.ReportMetric(res.CompileMS, "compile_ms")
	b.ReportMetric(float64(res.Changed), "changed")
	b.ReportMetric(float64(cpu.Microseconds())/float64(res.Evaluated), "cpu-µs/action")
}

// BenchmarkEvaluateBaseline is the live path on the same tenant and
// corpus, one goroutine: Evaluate (prepared query cached) over 2,000 of
// the actions per iteration. A replay decides each action twice.
func BenchmarkEvaluateBaseline(b *testing.B) {
	w := benchWorld(b)
	for _, a := range w.actions[:10] { // compile outside the measurement
		if _, err := w.eng.Evaluate(b.Context(), a); err != nil {
			b.Fatal(err)
		}
	}
	var n int
	var wall, cpu time.Duration
	for b.Loop() {
		t0, c0 := time.Now(), cpuTime()
		for _, a := range w.actions {
			if _, err := w.eng.Evaluate(b.Context(), a); err != nil {
				b.Fatal(err)
			}
		}
		wall, cpu, n = wall+time.Since(t0), cpu+cpuTime()-c0, n+len(w.actions)
	}
	b.ReportMetric(float64(n)/wall.Seconds(), "decisions/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/decision")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func context_() context.Context { return context.Background() }
