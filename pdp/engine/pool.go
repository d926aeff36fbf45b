package engine

import (
	"context"
	"runtime"
)

// DefaultCompileWorkers is half of GOMAXPROCS (at least one), the default
// of Config.CompileWorkers: compiling is CPU work that must not take every
// processor from the evaluations running beside it, while a server that
// is starting (nothing to evaluate yet) still compiles on several.
func DefaultCompileWorkers() int { return max(1, (runtime.GOMAXPROCS(0)+1)/2) }

// maxCompileWorkers bounds Config.CompileWorkers.
const maxCompileWorkers = 256

// compilePool bounds the compiles running at once: every compile of a
// tenant's unit, of a draft and of a bundle takes a token for as long as
// OPA's compiler runs. Waiting for a token is bounded by the waiter's
// context; a compile that has a token runs to the end (OPA's compiler
// cannot be interrupted), so its duration is bounded by the compile budget
// of the policies it is given (see CompileCost), not by a deadline.
type compilePool chan struct{}

func newCompilePool(n int) compilePool { return make(compilePool, n) }

// do runs f with a token, waiting for one until ctx ends.
func (p compilePool) do(ctx context.Context, f func() error) error {
	select {
	case p <- struct{}{}:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	defer func() { <-p }()
	return f()
}

// size is the number of compiles that may run at once.
func (p compilePool) size() int { return cap(p) }

// CompileWorkers returns how many compiles run at once
// (Config.CompileWorkers).
func (e *Engine) CompileWorkers() int { return e.pool.size() }
