package engine

import (
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
)

// The library, compiled once per process and shared by every registry
// tenant.
//
// A tenant's policies are data (policy as data, adapter/rules.go), which
// the library's one generic evaluation reads: a tenant compiles no Rego.
// Its unit is its data store, over the one compiled library; each of its
// prepared queries is the decision query compiled against that library
// (OPA's rego.Compiler option: PrepareForEval compiles only the query, in
// a query compiler of its own, and neither preparing nor evaluating writes
// to the shared compiler, as OPA's server evaluates concurrent queries on
// one compiler; TestSharedLibraryConcurrently runs it under -race). So a
// tenant's revision costs building its data document and preparing two
// queries, and a cached entry holds its store and its queries, not a
// compiler.
//
// Bundle tenants still compile what their bundle ships (LoadBundle): a
// bundle's library is its own.

// libraryOnce compiles the engine's library (its modules, WithModules
// included), once.
type libraryOnce struct {
	once     sync.Once
	compiler *ast.Compiler
	err      error
}

// get returns the compiled library; the error of its compile, every time,
// when it does not compile.
func (l *libraryOnce) get(modules map[string]*ast.Module) (*ast.Compiler, error) {
	l.once.Do(func() {
		c := ast.NewCompiler()
		c.Compile(modules)
		if c.Failed() {
			l.err = c.Errors
			return
		}
		l.compiler = c
	})
	return l.compiler, l.err
}
