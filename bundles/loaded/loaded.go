// Package loaded holds a Gatehouse bundle as read from a file or a bundle
// service (Bundle) and the checks a bundle must pass before an engine
// decides with it: no network or runtime built-in, every constant regex
// valid and within the adapter's cost bounds, only the tenants its source
// is configured for.
//
// It sits below both of its users so that dependencies point one way:
// package bundles reads, verifies and serves bundles and produces a
// Bundle; package engine (pdp/engine) compiles and decides with one,
// without importing bundles.
package loaded

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/gatehouse-pdp/gatehouse/adapter"
)

// Bundle is a bundle ready for an engine: what `gatehouse serve --bundle`
// decides with. Policies cannot be recovered from Rego, so it carries the
// compiled form's inputs instead: the modules (library included, as the
// bundle shipped it) and the data document.
type Bundle struct {
	// Revision is the manifest revision.
	Revision string
	// Modules are the parsed modules by bundle path without the leading
	// "/", e.g. "gatehouse/decision.rego".
	Modules map[string]*ast.Module
	// Data is the bundle's data document, rooted at data (so
	// Data["gatehouse"]["tenants"] holds the tenants); numbers are
	// json.Number.
	Data map[string]any
	// TenantIDs are the tenants in data.gatehouse.tenants, sorted.
	TenantIDs []string
}

// refusedBuiltins are the built-ins a bundle's Rego may not call: they
// reach the network (http.send, net.lookup_ip_addr) or the process
// (opa.runtime exposes the environment, where secrets live). A decision
// must depend on its input and the bundle only, and cost what its text
// costs. Every net.* built-in is refused, the pure CIDR ones included: no
// Gatehouse bundle needs them, and one rule is easier to check than a list.
var refusedBuiltins = map[string]bool{"http.send": true, "opa.runtime": true}

func refused(name string) bool {
	return refusedBuiltins[name] || strings.HasPrefix(name, "net.")
}

// Capabilities returns the capabilities bundles are compiled with: this
// OPA's, less the refused built-ins.
func Capabilities() *ast.Capabilities {
	c := ast.CapabilitiesForThisVersion()
	c.Builtins = slices.DeleteFunc(slices.Clone(c.Builtins), func(b *ast.Builtin) bool { return refused(b.Name) })
	return c
}

// ErrRefusedBuiltin is returned for a bundle whose Rego calls a network or
// runtime built-in.
var ErrRefusedBuiltin = errors.New("bundle calls a built-in Gatehouse bundles may not use")

// ErrUnexpectedTenant is returned for a bundle that defines a tenant its
// source is not configured for.
var ErrUnexpectedTenant = errors.New("bundle defines a tenant its source is not configured for")

// Compile compiles a loaded bundle's modules with Capabilities. A call to a
// refused built-in is named with the module and line, before the compiler
// would report it as an undefined function.
func Compile(l *Bundle) (*ast.Compiler, error) {
	paths := slices.Sorted(maps.Keys(l.Modules))
	for _, p := range paths {
		var bad *ast.Term
		ast.WalkTerms(l.Modules[p], func(t *ast.Term) bool {
			if bad != nil {
				return true
			}
			if r, ok := t.Value.(ast.Ref); ok && refused(r.String()) {
				bad = t
			}
			return false
		})
		if bad != nil {
			return nil, fmt.Errorf("%w: %s:%d calls %v (network and runtime built-ins such as http.send, net.* and opa.runtime are refused)",
				ErrRefusedBuiltin, p, bad.Location.Row, bad)
		}
	}
	c := ast.NewCompiler().WithCapabilities(Capabilities())
	c.Compile(maps.Clone(l.Modules))
	if c.Failed() {
		return nil, fmt.Errorf("compile: %w", c.Errors)
	}
	return c, nil
}

// CheckTenants refuses a bundle that defines, in its data or its policy
// modules, a tenant outside allowed. A nil allowed permits any tenant (a
// server with a single bundle source that names none).
func CheckTenants(l *Bundle, allowed []string) error {
	if allowed == nil {
		return nil
	}
	seen := map[string]bool{}
	for _, id := range l.TenantIDs {
		seen[id] = true
	}
	for _, m := range l.Modules {
		if id, ok := policyTenant(m); ok {
			seen[id] = true
		}
	}
	var bad []string
	for id := range seen {
		if !slices.Contains(allowed, id) {
			bad = append(bad, id)
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("%w: %q (configured: %q)", ErrUnexpectedTenant, bad, allowed)
	}
	return nil
}

// policyAgent returns the agent of a generated agent-scoped policy module
// (package gatehouse.policies.<tenant>.agents.<agent>...), or "".
func policyAgent(m *ast.Module) string {
	p := m.Package.Path
	if len(p) < 6 || !p[4].Equal(ast.StringTerm("agents")) {
		return ""
	}
	s, _ := p[5].Value.(ast.String)
	return string(s)
}

// policyTenant returns the tenant of a generated policy module
// (package gatehouse.policies.<tenant>...).
func policyTenant(m *ast.Module) (string, bool) {
	p := m.Package.Path
	if len(p) < 4 || !p[1].Equal(ast.StringTerm(adapter.Root)) || !p[2].Equal(ast.StringTerm("policies")) {
		return "", false
	}
	s, ok := p[3].Value.(ast.String)
	return string(s), ok
}

// regexArg is the index of the pattern argument of OPA's regex built-ins.
var regexArg = map[string]int{
	"regex.match":                      0,
	"regex.find_n":                     0,
	"regex.find_all_string_submatch_n": 0,
	"regex.split":                      0,
	"regex.replace":                    1,
}

// CheckRegexes re-validates the constant patterns a bundle's modules pass
// to OPA's regex built-ins, and the patterns of the rules its tenants'
// data carries (policy as data: "pattern" and "context" of each rule, the
// library's regex arguments), as the adapter validated them when the
// bundle was built: a pattern that does not compile would make every decision
// that reaches it fail (strict built-in errors). A bad pattern in a
// tenant's policy module degrades that tenant only (the returned map,
// tenant → why); one in any other module (the library) refuses the bundle.
//
// A tenant's rules (and policy modules, which a hand-made bundle may
// still ship) are also held to the adapter's cost bounds (a
// pattern at most adapter.MaxRuleCost, a tenant's patterns together at
// most adapter.MaxTenantCost, counted as adapter.TenantCost counts a
// write: the tenant-wide policies plus the costliest agent's), so a hand-made bundle cannot hand one tenant a regex
// that stalls the evaluation slots every tenant shares. The library's own
// patterns are Gatehouse's and are not counted.
func CheckRegexes(l *Bundle) (map[string]error, error) {
	problems := map[string]error{}
	// tenant → agent ("" for tenant-wide) → cost of its patterns
	costs := map[string]map[string]int{}
	for _, p := range slices.Sorted(maps.Keys(l.Modules)) {
		m := l.Modules[p]
		id, isPolicy := policyTenant(m)
		var errs []error
		check := func(op *ast.Term, args []*ast.Term) {
			i, ok := regexArg[op.String()]
			if !ok || i >= len(args) {
				return
			}
			s, ok := args[i].Value.(ast.String)
			if !ok {
				return
			}
			if _, err := regexp.Compile(string(s)); err != nil {
				errs = append(errs, fmt.Errorf("%s:%d: %s pattern: %w", p, args[i].Location.Row, op, err))
				return
			}
			if !isPolicy {
				return
			}
			cost, err := adapter.RE2Cost(string(s))
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("%s:%d: %s pattern: %w", p, args[i].Location.Row, op, err))
			case cost > adapter.MaxRuleCost:
				errs = append(errs, fmt.Errorf("%s:%d: %s pattern: regex too expensive: costs %d, over the bound of %d for a rule",
					p, args[i].Location.Row, op, cost, adapter.MaxRuleCost))
			default:
				if costs[id] == nil {
					costs[id] = map[string]int{}
				}
				costs[id][policyAgent(m)] += cost
			}
		}
		ast.WalkExprs(m, func(e *ast.Expr) bool {
			if e.IsCall() {
				terms := e.Terms.([]*ast.Term)
				check(terms[0], terms[1:])
			}
			return false
		})
		ast.WalkTerms(m, func(t *ast.Term) bool {
			if c, ok := t.Value.(ast.Call); ok && len(c) > 0 {
				check(c[0], c[1:])
			}
			return false
		})
		if len(errs) == 0 {
			continue
		}
		err := errors.Join(errs...)
		if !isPolicy {
			return nil, fmt.Errorf("invalid regex outside a tenant's policies: %w", err)
		}
		problems[id] = errors.Join(problems[id], err)
	}
	// The rules a tenant's data carries (policy as data): their patterns
	// are what the library's regex calls receive.
	root, _ := l.Data[adapter.Root].(map[string]any)
	tenants, _ := root["tenants"].(map[string]any)
	for _, id := range slices.Sorted(maps.Keys(tenants)) {
		doc, _ := tenants[id].(map[string]any)
		var errs []error
		check := func(where, agent string, pattern any) {
			s, ok := pattern.(string)
			if !ok {
				return
			}
			if _, err := regexp.Compile(s); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
				return
			}
			cost, err := adapter.RE2Cost(s)
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
			case cost > adapter.MaxRuleCost:
				errs = append(errs, fmt.Errorf("%s: regex too expensive: costs %d, over the bound of %d for a rule", where, cost, adapter.MaxRuleCost))
			default:
				if costs[id] == nil {
					costs[id] = map[string]int{}
				}
				costs[id][agent] += cost
			}
		}
		policies := func(prefix, agent string, scope any) {
			byName, _ := scope.(map[string]any)
			for _, name := range slices.Sorted(maps.Keys(byName)) {
				p, _ := byName[name].(map[string]any)
				rules, _ := p["rules"].([]any)
				for i, r := range rules {
					r, _ := r.(map[string]any)
					for _, field := range []string{"pattern", "context"} {
						check(fmt.Sprintf("data %s[%q].rules[%d].%s", prefix, name, i, field), agent, r[field])
					}
				}
			}
		}
		policies(fmt.Sprintf("gatehouse.tenants[%q].tenant", id), "", doc["tenant"])
		agents, _ := doc["agents"].(map[string]any)
		for _, agent := range slices.Sorted(maps.Keys(agents)) {
			policies(fmt.Sprintf("gatehouse.tenants[%q].agents[%q]", id, agent), agent, agents[agent])
		}
		if len(errs) > 0 {
			problems[id] = errors.Join(problems[id], errors.Join(errs...))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(costs)) {
		most := 0
		for agent, c := range costs[id] {
			if agent != "" {
				most = max(most, c)
			}
		}
		if c := costs[id][""] + most; c > adapter.MaxTenantCost {
			problems[id] = errors.Join(problems[id], fmt.Errorf("the tenant's regexes together cost %d, over the bound of %d for a tenant", c, adapter.MaxTenantCost))
		}
	}
	return problems, nil
}

// CheckRules checks that every rule a tenant's data carries (policy as
// data) can fire: its kind is one decision.rego's _fire evaluates
// (adapter.RuleKinds) and its index is listed in its policy's
// "by_literal", which is how the library finds the rules to run. A rule
// that fails either would be skipped without a word, so a hand-edited
// bundle could switch a rule off and leave its policy looking enforced;
// such a tenant is degraded (the returned map, tenant → why), and fails
// closed, like one with a bad pattern. What the adapter writes always
// passes.
func CheckRules(l *Bundle) map[string]error {
	problems := map[string]error{}
	root, _ := l.Data[adapter.Root].(map[string]any)
	tenants, _ := root["tenants"].(map[string]any)
	for _, id := range slices.Sorted(maps.Keys(tenants)) {
		doc, _ := tenants[id].(map[string]any)
		var errs []error
		policies := func(prefix string, scope any) {
			byName, _ := scope.(map[string]any)
			for _, name := range slices.Sorted(maps.Keys(byName)) {
				p, _ := byName[name].(map[string]any)
				rules, _ := p["rules"].([]any)
				listed := map[string]bool{}
				byLiteral, _ := p["by_literal"].(map[string]any)
				for _, is := range byLiteral {
					is, _ := is.([]any)
					for _, i := range is {
						listed[fmt.Sprint(i)] = true
					}
				}
				for i, r := range rules {
					where := fmt.Sprintf("data %s[%q].rules[%d]", prefix, name, i)
					r, _ := r.(map[string]any)
					switch kind, ok := r["kind"].(string); {
					case !ok:
						errs = append(errs, fmt.Errorf("%s: no kind (one of %q): the rule would never fire", where, adapter.RuleKinds))
					case !slices.Contains(adapter.RuleKinds, kind):
						errs = append(errs, fmt.Errorf("%s: kind %q is not one the library evaluates (%q): the rule would never fire", where, kind, adapter.RuleKinds))
					}
					if !listed[strconv.Itoa(i)] {
						errs = append(errs, fmt.Errorf("%s: not listed in the policy's by_literal: the rule would never run", where))
					}
				}
			}
		}
		policies(fmt.Sprintf("gatehouse.tenants[%q].tenant", id), doc["tenant"])
		agents, _ := doc["agents"].(map[string]any)
		for _, agent := range slices.Sorted(maps.Keys(agents)) {
			policies(fmt.Sprintf("gatehouse.tenants[%q].agents[%q]", id, agent), agents[agent])
		}
		if len(errs) > 0 {
			problems[id] = errors.Join(errs...)
		}
	}
	return problems
}
