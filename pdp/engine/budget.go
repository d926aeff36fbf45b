package engine

import (
	"errors"
	"fmt"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// ErrCompileBudget is wrapped by the error CompileCost's callers get for a
// tenant whose policies would cost more to compile than the budget
// (Config.CompileBudget); as a *pdp.ValidationError it is a 400.
var ErrCompileBudget = errors.New("over the compile budget")

// DefaultCompileBudget is the default of Config.CompileBudget, in compile
// units (policyCost). A registry tenant compiles no Rego (its rules are
// data, the library is compiled once per process, libcompile.go): what a
// revision costs is building its data document and store (every value of
// its rules and of its views), its hinter (each pattern analysed once) and
// preparing two queries, and that grows with its data. Measured on a
// 2-core machine, about 0.9 µs of CPU per unit: 25 policies of 3 rules are
// ~5,600 units (~5 ms), 25 policies of 20 rules ~31,000 (~21 ms), the
// attacker-sized tenant of 60 policies × 100 rules ~355,000 (~0.3 s). The
// budget, about 35 ms of building, admits the second and refuses the
// third, nearly 9 times over it.
const DefaultCompileBudget = 40_000

// policyCost is the compile cost of one enabled policy: the values of its
// data (adapter.PolicyRules and its entry's other fields, the entry counted
// once more for each step type, since the views list it once per step
// type), each string counted once more per 64 bytes. Building a tenant's
// store and hinter walks these values a bounded number of times, so the
// time to build a revision grows with this sum, policy by policy; unlike a
// deadline on a trial build it is the same on an idle and on a loaded
// machine, so a write is accepted or refused the same way everywhere, and
// it is known before anything is built or stored.
func policyCost(p *pdp.Policy) int {
	entry := 1 + dataUnits(toAnyStrings(p.WhitelistedDomains)) + 2*len(p.StepTypes) + 2
	return dataUnits(adapter.PolicyRules(p)) + entry*(1+len(p.StepTypes))
}

// dataUnits counts the values of a JSON-like document (strings once more
// per 64 bytes).
func dataUnits(v any) int {
	switch v := v.(type) {
	case map[string]any:
		n := 1
		for k, x := range v {
			n += 1 + len(k)/64 + dataUnits(x)
		}
		return n
	case []any:
		n := 1
		for _, x := range v {
			n += dataUnits(x)
		}
		return n
	case string:
		return 1 + len(v)/64
	}
	return 1
}

func toAnyStrings(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// CompileCost returns what compiling tenant with policies (enabled ones
// only) would cost, in compile units, and an error wrapping
// ErrCompileBudget (a *pdp.ValidationError naming the budget, field
// "rules") when that is over Config.CompileBudget. The registry calls it
// with a write's outcome before it stores the write. Costs the engine
// measured for the tenant's policies are reused.
func (e *Engine) CompileCost(tenant string, policies []pdp.Policy) (int, error) {
	e.mu.RLock()
	st := e.tenants[tenant]
	e.mu.RUnlock()
	cost := 0
	for i := range policies {
		p := &policies[i]
		if !p.Enabled {
			continue
		}
		if st != nil && st.modules != nil {
			cost += st.modules.cost(p)
			continue
		}
		cost += policyCost(p)
	}
	if cost > e.cfg.CompileBudget {
		return cost, budgetError(cost, e.cfg.CompileBudget)
	}
	return cost, nil
}

// CompileBudget returns Config.CompileBudget.
func (e *Engine) CompileBudget() int { return e.cfg.CompileBudget }

// budgetError is the 400 for a tenant whose policies cost cost units.
func budgetError(cost, budget int) error {
	return &budgetErr{pdp.ValidationError{Field: "rules", Reason: fmt.Sprintf(
		"the tenant's policies would be too large to compile: they would cost %d compile units, over the compile budget of %d per tenant (the engine compile budget); remove or disable rules or policies",
		cost, budget)}}
}

// budgetErr is a *pdp.ValidationError (400) that is also ErrCompileBudget.
type budgetErr struct{ pdp.ValidationError }

func (b *budgetErr) Unwrap() []error { return []error{&b.ValidationError, ErrCompileBudget} }
