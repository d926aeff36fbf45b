package engine

import (
	"errors"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// ErrCompileBudget is wrapped by the error CompileCost's callers get for a
// tenant whose policies would cost more to compile than the budget
// (Config.CompileBudget); as a *pdp.ValidationError it is a 400.
var ErrCompileBudget = errors.New("over the compile budget")

// DefaultCompileBudget is the default of Config.CompileBudget, in compile
// units. Measured on a 2-core machine, compiling a tenant cost ~12 ms
// (the library) plus ~6 µs per unit, linearly: 25 policies of 3 rules are
// ~12,400 units (~85 ms), 25 policies of 20 rules ~82,000 (~0.5 s). The
// library is now compiled once for all tenants (libcompile.go), so a
// tenant pays the per-unit part only and the budget is at most ~0.6 s of
// compiling. It is 8 times the first; the attacker-sized tenant of 60
// policies × 100 rules (~990,000 units) is 10 times over it and refused
// long before it gets there.
const DefaultCompileBudget = 100_000

// compileUnits is the compile cost of one generated policy module: the
// number of AST nodes OPA's compiler walks (terms, expressions, rules).
// Every compiler stage walks the module's nodes a bounded number of times,
// so the time to compile a tenant grows with this sum, module by module;
// unlike a deadline on a trial compile it is the same on an idle and on a
// loaded machine, so a write is accepted or refused the same way
// everywhere, and it is known before anything is compiled or stored.
func compileUnits(m *ast.Module) int {
	n := 0
	ast.WalkNodes(m, func(ast.Node) bool {
		n++
		return false
	})
	return n
}

// CompileCost returns what compiling tenant with policies (enabled ones
// only) would cost, in compile units, and an error wrapping
// ErrCompileBudget (a *pdp.ValidationError naming the budget, field
// "rules") when that is over Config.CompileBudget. The registry calls it
// with a write's outcome before it stores the write. Translations the
// engine holds for the tenant are reused; others are made and dropped.
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
			if t, ok := st.modules.peek(p); ok {
				cost += t.cost
				continue
			}
		}
		cost += translate(tenant, p).cost
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
		"the tenant's policies would be too large to compile: they would cost %d compile units, over the compile budget of %d per tenant (the engine compile budget, about 0.6 s of compiling); remove or disable rules or policies",
		cost, budget)}}
}

// budgetErr is a *pdp.ValidationError (400) that is also ErrCompileBudget.
type budgetErr struct{ pdp.ValidationError }

func (b *budgetErr) Unwrap() []error { return []error{&b.ValidationError, ErrCompileBudget} }
