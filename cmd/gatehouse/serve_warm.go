package main

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
)

// warmup compiles the tenants a server starts with, in the engine's
// compile pool, while the server already listens: GET /health answers 503
// "warming" (api.Deps.Warming) until every one is compiled, so a load
// balancer sends no decision that would have a compile ahead of it.
type warmup struct {
	tenants  []string
	compiled atomic.Int64
	done     atomic.Bool
}

func newWarmup(tenants []string) *warmup {
	w := &warmup{tenants: tenants}
	if len(tenants) == 0 {
		w.done.Store(true)
	}
	return w
}

// state is api.Deps.Warming.
func (w *warmup) state() (warming bool, compiled, tenants int) {
	return !w.done.Load(), int(w.compiled.Load()), len(w.tenants)
}

// progressEvery is how often warming logs its progress.
const progressEvery = 2 * time.Second

// run compiles every tenant (registry.Warm), logging progress at most
// every progressEvery and once at the end, then reports ready. It returns
// early, still warming, when ctx ends (shutdown).
func (w *warmup) run(ctx context.Context, reg *registry.Registry, eng *engine.Engine, logger *slog.Logger) {
	if w.done.Load() {
		return
	}
	start := time.Now()
	logger.Info("warming: compiling every tenant before reporting ready",
		"tenants", len(w.tenants), "compile_workers", eng.CompileWorkers())
	var mu sync.Mutex
	last := start
	reg.Warm(ctx, w.tenants, func(n int) {
		// Workers report concurrently: keep the largest count.
		for old := w.compiled.Load(); int64(n) > old && !w.compiled.CompareAndSwap(old, int64(n)); old = w.compiled.Load() {
		}
		mu.Lock()
		defer mu.Unlock()
		if now := time.Now(); now.Sub(last) >= progressEvery && n < len(w.tenants) {
			last = now
			logger.Info("warming", "tenants_compiled", n, "tenants", len(w.tenants))
		}
	})
	if ctx.Err() != nil {
		return
	}
	w.done.Store(true)
	es := eng.Stats()
	logger.Info("engine warm", "tenants", len(w.tenants), "prepared_queries", es.Size,
		"compile_ms", es.CompileTime.Milliseconds(), "elapsed_ms", time.Since(start).Milliseconds())
}
