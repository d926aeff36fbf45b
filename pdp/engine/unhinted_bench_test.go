package engine

import (
	"testing"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// BenchmarkDecisionUnhinted is BenchmarkDecisionFired for the plain
// decision query on the plain input (unhinted: what a stock OPA serving
// the bundle, the Data API and opa test evaluate), split the same way by
// how many rules fire, so that a change to the library can be checked for
// what it costs OPA's users as well as for what it saves Gatehouse.
func BenchmarkDecisionUnhinted(b *testing.B) {
	benchByFired(b, func(b *testing.B, e *Engine, a pdp.Action) (*pdp.Decision, error) {
		return unhinted(b, e, a)
	})
}
