package rego

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/gatehouse-pdp/gatehouse/test/scale"
)

// BenchmarkAnchorFacts measures the built-ins' anchors (FinancialFacts
// and DataExfiltrationMayFire, what the engine computes per decision)
// over scale M's actions, the text approximated as the action name and
// its params as JSON.
func BenchmarkAnchorFacts(b *testing.B) {
	type act struct{ name, text, folded string }
	var as []act
	for _, a := range scale.M().Actions {
		p, _ := json.Marshal(a.Params)
		text := a.Name + " " + string(p)
		as = append(as, act{a.Name, text, strings.ToLower(text)})
	}
	i, n := 0, 0
	for b.Loop() {
		a := as[i%len(as)]
		if _, _, ok, x := BuiltinFacts(a.name, a.text, a.folded); ok || x {
			n++
		}
		i++
	}
}
