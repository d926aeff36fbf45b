package rego

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
)

// minRegoTests guards against tests that silently stop running: a test file
// whose package no longer parses as a test package, or a test_ rule renamed
// into a helper would otherwise leave `go test` green.
const minRegoTests = 30

// parseTests parses the library's _test.rego files the way Parsed parses the
// library: Rego v1, annotations processed.
func parseTests(t *testing.T) map[string]*ast.Module {
	t.Helper()
	out := map[string]*ast.Module{}
	for p, src := range Tests() {
		m, err := ast.ParseModuleWithOpts(p, src, ast.ParserOptions{ProcessAnnotation: true, RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatalf("parse %s: %v", p, err)
		}
		out[p] = m
	}
	return out
}

// allModules returns the library (as the engine loads it) plus its tests.
func allModules(t *testing.T) map[string]*ast.Module {
	t.Helper()
	lib, err := Parsed()
	if err != nil {
		t.Fatalf("parse library: %v", err)
	}
	mods := parseTests(t)
	for p, m := range lib {
		mods[p] = m
	}
	return mods
}

// TestRegoTests runs every _test.rego of the library through OPA's test
// runner (what `opa test rego/` does), with built-in errors raised so a
// type error in the library cannot pass as an undefined result.
func TestRegoTests(t *testing.T) {
	ctx := t.Context()
	store := inmem.NewWithOpts(inmem.OptRoundTripOnWrite(false))
	txn := storage.NewTransactionOrDie(ctx, store)
	defer store.Abort(ctx, txn)

	ch, err := tester.NewRunner().
		SetStore(store).
		SetModules(allModules(t)).
		RaiseBuiltinErrors(true).
		SetTimeout(60*time.Second). // as make test-rego: a loaded machine is not a failing test
		RunTests(ctx, txn)
	if err != nil {
		t.Fatalf("run Rego tests: %v", err)
	}

	ran, cases := 0, 0
	for r := range ch {
		ran++
		name := r.Package + "." + r.Name
		for _, sr := range r.SubResults.Iter {
			if len(sr.SubResults) == 0 {
				cases++
			}
		}
		switch {
		case r.Skip:
			t.Errorf("%s: skipped; a todo_ test must not be left in the library", name)
		case r.Error != nil:
			t.Errorf("%s: error: %v", name, r.Error)
		case r.Fail:
			t.Errorf("%s: FAIL%s", name, failedCases(r))
		}
	}
	if ran < minRegoTests {
		t.Errorf("%d Rego tests ran, want at least %d", ran, minRegoTests)
	}
	t.Logf("%d Rego tests ran (%d table cases)", ran, cases)
}

// failedCases names the failing cases of a parameterized test_x[name].
func failedCases(r *tester.Result) string {
	var names []string
	for path, sr := range r.SubResults.Iter {
		if sr.Fail && len(sr.SubResults) == 0 {
			names = append(names, fmt.Sprintf("%q", strings.Join(path, "/")))
		}
	}
	if len(names) == 0 {
		return ""
	}
	return ": failing cases " + strings.Join(names, ", ")
}

// TestStrictCompile is `opa check --strict rego/`: the library alone (what
// the engine and bundles load) and with its tests.
func TestStrictCompile(t *testing.T) {
	lib, err := Parsed()
	if err != nil {
		t.Fatalf("parse library: %v", err)
	}
	for name, mods := range map[string]map[string]*ast.Module{
		"library":           lib,
		"library and tests": allModules(t),
	} {
		t.Run(name, func(t *testing.T) {
			c := ast.NewCompiler().
				WithEnablePrintStatements(true).
				WithStrict(true).
				WithUseTypeCheckAnnotations(true)
			if c.Compile(mods); c.Failed() {
				for _, e := range c.Errors {
					t.Error(e)
				}
			}
		})
	}
}
