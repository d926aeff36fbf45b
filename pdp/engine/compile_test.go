package engine

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/test/scale"
)

// TestCompileOutlivesCancelledCaller: the first caller to miss starts the
// compile; when its context is cancelled mid-compile it returns its own
// context's error, and the compile finishes for a second caller who was
// waiting on it — once, not twice.
func TestCompileOutlivesCancelledCaller(t *testing.T) {
	e := newEngine(t, Config{})
	entered := make(chan struct{}, 4)
	release := make(chan struct{})
	e.compileHook = func() {
		entered <- struct{}{}
		<-release
	}
	if err := e.SetTenant(seedTenant("acme", 1)); err != nil {
		t.Fatal(err)
	}

	ctxA, cancelA := context.WithCancel(t.Context())
	errA := make(chan error, 1)
	go func() {
		_, err := e.Evaluate(ctxA, seedAction)
		errA <- err
	}()
	select {
	case <-entered: // A's compile holds the unit
	case <-time.After(30 * time.Second):
		t.Fatal("the first caller's compile never started")
	}
	resB := make(chan error, 1)
	go func() {
		_, err := e.Evaluate(t.Context(), seedAction)
		resB <- err
	}()
	cancelA()
	select {
	case err := <-errA:
		if !errors.Is(err, context.Canceled) || !errors.Is(err, pdp.ErrEvaluationFailed) {
			t.Fatalf("cancelled caller: %v; want its context's error, as a failed evaluation", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the cancelled caller kept waiting for the compile")
	}
	close(release)
	select {
	case err := <-resB:
		if err != nil {
			t.Fatalf("second caller failed with the first one's cancellation: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("second caller never got its decision")
	}
	if n := len(entered); n != 0 {
		t.Errorf("%d more compiles of the same revision; want the first one shared", n)
	}
	if st := e.Stats(); st.Compiles != 1 {
		t.Errorf("Compiles = %d, want 1", st.Compiles)
	}
	// And the revision is cached: a third decision compiles nothing.
	evaluate(t, e, seedAction)
	if st := e.Stats(); st.Compiles != 1 || st.Hits == 0 {
		t.Errorf("after the shared compile: %+v", st)
	}
}

// TestCompilePoolBounds: with one compile worker, two tenants compiling at
// once run one after the other, and a caller waiting for a worker gives up
// with its context.
func TestCompilePoolBounds(t *testing.T) {
	e := newEngine(t, Config{CompileWorkers: 1})
	var running, most atomic.Int32
	entered := make(chan struct{}, 4)
	release := make(chan struct{})
	e.compileHook = func() {
		n := running.Add(1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		entered <- struct{}{}
		<-release
		running.Add(-1)
	}
	for _, id := range []string{"a", "b", "c"} {
		if err := e.SetTenant(seedTenant(id, 1)); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, 2)
	for _, id := range []string{"a", "b"} {
		go func() { errs <- e.Warm(context.Background(), id) }()
	}
	<-entered
	// The other tenant waits for the one worker; a caller of its own
	// with a short deadline gives up without a compile.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	c := seedAction
	c.TenantID = "c"
	_, err := e.Evaluate(ctx, c)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, pdp.ErrEvaluationFailed) {
		t.Fatalf("a decision waiting for a busy pool past its deadline: %v", err)
	}
	close(release)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// c's compile, which its caller gave up on, still completes.
	evaluate(t, e, c)
	if m := most.Load(); m != 1 {
		t.Errorf("%d compiles ran at once with one worker", m)
	}
}

// expensiveTenant is a tenant at the adapter's bounds: its tenant-wide
// rules together cost as much as adapter.MaxTenantCost allows, every one
// accepted by validation, and every one runs on expensiveAction.
func expensiveTenant(t *testing.T, id string) pdp.TenantPolicies {
	t.Helper()
	pattern := func(i int) string { return fmt.Sprintf(`x%d[a-z ]{0,40}[0-9]{1,8}`, i%10) }
	a, err := adapter.AnalyzePattern(pattern(0))
	if err != nil || a.Cost > adapter.MaxRuleCost {
		t.Fatalf("AnalyzePattern: %+v, %v: want a pattern within the rule bound", a, err)
	}
	p := pdp.Policy{Name: "costly", StepTypes: []string{"ACTION"}, Enabled: true, Version: 1}
	for i := 0; (i+1)*a.Cost <= adapter.MaxTenantCost && i < 20; i++ {
		p.Rules = append(p.Rules, pdp.Rule{Match: pattern(i), Severity: pdp.SeverityLow, OnViolation: pdp.OutcomeWarn, Confidence: 0.85})
	}
	if err := adapter.Validate(&p); err != nil {
		t.Fatalf("the expensive policy must be accepted: %v", err)
	}
	if err := adapter.CheckTenantWrite("rules", &p, adapter.PolicyCost(&p), nil); err != nil {
		t.Fatalf("the expensive policy must be within the tenant bound: %v", err)
	}
	return pdp.TenantPolicies{TenantID: id, Revision: 1, Mode: pdp.ModeEnforcement, Policies: []pdp.Policy{p}}
}

// expensiveAction is a 4 KiB text that makes every expensiveTenant rule
// run its regex over all of it.
var expensiveAction = pdp.Action{TenantID: "hog", Name: "http.post", Params: map[string]any{
	"body": strings.Repeat("x0 abc x1 def x2 ghi x3 jkl x4 mno x5 pqr x6 stu x7 vwx x8 yz x9 ", 70)[:adapter.MaxActionTextBytes-200],
}}

// TestFairSlotsBurst: one tenant sends a burst of expensive decisions
// (every rule at the adapter's cost bounds, 4 KiB texts) from many
// goroutines at once; another tenant's decisions, made one after the
// other meanwhile, all succeed — none is turned into ErrOverloaded —
// while the burst itself is refused past its share. It measures the
// victim's success, not timings (the timeout is generous: it is not
// under test).
func TestFairSlotsBurst(t *testing.T) {
	e := newEngine(t, Config{MaxConcurrent: 4, MaxConcurrentPerTenant: 2, Timeout: time.Minute})
	// Past its share the burst is refused at once, as under sustained
	// overload, instead of waiting (the waiting is TestSlotsWait's): with a
	// one-minute timeout its waits would rarely run out, and the test
	// would not know the burst went past its share.
	e.slots.maxWaiters = 0
	if err := e.SetTenant(expensiveTenant(t, "hog")); err != nil {
		t.Fatal(err)
	}
	if err := e.SetTenant(seedTenant("acme", 1)); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"hog", "acme"} {
		if err := e.Warm(t.Context(), id); err != nil {
			t.Fatal(err)
		}
	}
	if d := evaluate(t, e, expensiveAction); len(d.Warnings) == 0 {
		t.Fatalf("the expensive action fires no rule: %+v", d)
	}

	ctx, stop := context.WithCancel(t.Context())
	var refused, decided atomic.Int64
	var wg sync.WaitGroup
	for range 12 {
		wg.Go(func() {
			for ctx.Err() == nil {
				_, err := e.Evaluate(ctx, expensiveAction)
				switch {
				case errors.Is(err, ErrOverloaded):
					refused.Add(1)
					runtime.Gosched()
				case err == nil:
					decided.Add(1)
				case ctx.Err() == nil:
					t.Errorf("burst: %v", err)
				}
			}
		})
	}
	// The victim starts once the burst holds its share.
	deadline := time.Now().Add(time.Minute)
	for refused.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	// At least victimDecisions, and on until the burst has had some of
	// its own decided too (the victim's are answered in microseconds, an
	// expensive one can take longer than 40 of them on a busy machine),
	// so that the victim is shown to decide while the burst is served.
	const victimDecisions = 40
	var failed []error
	victims := 0
	for ; victims < victimDecisions || decided.Load() == 0 && time.Now().Before(deadline); victims++ {
		if _, err := e.Evaluate(t.Context(), seedAction); err != nil {
			failed = append(failed, err)
		}
	}
	stop()
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d of %d decisions of the other tenant failed during the burst; first: %v", len(failed), victims, failed[0])
	}
	if refused.Load() == 0 || decided.Load() == 0 {
		t.Fatalf("the burst was never refused past its share (%d refused, %d decided): the test proves nothing", refused.Load(), decided.Load())
	}
	t.Logf("victim: %d/%d decided; burst: %d decided, %d refused past its share", victims, victims, decided.Load(), refused.Load())
}

// TestCompileBudget: CompileCost predicts a tenant's compile from its
// policies' data (policyCost); a tenant over Config.CompileBudget is refused with a
// 400-shaped error naming the budget, and the attacker-sized tenant (60
// policies × 100 rules) is far over the default budget, while 25 policies
// of 3 rules are well within it.
func TestCompileBudget(t *testing.T) {
	e := newEngine(t, Config{})
	normal := scale.Generate("n", 1, 1, 25, 3, 0, 0).Tenants[0]
	cost, err := e.CompileCost(normal.TenantID, normal.Policies)
	if err != nil || cost <= 0 || cost > DefaultCompileBudget/4 {
		t.Fatalf("25 policies × 3 rules: cost %d, %v; want well within %d", cost, err, DefaultCompileBudget)
	}
	// Costs measured for the published tenant are reused: the same answer.
	if err := e.SetTenant(normal); err != nil {
		t.Fatal(err)
	}
	if err := e.Warm(t.Context(), normal.TenantID); err != nil {
		t.Fatal(err)
	}
	if again, err := e.CompileCost(normal.TenantID, normal.Policies); again != cost || err != nil {
		t.Errorf("cost with cached translations %d, %v; want %d", again, err, cost)
	}
	// Disabled policies cost nothing.
	off := append([]pdp.Policy(nil), normal.Policies...)
	for i := range off {
		off[i].Enabled = false
	}
	if c, err := e.CompileCost(normal.TenantID, off); c != 0 || err != nil {
		t.Errorf("all disabled: %d, %v", c, err)
	}

	attacker := scale.Generate("a", 1, 1, 60, 100, 0, 0).Tenants[0]
	cost, err = e.CompileCost("attacker", attacker.Policies)
	var ve *pdp.ValidationError
	if !errors.Is(err, ErrCompileBudget) || !errors.As(err, &ve) || ve.Field != "rules" {
		t.Fatalf("60 policies × 100 rules: cost %d, %v; want a ValidationError wrapping ErrCompileBudget", cost, err)
	}
	if cost < 5*DefaultCompileBudget || !strings.Contains(err.Error(), fmt.Sprint(DefaultCompileBudget)) || !strings.Contains(err.Error(), "compile budget") {
		t.Errorf("attacker cost %d; error %q should name the budget", cost, err)
	}

	small := newEngine(t, Config{CompileBudget: 100})
	if _, err := small.CompileCost("acme", seedTenant("acme", 1).Policies); !errors.Is(err, ErrCompileBudget) {
		t.Errorf("a budget of 100 units: %v", err)
	}
	// A draft over the budget is refused before it compiles.
	if err := small.SetTenant(pdp.TenantPolicies{TenantID: "acme", Revision: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := small.EvaluateDraft(t.Context(), seedAction, seedTenant("acme", 1)); !errors.Is(err, ErrCompileBudget) {
		t.Errorf("draft over the budget: %v", err)
	}
	if st := small.Stats(); st.Compiles != 0 {
		t.Errorf("%d compiles for refused work", st.Compiles)
	}
}

// TestDependenciesPointOneWay: the engine does not import package bundles
// (which reads, verifies and serves bundles); it takes a loaded bundle as
// bundles/loaded's type.
func TestDependenciesPointOneWay(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	out, err := exec.CommandContext(t.Context(), gobin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "github.com/gatehouse-pdp/gatehouse/bundles" || strings.HasPrefix(dep, "github.com/gatehouse-pdp/gatehouse/pdp/") && dep != "github.com/gatehouse-pdp/gatehouse/pdp/engine" {
			t.Errorf("the engine depends on %s", dep)
		}
	}
}
