package engine

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/test/scale"
)

// legacyHits is how the library found custom hits before policy as data
// (main at ab1f3b6): in the generated modules, adapter.PolicyModule's
// rendering, one hits rule per policy rule. TestDataDecidesAsModules
// decides with it in place of the data path (result: the library's result
// with its hits replaced through `with`, inside a rule so that the hits
// are found with the input and hints the query sets), so the generated
// modules stay the reference the rules' data is checked against.
const legacyHits = `package gatehouse.legacy

import data.gatehouse.builtins.data_exfiltration
import data.gatehouse.builtins.financial_safety
import data.gatehouse.decision

result := r if {
	r := decision.result with decision._hits as hits with decision._shadow_hits as shadow_hits
}

hits contains h if {
	some name in decision._candidates.agent
	p := decision._view.agent[name]
	some h in data.gatehouse.policies[input.tenant_id].agents[input.agent_id][name].hits
	not decision._whitelisted(p)
}

hits contains h if {
	some name in decision._candidates.tenant
	p := decision._view.tenant[name]
	some h in data.gatehouse.policies[input.tenant_id].tenant[name].hits
	not decision._whitelisted(p)
}

hits contains h if {
	decision._builtins.FinancialSafetyPolicy
	some h in financial_safety.hits
}

hits contains h if {
	decision._builtins.DataExfiltrationPolicy
	some h in data_exfiltration.hits
}

shadow_hits contains h if {
	some name, p in decision._view.shadow.agent
	name in decision._candidates.agent
	some h in data.gatehouse.policies[input.tenant_id].agents[input.agent_id][name].hits
	not decision._whitelisted(p)
}

shadow_hits contains h if {
	some name, p in decision._view.shadow.tenant
	name in decision._candidates.tenant
	some h in data.gatehouse.policies[input.tenant_id].tenant[name].hits
	not decision._whitelisted(p)
}
`

// asData holds the queries TestDataDecidesAsModules compares, over one
// store holding every tenant's data (rules included).
type asData struct {
	e                          *Engine
	tenants                    map[string]*pdp.TenantPolicies
	hinters                    map[string]*adapter.Hinter
	plain, hinted              rego.PreparedEvalQuery // data path
	legacyPlain, legacyHinted  rego.PreparedEvalQuery // generated modules
	decided, firedRules, fired int
}

func newAsData(t *testing.T, tenants []pdp.TenantPolicies) *asData {
	t.Helper()
	e := newEngine(t, Config{})
	lib, err := e.lib.get(e.library)
	if err != nil {
		t.Fatal(err)
	}
	x := &asData{e: e, tenants: map[string]*pdp.TenantPolicies{}, hinters: map[string]*adapter.Hinter{}}
	modules := map[string]*ast.Module{}
	for p, m := range e.library {
		modules[p] = m
	}
	modules["legacy.rego"] = ast.MustParseModuleWithOpts(legacyHits, ast.ParserOptions{RegoVersion: ast.RegoV1})
	data := map[string]any{}
	for i := range tenants {
		tp := &tenants[i]
		x.tenants[tp.TenantID] = tp
		x.hinters[tp.TenantID] = adapter.NewHinter(tp)
		data[tp.TenantID] = adapter.TenantData(tp, "", true)
		for j := range tp.Policies {
			if p := &tp.Policies[j]; p.Enabled {
				m, err := adapter.PolicyModule(tp.TenantID, p)
				if err != nil {
					t.Fatal(err)
				}
				modules[m.Path] = m.Parsed
			}
		}
	}
	legacy := ast.NewCompiler()
	if legacy.Compile(modules); legacy.Failed() {
		t.Fatal(legacy.Errors)
	}
	store := hintStore{inmem.NewFromObjectWithOpts(map[string]any{adapter.Root: map[string]any{"config": e.data, "tenants": data}},
		inmem.OptRoundTripOnWrite(true), inmem.OptReturnASTValuesOnRead(true))}
	prep := func(c *ast.Compiler, q string) rego.PreparedEvalQuery {
		pq, err := rego.New(rego.Query(q), rego.Compiler(c), rego.Store(store), rego.StrictBuiltinErrors(true)).PrepareForEval(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return pq
	}
	x.plain = prep(lib, adapter.DecisionQuery)
	x.hinted = prep(lib, hintedQuery)
	legacyQuery := "data.gatehouse.legacy.result"
	x.legacyPlain = prep(legacy, legacyQuery)
	x.legacyHinted = prep(legacy, strings.Replace(hintedQuery, adapter.DecisionQuery, legacyQuery, 1))
	return x
}

// result evaluates pq and returns its result as JSON, or the error.
func (x *asData) result(t *testing.T, pq rego.PreparedEvalQuery, in hinted) (string, error) {
	t.Helper()
	rs, err := in.eval(t.Context(), pq)
	if err != nil {
		return "", err
	}
	if len(rs) == 0 {
		return "undefined", nil
	}
	b, err := json.Marshal(rs[0].Expressions[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), nil
}

// ruleHints returns hints with data.gatehouse.hints.rules replaced by
// rule hints built from the pre-check literals alone (the engine's own
// add necessary conditions): for each policy the hinter finds a candidate
// (adapter.Hinter.Candidates), the indices of its rules whose pre-checks
// (adapter.Literals of match and of context_requires) hold on the folded
// text; a policy with none is left out. Every rule that can fire is
// listed: the pre-checks are necessary conditions.
func (x *asData) ruleHints(t testing.TB, a pdp.Action, wrapped hinted) hinted {
	t.Helper()
	return ruleHints(x.tenants[a.TenantID], a, wrapped)
}

// ruleHints is asData.ruleHints for a's tenant tp.
func ruleHints(tp *pdp.TenantPolicies, a pdp.Action, wrapped hinted) hinted {
	hints := wrapped.hints
	folded := string(hints.Get(hintFolded).Value.(ast.String))
	agentNames, tenantNames := hinterOf(tp).Candidates(a.AgentID, a.StepType, folded)
	holds := func(pattern string) bool {
		lits, ok := adapter.Literals(pattern)
		if !ok {
			return true
		}
		for _, l := range lits {
			if strings.Contains(folded, l) {
				return true
			}
		}
		return false
	}
	scope := func(names []string, agent string) *ast.Term {
		out := ast.NewObject()
		for _, name := range names {
			for j := range tp.Policies {
				p := &tp.Policies[j]
				if !p.Enabled || p.AgentID != agent || p.Name != name {
					continue
				}
				var idx []*ast.Term
				for k, r := range p.Rules {
					if holds(r.Match) && (r.ContextRequires == "" || holds(r.ContextRequires)) {
						idx = append(idx, ast.IntNumberTerm(k))
					}
				}
				if len(idx) > 0 {
					out.Insert(ast.StringTerm(name), ast.ArrayTerm(idx...))
				}
			}
		}
		return ast.NewTerm(out)
	}
	withRules := hints.Copy()
	agent := a.AgentID
	withRules.Insert(ast.StringTerm("rules"), ast.ObjectTerm(
		[2]*ast.Term{candidatesAgentKey, scope(agentNames, agent)},
		[2]*ast.Term{candidatesTenantKey, scope(tenantNames, "")},
	))
	return hinted{input: wrapped.input, hints: withRules}
}

var (
	candidatesAgentKey  = ast.StringTerm("agent")
	candidatesTenantKey = ast.StringTerm("tenant")
)

// decide decides a five ways and requires one answer: the data path
// without hints (stock OPA), with the engine's hints, and with rule hints;
// the generated modules without and with the engine's hints.
func (x *asData) decide(t *testing.T, a pdp.Action) {
	t.Helper()
	input, _, err := inputAndParams(a)
	if err != nil {
		t.Fatal(err)
	}
	wrapped, ok := hintedOf(t.Context(), x.hinters[a.TenantID], a)
	if !ok {
		t.Fatalf("%+v: no hinted input", a)
	}
	type answer struct {
		name string
		json string
		err  error
	}
	var answers []answer
	add := func(name string, pq rego.PreparedEvalQuery, in hinted) {
		j, err := x.result(t, pq, in)
		answers = append(answers, answer{name, j, err})
	}
	add("modules, no hints", x.legacyPlain, hinted{input: input})
	add("data, no hints", x.plain, hinted{input: input})
	policyHinted := policyHints(x.hinters[a.TenantID], a, wrapped)
	add("modules, policy hints", x.legacyHinted, policyHinted)
	add("data, policy hints", x.hinted, policyHinted)
	add("data, engine's hints", x.hinted, wrapped)
	add("data, literal rule hints", x.hinted, x.ruleHints(t, a, wrapped))
	ref := answers[0]
	for _, an := range answers[1:] {
		if (an.err != nil) != (ref.err != nil) || an.json != ref.json {
			t.Fatalf("%+v:\n%s: %s %v\n%s: %s %v", a, ref.name, ref.json, ref.err, an.name, an.json, an.err)
		}
	}
	x.decided++
	if ref.err == nil && strings.Contains(ref.json, `"violations":[{`) {
		x.fired++
	}
	x.firedRules += bytes.Count([]byte(ref.json), []byte(`"match":`))
}

// TestDataDecidesAsModules: a tenant decided by the library's generic
// evaluation of its rules' data and by its generated modules
// (adapter.PolicyModule) gets the same result, byte for byte as JSON,
// or the same failure, with and without the engine's hints, and with the
// rule-level hints (data.gatehouse.hints.rules): over scale M's actions
// and the hints differential test's generated tenants and actions.
func TestDataDecidesAsModules(t *testing.T) {
	t.Run("M", func(t *testing.T) {
		s := scale.M()
		x := newAsData(t, s.Tenants)
		n := len(s.Actions)
		if testing.Short() {
			n = min(n, 300)
		}
		for _, a := range s.Actions[:n] {
			x.decide(t, a)
		}
		t.Logf("%d actions, %d with violations, %d violations and shadow hits", x.decided, x.fired, x.firedRules)
		if x.fired == 0 {
			t.Fatal("no rule fired")
		}
	})
	t.Run("generated", func(t *testing.T) {
		seed := *hintSeed
		if seed == 0 {
			seed = uint64(time.Now().UnixNano())
		}
		t.Logf("seed %d", seed)
		r := rand.New(rand.NewPCG(seed, 23))
		world := hintWorld(r, 30)
		x := newAsData(t, world)
		for range hintCount(t) {
			x.decide(t, hintAction(r, world))
		}
		t.Logf("%d actions, %d with violations, %d violations and shadow hits", x.decided, x.fired, x.firedRules)
		if x.fired == 0 {
			t.Fatal("no rule fired")
		}
	})
}

// hinters keeps one adapter.Hinter per tenant for ruleHints.
var hinters sync.Map // *pdp.TenantPolicies → *adapter.Hinter

func hinterOf(tp *pdp.TenantPolicies) *adapter.Hinter {
	if h, ok := hinters.Load(tp); ok {
		return h.(*adapter.Hinter)
	}
	h, _ := hinters.LoadOrStore(tp, adapter.NewHinter(tp))
	return h.(*adapter.Hinter)
}

// policyHints returns the engine's hinted input with the policy-level
// candidates hint (data.gatehouse.hints.candidates, policy names) in
// place of the rule hints: the hint the library also accepts, and the one
// the generated modules read.
func policyHints(h *adapter.Hinter, a pdp.Action, wrapped hinted) hinted {
	hints := wrapped.hints
	folded := string(hints.Get(hintFolded).Value.(ast.String))
	var out [][2]*ast.Term
	hints.Foreach(func(k, v *ast.Term) {
		if !k.Equal(hintRules) {
			out = append(out, [2]*ast.Term{k, v})
		}
	})
	out = append(out, [2]*ast.Term{ast.StringTerm("candidates"), h.CandidatesTerm(a.AgentID, a.StepType, folded)})
	return hinted{input: wrapped.input, hints: ast.NewObject(out...)}
}
