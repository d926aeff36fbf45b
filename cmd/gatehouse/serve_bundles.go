package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/gatehouse-pdp/gatehouse/bundles"
	"github.com/gatehouse-pdp/gatehouse/pdp/api"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
)

// bundleWiring is serve's part in bundles (docs/api.md §B3). A normal server
// serves GET /v1/bundles/{tenant}.tar.gz from a cache that the registry
// wakes after every publish. A read-only server (--bundle) decides with the
// bundles it reads instead: the engine's tenants come from them, and the
// registry refuses policy writes and never publishes; tenants and keys still
// come from the store, so the API authenticates as usual.
type bundleWiring struct {
	cache   *bundles.Cache // nil when read-only
	sources []*bundles.Source
	names   []string
	drain   chan struct{}
	once    sync.Once

	// A read-only server's coverage: the tenants each bundle holds now,
	// and (see coverage) which of them the store cannot serve.
	reg     *registry.Registry
	mu      sync.Mutex
	loaded  map[string][]string // by bundle name
	covAt   time.Time
	covLast coverage
}

// coverage compares the tenants the bundles hold with the store's.
type coverage struct {
	// Unservable are bundle tenants the store lacks: no key can call them.
	Unservable []string
	// Unbundled are store tenants no bundle holds: they fail closed (503).
	Unbundled []string
	err       error
}

// coverageTTL bounds how stale /health's coverage may be; it spares the
// store a tenant listing on every probe.
const coverageTTL = 5 * time.Second

// maxListed bounds each tenant list the start-up warning names.
const maxListed = 100

// newBundleWiring reads the signing key (a normal server) or loads every
// --bundle once (a read-only one), failing fast on any problem.
func newBundleWiring(ctx context.Context, cfg Config, eng *engine.Engine, logger *slog.Logger) (*bundleWiring, error) {
	w := &bundleWiring{drain: make(chan struct{}), loaded: map[string][]string{}}
	b := cfg.Bundle
	if len(b.Sources) == 0 {
		key, err := b.signingKey()
		if err != nil {
			return nil, err
		}
		var opts []bundles.Option
		if key != nil {
			opts = append(opts, bundles.WithSigningKey(key))
			logger.Info("bundles are signed", "algorithm", key.Algorithm(), "key_id", key.KeyID())
		}
		w.cache = bundles.NewCache(cfg.Engine.engineConfig().Defaults().ConfigData(), opts...)
		return w, nil
	}

	var verify *bundles.VerifyConfig
	if b.VerifyKey != "" {
		pem, err := os.ReadFile(b.VerifyKey)
		if err != nil {
			return nil, fmt.Errorf("bundle verify key: %w", err)
		}
		if verify, err = bundles.NewVerifyConfig("", pem, b.KeyID); err != nil {
			return nil, fmt.Errorf("bundle verify key %s: %w", b.VerifyKey, err)
		}
	}
	header := http.Header{}
	if b.BearerToken != "" {
		header.Set("Authorization", "Bearer "+b.BearerToken)
	}
	for _, spec := range b.Sources {
		tenants, loc := parseSource(spec)
		src, err := bundles.NewSource(bundles.SourceConfig{
			Location: loc,
			Verify:   verify,
			Header:   header,
			Logger:   logger,
			Tenants:  tenants,
		})
		if err != nil {
			return nil, err
		}
		l, _, err := src.Fetch(ctx)
		if err != nil {
			return nil, fmt.Errorf("bundle %s: %w", loc, err)
		}
		if err := eng.LoadBundle(ctx, loc, l); err != nil {
			return nil, err
		}
		logger.Info("bundle loaded", "bundle", loc, "revision", l.Revision, "tenants", l.TenantIDs)
		logDegraded(logger, eng, loc, l)
		w.setLoaded(loc, l.TenantIDs)
		w.sources = append(w.sources, src)
		w.names = append(w.names, loc)
	}
	logger.Info("read-only: policies come from bundles; policy writes are refused", "bundles", w.names)
	return w, nil
}

// registryOptions are the registry's options for this wiring.
func (w *bundleWiring) registryOptions() []registry.Option {
	if w.cache == nil {
		return []registry.Option{registry.WithReadOnly(w.names...)}
	}
	return []registry.Option{registry.WithPublishHook(w.cache.Notify)}
}

// apiDeps adds the bundle route's collaborators to deps, and for a
// read-only server its coverage to /health.
func (w *bundleWiring) apiDeps(deps api.Deps) api.Deps {
	deps.Bundles = w.cache
	deps.BundleDrain = w.drain
	if w.cache == nil {
		w.reg = deps.Registry
		deps.HealthDetail = w.healthDetail
	}
	return deps
}

func (w *bundleWiring) setLoaded(name string, tenants []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.loaded[name] = tenants
	w.covAt = time.Time{} // recompute at the next look
}

// coverage returns the bundles' coverage of the store's tenants, at most
// coverageTTL old.
func (w *bundleWiring) coverage(ctx context.Context, reg *registry.Registry) coverage {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.covAt.IsZero() && time.Since(w.covAt) < coverageTTL {
		return w.covLast
	}
	inBundles := map[string]bool{}
	for _, ids := range w.loaded {
		for _, id := range ids {
			inBundles[id] = true
		}
	}
	var c coverage
	ts, err := reg.Tenants(ctx)
	if err != nil {
		c.err = err
		return c // not cached: try again at the next look
	}
	inStore := map[string]bool{}
	for _, t := range ts {
		inStore[t.ID] = true
		if !inBundles[t.ID] {
			c.Unbundled = append(c.Unbundled, t.ID)
		}
	}
	for id := range inBundles {
		if !inStore[id] {
			c.Unservable = append(c.Unservable, id)
		}
	}
	slices.Sort(c.Unservable)
	slices.Sort(c.Unbundled)
	w.covAt, w.covLast = time.Now(), c
	return c
}

// warnCoverage logs, at start, what a read-only server cannot serve: a
// bundle built for a tenant the store lacks (no key can reach it) and the
// store's tenants no bundle holds (every decision for them fails closed
// with 503). Either is almost always a mistake in how the server was
// started, and nothing else would say so until requests fail.
func (w *bundleWiring) warnCoverage(ctx context.Context, reg *registry.Registry, logger *slog.Logger) {
	if w.cache != nil {
		return
	}
	c := w.coverage(ctx, reg)
	if c.err != nil {
		logger.Warn("read-only: could not compare the bundles' tenants with the store's", "error", c.err)
		return
	}
	if len(c.Unservable) > 0 {
		logger.Warn("read-only: bundles hold tenants the store does not have; no API key can reach them (create them with gatehouse tenant create --id)",
			"tenants", firstN(c.Unservable), "count", len(c.Unservable), "bundles", w.names)
	}
	if len(c.Unbundled) > 0 {
		logger.Warn("read-only: store tenants no bundle holds; their decisions fail closed (503)",
			"tenants", firstN(c.Unbundled), "count", len(c.Unbundled), "bundles", w.names)
	}
}

// healthDetail is a read-only server's part of GET /health.
func (w *bundleWiring) healthDetail(ctx context.Context) map[string]any {
	c := w.coverage(ctx, w.reg)
	// No sources either: a bundle URL or path can name a tenant.
	b := map[string]any{"read_only": true}
	if c.err != nil {
		b["coverage_error"] = "could not list the store's tenants"
	} else {
		// Counts only: /health has no authentication, and tenant ids are
		// the operator's business (the start-up warning names them).
		b["unservable_count"] = len(c.Unservable)
		b["tenants_without_bundle_count"] = len(c.Unbundled)
	}
	return map[string]any{"bundles": b}
}

// firstN bounds a list of tenant ids written to the log.
func firstN(ids []string) []string { return ids[:min(len(ids), maxListed)] }

// run keeps a read-only server's bundles current until ctx ends: each new
// revision is loaded into the engine; failures are logged and retried while
// the last good bundle keeps deciding.
func (w *bundleWiring) run(ctx context.Context, eng *engine.Engine, logger *slog.Logger, bg *sync.WaitGroup) {
	for i, src := range w.sources {
		name := w.names[i]
		bg.Go(func() {
			_ = src.Run(ctx, func(l *bundles.Loaded) error {
				if err := eng.LoadBundle(ctx, name, l); err != nil {
					return err
				}
				logger.Info("bundle loaded", "bundle", name, "revision", l.Revision, "tenants", l.TenantIDs)
				logDegraded(logger, eng, name, l)
				w.setLoaded(name, l.TenantIDs)
				return nil
			})
		})
	}
}

// stopLongPolls answers every held bundle long poll at once; serve calls
// it when shutdown starts.
func (w *bundleWiring) stopLongPolls() {
	w.once.Do(func() { close(w.drain) })
}

// logDegraded logs each tenant of a loaded bundle that fails closed because
// the bundle holds an invalid policy for it.
func logDegraded(logger *slog.Logger, eng *engine.Engine, name string, l *bundles.Loaded) {
	degraded := eng.Degraded()
	for _, id := range l.TenantIDs {
		if err := degraded[id]; err != nil {
			logger.Error("tenant holds an invalid policy; its decisions fail closed", "bundle", name, "tenant_id", id, "error", err)
		}
	}
}
