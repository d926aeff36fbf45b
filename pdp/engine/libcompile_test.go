package engine

import (
	"errors"
	"flag"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/test/scale"
)

var ontoAll = flag.Bool("onto.all", false, "TestUnitsOntoLibraryDecideAsWhole: compare every tenant of scale M")

// wholeCompiles makes e compile every unit whole, library included, as
// it did before units were compiled onto the library compiled once.
func wholeCompiles(e *Engine) {
	e.lib.once.Do(func() { e.lib.err = errWholeCompile })
}

// TestUnitsOntoLibraryDecideAsWhole: units compiled onto the library compiled
// once decide every action of scale M (a sample of tenants under -short)
// exactly as units compiled whole, through the hinted query (Evaluate) and
// the plain one (Query), and every generated tenant takes that path.
// A sample of 15 tenants (5 under -short); -onto.all for all 100.
func TestUnitsOntoLibraryDecideAsWhole(t *testing.T) {
	s := scale.M()
	switch {
	case *ontoAll:
	case testing.Short():
		s.Tenants = s.Tenants[:5]
	default:
		s.Tenants = s.Tenants[:15]
	}
	tenants := map[string]bool{}
	for _, tp := range s.Tenants {
		tenants[tp.TenantID] = true
	}
	onto := loadScale(t, s, Config{CacheSize: 20000, Timeout: time.Minute})
	whole := loadScale(t, s, Config{CacheSize: 20000, Timeout: time.Minute})
	wholeCompiles(whole)
	n := 0
	for _, a := range s.Actions {
		if !tenants[a.TenantID] {
			continue
		}
		n++
		dm, errM := onto.Evaluate(t.Context(), a)
		dw, errW := whole.Evaluate(t.Context(), a)
		if errM != nil || errW != nil {
			t.Fatalf("action %d: onto %v, whole %v", n, errM, errW)
		}
		dm.EvaluationTimeMS, dw.EvaluationTimeMS = 0, 0
		if !reflect.DeepEqual(dm, dw) {
			t.Fatalf("action %+v:\nonto  %+v\nwhole %+v", a, dm, dw)
		}
		in := map[string]any{"agent_id": a.AgentID, "action": a.Name, "params": a.Params, "step_type": string(a.StepType)}
		if a.StepType == "" {
			delete(in, "step_type")
		}
		rm, okM, errM := onto.Query(t.Context(), a.TenantID, in)
		rw, okW, errW := whole.Query(t.Context(), a.TenantID, in)
		if errM != nil || errW != nil || okM != okW || !reflect.DeepEqual(rm, rw) {
			t.Fatalf("query of action %+v:\nonto  %v %v %v\nwhole %v %v %v", a, rm, okM, errM, rw, okW, errW)
		}
	}
	if n == 0 {
		t.Fatal("no action compared")
	}
	for id := range tenants {
		st := onto.tenants[id]
		if st.unit == nil || !st.unit.incremental {
			t.Errorf("tenant %s: unit compiled whole; want it compiled onto the library", id)
		}
		if whole.tenants[id].unit.incremental {
			t.Errorf("tenant %s: the whole-compile engine compiled onto the library", id)
		}
	}
}

// TestOntoGuards: a library rule under the tenants' root, or a tenant
// module that refers to a library rule that refers back to the tenants'
// root, makes units compile whole; the decisions stay what they were.
func TestOntoGuards(t *testing.T) {
	lib, err := compileLibrary(mustParse(t, map[string]string{
		"lib.rego": `package gatehouse.lib
back if data.gatehouse.policies.x.y
leaf := 1
calls_back if back`,
	}))
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		src   string
		whole bool
	}{
		"refers to a leaf":              {`package gatehouse.policies.t.tenant.p` + "\nv if data.gatehouse.lib.leaf == 1", false},
		"refers to a rule that reaches": {`package gatehouse.policies.t.tenant.p` + "\nv if data.gatehouse.lib.back", true},
		"reaches through a dependent":   {`package gatehouse.policies.t.tenant.p` + "\nv if data.gatehouse.lib.calls_back", true},
		"refers to any library rule":    {`package gatehouse.policies.t.tenant.p` + "\nv if data.gatehouse.lib[_]", true},
		"refers to leaves by a var":     {`package gatehouse.policies.t.tenant.p` + "\nv if data.gatehouse[_].leaf", false},
		"outside the tenants' root":     {`package gatehouse.other` + "\nv := 1", true},
		"with a with":                   {`package gatehouse.policies.t.tenant.p` + "\nv if data.gatehouse.lib.leaf with input as 1", true},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := compileOnto(lib, mustParse(t, map[string]string{"t.rego": tc.src}))
			if got := errors.Is(err, errWholeCompile); got != tc.whole {
				t.Fatalf("whole compile = %v (%v), want %v", got, err, tc.whole)
			}
		})
	}
	if _, err := compileLibrary(mustParse(t, map[string]string{
		"lib.rego": "package gatehouse\npolicies := {}",
	})); !errors.Is(err, errWholeCompile) {
		t.Fatalf("library rule at the tenants' root: %v, want a whole compile", err)
	}

	// Through the engine: a library module that holds a rule under the
	// tenants' root still decides, compiled whole.
	e := newEngine(t, Config{}, WithModules(map[string]string{
		"extra.rego": "package gatehouse.policies.zz\nextra := 1",
	}))
	if err := e.SetTenant(seedTenant("acme", 1)); err != nil {
		t.Fatal(err)
	}
	d := evaluate(t, e, seedAction)
	if d.Status == "" {
		t.Fatal("no decision")
	}
	if e.tenants["acme"].unit.incremental {
		t.Error("unit compiled onto the library although the library has a rule under the tenants' root")
	}
}

// TestCompileOntoSeesTheLibrary: a tenant module compiled onto the
// library sees the library's functions and types as a whole compile does,
// and is refused where a whole compile is.
func TestCompileOntoSeesTheLibrary(t *testing.T) {
	lib, err := compileLibrary(mustParse(t, map[string]string{
		"lib.rego": "package gatehouse.lib\nf(x) := x\ns := \"text\"",
	}))
	if err != nil {
		t.Fatal(err)
	}
	for src, ok := range map[string]bool{
		"v := data.gatehouse.lib.f(1)":         true,
		"v if data.gatehouse.lib.f(1, 2, 3)":   false, // arity
		"v if count(data.gatehouse.lib.s) > 1": true,
		"v if data.gatehouse.lib.s + 1 > 1":    false, // a string is no number
		"v if data.gatehouse.lib.nothing(1)":   false, // undefined function
	} {
		_, err := compileOnto(lib, mustParse(t, map[string]string{
			"t.rego": "package gatehouse.policies.t.tenant.p\n" + src,
		}))
		if (err == nil) != ok {
			t.Errorf("%s: %v, want ok=%v", src, err, ok)
		}
		if err != nil && errors.Is(err, errWholeCompile) {
			t.Errorf("%s: refused by a guard, want the compiler's own error", src)
		}
	}
}

func mustParse(t *testing.T, srcs map[string]string) map[string]*ast.Module {
	t.Helper()
	out := map[string]*ast.Module{}
	for p, src := range srcs {
		m, err := ast.ParseModuleWithOpts(p, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatal(err)
		}
		out[p] = m
	}
	return out
}

// TestUnitsShareTheLibraryConcurrently: units compile onto the shared
// library (its rules, rule tree and types) in parallel while other
// tenants decide through it; under -race this catches any write to what
// they share. Every decision equals the whole compile's.
func TestUnitsShareTheLibraryConcurrently(t *testing.T) {
	s := scale.M()
	s.Tenants = s.Tenants[:6]
	ids := map[string]bool{}
	for _, tp := range s.Tenants {
		ids[tp.TenantID] = true
	}
	var actions []pdp.Action
	for _, a := range s.Actions {
		if ids[a.TenantID] {
			actions = append(actions, a)
		}
	}
	whole := loadScale(t, s, Config{CacheSize: 20000, Timeout: time.Minute})
	wholeCompiles(whole)
	want := make([]*pdp.Decision, len(actions))
	for i, a := range actions {
		d, err := whole.Evaluate(t.Context(), a)
		if err != nil {
			t.Fatal(err)
		}
		d.EvaluationTimeMS = 0
		want[i] = d
	}
	e := loadScale(t, s, Config{CacheSize: 20000, Timeout: time.Minute, CompileWorkers: 3})
	var wg sync.WaitGroup
	errs := make(chan error, len(actions))
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(actions); i += 3 {
				d, err := e.Evaluate(t.Context(), actions[i])
				if err != nil {
					errs <- err
					return
				}
				d.EvaluationTimeMS = 0
				if !reflect.DeepEqual(d, want[i]) {
					errs <- fmt.Errorf("action %d: %+v, want %+v", i, d, want[i])
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
