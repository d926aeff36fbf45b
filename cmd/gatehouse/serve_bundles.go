package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"

	"github.com/gatehouse-pdp/gatehouse/bundles"
	"github.com/gatehouse-pdp/gatehouse/pdp/api"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
)

// bundleWiring is serve's part in bundles (CONTRACT B3). A normal server
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
}

// newBundleWiring reads the signing key (a normal server) or loads every
// --bundle once (a read-only one), failing fast on any problem.
func newBundleWiring(ctx context.Context, cfg Config, eng *engine.Engine, logger *slog.Logger) (*bundleWiring, error) {
	w := &bundleWiring{drain: make(chan struct{})}
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

// apiDeps adds the bundle route's collaborators to deps.
func (w *bundleWiring) apiDeps(deps api.Deps) api.Deps {
	deps.Bundles = w.cache
	deps.BundleDrain = w.drain
	return deps
}

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
