package bundles_test

import (
	"testing"

	"github.com/gatehouse-pdp/gatehouse/bundles"
	"github.com/gatehouse-pdp/gatehouse/test/scale"
)

// BenchmarkBuild measures building a tenant's bundle (translation, data,
// tar, gzip) and reports its size: one tenant with 25 policies of 3 rules,
// and the 1000 tenants of scale L (5 tenant-wide policies, 2 overrides for
// 20% of 20 agents each), every tenant's bundle built in one iteration.
func BenchmarkBuild(b *testing.B) {
	b.Run("tenant-25-policies", func(b *testing.B) {
		tp := scale.Generate("b", 1, 1, 25, 3, 0, 0).Tenants[0]
		var size int
		for b.Loop() {
			built, err := bundles.Build(tp, nil)
			if err != nil {
				b.Fatal(err)
			}
			size = len(built.Bytes)
		}
		b.ReportMetric(float64(size), "bytes/bundle")
	})
	b.Run("1000-tenants", func(b *testing.B) {
		s := scale.L()
		var size int
		for b.Loop() {
			size = 0
			for _, tp := range s.Tenants {
				built, err := bundles.Build(tp, nil)
				if err != nil {
					b.Fatal(err)
				}
				size += len(built.Bytes)
			}
		}
		b.ReportMetric(float64(size), "bytes/all")
	})
}
