package engine

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/test/scale"
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
	world := hintWorld(r, 40)
	var worldActions []pdp.Action
	for range hintCount(t) / 2 {
		worldActions = append(worldActions, hintAction(r, world))
	}
	m := scale.M()
	m.Actions = m.Actions[:min(len(m.Actions), 600)]
	for _, c := range []struct {
		name    string
		tenants []pdp.TenantPolicies
		actions []pdp.Action
	}{{"M", m.Tenants, m.Actions}, {"generated", world, worldActions}} {
		t.Run(c.name, func(t *testing.T) {
			e := newEngine(t, Config{CacheSize: 5000})
			for _, tp := range c.tenants {
				if err := e.SetTenant(tp); err != nil {
					t.Fatal(err)
				}
			}
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
