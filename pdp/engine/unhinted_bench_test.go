package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/test/scale"
)

// BenchmarkDecisionUnhinted is BenchmarkDecisionFired for the plain
// decision query on the plain input (unhinted: what a stock OPA serving
// the bundle, the Data API and opa test evaluate), split the same way by
// how many rules fire, so that a change to the library can be checked for
// what it costs OPA's users as well as for what it saves Gatehouse.
func BenchmarkDecisionUnhinted(b *testing.B) {
	s := scale.M()
	e := loadScale(b, s, Config{CacheSize: 20000, Timeout: time.Second})
	buckets := map[string][]pdp.Action{}
	for _, a := range s.Actions {
		d, err := unhinted(b, e, a)
		if err != nil {
			b.Fatal(err)
		}
		k := fmt.Sprint(len(d.Violations))
		if len(d.Violations) >= 3 {
			k = "3+"
		}
		buckets[k] = append(buckets[k], a)
	}
	for _, k := range []string{"0", "1", "2", "3+"} {
		b.Run("fired="+k, func(b *testing.B) {
			actions := buckets[k]
			if len(actions) == 0 {
				b.Skip("no action of the corpus fires that many rules")
			}
			i := 0
			done := reportCPU(b)
			for b.Loop() {
				if _, err := unhinted(b, e, actions[i%len(actions)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			done()
			b.ReportMetric(float64(len(actions))/float64(len(s.Actions))*100, "%corpus")
		})
	}
}
