package engine

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/test/scale"
)

// recorder is an Observer that remembers what it was told.
type recorder struct {
	mu        sync.Mutex
	decisions []observed
	compiles  []time.Duration
}

type observed struct {
	tenant string
	d      *pdp.Decision
	err    error
	took   time.Duration
}

func (r *recorder) ObserveDecision(tenantID string, d *pdp.Decision, err error, took time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.decisions = append(r.decisions, observed{tenantID, d, err, took})
}

func (r *recorder) ObserveCompile(took time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.compiles = append(r.compiles, took)
}

// TestObserver: one observation per Evaluate — the decision, or the error
// of a failed one — and one per compilation, agreeing with Stats.
func TestObserver(t *testing.T) {
	rec := &recorder{}
	e := newEngine(t, Config{Timeout: 5 * time.Second}, WithObserver(rec))
	e.SetTenant(pdp.TenantPolicies{TenantID: "acme", Revision: 1, Mode: pdp.ModeEnforcement, Policies: scale.SeedPolicies()})

	evaluate(t, e, seedAction)                               // miss: compiles
	blocked := evaluate(t, e, as(seedAction, "billing-bot")) // its own entry: compiles
	evaluate(t, e, seedAction)                               // hit
	_, err := e.Evaluate(t.Context(), pdp.Action{TenantID: "nobody", Name: "x"})
	if !errors.Is(err, pdp.ErrEvaluationFailed) {
		t.Fatalf("unknown tenant: %v", err)
	}

	if len(rec.decisions) != 4 {
		t.Fatalf("%d decisions observed, want 4", len(rec.decisions))
	}
	if o := rec.decisions[1]; o.tenant != "acme" || o.d != blocked || o.err != nil || o.took <= 0 {
		t.Errorf("second observation %+v: want acme's blocked decision and a duration", o)
	}
	if o := rec.decisions[3]; o.tenant != "nobody" || o.d != nil || !errors.Is(o.err, pdp.ErrEvaluationFailed) {
		t.Errorf("failed evaluation observed as %+v", o)
	}
	st := e.Stats()
	if uint64(len(rec.compiles)) != st.Compiles || st.Compiles != 2 {
		t.Errorf("%d compiles observed, Stats has %d, want 2", len(rec.compiles), st.Compiles)
	}
	var sum time.Duration
	for _, d := range rec.compiles {
		sum += d
	}
	if sum != st.CompileTime {
		t.Errorf("observed compile time %v, Stats has %v", sum, st.CompileTime)
	}
}

// TestSlots: the bound admits up to its size, refuses past it at once
// with an error that still reads as a failed evaluation, and frees a slot
// on release; no bound admits everything.
func TestSlots(t *testing.T) {
	s := newSlots(2, -1)
	r1, err1 := s.admit(context.Background(), "a")
	r2, err2 := s.admit(context.Background(), "a")
	if err1 != nil || err2 != nil {
		t.Fatalf("within the bound: %v %v", err1, err2)
	}
	_, err := s.admit(context.Background(), "b")
	if !errors.Is(err, ErrOverloaded) || !errors.Is(err, pdp.ErrEvaluationFailed) {
		t.Fatalf("past the bound: %v; want ErrOverloaded and pdp.ErrEvaluationFailed", err)
	}
	r1()
	r3, err := s.admit(context.Background(), "a")
	if err != nil {
		t.Fatalf("after a release: %v", err)
	}
	r2()
	r3()
	var none = newSlots(-1, 1)
	for range 100 {
		if _, err := none.admit(context.Background(), "a"); err != nil {
			t.Fatal(err)
		}
	}
	if n := (Config{}).Defaults().MaxConcurrent; n != DefaultMaxConcurrent() || n < 4 {
		t.Errorf("default bound %d", n)
	}
	if err := (Config{MaxConcurrent: -2}).Defaults().Validate(); err == nil {
		t.Error("MaxConcurrent -2 accepted")
	}
}

// TestSlotsPerTenant: one tenant holds at most its share; the slots it
// cannot take stay free for other tenants, and a release gives the share
// back.
func TestSlotsPerTenant(t *testing.T) {
	s := newSlots(4, 2)
	var held []func()
	for range 2 {
		r, err := s.admit(context.Background(), "hog")
		if err != nil {
			t.Fatalf("within the share: %v", err)
		}
		held = append(held, r)
	}
	if _, err := s.admit(context.Background(), "hog"); !errors.Is(err, ErrOverloaded) || !errors.Is(err, pdp.ErrEvaluationFailed) {
		t.Fatalf("past the share: %v; want ErrOverloaded", err)
	}
	for _, tenant := range []string{"a", "b"} {
		r, err := s.admit(context.Background(), tenant)
		if err != nil {
			t.Fatalf("tenant %s refused while the hog holds its share: %v", tenant, err)
		}
		held = append(held, r)
	}
	if _, err := s.admit(context.Background(), "c"); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("past the total: %v; want ErrOverloaded", err)
	}
	held[0]()
	if r, err := s.admit(context.Background(), "hog"); err != nil {
		t.Fatalf("after a release: %v", err)
	} else {
		r()
	}
	for _, r := range held[1:] {
		r()
	}
	if s.running != 0 || len(s.byTenant) != 0 {
		t.Fatalf("after every release: running %d, byTenant %v", s.running, s.byTenant)
	}
	if d := (Config{MaxConcurrent: 8}).Defaults(); d.MaxConcurrentPerTenant != 4 {
		t.Errorf("default share of 8 slots: %d, want 4", d.MaxConcurrentPerTenant)
	}
	if d := (Config{MaxConcurrent: 1}).Defaults(); d.MaxConcurrentPerTenant != 1 {
		t.Errorf("default share of 1 slot: %d, want 1", d.MaxConcurrentPerTenant)
	}
}

// TestSlotsWait: with a wait, an evaluation past its tenant's share (or
// past the total) waits for a release instead of failing at once, gives up
// with ErrOverloaded when none comes in time or its context ends, and the
// number of waiters is bounded.
func TestSlotsWait(t *testing.T) {
	s := newSlots(2, 1).withWait(time.Minute)
	hold, err := s.admit(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		r, err := s.admit(context.Background(), "a")
		if err == nil {
			r()
		}
		got <- err
	}()
	waitFor(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.waiting == 1 })
	// Another tenant is not held up by the waiting one.
	if r, err := s.admit(context.Background(), "b"); err != nil {
		t.Fatalf("tenant b: %v", err)
	} else {
		r()
	}
	hold()
	if err := <-got; err != nil {
		t.Fatalf("the waiter after a release: %v", err)
	}

	// No release: the wait ends with ErrOverloaded (context or timer).
	hold, _ = s.admit(context.Background(), "a")
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _, err := s.admit(ctx, "a"); got <- err }()
	waitFor(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.waiting == 1 })
	cancel()
	if err := <-got; !errors.Is(err, ErrOverloaded) || !errors.Is(err, pdp.ErrEvaluationFailed) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	short := newSlots(1, -1).withWait(time.Millisecond)
	r, _ := short.admit(context.Background(), "a")
	if _, err := short.admit(context.Background(), "a"); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("after the wait: %v; want ErrOverloaded", err)
	}
	r()
	hold()

	// At most maxWaiters wait; the next is refused at once.
	s.maxWaiters = 1
	hold, _ = s.admit(context.Background(), "a")
	ctx, cancel = context.WithCancel(context.Background())
	go func() { _, err := s.admit(ctx, "a"); got <- err }()
	waitFor(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.waiting == 1 })
	start := time.Now()
	if _, err := s.admit(context.Background(), "a"); !errors.Is(err, ErrOverloaded) || time.Since(start) > 30*time.Second {
		t.Fatalf("past maxWaiters: %v after %v; want ErrOverloaded at once", err, time.Since(start))
	}
	cancel()
	<-got
	hold()
	if s.running != 0 || s.waiting != 0 || len(s.byTenant) != 0 {
		t.Fatalf("after every release: running %d, waiting %d, byTenant %v", s.running, s.waiting, s.byTenant)
	}
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 30 s")
		}
		time.Sleep(time.Millisecond)
	}
}
