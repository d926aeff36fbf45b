package engine

import (
	"runtime"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/test/scale"
)

// TestInternKeepsTheDocument: the interned data document of every tenant
// of scales S and M is equal to the one InterfaceToValue builds, shares
// its equal parts, and shares them across the tenants interned together.
func TestInternKeepsTheDocument(t *testing.T) {
	for _, s := range []*scale.Scale{scale.S(), scale.M()} {
		in := newInterner()
		distinct := map[*ast.Term]bool{}
		nodes := 0
		for i := range s.Tenants {
			tp := &s.Tenants[i]
			v, err := ast.InterfaceToValue(adapter.TenantData(tp, "", true))
			if err != nil {
				t.Fatal(err)
			}
			w := in.value(v)
			if v.Compare(w) != 0 {
				t.Fatalf("%s %s: the interned document differs:\n%v\n%v", s.Name, tp.TenantID, v, w)
			}
			ast.WalkTerms(w, func(x *ast.Term) bool {
				nodes++
				distinct[x] = true
				return false
			})
			// Interned alone, the same document.
			if u := newInterner().value(v); u.Compare(v) != 0 {
				t.Fatalf("%s %s: interned alone, the document differs", s.Name, tp.TenantID)
			}
		}
		t.Logf("%s: %d terms, %d distinct", s.Name, nodes, len(distinct))
		if s.Name == "M" && len(distinct)*4 > nodes {
			t.Fatalf("M: %d distinct terms of %d: little shared", len(distinct), nodes)
		}
	}
}

// TestInternKinds: scalars of different kinds with the same text stay
// apart, objects equal whatever their insertion order are one, and the
// term of a location (not data) is kept as it is.
func TestInternKinds(t *testing.T) {
	in := newInterner()
	var doc any
	if err := util.UnmarshalJSON([]byte(`[1, "1", true, "true", null, "null", 1.0, {"a": 1, "b": [1]}, {"b": [1], "a": 1}]`), &doc); err != nil {
		t.Fatal(err)
	}
	a := in.value(ast.MustInterfaceToValue(doc)).(*ast.Array)
	for i := range 6 {
		for j := i + 1; j < 6; j++ {
			if a.Elem(i) == a.Elem(j) {
				t.Errorf("elements %d and %d (%v, %v) share a term", i, j, a.Elem(i), a.Elem(j))
			}
		}
	}
	if a.Elem(7) != a.Elem(8) {
		t.Errorf("equal objects not shared: %v %v", a.Elem(7), a.Elem(8))
	}
	if a.Elem(0) == a.Elem(6) {
		t.Errorf("1 and 1.0 share a term") // equal numbers, different text: kept apart (conservative)
	}
	located := ast.StringTerm("x")
	located.Location = &ast.Location{Row: 1}
	if in.term(located) != located {
		t.Error("a located term was replaced")
	}
}

// TestGoRegexShared: rules with the same pattern share one compiled
// regex while one is in use, and the entry goes once none is.
func TestGoRegexShared(t *testing.T) {
	const pattern = `shared-regex-test-(alpha|beta)\d+`
	a, err := compileGoRegex(pattern)
	if err != nil {
		t.Fatal(err)
	}
	b, err := compileGoRegex(pattern)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatal("the same pattern compiled twice while in use")
	}
	if _, err := compileGoRegex(`(`); err == nil {
		t.Fatal("an invalid pattern compiled")
	}
	runtime.KeepAlive(a)
	a, b = nil, nil
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		goRegexes.Lock()
		_, ok := goRegexes.m[pattern]
		goRegexes.Unlock()
		if !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the entry of a pattern no longer in use stayed")
		}
		time.Sleep(10 * time.Millisecond) // cleanups run in their own goroutine
	}
}
