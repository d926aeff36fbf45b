package engine

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/test/scale"
)

var seedAction = pdp.Action{
	TenantID: "acme",
	Name:     "slack.send_message",
	Params:   map[string]any{"channel": "#external", "text": "Customer email: alice@example.com"},
}

// newEngine returns an engine for cfg; a zero Timeout becomes 10 s, since
// tests run on loaded machines and only the timeout tests (which set their
// own) are about the 50 ms default.
func newEngine(t *testing.T, cfg Config, opts ...Option) *Engine {
	t.Helper()
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	e, err := New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func evaluate(t *testing.T, e *Engine, a pdp.Action) *pdp.Decision {
	t.Helper()
	d, err := e.Evaluate(t.Context(), a)
	if err != nil {
		t.Fatalf("Evaluate(%s/%s): %v", a.TenantID, a.AgentID, err)
	}
	return d
}

func as(a pdp.Action, agent string) pdp.Action {
	a.AgentID = agent
	return a
}

// TestSeed is the contract's seed at engine level: billing-bot is blocked
// by its override, everyone else is warned by the tenant-wide policy, and
// disabling the override puts billing-bot back under the tenant-wide one.
func TestSeed(t *testing.T) {
	e := newEngine(t, Config{})
	policies := scale.SeedPolicies()
	e.SetTenant(pdp.TenantPolicies{TenantID: "acme", Revision: 1, Mode: pdp.ModeEnforcement, Policies: policies})

	d := evaluate(t, e, as(seedAction, "billing-bot"))
	if d.Status != pdp.StatusBlocked || d.TriggeredPolicy == nil || *d.TriggeredPolicy != "pii_protection" {
		t.Fatalf("billing-bot: status %s, triggered %v", d.Status, d.TriggeredPolicy)
	}
	if d.Reason == nil || *d.Reason != "PII blocked for billing-bot: email" {
		t.Fatalf("billing-bot reason %v", d.Reason)
	}
	if len(d.Violations) != 1 || d.Violations[0].Scope != pdp.ScopeAgent || d.Violations[0].Match != "email" {
		t.Fatalf("billing-bot violations %+v", d.Violations)
	}
	if d.RiskScore != 0.85 {
		t.Fatalf("billing-bot risk %v, want 0.85", d.RiskScore)
	}

	for _, agent := range []string{"support-bot", ""} {
		d := evaluate(t, e, as(seedAction, agent))
		if d.Status != pdp.StatusAllowed || len(d.Warnings) != 1 || d.Warnings[0].Scope != pdp.ScopeTenant {
			t.Fatalf("agent %q: status %s, warnings %+v", agent, d.Status, d.Warnings)
		}
		if *d.TriggeredPolicy != "pii_protection" || *d.Severity != pdp.SeverityMedium {
			t.Fatalf("agent %q: triggered %v severity %v", agent, *d.TriggeredPolicy, *d.Severity)
		}
		want := []string{"pii_protection", "FinancialSafetyPolicy", "DataExfiltrationPolicy"}
		if len(d.PoliciesEvaluated) != 3 || d.PoliciesEvaluated[0] != want[0] || d.PoliciesEvaluated[2] != want[2] {
			t.Fatalf("agent %q: policies_evaluated %v", agent, d.PoliciesEvaluated)
		}
	}

	policies[1].Enabled = false
	policies[1].Version++
	e.SetTenant(pdp.TenantPolicies{TenantID: "acme", Revision: 2, Mode: pdp.ModeEnforcement, Policies: policies})
	d = evaluate(t, e, as(seedAction, "billing-bot"))
	if d.Status != pdp.StatusAllowed || len(d.Warnings) != 1 || d.Violations[0].Scope != pdp.ScopeTenant {
		t.Fatalf("billing-bot after disabling its override: status %s, violations %+v", d.Status, d.Violations)
	}
}

func TestShadowMode(t *testing.T) {
	e := newEngine(t, Config{})
	e.SetTenant(pdp.TenantPolicies{TenantID: "acme", Revision: 1, Mode: pdp.ModeShadow, Policies: scale.SeedPolicies()})
	d := evaluate(t, e, as(seedAction, "billing-bot"))
	if d.Status != pdp.StatusAllowed || d.ShadowStatus != pdp.StatusBlocked {
		t.Fatalf("shadow: status %s, shadow_status %s", d.Status, d.ShadowStatus)
	}
}

// TestFailClosed: every way an evaluation can fail returns an error that
// wraps pdp.ErrEvaluationFailed, and never a decision.
func TestFailClosed(t *testing.T) {
	tp := pdp.TenantPolicies{TenantID: "acme", Revision: 1, Mode: pdp.ModeEnforcement, Policies: scale.SeedPolicies()}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name   string
		cfg    Config
		opts   []Option
		ctx    context.Context
		action pdp.Action
	}{
		{name: "unknown tenant", action: pdp.Action{TenantID: "nobody", Name: "x"}},
		{name: "undefined result", opts: []Option{WithQuery("data.gatehouse.nothing.here")}},
		// A second definition of _tenant, which every decision
		// evaluates (through its view), that disagrees with the first.
		{name: "evaluation error", opts: []Option{WithModules(map[string]string{"conflict.rego": `package gatehouse.decision

_tenant := -1 if input.action == "slack.send_message"
`})}},
		{name: "timeout", cfg: Config{Timeout: time.Nanosecond}},
		{name: "cancelled context", ctx: cancelled},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEngine(t, c.cfg, c.opts...)
			e.SetTenant(tp)
			ctx := c.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			a := c.action
			if a.TenantID == "" {
				a = as(seedAction, "support-bot")
			}
			d, err := e.Evaluate(ctx, a)
			if d != nil {
				t.Fatalf("got a decision (%s) with error %v", d.Status, err)
			}
			t.Logf("%v", err)
			if !errors.Is(err, pdp.ErrEvaluationFailed) {
				t.Fatalf("error %v does not wrap ErrEvaluationFailed", err)
			}
		})
	}
}

// TestCacheKeys: agents without overrides share the tenant's entry, an
// agent with overrides gets its own, and a hit compiles nothing.
func TestCacheKeys(t *testing.T) {
	e := newEngine(t, Config{})
	e.SetTenant(pdp.TenantPolicies{TenantID: "acme", Revision: 1, Mode: pdp.ModeEnforcement, Policies: scale.SeedPolicies()})
	for _, agent := range []string{"", "support-bot", "ops-bot", "x"} {
		evaluate(t, e, as(seedAction, agent))
	}
	if s := e.Stats(); s.Compiles != 1 || s.Size != 1 || s.Hits != 3 {
		t.Fatalf("agents without overrides: %+v, want 1 compile, 1 entry, 3 hits", s)
	}
	evaluate(t, e, as(seedAction, "billing-bot"))
	evaluate(t, e, as(seedAction, "billing-bot"))
	if s := e.Stats(); s.Compiles != 2 || s.Size != 2 || s.Hits != 4 {
		t.Fatalf("with billing-bot: %+v, want 2 compiles, 2 entries, 4 hits", s)
	}
}

// TestRevisions: a new revision is seen by the very next decision, drops
// the tenant's old entries, and never recompiles another tenant.
func TestRevisions(t *testing.T) {
	e := newEngine(t, Config{})
	e.SetTenant(pdp.TenantPolicies{TenantID: "acme", Revision: 1, Mode: pdp.ModeEnforcement, Policies: scale.SeedPolicies()})
	e.SetTenant(pdp.TenantPolicies{TenantID: "globex", Revision: 1, Mode: pdp.ModeEnforcement})
	other := pdp.Action{TenantID: "globex", Name: "slack.send_message", Params: seedAction.Params, AgentID: "billing-bot"}

	if d := evaluate(t, e, other); d.Status != pdp.StatusAllowed || len(d.Violations) != 0 {
		t.Fatalf("globex is governed by acme's policies: %+v", d)
	}
	evaluate(t, e, as(seedAction, "support-bot"))
	before := e.Stats()

	block := scale.SeedPolicies()[:1]
	block[0].Rules[0].OnViolation, block[0].Rules[0].Severity, block[0].Version = pdp.OutcomeBlock, pdp.SeverityCritical, 2
	e.SetTenant(pdp.TenantPolicies{TenantID: "acme", Revision: 2, Mode: pdp.ModeEnforcement, Policies: block})
	if d := evaluate(t, e, as(seedAction, "support-bot")); d.Status != pdp.StatusBlocked {
		t.Fatalf("read-after-write: status %s after the write", d.Status)
	}
	if d := evaluate(t, e, other); d.Status != pdp.StatusAllowed {
		t.Fatalf("globex after acme's write: %s", d.Status)
	}
	after := e.Stats()
	if after.Compiles != before.Compiles+1 {
		t.Fatalf("compiles %d → %d: only acme's new revision may compile", before.Compiles, after.Compiles)
	}
	if after.Size != 2 {
		t.Fatalf("cache holds %d entries, want 2 (acme rev 2, globex rev 1)", after.Size)
	}
}

func TestConcurrentMissesCompileOnce(t *testing.T) {
	// Unbounded: 32 evaluations at once exceed the default bound (4 ×
	// GOMAXPROCS) whenever enough of them reach Eval together, and this
	// test is about the one compile, not about admission (observer_test.go).
	e := newEngine(t, Config{MaxConcurrent: -1})
	e.SetTenant(pdp.TenantPolicies{TenantID: "acme", Revision: 7, Mode: pdp.ModeEnforcement, Policies: scale.SeedPolicies()})
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			if _, err := e.Evaluate(context.Background(), as(seedAction, "support-bot")); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if s := e.Stats(); s.Compiles != 1 {
		t.Fatalf("%d compiles for 32 concurrent misses on one key", s.Compiles)
	}
}

func TestEviction(t *testing.T) {
	e := newEngine(t, Config{CacheSize: 2})
	for _, id := range []string{"a", "b", "c"} {
		e.SetTenant(pdp.TenantPolicies{TenantID: id, Revision: 1, Mode: pdp.ModeEnforcement, Policies: scale.SeedPolicies()})
		a := seedAction
		a.TenantID = id
		evaluate(t, e, a)
	}
	if s := e.Stats(); s.Evictions != 1 || s.Size != 2 {
		t.Fatalf("%+v, want 1 eviction and 2 entries", s)
	}
}

func TestSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	e := newEngine(t, Config{}, WithTracerProvider(tp))
	e.SetTenant(pdp.TenantPolicies{TenantID: "acme", Revision: 1, Mode: pdp.ModeEnforcement, Policies: scale.SeedPolicies()})
	evaluate(t, e, as(seedAction, "billing-bot"))
	evaluate(t, e, as(seedAction, "billing-bot"))

	spans := rec.Ended()
	var names []string
	for _, s := range spans {
		names = append(names, s.Name())
	}
	if len(spans) != 3 || names[0] != "engine.Compile" || names[1] != "engine.Evaluate" || names[2] != "engine.Evaluate" {
		t.Fatalf("spans %v, want [engine.Compile engine.Evaluate engine.Evaluate]", names)
	}
	if spans[0].Parent().SpanID() != spans[1].SpanContext().SpanID() {
		t.Fatal("engine.Compile is not a child of the engine.Evaluate that missed")
	}
	want := map[attribute.Key]attribute.Value{
		"tenant_id": attribute.StringValue("acme"),
		"agent_id":  attribute.StringValue("billing-bot"),
		"status":    attribute.StringValue("blocked"),
		"cache_hit": attribute.BoolValue(false),
	}
	for i, hit := range []bool{false, true} {
		want["cache_hit"] = attribute.BoolValue(hit)
		got := map[attribute.Key]attribute.Value{}
		for _, kv := range spans[1+i].Attributes() {
			got[kv.Key] = kv.Value
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("evaluation %d: attribute %s = %v, want %v", i, k, got[k].Emit(), v.Emit())
			}
		}
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []Config{
		{CacheSize: -1},
		{RegexCacheSize: -2},
		{Timeout: -time.Second},
		{HardLimit: 10, ApprovalThreshold: 20},
	}
	for _, c := range bad {
		if err := c.Defaults().Validate(); err == nil {
			t.Errorf("%+v: Validate accepted it", c)
		}
	}
	if err := (Config{}).Defaults().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestThresholdsReachRego(t *testing.T) {
	e := newEngine(t, Config{HardLimit: 500, ApprovalThreshold: 100})
	e.SetTenant(pdp.TenantPolicies{TenantID: "acme", Revision: 1, Mode: pdp.ModeEnforcement})
	for amount, want := range map[string]pdp.Status{"50": pdp.StatusAllowed, "100": pdp.StatusPendingReview, "500": pdp.StatusBlocked} {
		d := evaluate(t, e, pdp.Action{TenantID: "acme", Name: "stripe.transfer", Params: map[string]any{"amount": jsonNumber(amount)}})
		if d.Status != want {
			t.Errorf("amount %s: %s, want %s", amount, d.Status, want)
		}
	}
}

func jsonNumber(s string) any { return json.Number(s) }
