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
// library each time (~15 ms of ~60 ms for a 25-policy tenant). Instead the
// engine compiles the library once (libCompiler), then for each unit:
//
//  1. compiles the tenant's modules alone, with every stage (rewrites and
//     checks) but the index stages, type-checking them against the
//     library's types (the compiled library's TypeEnv seeds the checker);
//  2. merges: hands the compiled library modules and the compiled tenant
//     modules to a compiler that runs only the stages that build the
//     structures evaluation reads — module tree, rule tree, annotation set,
//     rule indices and comprehension indices — over both, as OPA's own
//     external rule sources do for precompiled rules (ast.ExternalSourceOptions:
//     "start from AllStages() and remove only the stages you need").
//
// Stage by stage the modules end up as a compile of both together would
// leave them: the rewrites of a module depend only on the module and on
// which refs are functions (a tenant module that calls a library function
// does not compile alone: the unit is then compiled whole), and the
// indices, the only structures that depend on the whole set, are built
// over the whole set. What the split could miss are the checks that span
// both sets, so they are kept by construction:
//   - rule conflicts: no library rule lives under the tenants' root
//     (data.gatehouse.policies), checked when the library compiles;
//   - recursion: a cycle through both sets would need a library rule that a
//     tenant module refers to and that itself (transitively) refers to the
//     tenants' root; such rules are found when the library compiles
//     (libUnit.reaches) and a tenant module referring to one is compiled
//     whole;
//   - types: the tenant modules are checked against the library's types.
//
// Any doubt (the library does not compile alone, a guard trips, the tenant
// modules fail alone) falls back to compiling the unit whole, so errors
// are OPA's own. The fallback is slower, never different.

// libUnit is the library compiled alone, shared read-only by every unit
// merged with it.
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

// mergeStages are the stages the merging compile runs.
var mergeStages = []ast.StageID{
	ast.StageSetModuleTree,
	ast.StageSetRuleTree,
	ast.StageSetAnnotationSet,
	ast.StageBuildRuleIndices,
	ast.StageBuildComprehensionIndices,
}

// skipAllBut returns every compiler stage but keep.
func skipAllBut(keep []ast.StageID) []ast.StageID {
	var skip []ast.StageID
	for _, s := range ast.AllStages() {
		if !slices.Contains(keep, s) {
			skip = append(skip, s)
		}
	}
	return skip
}

// tenantSkip are the stages the compile of tenant modules alone skips:
// the merge builds the indices over the whole set.
var tenantSkip = []ast.StageID{
	ast.StageBuildRuleIndices,
	ast.StageBuildComprehensionIndices,
	ast.StageBuildRequiredCapabilities,
}

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
// compiler, merging them onto the compiled library when it can (see the
// top of this file) and compiling them whole otherwise. incremental says
// which it did.
func (e *Engine) compileUnit(tenantModules map[string]*ast.Module) (c *ast.Compiler, incremental bool, err error) {
	if lib, err := e.lib.get(e.library); err == nil {
		if c, err := mergeOnto(lib, tenantModules); err == nil {
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
	return c, false, nil
}

// mergeOnto compiles tenant modules alone, then merges them with the
// compiled library; errWholeCompile (or the tenant compile's errors) when
// the unit must be compiled whole instead.
func mergeOnto(lib *libUnit, tenantModules map[string]*ast.Module) (*ast.Compiler, error) {
	tc := ast.NewCompiler().
		WithSkipStages(tenantSkip...).
		// Type-check against the library's types: the checker extends a
		// wrapper of the library's environment, never the environment
		// itself, which the library's compiler keeps for every unit.
		WithStageAfterID(ast.StageCheckRecursion, ast.CompilerStageDefinition{
			Name:       "GatehouseLibraryTypes",
			MetricName: "compile_stage_gatehouse_library_types",
			Stage: func(c *ast.Compiler) *ast.Error {
				c.TypeEnv = lib.compiler.TypeEnv
				return nil
			},
		})
	tc.Compile(tenantModules)
	if tc.Failed() {
		return nil, tc.Errors
	}
	for _, m := range tc.Modules {
		if !m.Package.Path.HasPrefix(tenantsRoot) {
			return nil, errWholeCompile
		}
		if reachesBack(lib, m) {
			return nil, errWholeCompile
		}
	}
	all := make(map[string]*ast.Module, len(lib.compiler.Modules)+len(tc.Modules))
	for p, m := range lib.compiler.Modules {
		all[p] = m
	}
	for p, m := range tc.Modules {
		if _, dup := all[p]; dup {
			return nil, errWholeCompile
		}
		all[p] = m
	}
	mc := ast.NewCompiler().WithSkipStages(skipAllBut(mergeStages)...)
	mc.Compile(all) // copies the modules: the library's stay as they are
	if mc.Failed() {
		return nil, mc.Errors
	}
	// What the skipped stages would have set: the types (the library's and
	// the tenant's, from the tenant compile) and the names of rewritten
	// variables (for traces and print output only; both compiles number
	// their generated variables from zero, so where the same generated
	// name occurs in both the tenant's entry is kept).
	mc.TypeEnv = tc.TypeEnv
	mc.RewrittenVars = make(map[ast.Var]ast.Var, len(lib.compiler.RewrittenVars)+len(tc.RewrittenVars))
	for k, v := range lib.compiler.RewrittenVars {
		mc.RewrittenVars[k] = v
	}
	for k, v := range tc.RewrittenVars {
		mc.RewrittenVars[k] = v
	}
	return mc, nil
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
