package engine

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/test/scale"
)

// noHitAnswer is the result term Evaluate answers a with without
// evaluating (noHitTerm), nil when it evaluates; pq is a's entry.
func noHitAnswer(t testing.TB, e *Engine, a pdp.Action) (*ast.Term, *prepared) {
	t.Helper()
	pq, err := e.entry(context.Background(), noop.Span{}, a.TenantID, a.AgentID)
	if err != nil {
		t.Fatal(err)
	}
	text, err := actionText(a.Name, a.Params)
	if err != nil || pq.hinted == nil || pq.hinter == nil {
		return nil, pq
	}
	hs := hintsOf(pq.hinter, a, text)
	return pq.noHitTerm(&hs), pq
}

// checkViewHint: the view Evaluate hands over with a's hints (noHitTerm,
// from the entry's views read at prepare) is the very value hintStore
// looks up in the store for them (nil both when there is none).
func checkViewHint(t testing.TB, e *Engine, pq *prepared, a pdp.Action) {
	t.Helper()
	text, err := actionText(a.Name, a.Params)
	if err != nil || pq.hinter == nil {
		return
	}
	hs := hintsOf(pq.hinter, a, text)
	pq.noHitTerm(&hs)
	e.mu.RLock()
	st := e.tenants[a.TenantID]
	e.mu.RUnlock()
	store := st.unit.store.(hintStore)
	txn := storage.NewTransactionOrDie(t.Context(), store)
	defer store.Abort(t.Context(), txn)
	lookedUp, _ := store.view(t.Context(), txn, &hs)
	if (lookedUp == nil) != (hs.view == nil) || lookedUp != nil && lookedUp.(ast.Object) != hs.view.(ast.Object) {
		t.Fatalf("%+v: view hint %v, hintStore looks up %v", a, hs.view, lookedUp)
	}
}

// TestNoHitAnswer: for every action Evaluate answers without evaluating,
// the answer is the result the hinted evaluation it replaces computes with
// the same hints — the same term of the tenant's data, decoded to the same
// decision field by field — and the engine's decision equals it. Over the
// M corpus (where most decisions without a hit are answered so) and the
// differential test's generated tenants (shadow tenants and policies,
// agent views, step types with and without views, whitelists).
func TestNoHitAnswer(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 29))
	mActions := 0 // all
	if testing.Short() {
		mActions = 1000
	}
	for _, c := range hintCorpora(r, mActions, hintCount(t)) {
		t.Run(c.name, func(t *testing.T) {
			e := engineWith(t, c.tenants)
			answered, evaluated, agentViews, builtinsOnly := 0, 0, 0, 0
			for _, a := range c.actions {
				d, err := e.Evaluate(t.Context(), a)
				if err != nil {
					t.Fatalf("%+v: %v", a, err)
				}
				allowed, pq := noHitAnswer(t, e, a)
				checkViewHint(t, e, pq, a)
				if allowed == nil {
					evaluated++
					continue
				}
				answered++
				w, ok := hintedOf(t.Context(), pq.hinter, a)
				if !ok {
					t.Fatalf("%+v: answered without evaluating, but the text does not compute", a)
				}
				switch _, kind := findView(pq.views, w.set.agent, w.set.step); kind {
				case viewAgent:
					agentViews++
				case viewBuiltinsOnly:
					builtinsOnly++
				}
				rs, err := w.eval(t.Context(), *pq.hinted)
				if err != nil {
					t.Fatalf("%+v: the hinted evaluation: %v", a, err)
				}
				term, err := resultTerm(rs)
				if err != nil {
					t.Fatalf("%+v: the hinted evaluation: %v", a, err)
				}
				if term.Value.Compare(allowed.Value) != 0 {
					t.Fatalf("%+v: answered %v, the hinted evaluation computes %v", a, allowed, term)
				}
				want, err := decodeAST(term.Value)
				if err != nil {
					t.Fatal(err)
				}
				if !sameDecision(d, want) {
					t.Fatalf("%+v:\nanswered  %+v\nevaluated %+v", a, d, want)
				}
			}
			t.Logf("%d actions answered without evaluating (%d of an agent's own views, %d builtins_only), %d evaluated",
				answered, agentViews, builtinsOnly, evaluated)
			if answered == 0 || evaluated == 0 {
				t.Fatalf("the corpus should have actions of both kinds: %d answered, %d evaluated", answered, evaluated)
			}
		})
	}
}

// quietAction is one no rule or built-in of the seed policies can fire on.
var quietAction = pdp.Action{TenantID: "acme", AgentID: "support-bot", Name: "slack.send_message", Params: map[string]any{"text": "hello"}}

// TestNoHitAnswerFailsClosed: a decision answered without evaluating
// fails as an evaluation does — past the timeout, with the caller's
// context ended, without a slot (the server's or the tenant's share), for
// an unknown or degraded tenant — and takes a slot like one.
func TestNoHitAnswerFailsClosed(t *testing.T) {
	tp := pdp.TenantPolicies{TenantID: "acme", Revision: 1, Mode: pdp.ModeEnforcement, Policies: scale.SeedPolicies()}
	check := func(t *testing.T, e *Engine, ctx context.Context, a pdp.Action, want error) {
		t.Helper()
		d, err := e.Evaluate(ctx, a)
		if d != nil || !errors.Is(err, pdp.ErrEvaluationFailed) || want != nil && !errors.Is(err, want) {
			t.Fatalf("got %+v, %v; want no decision and an error wrapping pdp.ErrEvaluationFailed and %v", d, err, want)
		}
	}
	// The action is answered without evaluating (once compiled).
	e := newEngine(t, Config{})
	e.SetTenant(tp)
	evaluate(t, e, quietAction)
	if allowed, _ := noHitAnswer(t, e, quietAction); allowed == nil {
		t.Fatal("the quiet action is evaluated, not answered")
	}

	t.Run("timeout", func(t *testing.T) {
		e := newEngine(t, Config{Timeout: time.Nanosecond})
		e.SetTenant(tp)
		check(t, e, t.Context(), quietAction, context.DeadlineExceeded)
	})
	t.Run("cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		check(t, e, ctx, quietAction, context.Canceled)
	})
	t.Run("overloaded", func(t *testing.T) {
		e := newEngine(t, Config{MaxConcurrent: 2, MaxConcurrentPerTenant: 1, Timeout: 50 * time.Millisecond})
		e.SetTenant(tp)
		evaluate(t, e, quietAction)
		release, err := e.slots.admit(t.Context(), "acme") // the tenant's share
		if err != nil {
			t.Fatal(err)
		}
		check(t, e, t.Context(), quietAction, ErrOverloaded)
		// Every slot held by other tenants.
		other, err := e.slots.admit(t.Context(), "other")
		if err != nil {
			t.Fatal(err)
		}
		release()
		another, err := e.slots.admit(t.Context(), "another")
		if err != nil {
			t.Fatal(err)
		}
		check(t, e, t.Context(), quietAction, ErrOverloaded)
		other()
		another()
		evaluate(t, e, quietAction)
		if e.slots.running != 0 {
			t.Fatalf("%d slots still held after the answers", e.slots.running)
		}
	})
	t.Run("extended library", func(t *testing.T) {
		// Modules added to the library may change what it decides: no
		// answer without evaluating.
		e := newEngine(t, Config{}, WithModules(map[string]string{"extra.rego": "package gatehouse.extra\n\nx := 1\n"}))
		e.SetTenant(tp)
		evaluate(t, e, quietAction)
		if allowed, _ := noHitAnswer(t, e, quietAction); allowed != nil {
			t.Fatal("an engine with modules of its own answered without evaluating")
		}
	})
	t.Run("unknown tenant", func(t *testing.T) {
		a := quietAction
		a.TenantID = "nobody"
		check(t, e, t.Context(), a, ErrUnknownTenant)
	})
}

// hintCorpus is tenants and actions a hint test decides.
type hintCorpus struct {
	name    string
	tenants []pdp.TenantPolicies
	actions []pdp.Action
}

// hintCorpora are scale M (its first mActions actions; all when 0) and
// the differential test's generated world of 40 tenants with n actions
// drawn from r.
func hintCorpora(r *rand.Rand, mActions, n int) []hintCorpus {
	world := hintWorld(r, 40)
	var worldActions []pdp.Action
	for range n {
		worldActions = append(worldActions, hintAction(r, world))
	}
	m := scale.M()
	if mActions > 0 {
		m.Actions = m.Actions[:min(len(m.Actions), mActions)]
	}
	return []hintCorpus{{"M", m.Tenants, m.Actions}, {"generated", world, worldActions}}
}

// engineWith is a new engine (CacheSize 5000) holding tenants.
func engineWith(t *testing.T, tenants []pdp.TenantPolicies) *Engine {
	t.Helper()
	e := newEngine(t, Config{CacheSize: 5000})
	for _, tp := range tenants {
		if err := e.SetTenant(tp); err != nil {
			t.Fatal(err)
		}
	}
	return e
}
