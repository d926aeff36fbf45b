package adapter

import (
	"flag"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var calibrate = flag.Bool("calibrate", false, "measure the ns per cost unit and byte of Go's regexp (TestCostCalibration)")

// attackerPattern is the reproduction: ~120 branches of
// `.{1000}X` within the 1024-character bound.
func attackerPattern() string {
	var b strings.Builder
	for i := 0; ; i++ {
		branch := fmt.Sprintf(".{1000}%c", 'a'+rune(i%26))
		if b.Len()+len(branch)+1 > 1024 {
			break
		}
		if i > 0 {
			b.WriteByte('|')
		}
		b.WriteString(branch)
	}
	return b.String()
}

// calibrationPatterns are the shapes the bounds are calibrated on:
// every thread alive at every byte (counted repetitions of .), big
// Unicode classes, literal alternations and the library's own kinds.
var calibrationPatterns = []string{
	`password`, `rm\s+-rf`, `(email|phone|address)`, `(confidential|internal only|restricted)`,
	`\d{3}-\d{2}-\d{4}`, `[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}`, `\w+@\w+`, `[^\W\d]{3,}x`,
	`.{4}~`, `.{8}~`, `.{18}~`, `(?:a|b|c|d|e){5}~`, `(\w\s?){4}!`, `[\w\s]{3,6}\d{2,5}`,
}

// calibrationTexts are adversarial texts of n bytes for the patterns.
func calibrationTexts(n int) []string {
	return []string{
		strings.Repeat(`abcdefghij klmnopq "rstuvw":1234, `, n/33+1)[:n],
		strings.Repeat("1", n), strings.Repeat("1 ", n/2), strings.Repeat("a", n),
		strings.Repeat("emai", n/4), strings.Repeat("a@", n/2), strings.Repeat("é ", n/3+1)[:n/3*3],
	}
}

// TestCostCalibration measures, for each calibration pattern, the worst
// ns per byte over the adversarial texts at MaxActionTextBytes and
// divides by the pattern's cost; it reports the median over runs of the
// largest ratio, and the time of a MaxRuleCost-rule and a
// MaxTenantCost-tenant at that ratio. Run it with -calibrate on a quiet
// machine to re-derive the bounds in cost.go.
func TestCostCalibration(t *testing.T) {
	if !*calibrate {
		t.Skip("run with -calibrate")
	}
	n := MaxActionTextBytes
	texts := calibrationTexts(n)
	var worst []float64
	for run := range 5 {
		runWorst := 0.0
		for _, p := range calibrationPatterns {
			a, err := AnalyzePattern(p)
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			if a.Cost > MaxRuleCost {
				t.Fatalf("%s costs %d, over MaxRuleCost: calibrate on accepted patterns", p, a.Cost)
			}
			re := regexp.MustCompile(a.RE2)
			for _, text := range texts {
				best := time.Hour
				for range 3 {
					t0 := time.Now()
					re.FindStringIndex(text)
					best = min(best, time.Since(t0))
				}
				ratio := float64(best.Nanoseconds()) / float64(n) / float64(a.Cost)
				if ratio > runWorst {
					runWorst = ratio
				}
				if run == 0 && text == texts[0] {
					t.Logf("%-42s cost %3d  %6.1f ns/B", p, a.Cost, float64(best.Nanoseconds())/float64(n))
				}
			}
		}
		worst = append(worst, runWorst)
	}
	slices.Sort(worst)
	med := worst[len(worst)/2]
	t.Logf("worst ns per unit-byte over runs: %.2f (runs %.2f)", med, worst)
	t.Logf("at %d bytes: a rule of cost %d ≈ %.2f ms, a tenant of cost %d ≈ %.2f ms",
		n, MaxRuleCost, med*float64(n*MaxRuleCost)/1e6, MaxTenantCost, med*float64(n*MaxTenantCost)/1e6)
}
