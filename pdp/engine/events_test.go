package engine

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/gatehouse-pdp/gatehouse/test/scale"
)

var eventDump = flag.String("events.dump", "", "TestDecisionEvents: write the trace of each bucket's median decision to this file prefix")

var eventUnhinted = flag.Bool("events.unhinted", false, "TestDecisionEvents: trace the unhinted query on the plain input instead (what a stock OPA serving the bundle, the Data API and opa test evaluate)")

var eventActions = flag.Int("events.actions", 0, "TestDecisionEvents: decide this many scale-M actions with a tracer and log the events per fired bucket (0: skip)")

// TestDecisionEvents logs how many evaluator events a hinted decision at
// scale M costs (the noise-free measure of Rego work the engine issue
// reports), by the number of rules that fire, and, per bucket, where the
// events go (file and line of the median decision's events). A decision
// Evaluate answers without evaluating (nohit.go, hit.go) counts 0 events.
// `go test ./pdp/engine -run TestDecisionEvents -v -args -events.actions=1500`;
// -events.unhinted traces the query a stock OPA evaluates instead.
func TestDecisionEvents(t *testing.T) {
	if *eventActions <= 0 {
		t.Skip("set -events.actions")
	}
	s := scale.M()
	e := loadScale(t, s, Config{CacheSize: 20000, Timeout: time.Minute})
	type sample struct {
		events int
		byFile map[string]int
		byLine map[string]int
		trace  topdown.BufferTracer
	}
	buckets := map[string][]sample{}
	exact, warned := map[int]int{}, map[int]int{}
	answered, hitAnswered := 0, 0
	defer func() {
		t.Logf("decisions by number of hits %v, of them with a warning %v; answered without evaluating (0 events) %d, of them by the hit answer %d",
			exact, warned, answered, hitAnswered)
	}()
	for _, a := range s.Actions[:min(*eventActions, len(s.Actions))] {
		pq, err := e.entry(t.Context(), noop.Span{}, a.TenantID, a.AgentID)
		if err != nil {
			t.Fatal(err)
		}
		buf := topdown.NewBufferTracer()
		var rs rego.ResultSet
		if *eventUnhinted {
			input, _, err := inputAndParams(a)
			if err != nil {
				t.Fatal(err)
			}
			rs, err = pq.query.Eval(t.Context(), rego.EvalParsedInput(input), rego.EvalQueryTracer(buf))
			if err != nil {
				t.Fatal(err)
			}
		} else {
			wrapped, ok := hintedOf(t.Context(), pq.hinter, a)
			if !ok || pq.hinted == nil {
				t.Fatalf("%v: not hinted", a)
			}
			if rs, err = wrapped.eval(t.Context(), *pq.hinted, rego.EvalQueryTracer(buf)); err != nil {
				t.Fatal(err)
			}
		}
		decode := pq.decisionOfAST
		if *eventUnhinted {
			decode = decisionOf
		}
		d, err := decode(rs, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		k := fmt.Sprint(len(d.Violations))
		exact[len(d.Violations)]++
		for _, v := range d.Violations {
			if v.OnViolation == "warn" {
				warned[len(d.Violations)]++
				break
			}
		}
		if len(d.Violations) >= 3 {
			k = "3+"
		}
		smp := sample{events: len(*buf), byFile: map[string]int{}, byLine: map[string]int{}}
		if allowed, _ := noHitAnswer(t, e, a); allowed != nil && !*eventUnhinted {
			// Evaluate answers it without evaluating (nohit.go): no events.
			answered++
			*buf, smp.events = nil, 0
		} else if out, _, _, _, _ := hitAnswerOf(t, e, a); (out == hitNone || out == hitOne || out == hitMany || out == hitMore) && !*eventUnhinted {
			// The hit answer (hit.go): no events either.
			answered++
			hitAnswered++
			*buf, smp.events = nil, 0
		}
		for _, ev := range *buf {
			f, l := "query", ""
			if ev.Location != nil {
				f = ev.Location.File
				l = fmt.Sprintf("%s:%d", f[strings.LastIndex(f, "/")+1:], ev.Location.Row)
			}
			smp.byFile[f]++
			smp.byLine[l]++
		}
		if *eventDump != "" {
			smp.trace = *buf
		}
		buckets[k] = append(buckets[k], smp)
	}
	for _, k := range []string{"0", "1", "2", "3+"} {
		b := buckets[k]
		if len(b) == 0 {
			continue
		}
		sort.Slice(b, func(i, j int) bool { return b[i].events < b[j].events })
		sum := 0
		for _, x := range b {
			sum += x.events
		}
		m := b[len(b)/2]
		t.Logf("fired=%-2s n=%4d median %5d events, mean %7.1f, min %d, max %d", k, len(b), m.events, float64(sum)/float64(len(b)), b[0].events, b[len(b)-1].events)
		t.Logf("  median decision by file: %v", m.byFile)
		if *eventDump != "" {
			var sb strings.Builder
			topdown.PrettyTraceWithLocation(&sb, m.trace)
			if err := os.WriteFile(*eventDump+k+".txt", []byte(sb.String()), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		lines := make([]string, 0, len(m.byLine))
		for l := range m.byLine {
			lines = append(lines, l)
		}
		slices.SortFunc(lines, func(x, y string) int { return m.byLine[y] - m.byLine[x] })
		var sb strings.Builder
		for _, l := range lines[:min(25, len(lines))] {
			fmt.Fprintf(&sb, " %s=%d", l, m.byLine[l])
		}
		t.Logf("  median decision by line:%s", sb.String())
	}
}
