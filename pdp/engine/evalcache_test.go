package engine

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// cacheTerms are the keys and values the cache tests draw from: strings,
// numbers, an object (function arguments are often objects) and
// distinct terms with equal values.
var cacheTerms = []*ast.Term{
	ast.StringTerm("a"), ast.StringTerm("b"), ast.StringTerm("c"), ast.StringTerm("a"),
	ast.IntNumberTerm(1), ast.IntNumberTerm(2),
	ast.MustParseTerm(`{"kind": "regex", "rule": 1}`), ast.MustParseTerm(`{"kind": "regex", "rule": 1}`),
	ast.MustParseTerm(`{"x": {"y": [1, 2]}}`),
}

func randomRef(r *rand.Rand) ast.Ref {
	ref := make(ast.Ref, 1+r.IntN(3))
	for i := range ref {
		ref[i] = cacheTerms[r.IntN(len(cacheTerms))]
	}
	return ref
}

func refStrings(refs []ast.Ref) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.String()
	}
	slices.Sort(out)
	return out
}

// TestVirtualCacheAsOPAs: the pooled virtual cache answers every Get and
// Keys as topdown.NewVirtualCache's over random operations (puts of values
// and undefined, pushes and pops), also when it is reused from the pool.
func TestVirtualCacheAsOPAs(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 300 {
		want := topdown.NewVirtualCache()
		got := getVirtualCache()
		depth := 1
		for op := range 200 {
			switch k := r.IntN(10); {
			case k < 4:
				ref := randomRef(r)
				var v *ast.Term
				if r.IntN(4) > 0 {
					v = cacheTerms[r.IntN(len(cacheTerms))]
				}
				want.Put(ref, v)
				got.Put(ref, v)
			case k < 8:
				ref := randomRef(r)
				wv, wu := want.Get(ref)
				gv, gu := got.Get(ref)
				if wu != gu || (wv == nil) != (gv == nil) || (wv != nil && !wv.Equal(gv)) {
					t.Fatalf("round %d op %d: Get(%v) = %v, %v; OPA's: %v, %v", round, op, ref, gv, gu, wv, wu)
				}
			case k == 8:
				want.Push()
				got.Push()
				depth++
			default:
				if depth > 1 {
					want.Pop()
					got.Pop()
					depth--
				}
			}
			if w, g := refStrings(want.Keys()), refStrings(got.Keys()); !slices.Equal(w, g) {
				t.Fatalf("round %d op %d: Keys() = %v; OPA's: %v", round, op, g, w)
			}
		}
		putVirtualCache(got)
	}
}

// baseModel is OPA's base cache as a list: a value hides what is below
// it, a Put forgets what was cached below its reference.
type baseModel map[string]struct {
	ref ast.Ref
	v   ast.Value
}

func (m baseModel) put(ref ast.Ref, v ast.Value) {
	for k, e := range m {
		if len(e.ref) > len(ref) && e.ref.HasPrefix(ref) {
			delete(m, k)
		}
	}
	m[ref.String()] = struct {
		ref ast.Ref
		v   ast.Value
	}{ref, v}
}

func (m baseModel) get(ref ast.Ref) ast.Value {
	for i := 1; i <= len(ref); i++ {
		if e, ok := m[ref[:i].String()]; ok {
			v, err := e.v.Find(ref[i:])
			if err != nil {
				return nil
			}
			return v
		}
	}
	return nil
}

// TestBaseCacheAsOPAs: the pooled base cache answers every Get as OPA's
// base cache does (baseModel) over random puts, also reused from the pool.
func TestBaseCacheAsOPAs(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	strs := []*ast.Term{ast.StringTerm("x"), ast.StringTerm("y"), ast.StringTerm("a"), ast.IntNumberTerm(0), ast.IntNumberTerm(1)}
	vals := []ast.Value{ast.String("s"), ast.MustParseTerm(`{"x": {"y": "deep"}, "a": [7, 8]}`).Value,
		ast.MustParseTerm(`["p", "q"]`).Value, ast.MustParseTerm(`{"y": 1}`).Value}
	for round := range 300 {
		want := baseModel{}
		got := getBaseCache()
		for op := range 100 {
			ref := make(ast.Ref, 1+r.IntN(3))
			for i := range ref {
				ref[i] = strs[r.IntN(len(strs))]
			}
			if r.IntN(3) == 0 {
				v := vals[r.IntN(len(vals))]
				want.put(ref, v)
				got.Put(ref, v)
				continue
			}
			w, g := want.get(ref), got.Get(ref)
			if (w == nil) != (g == nil) || (w != nil && w.Compare(g) != 0) {
				t.Fatalf("round %d op %d: Get(%v) = %v; OPA's: %v", round, op, ref, g, w)
			}
		}
		putBaseCache(got)
	}
}
