package engine

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestDirectQuery: the direct evaluation of the hinted query (direct.go)
// gives the very result the prepared hinted query gives with the same
// hints and input, over the M corpus and the differential test's
// generated tenants, including the actions the engine answers without
// evaluating.
func TestDirectQuery(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 31))
	for _, c := range hintCorpora(r, 600, hintCount(t)/2) {
		t.Run(c.name, func(t *testing.T) {
			e := engineWith(t, c.tenants)
			n := 0
			for _, a := range c.actions {
				_, pq := noHitAnswer(t, e, a)
				w, ok := hintedOf(t.Context(), pq.hinter, a)
				if !ok {
					continue
				}
				rs, perr := w.eval(t.Context(), *pq.hinted)
				want, werr := resultTerm(rs)
				got, derr := pq.direct.eval(hintedContext(t.Context(), w.set), w.input, nil, e.values)
				switch {
				case perr != nil || derr != nil:
					if (perr == nil) != (derr == nil) {
						t.Fatalf("%+v: prepared %v, direct %v", a, perr, derr)
					}
				case werr != nil:
					if got != nil {
						t.Fatalf("%+v: prepared undefined, direct %v", a, got)
					}
				case got == nil || got.Value.Compare(want.Value) != 0:
					t.Fatalf("%+v:\nprepared %v\ndirect   %v", a, want, got)
				}
				n++
			}
			if n == 0 {
				t.Fatal("no action compared")
			}
			t.Logf("%d actions compared", n)
		})
	}
}
