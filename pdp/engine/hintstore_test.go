package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

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
