package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/gatehouse-pdp/gatehouse/bundles"
	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/test/scale"
)

// loaded builds tp's bundle with cfg's thresholds and loads it back, as
// `gatehouse serve --bundle` does.
func loaded(t *testing.T, tp pdp.TenantPolicies, cfg Config) *bundles.Loaded {
	t.Helper()
	b, err := bundles.Build(tp, cfg.Defaults().ConfigData())
	if err != nil {
		t.Fatal(err)
	}
	ob, err := bundles.Load(bytes.NewReader(b.Bytes), nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := bundles.FromBundle(ob)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestLoadBundleDecidesAsSetTenant: the same policies published with
// SetTenant and loaded from their bundle decide identically, for every
// agent and through both Evaluate and Query.
func TestLoadBundleDecidesAsSetTenant(t *testing.T) {
	tp := pdp.TenantPolicies{TenantID: "acme", Revision: 3, Mode: pdp.ModeEnforcement, Policies: scale.SeedPolicies()}
	fromPolicies := newEngine(t, Config{})
	fromPolicies.SetTenant(tp)
	fromBundle := newEngine(t, Config{})
	if err := fromBundle.LoadBundle(t.Context(), "file.tar.gz", loaded(t, tp, Config{})); err != nil {
		t.Fatal(err)
	}
	if got := fromBundle.Source("acme"); got != "file.tar.gz" {
		t.Errorf("Source = %q", got)
	}
	for _, agent := range []string{"billing-bot", "support-bot", ""} {
		a := as(seedAction, agent)
		want, got := evaluate(t, fromPolicies, a), evaluate(t, fromBundle, a)
		want.EvaluationTimeMS, got.EvaluationTimeMS = 0, 0
		if !reflect.DeepEqual(want, got) {
			t.Errorf("agent %q: bundle decides %+v, policies %+v", agent, got, want)
		}
		in := Input(a)
		in["tenant_id"] = "someone-else" // never trusted
		res, defined, err := fromBundle.Query(t.Context(), "acme", in)
		if err != nil || !defined {
			t.Fatalf("Query: %v, defined %v", err, defined)
		}
		if res.(map[string]any)["status"] != string(want.Status) {
			t.Errorf("agent %q: Query status %v, want %s", agent, res.(map[string]any)["status"], want.Status)
		}
	}
	d1, _ := fromPolicies.TenantData("acme")
	d2, _ := fromBundle.TenantData("acme")
	j1, _ := json.Marshal(d1)
	j2, _ := json.Marshal(d2)
	if !bytes.Equal(j1, j2) {
		t.Errorf("TenantData: bundle %s, policies %s", j2, j1)
	}
}

// TestLoadBundleRevisions: a new revision from the same source replaces
// the old (stale prepared queries unreachable), a tenant it no longer
// holds fails closed, and a tenant cannot come from two sources.
func TestLoadBundleRevisions(t *testing.T) {
	e := newEngine(t, Config{})
	seed := pdp.TenantPolicies{TenantID: "acme", Revision: 1, Policies: scale.SeedPolicies()}
	if err := e.LoadBundle(t.Context(), "src", loaded(t, seed, Config{})); err != nil {
		t.Fatal(err)
	}
	if d := evaluate(t, e, as(seedAction, "billing-bot")); d.Status != pdp.StatusBlocked {
		t.Fatalf("revision 1: %s", d.Status)
	}
	none := pdp.TenantPolicies{TenantID: "acme", Revision: 2}
	if err := e.LoadBundle(t.Context(), "src", loaded(t, none, Config{})); err != nil {
		t.Fatal(err)
	}
	if d := evaluate(t, e, as(seedAction, "billing-bot")); d.Status != pdp.StatusAllowed {
		t.Fatalf("revision 2 (no policies): %s, want allowed", d.Status)
	}
	if err := e.LoadBundle(t.Context(), "other", loaded(t, none, Config{})); err == nil {
		t.Fatal("a tenant loaded from a second source: want an error")
	}
	other := pdp.TenantPolicies{TenantID: "globex", Revision: 1}
	if err := e.LoadBundle(t.Context(), "src", loaded(t, other, Config{})); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Evaluate(t.Context(), seedAction); !errors.Is(err, pdp.ErrEvaluationFailed) || !errors.Is(err, ErrUnknownTenant) {
		t.Fatalf("acme after its source dropped it: %v, want unknown tenant (fail closed)", err)
	}
	if _, _, err := e.Query(t.Context(), "acme", Input(seedAction)); !errors.Is(err, pdp.ErrEvaluationFailed) {
		t.Fatalf("Query for a removed tenant: %v", err)
	}
	if _, ok := e.TenantData("acme"); ok {
		t.Error("TenantData of a removed tenant")
	}
}

// TestLoadBundleRefusesBrokenBundles: a bundle that does not compile or
// cannot decide is refused and the previous one keeps deciding.
func TestLoadBundleRefusesBrokenBundles(t *testing.T) {
	e := newEngine(t, Config{})
	good := loaded(t, pdp.TenantPolicies{TenantID: "acme", Revision: 1, Policies: scale.SeedPolicies()}, Config{})
	if err := e.LoadBundle(t.Context(), "src", good); err != nil {
		t.Fatal(err)
	}
	broken := *good
	broken.Modules = map[string]*ast.Module{}
	for p, m := range good.Modules {
		broken.Modules[p] = m
	}
	broken.Modules["gatehouse/broken.rego"] = ast.MustParseModule("package gatehouse.broken\np if no_such_function(1)")
	if err := e.LoadBundle(t.Context(), "src", &broken); err == nil {
		t.Fatal("a bundle that does not compile was accepted")
	}
	if err := e.LoadBundle(t.Context(), "src", &bundles.Loaded{Revision: "x"}); err == nil {
		t.Fatal("a bundle without tenants was accepted")
	}
	if d := evaluate(t, e, as(seedAction, "billing-bot")); d.Status != pdp.StatusBlocked {
		t.Fatalf("after refused loads: %s, want the good bundle's blocked", d.Status)
	}
}

// TestQueryUndefined: an input the decision is undefined for is reported
// as undefined, not as an error and never as a decision.
func TestQueryUndefined(t *testing.T) {
	e := newEngine(t, Config{}, WithQuery("data.gatehouse.no_such_rule"))
	e.SetTenant(pdp.TenantPolicies{TenantID: "acme", Revision: 1})
	res, defined, err := e.Query(t.Context(), "acme", nil)
	if err != nil || defined || res != nil {
		t.Fatalf("Query = %v, %v, %v; want undefined", res, defined, err)
	}
}
