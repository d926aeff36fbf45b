package impact_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
	"github.com/gatehouse-pdp/gatehouse/pdp/impact"
	"github.com/gatehouse-pdp/gatehouse/pdp/ratelimit"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/sqlite"
)

type env struct {
	db     *sqlite.DB
	eng    *engine.Engine
	reg    *registry.Registry
	tenant string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "g.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	eng, err := engine.New(engine.Config{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(db, eng)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	tn, _, err := reg.CreateTenant(t.Context(), registry.NewTenant{Name: "acme", Tier: store.TierPro})
	if err != nil {
		t.Fatal(err)
	}
	return &env{db: db, eng: eng, reg: reg, tenant: tn.ID}
}

func (e *env) put(t *testing.T, doc string) {
	t.Helper()
	d, err := adapter.Decode([]byte(doc), adapter.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.Put(t.Context(), e.tenant, d); err != nil {
		t.Fatal(err)
	}
}

func policyOf(t *testing.T, doc string) *pdp.Policy {
	t.Helper()
	d, err := adapter.Decode([]byte(doc), adapter.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	p, err := d.Policy()
	if err != nil {
		t.Fatal(err)
	}
	return &p
}

// The recorded traffic: each action's text holds some of these words.
var (
	agents = []string{"billing-bot", "support-bot", "ops-bot", ""}
	texts  = []string{"hello there", "customer email attached", "ssn on file", "email and ssn both", "routine report"}
)

const (
	current = `{"name":"pii","rules":[{"match":"email","severity":"medium"}]}`
	// billing-bot's own copy overrides the tenant-wide one for it.
	billing = `{"name":"pii","agent_id":"billing-bot","rules":[{"match":"(email|ssn)","severity":"critical"}]}`
	// The draft tightens the tenant-wide copy.
	draft = `{"name":"pii","rules":[{"match":"email","severity":"critical"},{"match":"ssn","severity":"high"}]}`
)

// expected is the oracle, written from the policies' meaning rather than
// run through any engine: the status before and after the draft.
func expected(agent, text string) (before, after pdp.Status) {
	email, ssn := strings.Contains(text, "email"), strings.Contains(text, "ssn")
	if agent == "billing-bot" { // its override decides, unchanged by the draft
		if email || ssn {
			return pdp.StatusBlocked, pdp.StatusBlocked
		}
		return pdp.StatusAllowed, pdp.StatusAllowed
	}
	switch {
	case email: // medium warn → critical block (also with an ssn)
		return pdp.StatusAllowed, pdp.StatusBlocked
	case ssn: // nothing → high require_approval
		return pdp.StatusAllowed, pdp.StatusPendingReview
	}
	return pdp.StatusAllowed, pdp.StatusAllowed
}

func record(tenant string, i int, at time.Time) store.ActionRecord {
	agent, text := agents[i%len(agents)], texts[(i/len(agents))%len(texts)]
	params, _ := json.Marshal(map[string]any{"channel": "#general", "text": text})
	return store.ActionRecord{
		ID: fmt.Sprintf("act_%024x", i), TenantID: tenant, AgentID: agent, Action: "slack.send_message",
		Connector: "slack", Operation: "send_message", Params: params, StepType: pdp.DefaultStepType,
		Status: pdp.StatusAllowed, CreatedAt: at,
	}
}

// TestImpactKnownTransitions replays 10,000 recorded actions (plus some
// outside the window) and checks every count against the oracle.
func TestImpactKnownTransitions(t *testing.T) {
	e := newEnv(t)
	e.put(t, current)
	e.put(t, billing)
	until := time.Date(2026, 3, 9, 12, 0, 0, 0, time.UTC)
	const n, outside = 10_000, 500
	recs := func(yield func(store.ActionRecord) bool) {
		for i := range n + outside {
			at := until.Add(-time.Duration(i+1) * 50 * time.Second) // 10,000 × 50 s ≈ 5.8 days
			if i >= n {
				at = until.Add(-8 * 24 * time.Hour).Add(-time.Duration(i) * time.Second)
			}
			if !yield(record(e.tenant, i, at)) {
				return
			}
		}
	}
	if _, err := e.db.BulkInsertActions(t.Context(), iter.Seq[store.ActionRecord](recs)); err != nil {
		t.Fatal(err)
	}

	wantTr := map[string]int{}
	wantAgent := map[string]int{}
	changed := 0
	for i := range n {
		r := record(e.tenant, i, until)
		var text struct{ Text string }
		_ = json.Unmarshal(r.Params, &text)
		b, a := expected(r.AgentID, text.Text)
		if b != a {
			changed++
			wantTr[impact.Transition(b, a)]++
			wantAgent[r.AgentID]++
		}
	}

	svc := impact.New(e.db, e.eng, impact.WithClock(func() time.Time { return until }), impact.WithRate(ratelimit.Limit{}))
	req := impact.Request{TenantID: e.tenant, Change: impact.Change{Policy: policyOf(t, draft)}, Until: until, Limit: impact.MaxLimit, Budget: impact.MaxBudget}
	if err := svc.Normalize(&req); err != nil {
		t.Fatal(err)
	}
	res, err := svc.Run(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Evaluated != n || res.Failed != 0 || res.Partial || res.Truncated {
		t.Fatalf("evaluated %d, failed %d, partial %v, truncated %v; want %d, 0, false, false", res.Evaluated, res.Failed, res.Partial, res.Truncated, n)
	}
	if res.Changed != changed || fmt.Sprint(res.Transitions) != fmt.Sprint(wantTr) {
		t.Errorf("changed %d %v, want %d %v", res.Changed, res.Transitions, changed, wantTr)
	}
	for _, a := range res.ByAgent {
		if a.Changed != wantAgent[a.AgentID] {
			t.Errorf("agent %q: %d changed, want %d", a.AgentID, a.Changed, wantAgent[a.AgentID])
		}
		if a.Evaluated != n/len(agents) {
			t.Errorf("agent %q: %d evaluated, want %d", a.AgentID, a.Evaluated, n/len(agents))
		}
	}
	if len(res.ByAgent) != len(agents) || res.ByAgent[len(res.ByAgent)-1].AgentID != "billing-bot" {
		t.Errorf("by_agent: %+v (billing-bot, unchanged, last)", res.ByAgent)
	}
	if len(res.ByPolicy) != 1 || res.ByPolicy[0].Policy != "pii" || res.ByPolicy[0].Changed != changed {
		t.Errorf("by_policy: %+v", res.ByPolicy)
	}
	if len(res.Examples) != impact.MaxExamples {
		t.Fatalf("%d examples", len(res.Examples))
	}
	for _, ex := range res.Examples {
		var i int
		fmt.Sscanf(ex.ActionID, "act_%x", &i)
		r := record(e.tenant, i, until)
		var text struct{ Text string }
		_ = json.Unmarshal(r.Params, &text)
		if b, a := expected(r.AgentID, text.Text); ex.Before != b || ex.After != a || ex.AgentID != r.AgentID {
			t.Errorf("example %+v, want %s→%s", ex, b, a)
		}
	}
	if res.Examples[0].ActionID > res.Examples[1].ActionID {
		t.Errorf("examples are not newest first: %s, %s", res.Examples[0].ActionID, res.Examples[1].ActionID)
	}

	// The same window with a limit: the most recent actions, marked truncated.
	req.Limit = 1000
	res, err = svc.Run(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Evaluated != 1000 || !res.Truncated || res.Partial {
		t.Errorf("limited: evaluated %d, truncated %v, partial %v", res.Evaluated, res.Truncated, res.Partial)
	}

	// Disabling the tenant-wide copy takes its warnings away: no status changes.
	req.Limit = 2000
	req.Change = impact.Change{Disable: &impact.Ref{Name: "pii"}}
	res, err = svc.Run(t.Context(), req)
	if err != nil || res.Changed != 0 {
		t.Errorf("disable: %+v, %v", res, err)
	}
	// Disabling billing-bot's copy: the tenant-wide warn now applies to it.
	req.Change = impact.Change{Disable: &impact.Ref{Name: "pii", AgentID: "billing-bot"}}
	res, err = svc.Run(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Transitions[impact.Transition(pdp.StatusBlocked, pdp.StatusAllowed)] != res.Changed || res.Changed == 0 {
		t.Errorf("disable the override: %v", res.Transitions)
	}
	req.Change = impact.Change{Disable: &impact.Ref{Name: "nope"}}
	if _, err := svc.Run(t.Context(), req); !errors.Is(err, impact.ErrPolicyNotFound) {
		t.Errorf("disable a missing policy: %v", err)
	}

	// Nothing was recorded.
	as, total, err := e.db.ListActions(t.Context(), e.tenant, store.ActionQuery{Limit: 1})
	if err != nil || total != n+outside || len(as) != 1 {
		t.Errorf("actions after the replays: %d, %v", total, err)
	}
}

// TestImpactRollback replays a rollback to an earlier version.
func TestImpactRollback(t *testing.T) {
	e := newEnv(t)
	e.put(t, draft)   // version 1: strict
	e.put(t, current) // version 2: warn only
	until := time.Date(2026, 3, 9, 12, 0, 0, 0, time.UTC)
	var recs []store.ActionRecord
	for i := range 100 {
		recs = append(recs, record(e.tenant, i, until.Add(-time.Duration(i+1)*time.Minute)))
	}
	if _, err := e.db.BulkInsertActions(t.Context(), func(yield func(store.ActionRecord) bool) {
		for _, r := range recs {
			if !yield(r) {
				return
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	svc := impact.New(e.db, e.eng, impact.WithClock(func() time.Time { return until }), impact.WithRate(ratelimit.Limit{}))
	req := impact.Request{TenantID: e.tenant, Change: impact.Change{Rollback: &impact.Ref{Name: "pii", Version: 1}}}
	if err := svc.Normalize(&req); err != nil {
		t.Fatal(err)
	}
	res, err := svc.Run(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, r := range recs {
		var text struct{ Text string }
		_ = json.Unmarshal(r.Params, &text)
		// No override here: every agent follows the tenant-wide copy.
		if b, a := expected("", text.Text); b != a {
			want++
		}
	}
	if res.Evaluated != 100 || res.Changed != want {
		t.Errorf("rollback: evaluated %d changed %d, want 100, %d", res.Evaluated, res.Changed, want)
	}
	req.Change.Rollback.Version = 9
	if _, err := svc.Run(t.Context(), req); !errors.Is(err, impact.ErrPolicyNotFound) {
		t.Errorf("rollback to a missing version: %v", err)
	}
}

// TestImpactBudget: a replay whose clock passes the budget stops between
// chunks and says its result is partial.
func TestImpactBudget(t *testing.T) {
	e := newEnv(t)
	e.put(t, current)
	until := time.Date(2026, 3, 9, 12, 0, 0, 0, time.UTC)
	if _, err := e.db.BulkInsertActions(t.Context(), func(yield func(store.ActionRecord) bool) {
		for i := range 1000 {
			if !yield(record(e.tenant, i, until.Add(-time.Duration(i+1)*time.Second))) {
				return
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	// Each reading of the clock is one second later: start, compile done,
	// then one reading per chunk (and one per first result).
	var ticks atomic.Int64
	clock := func() time.Time { return until.Add(time.Duration(ticks.Add(1)) * time.Second) }
	const workers = 2
	svc := impact.New(e.db, e.eng, impact.WithClock(clock), impact.WithRate(ratelimit.Limit{}), impact.WithWorkers(workers))
	req := impact.Request{TenantID: e.tenant, Change: impact.Change{Policy: policyOf(t, draft)}, Until: until, Budget: 5 * time.Second}
	if err := svc.Normalize(&req); err != nil {
		t.Fatal(err)
	}
	res, err := svc.Run(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	// Readings: start (1 s, so the deadline is 6 s), compiled (2), before
	// the first chunk (3; one action per worker), the first result (4),
	// before the second chunk (5; 64 actions), before the third (6: the
	// budget is spent).
	if !res.Partial || res.Evaluated != workers+64 {
		t.Errorf("budget: partial %v, evaluated %d; want partial after whole chunks", res.Partial, res.Evaluated)
	}
}

// TestImpactAdmission: one analysis per tenant at a time, and the rate.
func TestImpactAdmission(t *testing.T) {
	e := newEnv(t)
	e.put(t, current)
	now := time.Date(2026, 3, 9, 12, 0, 0, 0, time.UTC)
	svc := impact.New(e.db, e.eng, impact.WithClock(func() time.Time { return now }), impact.WithRate(ratelimit.Limit{RequestsPerSecond: 1.0 / 60, Burst: 2}))
	req := impact.Request{TenantID: e.tenant, Change: impact.Change{Policy: policyOf(t, draft)}}
	if err := svc.Normalize(&req); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := svc.Run(t.Context(), req); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
	var rl *impact.RateLimitedError
	if _, err := svc.Run(t.Context(), req); !errors.As(err, &rl) || rl.Result.RetryAfter <= 0 {
		t.Errorf("third run in the same instant: %v", err)
	}
	bad := impact.Request{TenantID: e.tenant, Limit: impact.MaxLimit + 1, Budget: time.Hour}
	err := svc.Normalize(&bad)
	var ves pdp.ValidationErrors
	if !errors.As(err, &ves) || len(ves) != 3 {
		t.Errorf("bad request: %v", err)
	}
}
