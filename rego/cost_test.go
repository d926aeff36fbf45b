package rego

import (
	"context"
	"encoding/json"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// costActions are representative actions for the built-ins' cost: what
// the corpus at scale M looks like (about 500 bytes of params), with and
// without money words, amounts, secrets and exports.
var costActions = map[string]struct {
	Action string         `json:"action"`
	Params map[string]any `json:"params"`
}{}

func init() {
	filler := "Please summarise the quarterly report for the team and post it in the channel. Schedule a follow-up meeting next Tuesday with the design group. The deployment finished successfully, all health checks are green. Draft a friendly reminder about the offsite agenda and travel details."
	base := func(extra string, kv ...any) map[string]any {
		p := map[string]any{
			"channel":  "#team-42",
			"thread":   json.Number("421337"),
			"priority": "p2",
			"metadata": map[string]any{"source": "agent", "retry": json.Number("0"), "labels": []any{"ops", "weekly"}},
			"text":     filler + " " + extra,
		}
		for i := 0; i+1 < len(kv); i += 2 {
			p[kv[i].(string)] = kv[i+1]
		}
		return p
	}
	type a = struct {
		Action string         `json:"action"`
		Params map[string]any `json:"params"`
	}
	costActions["neutral"] = a{"slack.send_message", base("")}
	costActions["refund, no amount"] = a{"slack.send_message", base("Contact the customer by email at alice@example.com regarding the refund.")}
	costActions["wire, number amount"] = a{"bank.wire_transfer", base("", "amount", json.Number("25000"))}
	costActions["payment, string amount"] = a{"stripe.create_payment", base("", "amount", "$1,234.50", "currency", "usd")}
	costActions["export customer data"] = a{"db.export", base("export the customer records to s3")}
	costActions["credential"] = a{"http.post", base(`api_key: abcdefghijkl`)}
	costActions["key, no secret"] = a{"http.post", base("the keyboard shortcut for the monkey")}
}

// costQuery evaluates q with the action text handed over as the engine
// does (data.gatehouse.hints: text, folded, ascii) when hinted.
func costEval(tb testing.TB, q string, input any, hinted bool, tracer topdown.QueryTracer) rego.ResultSet {
	tb.Helper()
	ctx := context.Background()
	pq := preparedCost(tb, q, hinted)
	in := input
	if hinted {
		in = map[string]any{"input": input, "hints": textHints(tb, input)}
	}
	v, err := ast.InterfaceToValue(in)
	if err != nil {
		tb.Fatal(err)
	}
	opts := []rego.EvalOption{rego.EvalParsedInput(v)}
	if tracer != nil {
		opts = append(opts, rego.EvalQueryTracer(tracer))
	}
	rs, err := pq.Eval(ctx, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return rs
}

var costPrepared = map[[2]any]rego.PreparedEvalQuery{}

func preparedCost(tb testing.TB, q string, hinted bool) rego.PreparedEvalQuery {
	tb.Helper()
	k := [2]any{q, hinted}
	if pq, ok := costPrepared[k]; ok {
		return pq
	}
	mods, err := Parsed()
	if err != nil {
		tb.Fatal(err)
	}
	query := q
	if hinted {
		query = q + " with input as input.input with data.gatehouse.hints as input.hints"
	}
	opts := []func(*rego.Rego){rego.Query(query), rego.StrictBuiltinErrors(true)}
	for p, m := range mods {
		opts = append(opts, rego.ParsedModule(&ast.Module{Package: m.Package, Imports: m.Imports, Rules: m.Rules, Annotations: m.Annotations, Comments: m.Comments}))
		_ = p
	}
	pq, err := rego.New(opts...).PrepareForEval(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	costPrepared[k] = pq
	return pq
}

// textHints computes text, folded and ascii with the library itself (so
// they are the library's by definition).
func textHints(tb testing.TB, input any) map[string]any {
	tb.Helper()
	rs := costEval(tb, "t := data.gatehouse.text.text; f := data.gatehouse.text.folded; a := count({1 | data.gatehouse.text.ascii}) == 1", input, false, nil)
	if len(rs) != 1 {
		tb.Fatalf("text of %v: %v", input, rs)
	}
	return map[string]any{"text": rs[0].Bindings["t"], "folded": rs[0].Bindings["f"], "ascii": rs[0].Bindings["a"]}
}

// withFacts adds the FinancialFacts hint to hints, as the engine would.
func withFacts(hints map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range hints {
		out[k] = v
	}
	if kw, amountKey, ok := FinancialFacts(hints["text"].(string), hints["folded"].(string)); ok {
		out["financial"] = map[string]any{"keyword": kw, "amount_key": amountKey}
	}
	return out
}

type eventCounter struct{ n int }

func (c *eventCounter) Enabled() bool               { return true }
func (c *eventCounter) TraceEvent(topdown.Event)    { c.n++ }
func (c *eventCounter) Config() topdown.TraceConfig { return topdown.TraceConfig{} }

// costBuiltins are the built-ins' hits, ranked and composed, as the
// decision reads them.
var costBuiltins = map[string]string{
	"baseline":  "x := input.action",
	"financial": "x := data.gatehouse.builtins.financial_safety.hits",
	// the same, with the engine's optional FinancialFacts hint
	"financial+facts": "x := data.gatehouse.builtins.financial_safety.hits",
	"exfiltration":    "x := data.gatehouse.builtins.data_exfiltration.hits",
}

// costInput is the hinted query's input for action a and built-in b.
func costInput(tb testing.TB, b string, a any) ast.Value {
	tb.Helper()
	hints := textHints(tb, a)
	if b == "financial+facts" {
		hints = withFacts(hints)
	}
	in, err := ast.InterfaceToValue(map[string]any{"input": a, "hints": hints})
	if err != nil {
		tb.Fatal(err)
	}
	return in
}

var costOrder = []string{"neutral", "refund, no amount", "wire, number amount", "payment, string amount", "export customer data", "credential", "key, no secret"}

// TestBuiltinEventCounts logs how many evaluator events each built-in
// costs on the representative actions (hinted, as the engine runs it),
// and checks that the FinancialFacts hint changes nothing but the cost.
func TestBuiltinEventCounts(t *testing.T) {
	for _, b := range []string{"baseline", "financial", "financial+facts", "exfiltration"} {
		for _, name := range costOrder {
			var c eventCounter
			rs, err := preparedCost(t, costBuiltins[b], true).Eval(context.Background(), rego.EvalParsedInput(costInput(t, b, costActions[name])), rego.EvalQueryTracer(&c))
			if err != nil || len(rs) != 1 {
				t.Fatal(err, rs)
			}
			t.Logf("%-15s %-24s %4d events  %v", b, name, c.n, rs[0].Bindings["x"])
			if b == "financial+facts" {
				plain := costEval(t, costBuiltins["financial"], costActions[name], false, nil)
				if !reflect.DeepEqual(plain[0].Bindings["x"], rs[0].Bindings["x"]) {
					t.Errorf("%s: with the facts hint %v, without hints %v", name, rs[0].Bindings["x"], plain[0].Bindings["x"])
				}
			}
		}
	}
}

func BenchmarkBuiltins(b *testing.B) {
	for _, bi := range []string{"baseline", "financial", "financial+facts", "exfiltration"} {
		for _, name := range costOrder {
			in := costInput(b, bi, costActions[name])
			pq := preparedCost(b, costBuiltins[bi], true)
			var c eventCounter
			if _, err := pq.Eval(context.Background(), rego.EvalParsedInput(in), rego.EvalQueryTracer(&c)); err != nil {
				b.Fatal(err)
			}
			b.Run(bi+"/"+name, func(b *testing.B) {
				start := cpuTime()
				for b.Loop() {
					if _, err := pq.Eval(context.Background(), rego.EvalParsedInput(in)); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
				b.ReportMetric(float64(c.n), "events")
			})
		}
	}
}

// cpuTime is the process's user+system CPU time: on a shared, noisy
// machine it counts only this process's work.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
