package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/test/scale"
)

// TestHintStore: a hintStore answers data.gatehouse.hints (and below it)
// from the evaluation's hints, and reads of data and data.gatehouse whole
// include them; without hints in the context it is the plain store, and
// nothing a hinted read returned was written into it.
func TestHintStore(t *testing.T) {
	store := hintStore{inmem.NewFromObjectWithOpts(map[string]any{"gatehouse": map[string]any{
		"tenants": map[string]any{"acme": map[string]any{"n": 1}},
	}}, inmem.OptRoundTripOnWrite(true), inmem.OptReturnASTValuesOnRead(true))}
	hints := ast.MustParseTerm(`{"text": "t", "ascii": true, "rules": {"agent": {"p": [0, 2]}, "tenant": {}}}`).Value.(ast.Object)
	eval := func(q string, withHints bool) string {
		t.Helper()
		pq, err := rego.New(rego.Query("x := "+q), rego.Store(store)).PrepareForEval(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		w := hinted{input: ast.NewObject()}
		if withHints {
			w.hints = hints
		}
		rs, err := w.eval(t.Context(), pq)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) == 0 {
			return "undefined"
		}
		b, _ := json.Marshal(rs[0].Bindings["x"])
		return string(b)
	}
	for _, c := range []struct {
		q          string
		with, none string
	}{
		{"data.gatehouse.hints.text", `"t"`, "undefined"},
		{"data.gatehouse.hints.ascii", `true`, "undefined"},
		{"data.gatehouse.hints.rules.agent.p", `[0,2]`, "undefined"},
		{"data.gatehouse.hints.rules.agent.p[1]", `2`, "undefined"},
		{"data.gatehouse.hints.rules.tenant", `{}`, "undefined"},
		{"data.gatehouse.hints.missing", "undefined", "undefined"},
		{"data.gatehouse.hints.text.deeper", "undefined", "undefined"},
		{"data.gatehouse.hints", `{"ascii":true,"rules":{"agent":{"p":[0,2]},"tenant":{}},"text":"t"}`, "undefined"},
		{"data.gatehouse", `{"hints":{"ascii":true,"rules":{"agent":{"p":[0,2]},"tenant":{}},"text":"t"},"tenants":{"acme":{"n":1}}}`, `{"tenants":{"acme":{"n":1}}}`},
		{"data", `{"gatehouse":{"hints":{"ascii":true,"rules":{"agent":{"p":[0,2]},"tenant":{}},"text":"t"},"tenants":{"acme":{"n":1}}}}`, `{"gatehouse":{"tenants":{"acme":{"n":1}}}}`},
		{"data.gatehouse.tenants.acme.n", `1`, `1`},
	} {
		if got := eval(c.q, true); got != c.with {
			t.Errorf("%s with hints = %s, want %s", c.q, got, c.with)
		}
		if got := eval(c.q, false); got != c.none {
			t.Errorf("%s without hints = %s, want %s", c.q, got, c.none)
		}
	}
}

// TestActionTextConcurrent: actionText's pooled buffers never mix one
// action's text into another's, however many compute at once (run it with
// -race).
func TestActionTextConcurrent(t *testing.T) {
	s := scale.S()
	var actions []pdp.Action
	for i := range 64 {
		a := s.Actions[i%len(s.Actions)]
		params := map[string]any{fmt.Sprintf("k%02d", i): fmt.Sprintf("secret-%d", i)}
		for k, v := range a.Params {
			params[k] = v
		}
		if i%3 == 0 {
			params["nested"] = map[string]any{"z": []any{map[string]any{"b": i, "a": json.Number("1.5")}}, "y": nil}
		}
		a.Params = params
		actions = append(actions, a)
	}
	want := make([]string, len(actions))
	for i, a := range actions {
		text, err := actionText(a.Name, a.Params)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = text
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for r := range 200 {
				i := (g*31 + r*7) % len(actions)
				text, err := actionText(actions[i].Name, actions[i].Params)
				if err != nil || text != want[i] {
					errs <- fmt.Errorf("action %d: %q, %v; want %q", i, text, err, want[i])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestLazyInputRefused: params whose conversion OPA refuses (a number out
// of range) are not given to the lazy input, which would panic on them:
// actionText refuses them and Evaluate fails closed on the input, hinted
// tenant or not.
func TestLazyInputRefused(t *testing.T) {
	e := newEngine(t, Config{})
	e.SetTenant(seedPolicies("acme"))
	for _, v := range []any{json.Number("1e999999999"), map[string]any{"x": []any{json.Number("-2E+888888888")}}} {
		a := pdp.Action{TenantID: "acme", Name: "http.post", Params: map[string]any{"amount": v}}
		if _, err := actionText(a.Name, a.Params); err == nil {
			t.Fatalf("actionText accepted %v", v)
		}
		d, err := e.Evaluate(t.Context(), a)
		if !errors.Is(err, pdp.ErrEvaluationFailed) || d != nil {
			t.Fatalf("Evaluate(%v) = %+v, %v; want ErrEvaluationFailed", v, d, err)
		}
	}
}

// TestHintSetReads: the engine's hintSet answers every path as the object
// it stands for does (what tests that change the hints evaluate).
func TestHintSetReads(t *testing.T) {
	rules := ast.MustParseTerm(`{"agent": {"p": [0, 2]}, "tenant": {"q": [1]}}`)
	for _, hs := range []*hintSet{
		{text: ast.String(`{"action":"A"}`), folded: ast.String(`{"action":"a"}`), ascii: true, rules: rules, builtins: builtinHints[3], financial: true, keyword: "pay", amountKey: true},
		{text: ast.String("é"), folded: ast.String("é"), rules: rules, builtins: builtinHints[0]},
	} {
		obj := hs.object()
		for _, p := range []string{"", "text", "folded", "ascii", "rules", "rules/agent", "rules/agent/p", "rules/agent/p/1", "rules/agent/p/7",
			"rules/tenant/q/0", "builtins", "builtins/FinancialSafetyPolicy", "financial", "financial/keyword", "financial/amount_key",
			"financial/other", "candidates", "text/deeper", "ascii/x", "nothing"} {
			var path storage.Path
			if p != "" {
				path = strings.Split(p, "/")
			}
			got, want := hs.read(path), hintAt(obj, path)
			if (got == nil) != (want == nil) || got != nil && got.Compare(want) != 0 {
				t.Errorf("%s: hintSet %v, object %v", p, got, want)
			}
		}
	}
}

// TestViewHint: the view hint hintStore looks up for an action's tenant,
// agent and step type is the view the library's _view finds without
// hints, for agents with views of their own, agents with none (the
// default views, a null agent included), step types no policy lists
// (builtins_only) and step types given in lower or mixed case, in
// enforcing and shadow tenants; with the hint, _view is that same view.
// Data without views, or without the tenant, gets no view hint (the
// library computes the view itself, or the decision is undefined).
func TestViewHint(t *testing.T) {
	r := rand.New(rand.NewPCG(20261205, 41))
	world := hintWorld(r, 40)
	e := newEngine(t, Config{CacheSize: 1000, Timeout: 5 * time.Second})
	for _, tp := range world {
		if err := e.SetTenant(tp); err != nil {
			t.Fatal(err)
		}
	}
	evalOf := func(q string, c *ast.Compiler, store storage.Store, ctx context.Context, input ast.Value) string {
		t.Helper()
		pq, err := rego.New(rego.Query("x := "+q), rego.Compiler(c), rego.Store(store)).PrepareForEval(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		rs, err := pq.Eval(ctx, rego.EvalParsedInput(input))
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) == 0 {
			return "undefined"
		}
		b, _ := json.Marshal(rs[0].Bindings["x"])
		return string(b)
	}
	viewOf := func(c *ast.Compiler, store storage.Store, ctx context.Context, input ast.Value) string {
		t.Helper()
		return evalOf("data.gatehouse.decision._view", c, store, ctx, input)
	}
	kinds := map[viewKind]int{}
	shadowTenants := 0
	for _, tp := range world {
		if tp.Mode == pdp.ModeShadow {
			shadowTenants++
		}
		for _, agent := range []string{"", "agent-0", "agent-1", "agent-9"} {
			pq, err := e.entry(t.Context(), noop.Span{}, tp.TenantID, agent)
			if err != nil {
				t.Fatal(err)
			}
			e.mu.RLock()
			u := e.tenants[tp.TenantID].unit
			e.mu.RUnlock()
			hs := u.store.(hintStore)
			for _, step := range []string{"", "ACTION", "action", "thought", "Output", "observation", "error", "bogus"} {
				a := pdp.Action{TenantID: tp.TenantID, AgentID: agent, Name: "noop", StepType: step}
				w, ok := hintedOf(t.Context(), pq.hinter, a)
				if !ok {
					t.Fatalf("%+v: not hinted", a)
				}
				plain := viewOf(u.compiler, u.store, t.Context(), w.input)
				hinted := viewOf(u.compiler, u.store, context.WithValue(t.Context(), hintsKey{}, w.set), w.input)
				if plain == "undefined" || hinted != plain {
					t.Fatalf("%+v: _view with the view hint %s, without %s", a, hinted, plain)
				}
				txn, err := hs.NewTransaction(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				v, kind := hs.view(t.Context(), txn, w.set)
				hs.Abort(t.Context(), txn)
				j, _ := ast.JSON(v)
				if b, _ := json.Marshal(j); kind == viewNone || string(b) != plain {
					t.Fatalf("%+v: view hint (%d) %s, _view %s", a, kind, b, plain)
				}
				kinds[kind]++
				if step == "thought" { // the hints read whole carry the view too
					hctx := context.WithValue(t.Context(), hintsKey{}, w.set)
					if got := evalOf("data.gatehouse.hints.view", u.compiler, u.store, hctx, w.input); got != plain {
						t.Fatalf("%+v: data.gatehouse.hints.view %s, _view %s", a, got, plain)
					}
					if got := evalOf("data.gatehouse.hints", u.compiler, u.store, hctx, w.input); !strings.Contains(got, `"view":`+plain) {
						t.Fatalf("%+v: data.gatehouse.hints %s, without the view %s", a, got, plain)
					}
				}
			}
		}
	}
	t.Logf("views by kind (agent, default, builtins_only): %d %d %d; shadow tenants %d of %d",
		kinds[viewAgent], kinds[viewDefault], kinds[viewBuiltinsOnly], shadowTenants, len(world))
	if kinds[viewAgent] == 0 || kinds[viewDefault] == 0 || kinds[viewBuiltinsOnly] == 0 || shadowTenants == 0 {
		t.Fatalf("every kind of view should occur: %v, shadow tenants %d", kinds, shadowTenants)
	}

	// No views in the data (the library's _computed_view), or no such
	// tenant: no view hint, and _view is what it is without hints.
	tp := world[0]
	pq, err := e.entry(t.Context(), noop.Span{}, tp.TenantID, "")
	if err != nil {
		t.Fatal(err)
	}
	e.mu.RLock()
	u := e.tenants[tp.TenantID].unit
	e.mu.RUnlock()
	data := adapter.TenantData(&tp, "", true)
	delete(data, "views")
	noViews := hintStore{inmem.NewFromObjectWithOpts(map[string]any{adapter.Root: map[string]any{
		"config": e.data, "tenants": map[string]any{tp.TenantID: data},
	}}, inmem.OptRoundTripOnWrite(true), inmem.OptReturnASTValuesOnRead(true))}
	for _, tenant := range []string{tp.TenantID, "nobody"} {
		a := pdp.Action{TenantID: tenant, Name: "noop", StepType: "ACTION"}
		w, _ := hintedOf(t.Context(), pq.hinter, a)
		for name, s := range map[string]hintStore{"views": u.store.(hintStore), "no views": noViews} {
			txn, err := s.NewTransaction(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			v, kind := s.view(t.Context(), txn, w.set)
			s.Abort(t.Context(), txn)
			if (name == "no views" || tenant == "nobody") && (v != nil || kind != viewNone) {
				t.Errorf("tenant %q, %s: view hint %v (%d), want none", tenant, name, v, kind)
			}
			plain := viewOf(u.compiler, s, t.Context(), w.input)
			hinted := viewOf(u.compiler, s, context.WithValue(t.Context(), hintsKey{}, w.set), w.input)
			if hinted != plain || (tenant == "nobody") != (plain == "undefined") {
				t.Errorf("tenant %q, %s: _view with hints %s, without %s", tenant, name, hinted, plain)
			}
		}
	}
}

// TestViewHintConcurrent: hinted decisions running at once share the
// tenants' stored views (the view hint is the store's own value) and
// decide as they do one at a time (run it with -race).
func TestViewHintConcurrent(t *testing.T) {
	r := rand.New(rand.NewPCG(20261205, 43))
	world := hintWorld(r, 8)
	e := newEngine(t, Config{CacheSize: 1000, Timeout: 5 * time.Second})
	for _, tp := range world {
		if err := e.SetTenant(tp); err != nil {
			t.Fatal(err)
		}
	}
	actions := make([]pdp.Action, 64)
	want := make([]*pdp.Decision, len(actions))
	for i := range actions {
		actions[i] = hintAction(r, world)
		d, err := e.Evaluate(t.Context(), actions[i])
		if err != nil {
			t.Fatal(err)
		}
		want[i] = d
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Go(func() {
			for k := range 64 {
				i := (g*17 + k*5) % len(actions)
				d, err := e.Evaluate(t.Context(), actions[i])
				if err != nil || !sameDecision(d, want[i]) {
					errs <- fmt.Errorf("action %d %+v: %+v, %v; want %+v", i, actions[i], d, err, want[i])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
