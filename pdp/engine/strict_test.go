package engine

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/bundles"
	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/test/scale"
)

// seedTenant is the seed's policies for tenant id.
func seedTenant(id string, rev uint64) pdp.TenantPolicies {
	return pdp.TenantPolicies{TenantID: id, Revision: rev, Mode: pdp.ModeEnforcement, Policies: scale.SeedPolicies()}
}

// invalidRegex returns a copy of the seed with rule 0 of the first policy
// holding a pattern RE2 cannot compile, as a store edited around the API
// (or written by an older version) could hold it.
func invalidRegex(id string, rev uint64) pdp.TenantPolicies {
	tp := seedTenant(id, rev)
	tp.Policies[0].Rules = append([]pdp.Rule(nil), tp.Policies[0].Rules...)
	tp.Policies[0].Rules[0].Match = "(unclosed"
	return tp
}

// TestStoredInvalidRegexDegradesOnlyItsTenant: the engine re-validates what
// it is given; a tenant holding a policy the API would refuse fails closed
// (ErrEvaluationFailed, so 503) instead of skipping the rule, its reason
// is reported, and another tenant still decides. Fixing the policy heals.
func TestStoredInvalidRegexDegradesOnlyItsTenant(t *testing.T) {
	e := newEngine(t, Config{Timeout: 10 * time.Second})
	if err := e.SetTenant(seedTenant("globex", 1)); err != nil {
		t.Fatalf("healthy tenant: %v", err)
	}
	err := e.SetTenant(invalidRegex("acme", 1))
	if !errors.Is(err, ErrTenantDegraded) || !strings.Contains(err.Error(), "rules[0].match") {
		t.Fatalf("SetTenant = %v, want ErrTenantDegraded naming rules[0].match", err)
	}
	_, err = e.Evaluate(t.Context(), seedAction)
	if !errors.Is(err, pdp.ErrEvaluationFailed) || !errors.Is(err, ErrTenantDegraded) {
		t.Fatalf("degraded tenant decided: %v", err)
	}
	if _, _, err := e.Query(t.Context(), "acme", Input(seedAction)); !errors.Is(err, ErrTenantDegraded) {
		t.Fatalf("Data API path decided for a degraded tenant: %v", err)
	}
	other := seedAction
	other.TenantID = "globex"
	if d := evaluate(t, e, other); d.Status != pdp.StatusAllowed {
		t.Errorf("other tenant: %s", d.Status)
	}
	if got := e.Degraded(); len(got) != 1 || got["acme"] == nil {
		t.Errorf("Degraded = %v, want acme only", got)
	}

	if err := e.SetTenant(seedTenant("acme", 2)); err != nil {
		t.Fatalf("fixed tenant: %v", err)
	}
	evaluate(t, e, seedAction)
	if got := e.Degraded(); len(got) != 0 {
		t.Errorf("Degraded after the fix = %v", got)
	}
}

// strictBundle is the seed's bundle for acme plus one module under the
// policies' package path, as a hand-made bundle may still ship one, whose
// rule calls body's built-ins.
func strictBundle(t *testing.T, body string) *bundles.Loaded {
	t.Helper()
	l := loaded(t, seedTenant("acme", 1), Config{})
	src := "package gatehouse.policies.acme.tenant.pii_protection\n\nextra contains 1 if {\n\t" + body + "\n}\n\n" +
		"hits contains data.gatehouse.decision._ranked({\"rule\": 9, \"severity\": \"low\", \"on_violation\": \"warn\", \"confidence\": 1, \"match\": \"\", \"reason\": \"x\"}, \"pii_protection\", \"tenant\") if extra[_]\n"
	m, err := ast.ParseModuleWithOpts("gatehouse/policies/acme/tenant/extra.rego", src, ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		t.Fatal(err)
	}
	l.Modules["gatehouse/policies/acme/tenant/extra.rego"] = m
	return l
}

// tamperedRule returns acme's data document as the seed's bundle carries
// it, with rule 0 of the tenant-wide pii_protection changed by edit, as a
// store or a bundle edited around the API could hold it.
func tamperedRule(t *testing.T, edit func(rule map[string]any)) *bundles.Loaded {
	t.Helper()
	return tamperedPolicy(t, func(p map[string]any) { edit(p["rules"].([]any)[0].(map[string]any)) })
}

// tamperedPolicy is tamperedRule for the data of the whole policy.
func tamperedPolicy(t *testing.T, edit func(policy map[string]any)) *bundles.Loaded {
	t.Helper()
	l := loaded(t, seedTenant("acme", 1), Config{})
	root := l.Data[adapter.Root].(map[string]any)
	acme := root["tenants"].(map[string]any)["acme"].(map[string]any)
	edit(acme["tenant"].(map[string]any)["pii_protection"].(map[string]any))
	return l
}

// TestBuiltinErrorsFailClosed: a built-in error inside a rule (a pattern
// in the rules' data that does not compile, which the checks would
// refuse: here it gets past them) makes the decision fail, through the
// hinted query (Evaluate) and the plain one (Query) alike, instead of
// making the rule undefined (OPA's default).
func TestBuiltinErrorsFailClosed(t *testing.T) {
	for name, edit := range map[string]func(map[string]any){
		"match pattern":         func(r map[string]any) { r["kind"] = "regex_context"; r["pattern"] = "(unclosed" },
		"untranslatable marker": func(r map[string]any) { r["kind"] = "regex_context"; r["pattern"] = adapter.Untranslatable },
		"context pattern": func(r map[string]any) {
			r["kind"] = "regex_context"
			r["pattern"] = "ping"
			r["context"] = "[z-a]"
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEngine(t, Config{Timeout: 10 * time.Second})
			l := tamperedRule(t, edit)
			lib, err := e.lib.get(e.library)
			if err != nil {
				t.Fatal(err)
			}
			store := inmem.NewFromObjectWithOpts(l.Data, inmem.OptRoundTripOnWrite(true), inmem.OptReturnASTValuesOnRead(true))
			seed := seedTenant("acme", 1)
			e.mu.Lock()
			e.tenants["acme"] = &tenantState{
				policies:  &seed,
				overrides: map[string]bool{},
				modules:   newModuleCache(),
				unit:      &unit{compiler: lib, store: store, hinter: adapter.NewHinter(&seed)},
			}
			e.mu.Unlock()
			// "email" and "external" make pii_protection a candidate: its rules run.
			a := pdp.Action{TenantID: "acme", Name: "ping", Params: map[string]any{"note": "email external"}}
			if d, err := e.Evaluate(t.Context(), a); !errors.Is(err, pdp.ErrEvaluationFailed) {
				t.Fatalf("Evaluate = %+v, %v; want ErrEvaluationFailed", d, err)
			}
			if _, _, err := e.Query(t.Context(), "acme", Input(a)); !errors.Is(err, pdp.ErrEvaluationFailed) {
				t.Fatalf("Query: %v, want ErrEvaluationFailed", err)
			}
		})
	}
}

// requireDegrades loads bundle l into a new engine: it loads, but tenant
// acme fails closed (ErrTenantDegraded) and is reported degraded with an
// error that names want.
func requireDegrades(t *testing.T, l *bundles.Loaded, want string) {
	t.Helper()
	e := newEngine(t, Config{Timeout: 10 * time.Second})
	if err := e.LoadBundle(t.Context(), "b.tar.gz", l); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Evaluate(t.Context(), seedAction); !errors.Is(err, ErrTenantDegraded) {
		t.Fatalf("Evaluate: %v, want ErrTenantDegraded", err)
	}
	if got := e.Degraded()["acme"]; got == nil || !strings.Contains(got.Error(), want) {
		t.Errorf("Degraded[acme] = %v, want %q named", got, want)
	}
}

// TestBundleInvalidRegexDegradesItsTenant: a bundle whose rules' data
// (or a policy module it ships) carries a pattern that does not compile
// loads, but that tenant fails closed and is reported; a bad pattern in
// the library refuses the bundle.
func TestBundleInvalidRegexDegradesItsTenant(t *testing.T) {
	for name, c := range map[string]struct {
		l    *bundles.Loaded
		want string
	}{
		"rule data": {tamperedRule(t, func(r map[string]any) { r["pattern"] = "(unclosed" }), `["pii_protection"].rules[0].pattern`},
		"context":   {tamperedRule(t, func(r map[string]any) { r["context"] = "[z-a]" }), `["pii_protection"].rules[0].context`},
		"module":    {strictBundle(t, `regex.match("(unclosed", input.action)`), "extra.rego"},
	} {
		t.Run(name, func(t *testing.T) { requireDegrades(t, c.l, c.want) })
	}

	lib := loaded(t, seedTenant("acme", 1), Config{})
	src := "package gatehouse.extra\n\nx if regex.match(`[z-a]`, input.action)\n"
	lib.Modules["gatehouse/extra.rego"] = ast.MustParseModuleWithOpts(src, ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err := newEngine(t, Config{}).LoadBundle(t.Context(), "c.tar.gz", lib); err == nil || !strings.Contains(err.Error(), "outside a tenant") {
		t.Errorf("library with a bad pattern: %v", err)
	}
}

// TestBundleRuleThatCannotFireDegradesItsTenant: a hand-edited bundle
// whose rule could never fire — a kind the library does not evaluate,
// or an index its policy's by_literal does not list, so the library never
// runs it — loads, but its tenant fails closed and is reported, instead
// of deciding as if the rule were not there; the untouched bundle decides.
func TestBundleRuleThatCannotFireDegradesItsTenant(t *testing.T) {
	unlist := func(p map[string]any) {
		for lit, is := range p["by_literal"].(map[string]any) {
			var kept []any
			for _, i := range is.([]any) {
				if fmt.Sprint(i) != "0" {
					kept = append(kept, i)
				}
			}
			p["by_literal"].(map[string]any)[lit] = kept
		}
	}
	for name, c := range map[string]struct {
		l    *bundles.Loaded
		want string
	}{
		"unknown kind": {tamperedRule(t, func(r map[string]any) { r["kind"] = "regexp" }), `["pii_protection"].rules[0]: kind "regexp" is not one`},
		"no kind":      {tamperedRule(t, func(r map[string]any) { delete(r, "kind") }), `["pii_protection"].rules[0]: no kind`},
		"not listed":   {tamperedPolicy(t, unlist), `["pii_protection"].rules[0]: not listed in the policy's by_literal`},
	} {
		t.Run(name, func(t *testing.T) { requireDegrades(t, c.l, c.want) })
	}
	e := newEngine(t, Config{Timeout: 10 * time.Second})
	if err := e.LoadBundle(t.Context(), "b.tar.gz", tamperedPolicy(t, func(map[string]any) {})); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Evaluate(t.Context(), seedAction); err != nil {
		t.Fatalf("the untouched bundle: %v", err)
	}
}

// TestBundleExpensiveRegexDegradesItsTenant: a hand-made bundle is held
// to the cost bounds a write is: one pattern over adapter.MaxRuleCost, or
// a tenant's patterns together over adapter.MaxTenantCost, degrade that
// tenant (it fails closed) instead of stalling the shared evaluation slots.
func TestBundleExpensiveRegexDegradesItsTenant(t *testing.T) {
	cheap := `a.{0,10}b`
	c, err := adapter.RE2Cost(cheap)
	if err != nil || c > adapter.MaxRuleCost || c == 0 {
		t.Fatalf("RE2Cost(%s) = %d, %v: want a pattern within the rule bound", cheap, c, err)
	}
	many := make([]string, adapter.MaxTenantCost/c+1)
	for i := range many {
		many[i] = fmt.Sprintf("regex.match(`%s%d`, input.action)", cheap, i)
	}
	for name, tc := range map[string]struct {
		l    *bundles.Loaded
		want string
	}{
		"one pattern over the rule bound":         {strictBundle(t, "regex.match(`(?s).{0,200}~`, input.action)"), "over the bound of 56 for a rule"},
		"patterns together over the tenant bound": {strictBundle(t, strings.Join(many, "\n\t")), "over the bound of 480 for a tenant"},
		"a rule's data over the rule bound":       {tamperedRule(t, func(r map[string]any) { r["pattern"] = `(?s).{0,200}~` }), "over the bound of 56 for a rule"},
	} {
		t.Run(name, func(t *testing.T) { requireDegrades(t, tc.l, tc.want) })
	}
}

// TestBundleRefusesNetworkBuiltins: a bundle calling http.send, a net.*
// built-in or opa.runtime is refused with the call named.
func TestBundleRefusesNetworkBuiltins(t *testing.T) {
	for _, body := range []string{
		`http.send({"method": "GET", "url": "http://127.0.0.1:1/"}).status_code == 200`,
		`count(net.lookup_ip_addr("example.com")) > 0`,
		`opa.runtime().env.HOME != ""`,
		`net.cidr_contains("10.0.0.0/8", "10.0.0.1")`,
	} {
		e := newEngine(t, Config{})
		err := e.LoadBundle(t.Context(), "b.tar.gz", strictBundle(t, body))
		if !errors.Is(err, bundles.ErrRefusedBuiltin) || !strings.Contains(err.Error(), "extra.rego:") {
			t.Errorf("%s: LoadBundle = %v, want ErrRefusedBuiltin naming the module", body, err)
		}
		if _, ok := e.Revision("acme"); ok {
			t.Errorf("%s: refused bundle's tenant was published", body)
		}
	}
}
