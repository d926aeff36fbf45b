package engine

import (
	"encoding/json"
	"fmt"
	"regexp"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/test/scale"
)

// The three scales of the engine issue: S the seed; M 100 tenants × 10
// agents, 5 tenant-wide policies of 3 rules, 20% of agents with 2
// overrides; L 1000 tenants × 20 agents, same shape.
// Scales are generated on demand, one at a time, so a benchmark's live
// heap (which GC cost grows with) holds only its own scale.
var scales = []struct {
	name string
	gen  func() *scale.Scale
}{
	{"S", scale.S},
	{"M", scale.M},
	{"L", scale.L},
}

func loadScale(tb testing.TB, s *scale.Scale, cfg Config) *Engine {
	tb.Helper()
	e, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	for _, tp := range s.Tenants {
		e.SetTenant(tp)
	}
	return e
}

// BenchmarkDecision measures a decision on a cache hit: every entry is
// compiled before the timer starts.
func BenchmarkDecision(b *testing.B) {
	for _, sc := range scales {
		b.Run(sc.name, func(b *testing.B) {
			s := sc.gen()
			e := loadScale(b, s, Config{CacheSize: 20000, Timeout: time.Second}) // measure speed, not GC stalls past 50 ms
			ctx := b.Context()
			for _, a := range s.Actions {
				if _, err := e.Evaluate(ctx, a); err != nil {
					b.Fatal(err)
				}
			}
			misses := e.Stats().Misses
			i := 0
			done := reportCPU(b)
			for b.Loop() {
				if _, err := e.Evaluate(ctx, s.Actions[i%len(s.Actions)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			done()
			if got := e.Stats().Misses; got != misses {
				b.Fatalf("%d cache misses during the timed loop", got-misses)
			}
		})
	}
}

// floorRule is one custom rule as a naive PDP would apply it.
type floorRule struct{ re *regexp.Regexp }

// BenchmarkFloor applies the same effective custom rules with plain
// precompiled Go regexps (the translated patterns the Rego runs, one
// FindStringIndex per rule, no OPA) on
// the same action texts, built before the timer starts. It is the bar the
// translated Rego must beat.
func BenchmarkFloor(b *testing.B) {
	for _, sc := range scales {
		b.Run(sc.name, func(b *testing.B) {
			s := sc.gen()
			rules := map[string][]floorRule{} // tenant\x00agent → effective rules
			compiled := map[string]*regexp.Regexp{}
			re := func(p string) *regexp.Regexp {
				if compiled[p] == nil {
					// The translation (Python's meaning, case folding
					// spelled out) is what the Rego runs; the Python
					// pattern itself may not parse as RE2 (\Z).
					re2, err := adapter.Translate(p)
					if err != nil {
						b.Fatal(err)
					}
					compiled[p] = regexp.MustCompile(re2)
				}
				return compiled[p]
			}
			byTenant := map[string]*pdp.TenantPolicies{}
			for i := range s.Tenants {
				byTenant[s.Tenants[i].TenantID] = &s.Tenants[i]
			}
			texts := make([]string, len(s.Actions))
			keys := make([]string, len(s.Actions))
			for i, a := range s.Actions {
				texts[i] = floorText(b, a)
				keys[i] = a.TenantID + "\x00" + a.AgentID
				if _, ok := rules[keys[i]]; ok {
					continue
				}
				var eff []floorRule
				agentNames := map[string]bool{}
				for _, p := range byTenant[a.TenantID].Policies {
					if p.AgentID != "" && p.AgentID == a.AgentID {
						agentNames[p.Name] = true
						for _, r := range p.Rules {
							eff = append(eff, floorRule{re(r.Match)})
						}
					}
				}
				for _, p := range byTenant[a.TenantID].Policies {
					if p.AgentID == "" && !agentNames[p.Name] {
						for _, r := range p.Rules {
							eff = append(eff, floorRule{re(r.Match)})
						}
					}
				}
				rules[keys[i]] = eff
			}
			hits := 0
			i := 0
			done := reportCPU(b)
			defer done()
			for b.Loop() {
				k := i % len(texts)
				for _, r := range rules[keys[k]] {
					if r.re.FindStringIndex(texts[k]) != nil {
						hits++
					}
				}
				i++
			}
			_ = hits
		})
	}
}

// floorText is the contract's action text, built with encoding/json.
func floorText(tb testing.TB, a pdp.Action) string {
	var sb strings.Builder
	enc := json.NewEncoder(&sb)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(map[string]any{"action": a.Name, "params": a.Params}); err != nil {
		tb.Fatal(err)
	}
	return strings.TrimSuffix(sb.String(), "\n")
}

// BenchmarkCompile measures a cold compile of one tenant with 25 policies
// of 3 rules (translation included: a fresh tenant id every iteration).
func BenchmarkCompile(b *testing.B) {
	s := scale.Generate("compile", 1, 1, 25, 3, 0, 0)
	e := loadScale(b, s, Config{Timeout: time.Second}) // measure the compile, not the 50 ms budget on a loaded machine
	a := s.Actions[0]
	i := 0
	done := reportCPU(b)
	defer done()
	for b.Loop() {
		tp := s.Tenants[0]
		tp.TenantID = fmt.Sprintf("cold-%d", i)
		a.TenantID = tp.TenantID
		e.SetTenant(tp)
		if _, err := e.Evaluate(b.Context(), a); err != nil {
			b.Fatal(err)
		}
		e.RemoveTenant(tp.TenantID)
		i++
	}
}

// BenchmarkHeapPerEntry reports the live heap each cached prepared query
// costs (B/entry), at each scale (L on a sample of 200 tenants).
func BenchmarkHeapPerEntry(b *testing.B) {
	for _, sc := range scales {
		b.Run(sc.name, func(b *testing.B) {
			sample := heapSample(sc.gen())
			var perEntry float64
			for b.Loop() {
				e := loadScale(b, &sample, Config{CacheSize: 20000, Timeout: time.Second})
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				for _, a := range sample.Actions {
					if _, err := e.Evaluate(b.Context(), a); err != nil {
						b.Fatal(err)
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				perEntry = float64(after.HeapAlloc-before.HeapAlloc) / float64(e.Stats().Size)
				runtime.KeepAlive(e)
			}
			b.ReportMetric(perEntry, "B/entry")
		})
	}
}

// heapSample is the scale the heap benchmarks load: all of it, or for L
// its first 200 tenants and their actions.
func heapSample(sc *scale.Scale) scale.Scale {
	sample := *sc
	if len(sample.Tenants) > 200 {
		sample.Tenants = sample.Tenants[:200]
		sample.Actions = sample.Actions[:200*20]
	}
	return sample
}

// BenchmarkLiveHeap reports the engine's live heap, in bytes and in
// objects (what the garbage collector's mark phase walks), once every
// tenant of the scale is compiled and every action decided (L on a sample
// of 200 tenants), after the interner is dropped (intern.go).
func BenchmarkLiveHeap(b *testing.B) {
	for _, sc := range scales {
		b.Run(sc.name, func(b *testing.B) {
			sample := heapSample(sc.gen())
			var bytes, objects float64
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				e := loadScale(b, &sample, Config{CacheSize: 20000, Timeout: time.Second})
				for _, a := range sample.Actions {
					if _, err := e.Evaluate(b.Context(), a); err != nil {
						b.Fatal(err)
					}
				}
				e.interned.drop()
				runtime.GC()
				runtime.ReadMemStats(&after)
				bytes = float64(after.HeapAlloc) - float64(before.HeapAlloc)
				objects = float64(after.HeapObjects) - float64(before.HeapObjects)
				runtime.KeepAlive(e)
			}
			b.ReportMetric(bytes/1e6, "live-MB")
			b.ReportMetric(objects, "live-objects")
		})
	}
}

// BenchmarkRegexCache decides over 1200 distinct patterns (400 tenants of 3
// rules whose regexes always run) with the inter-query value cache on, on
// but bounded below the working set, and off (OPA's 100-entry global cache).
func BenchmarkRegexCache(b *testing.B) {
	s := &scale.Scale{Name: "regex"}
	for t := range 400 {
		tid := fmt.Sprintf("rx-%03d", t)
		tp := pdp.TenantPolicies{TenantID: tid, Revision: 1, Mode: pdp.ModeEnforcement}
		var words []string
		p := pdp.Policy{Name: "distinct", StepTypes: []string{"ACTION"}, Enabled: true, Version: 1}
		for r := range 3 {
			w := fmt.Sprintf("w%03dr%d", t, r)
			words = append(words, w)
			p.Rules = append(p.Rules, pdp.Rule{Match: w + `(?:[a-z]{2,12}|\d{3,9}|x+)?\b`, Severity: pdp.SeverityLow, OnViolation: pdp.OutcomeWarn, Confidence: 0.85})
		}
		tp.Policies = []pdp.Policy{p}
		s.Tenants = append(s.Tenants, tp)
		s.Actions = append(s.Actions, pdp.Action{TenantID: tid, Name: "http.post",
			Params: map[string]any{"body": strings.Join(words, " ") + " " + strings.Repeat("padding text ", 30)}})
	}
	for _, c := range []struct {
		name string
		size int
	}{{"cache=65536", 65536}, {"cache=600", 600}, {"cache=off", -1}} {
		b.Run(c.name, func(b *testing.B) {
			e := loadScale(b, s, Config{RegexCacheSize: c.size})
			for _, a := range s.Actions {
				if _, err := e.Evaluate(b.Context(), a); err != nil {
					b.Fatal(err)
				}
			}
			i := 0
			for b.Loop() {
				if _, err := e.Evaluate(b.Context(), s.Actions[i%len(s.Actions)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkReprepare measures a decision whose prepared query was evicted
// from the LRU: the tenant keeps its compiled unit, so the miss prepares
// the query again without compiling (a cache of one entry and two tenants
// decided in turn: every decision misses).
func BenchmarkReprepare(b *testing.B) {
	e := loadScale(b, &scale.Scale{Tenants: []pdp.TenantPolicies{seedPolicies("a"), seedPolicies("b")}}, Config{CacheSize: 1, Timeout: time.Second})
	acts := []pdp.Action{{TenantID: "a", Name: "http.post"}, {TenantID: "b", Name: "http.post"}}
	for _, a := range acts {
		if _, err := e.Evaluate(b.Context(), a); err != nil {
			b.Fatal(err)
		}
	}
	var units atomic.Int64
	e.compileHook = func() { units.Add(1) }
	i := 0
	done := reportCPU(b)
	for b.Loop() {
		if _, err := e.Evaluate(b.Context(), acts[i%2]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	done()
	st := e.Stats()
	if st.Misses < uint64(b.N) {
		b.Fatalf("%d misses in %d decisions: the cache kept the entries", st.Misses, b.N)
	}
	if n := units.Load(); n != 0 {
		b.Fatalf("%d units compiled after evictions; want the tenants' units reused", n)
	}
}

func seedPolicies(id string) pdp.TenantPolicies {
	return pdp.TenantPolicies{TenantID: id, Revision: 1, Mode: pdp.ModeEnforcement, Policies: scale.SeedPolicies()}
}

// BenchmarkDecisionFired is BenchmarkDecision/M split by how many rules
// fire (custom and built-in): 0, 1, 2 and 3 or more violations.
func BenchmarkDecisionFired(b *testing.B) {
	benchByFired(b, func(b *testing.B, e *Engine, a pdp.Action) (*pdp.Decision, error) {
		return e.Evaluate(b.Context(), a)
	})
}

// benchByFired splits scale M's corpus by how many rules fire in decide's
// decision (0, 1, 2, 3+) and benchmarks decide over each bucket,
// reporting each bucket's share of the corpus.
func benchByFired(b *testing.B, decide func(*testing.B, *Engine, pdp.Action) (*pdp.Decision, error)) {
	s := scale.M()
	e := loadScale(b, s, Config{CacheSize: 20000, Timeout: time.Second})
	buckets := map[string][]pdp.Action{}
	for _, a := range s.Actions {
		d, err := decide(b, e, a)
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
				if _, err := decide(b, e, actions[i%len(actions)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			done()
			b.ReportMetric(float64(len(actions))/float64(len(s.Actions))*100, "%corpus")
		})
	}
}
