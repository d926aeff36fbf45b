package engine

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/test/scale"
)

// TestEvaluateDraft: a draft decides with the policies it is given, and
// leaves no trace: the published tenant decides as before and the cache
// holds nothing more.
func TestEvaluateDraft(t *testing.T) {
	e := newEngine(t, Config{})
	tp := pdp.TenantPolicies{TenantID: "acme", Revision: 1, Mode: pdp.ModeEnforcement, Policies: scale.SeedPolicies()}
	e.SetTenant(tp)
	before := evaluate(t, e, as(seedAction, "support-bot"))
	stats := e.Stats()

	draft := tp
	draft.Policies = nil
	for _, p := range tp.Policies {
		if p.AgentID == "" && p.Name == "pii_protection" {
			p.Rules = []pdp.Rule{{Match: "(email)", Severity: pdp.SeverityCritical, OnViolation: pdp.OutcomeBlock, Reason: "draft: {match}", Confidence: 0.85}}
		}
		draft.Policies = append(draft.Policies, p)
	}
	d, err := e.EvaluateDraft(t.Context(), as(seedAction, "support-bot"), draft)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != pdp.StatusBlocked || d.Reason == nil || *d.Reason != "draft: email" {
		t.Fatalf("draft decision: %s %v", d.Status, d.Reason)
	}

	if s := e.Stats(); s.Size != stats.Size || s.Compiles != stats.Compiles {
		t.Errorf("a draft touched the cache: %+v → %+v", stats, s)
	}
	after := evaluate(t, e, as(seedAction, "support-bot"))
	if after.Status != before.Status || *after.TriggeredPolicy != *before.TriggeredPolicy || len(after.Warnings) != 1 {
		t.Errorf("after a draft the published decision changed: %s → %s", before.Status, after.Status)
	}
}

func TestEvaluateDraftFailsClosed(t *testing.T) {
	tp := pdp.TenantPolicies{TenantID: "acme", Revision: 1, Mode: pdp.ModeEnforcement, Policies: scale.SeedPolicies()}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range []struct {
		name   string
		cfg    Config
		ctx    context.Context
		action pdp.Action
		tp     pdp.TenantPolicies
		is     error
	}{
		{name: "unknown tenant", action: pdp.Action{TenantID: "nobody", Name: "x"}, tp: pdp.TenantPolicies{TenantID: "nobody"}, is: ErrUnknownTenant},
		{name: "another tenant's policies", action: pdp.Action{TenantID: "other", Name: "x"}, tp: tp},
		{name: "timeout", cfg: Config{Timeout: time.Nanosecond}, tp: tp},
		{name: "cancelled context", ctx: cancelled, tp: tp},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEngine(t, c.cfg)
			e.SetTenant(tp)
			ctx := c.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			a := c.action
			if a.TenantID == "" {
				a = as(seedAction, "support-bot")
			}
			d, err := e.EvaluateDraft(ctx, a, c.tp)
			if d != nil {
				t.Fatalf("got a decision (%s) with error %v", d.Status, err)
			}
			if !errors.Is(err, pdp.ErrEvaluationFailed) {
				t.Fatalf("error %v does not wrap ErrEvaluationFailed", err)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Fatalf("error %v is not %v", err, c.is)
			}
		})
	}
}

// TestDraftHinted: a draft of a tenant's own policies decides generated
// actions (per-policy shadow mode and overrides included) exactly as the
// published tenant does, with its hints and without them (its plain
// query), so impact replay and the console's dry run decide as POST
// /v1/actions would.
func TestDraftHinted(t *testing.T) {
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 16))
	world := hintWorld(r, 20)
	e := newEngine(t, Config{CacheSize: 100, Timeout: 5 * time.Second})
	drafts := map[string]*Draft{}
	for _, tp := range world {
		if err := e.SetTenant(tp); err != nil {
			t.Fatal(err)
		}
		d, err := e.PrepareDraft(t.Context(), tp)
		if err != nil {
			t.Fatal(err)
		}
		if d.hinted == nil || d.hinter == nil {
			t.Fatal("a draft of a registry tenant has no hinted query")
		}
		drafts[tp.TenantID] = d
	}
	shadow := 0
	for i := range hintCount(t) {
		a := hintAction(r, world)
		d := drafts[a.TenantID]
		live, lerr := e.Evaluate(t.Context(), a)
		hinted, herr := d.Evaluate(t.Context(), a)
		var plain *pdp.Decision
		input, perr := inputValue(a)
		if perr == nil {
			var rs rego.ResultSet
			if rs, perr = e.run(t.Context(), a.TenantID, d.query, input, nil); perr == nil {
				plain, perr = decisionOf(rs, time.Now())
			}
		}
		switch {
		case (lerr != nil) != (herr != nil) || (herr != nil) != (perr != nil):
			t.Fatalf("action %d %+v: errors differ: live %v, draft hinted %v, draft plain %v", i, a, lerr, herr, perr)
		case lerr != nil:
			continue
		case !sameDecision(live, hinted):
			t.Fatalf("action %d %+v:\nlive         %+v\ndraft hinted %+v", i, a, live, hinted)
		case !sameDecision(hinted, plain):
			t.Fatalf("action %d %+v:\ndraft hinted %+v\ndraft plain  %+v", i, a, hinted, plain)
		}
		if len(live.Shadow) > 0 {
			shadow++
		}
	}
	t.Logf("%d actions, %d with shadow hits", hintCount(t), shadow)
	// About 3% of actions have shadow hits: required from the default
	// 3,000 actions on (600 with -short may rarely see none).
	if shadow == 0 && hintCount(t) >= 3000 {
		t.Fatal("no shadow hit: the generator did not exercise shadow mode")
	}
}
