package engine

import (
	"errors"
	"slices"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/gatehouse-pdp/gatehouse/adapter"
)

// Compiling a tenant's unit without compiling the library again.
//
// OPA's compiler runs every stage over every module it is given, so a unit
// compiled from the library and a tenant's modules together pays for the
// library each time (~15 ms of ~60 ms for a 25-policy tenant) and holds a
// copy of it (~0.7 MB per tenant). Instead the engine compiles the library
// once (libUnit) and compiles each tenant's modules alone, with every
// stage, in a compiler whose rule tree also holds the library's rules: a
// stage grafts a copy of the compiled library's tree onto the tenant's
// (ast.TreeNode.Copy, "a shallow copy suitable for augmentation": new
// nodes, the library's compiled rules shared read-only, indices dropped)
// right after the rule-conflict check, which rewrites the rules it walks
// in place and so must not walk shared ones (the tenant's own rules are
// checked, and no tenant rule can conflict with a library rule: see the
// guards). Every later stage sees the library as a compile of both
// together would: function arities and undefined functions, safety
// reordering, rule indices (rebuilt for the library's nodes too, so which
// refs are virtual is judged over the whole set) and the types (the
// checker starts from the compiled library's environment, extended, never
// modified). The stages that walk modules rather than the tree (the
// rewrites) run over the tenant's modules only: the library's are
// compiled already.
//
// What that leaves to guard, checked when the library compiles or before
// a tenant compiles; any doubt compiles the unit whole, so errors are
// OPA's own and the fallback is slower, never different:
//   - a tenant module outside the tenants' root (data.gatehouse.policies),
//     or a library rule under it: the grafted tree would mix them, and
//     their conflicts would go unchecked;
//   - a tenant module with a `with`: its targets are rewritten before the
//     library is grafted, when a library function would not be known as
//     one;
//   - recursion through both sets: the graph is built over the tenant's
//     rules, so a cycle through a library rule that refers back to the
//     tenants' root would go unseen; such library rules are found when
//     the library compiles (libUnit.reaches) and a tenant module that
//     refers to one is compiled whole;
//   - comprehension indices, which OPA keys by the compiled term and keeps
//     per compiler: the library's would be lost, so a library with an
//     indexed comprehension (it has none) compiles units whole.
//
// The unit's compiler keeps the names of the tenant's rewritten variables
// only (Compiler.RewrittenVars); evaluation reads them for traces alone.

// libUnit is the library compiled alone, shared read-only by every unit
// compiled onto it.
type libUnit struct {
	compiler *ast.Compiler
	// reaches holds the library rules that refer, directly or through
	// other library rules, to a document under the tenants' root.
	reaches map[*ast.Rule]bool
}

// errWholeCompile says a unit must be compiled whole, with the library.
var errWholeCompile = errors.New("compile the unit whole")

// tenantsRoot is where tenant modules live: data.gatehouse.policies.
var tenantsRoot = ast.MustParseRef("data." + adapter.Root + ".policies")

// libraryOnce compiles the engine's library alone, once; nil (and
// errWholeCompile) when units must be compiled whole.
type libraryOnce struct {
	once sync.Once
	lib  *libUnit
	err  error
}

func (l *libraryOnce) get(modules map[string]*ast.Module) (*libUnit, error) {
	l.once.Do(func() { l.lib, l.err = compileLibrary(modules) })
	return l.lib, l.err
}

func compileLibrary(modules map[string]*ast.Module) (*libUnit, error) {
	c := ast.NewCompiler()
	c.Compile(modules)
	if c.Failed() {
		return nil, errWholeCompile
	}
	lu := &libUnit{compiler: c, reaches: map[*ast.Rule]bool{}}
	indexed := false
	for _, m := range c.Modules {
		ast.WalkTerms(m, func(t *ast.Term) bool {
			indexed = indexed || c.ComprehensionIndex(t) != nil
			return indexed
		})
	}
	if indexed {
		return nil, errWholeCompile
	}
	for _, m := range c.Modules {
		for _, r := range m.Rules {
			if overlaps(r.Ref().GroundPrefix(), tenantsRoot, m.Package.Path) {
				return nil, errWholeCompile // a library rule under the tenants' root
			}
			if refersUnder(r, tenantsRoot) {
				lu.mark(r)
			}
		}
	}
	return lu, nil
}

// mark records that r reaches the tenants' root, and so does every library
// rule that depends on it.
func (lu *libUnit) mark(r *ast.Rule) {
	if lu.reaches[r] {
		return
	}
	lu.reaches[r] = true
	for d := range lu.compiler.Graph.Dependents(r) {
		lu.mark(d.(*ast.Rule))
	}
}

// overlaps reports whether the rule path pkg+ref (ref relative to pkg when
// it does not start at data) and root could name a common document.
func overlaps(ref, root, pkg ast.Ref) bool {
	full := ref
	if !ref.HasPrefix(ast.DefaultRootRef) {
		full = pkg.Concat(ref)
	}
	return prefixesMatch(full, root)
}

// prefixesMatch reports whether a and b agree on their common length,
// treating a non-ground element as matching anything.
func prefixesMatch(a, b ast.Ref) bool {
	n := min(len(a), len(b))
	for i := range n {
		x, y := a[i].Value, b[i].Value
		if x.IsGround() && y.IsGround() && x.Compare(y) != 0 {
			return false
		}
	}
	return true
}

// refersUnder reports whether any data ref in r could name a document under
// root (or root's ancestors, which hold it).
func refersUnder(r *ast.Rule, root ast.Ref) bool {
	found := false
	ast.WalkRefs(r, func(ref ast.Ref) bool {
		if !found && ref.HasPrefix(ast.DefaultRootRef) && prefixesMatch(ref, root) {
			found = true
		}
		return found
	})
	return found
}

// compileUnit compiles the library and a tenant's modules into one
// compiler, onto the library compiled once when it can (see the top of this
// file) and whole otherwise. incremental says which it did.
//
// The compiler's rule graph is dropped: it serves the compile's recursion
// and type checks, and afterwards only the type check of a query's `with`
// when it is prepared (without it the rules that depend on a replaced
// document keep their own types instead of being relaxed to any: a check,
// which can refuse a query, never a different decision; the engine's
// queries prepare either way), and it was a tenth of a unit's heap.
func (e *Engine) compileUnit(tenantModules map[string]*ast.Module) (c *ast.Compiler, incremental bool, err error) {
	if lib, err := e.lib.get(e.library); err == nil {
		if c, err := compileOnto(lib, tenantModules); err == nil {
			trim(c)
			return c, true, nil
		}
	}
	all := make(map[string]*ast.Module, len(e.library)+len(tenantModules))
	for p, m := range e.library {
		all[p] = m
	}
	for p, m := range tenantModules {
		all[p] = m
	}
	c = ast.NewCompiler()
	c.Compile(all)
	if c.Failed() {
		return nil, false, c.Errors
	}
	trim(c)
	return c, false, nil
}

// trim drops what a compiled unit need not keep: the rule graph (see
// compileUnit), and the modules as they were before compiling, which OPA's
// module copy leaves reachable from every else branch (Module.Copy points
// the copied rules at the copy, but not their else rules): the else rules
// are pointed at their rule's module, the same package.
func trim(c *ast.Compiler) {
	c.Graph = nil
	for _, m := range c.Modules {
		for _, r := range m.Rules {
			for e := r.Else; e != nil; e = e.Else {
				e.Module = r.Module
			}
		}
	}
}

// compileOnto compiles tenant modules onto the compiled library;
// errWholeCompile (or the compile's errors) when the unit must be compiled
// whole instead.
func compileOnto(lib *libUnit, tenantModules map[string]*ast.Module) (*ast.Compiler, error) {
	for _, m := range tenantModules {
		if !m.Package.Path.HasPrefix(tenantsRoot) || hasWith(m) {
			return nil, errWholeCompile
		}
	}
	c := ast.NewCompiler().
		WithStageAfterID(ast.StageCheckRuleConflicts, ast.CompilerStageDefinition{
			Name:       "GatehouseLibraryRules",
			MetricName: "compile_stage_gatehouse_library_rules",
			Stage: func(c *ast.Compiler) *ast.Error {
				graft(c.RuleTree, lib.compiler.RuleTree)
				return nil
			},
		}).
		WithStageAfterID(ast.StageCheckRecursion, ast.CompilerStageDefinition{
			Name:       "GatehouseLibraryTypes",
			MetricName: "compile_stage_gatehouse_library_types",
			Stage: func(c *ast.Compiler) *ast.Error {
				// The checker wraps this environment and adds to the
				// wrapper: the library's stays as it is for every unit.
				c.TypeEnv = lib.compiler.TypeEnv
				return nil
			},
		})
	c.Compile(tenantModules)
	if c.Failed() {
		return nil, c.Errors
	}
	for _, m := range c.Modules {
		if reachesBack(lib, m) {
			return nil, errWholeCompile
		}
	}
	return c, nil
}

// graft adds a copy of the library's rule tree lib to a tenant compile's
// rule tree dst: new nodes without indices (the tenant compile builds them
// over the whole tree), sharing the library's compiled rules.
func graft(dst, lib *ast.TreeNode) {
	cp := lib.Copy()
	cp.DepthFirst(func(n *ast.TreeNode) bool {
		n.Index = nil
		return false
	})
	for k, child := range cp.Children {
		dst.MergeChild(k, child)
	}
	dst.DepthFirst(func(n *ast.TreeNode) bool {
		slices.SortFunc(n.Sorted, ast.Value.Compare)
		return false
	})
}

// hasWith reports whether any expression of m has a `with` modifier.
func hasWith(m *ast.Module) bool {
	found := false
	ast.WalkExprs(m, func(x *ast.Expr) bool {
		found = found || len(x.With) > 0
		return found
	})
	return found
}

// reachesBack reports whether a compiled tenant module refers to a library
// rule that reaches the tenants' root (a possible cycle through both sets).
func reachesBack(lib *libUnit, m *ast.Module) bool {
	if len(lib.reaches) == 0 {
		return false
	}
	found := false
	ast.WalkRefs(m, func(ref ast.Ref) bool {
		if found || !ref.HasPrefix(ast.DefaultRootRef) {
			return found
		}
		for _, r := range lib.compiler.GetRulesDynamicWithOpts(ref, ast.RulesOptions{IncludeHiddenModules: true}) {
			if lib.reaches[r] {
				found = true
				break
			}
		}
		return found
	})
	return found
}
