package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/api"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
	"github.com/gatehouse-pdp/gatehouse/pdp/metrics"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/postgres"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/sqlite"
)

// Timings of serve. The HTTP server's timeouts are settings
// (config_ops.go).
const (
	// refreshInterval is how often the registry compares every tenant's
	// stored revision with its engine's, to find writes other processes
	// made to the store (another replica, `gatehouse tenant create`). On
	// PostgreSQL, revision notifications bring those within milliseconds
	// and this is the fallback for notifications lost while the listener
	// reconnects; on SQLite it is the only way. A write is enforced by every
	// replica within max(notification latency, refreshInterval + one
	// refresh): inside the contract's 1 s (docs/api.md §A4), at the cost of one
	// query every interval. See registry.Watch.
	refreshInterval = 500 * time.Millisecond
	// telemetryFlushTimeout bounds exporting the last spans on exit.
	telemetryFlushTimeout = 5 * time.Second
)

const serveUsage = `Usage: gatehouse serve [flags]

Runs the Gatehouse server (the Novyx Control API) until SIGTERM or SIGINT,
then stops accepting connections, lets in-flight requests finish within
the shutdown timeout and closes the store.

Each setting is taken from its flag, else its environment variable, else
the config file, else its default.

Flags:
`

// cmdServe runs `gatehouse serve`.
func cmdServe(ctx context.Context, args []string, s stdio) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cf := bindConfig(fs, serveSettings...)
	usage := func(w io.Writer) {
		fmt.Fprint(w, serveUsage)
		fmt.Fprintf(w, "  --config file\n      YAML config file with the keys below (unknown keys are refused)\n      env %s\n", envConfig)
		printSettings(w, serveSettings)
		fmt.Fprint(w, "\nTracing follows the standard OTEL_* variables (OTEL_EXPORTER_OTLP_ENDPOINT,\nOTEL_TRACES_EXPORTER=otlp|console|none, ...); without them it is off.\n")
	}
	if code, done := parseFlags(fs, args, usage, s); done {
		return code
	}
	cfg, err := cf.load(s.lookupEnv)
	if err != nil {
		fmt.Fprintf(s.stderr, "gatehouse serve: invalid configuration:\n%v\n", err)
		return exitUsage
	}
	logger, err := newLogger(s.stderr, cfg.LogLevel)
	if err != nil { // Validate checked the level already
		fmt.Fprintf(s.stderr, "gatehouse serve: %v\n", err)
		return exitUsage
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sigs)

	if err := serve(ctx, cfg, s, logger, sigs); err != nil {
		logger.Error("stopped with an error", "error", err)
		return exitFail
	}
	logger.Info("stopped")
	return exitOK
}

// serve runs the server until a signal arrives on sigs (or ctx ends), then
// shuts down in order: HTTP (in-flight requests finish), background work,
// store, telemetry. Each step is logged.
func serve(ctx context.Context, cfg Config, s stdio, logger *slog.Logger, sigs <-chan os.Signal) (err error) {
	logger.Info("starting", "version", pdp.Version, "store", redactDSN(cfg.Store), "addr", cfg.Addr)
	tuneGC(s.lookupEnv, logger)

	tel, err := newTelemetry(ctx, s.lookupEnv, s.stdout, logger)
	if err != nil {
		return err
	}
	if len(tel.exporters) > 0 {
		logger.Info("tracing enabled", "exporters", tel.exporters)
	}
	defer func() {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), telemetryFlushTimeout)
		defer cancel()
		if ferr := tel.shutdown(fctx); ferr != nil {
			logger.Warn("telemetry flush failed", "error", ferr)
		} else {
			logger.Info("telemetry flushed")
		}
	}()

	m := metrics.New(cfg.Metrics.metricsConfig())
	// serve is the one command that creates a store; say so, with the
	// absolute path, so a server started from the wrong folder is noticed.
	missing := existingStore(cfg.Store)
	st, err := openObservedStore(ctx, cfg.Store, tel.tp, m, store.WithOpObserver(m))
	if err != nil {
		return err
	}
	if missing != nil {
		_, path, _ := store.ParseDSN(cfg.Store)
		abs, _ := filepath.Abs(path)
		if cfg.Dev || cfg.BootstrapKey != "" {
			logger.Info("created a new SQLite store", "path", abs)
		} else {
			logger.Warn("created a new, empty SQLite store: is --store (or GATEHOUSE_STORE, or the folder) the one you meant?", "path", abs)
		}
	}
	defer func() {
		if cerr := st.Close(); cerr != nil {
			logger.Error("closing store failed", "error", cerr)
			err = errors.Join(err, fmt.Errorf("close store: %w", cerr))
			return
		}
		logger.Info("store closed")
	}()
	logger.Info("store open", "backend", st.Backend())

	eng, err := engine.New(cfg.Engine.engineConfig(), engine.WithTracerProvider(tel.tp), engine.WithObserver(m))
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	if err := m.CollectEngine(eng); err != nil {
		return err
	}
	bw, err := newBundleWiring(ctx, cfg, eng, logger)
	if err != nil {
		return err
	}
	reg, err := registry.New(st, eng, append([]registry.Option{registry.WithLogger(logger),
		registry.WithRotationGrace(time.Duration(cfg.KeyRotationGrace))}, bw.registryOptions()...)...)
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	// Publish every tenant now; they compile once the listener is open,
	// in the engine's compile pool, while /health answers 503 "warming"
	// (warmup): ready means no decision has a compile ahead of it.
	tenants, err := reg.Publish(ctx)
	if err != nil {
		return fmt.Errorf("load policies: %w", err)
	}
	warm := newWarmup(tenants)
	if err := bootstrap(ctx, cfg, reg, st, s, logger); err != nil {
		return err
	}
	bw.warnCoverage(ctx, reg, logger)

	// Closed after the HTTP server has drained and before the store
	// (defers run in reverse), so every answered decision is flushed.
	dlog, err := newDecisionLog(cfg.DecisionLog, m, logger, s.stdout, s.stderr)
	if err != nil {
		return fmt.Errorf("decision log: %w", err)
	}
	defer closeDecisionLog(dlog, time.Duration(cfg.ShutdownTimeout), logger)

	handler, err := api.New(cfg.apiConfig(), bw.apiDeps(api.Deps{
		Registry:       reg,
		Engine:         eng,
		Store:          st,
		Logger:         logger,
		TracerProvider: tel.tp,
		Metrics:        m,
		DecisionLog:    dlog,
		Warming:        warm.state,
	}))
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}

	// Background work (picking up other processes' writes) runs until the
	// HTTP server has drained.
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var bg sync.WaitGroup
	bg.Go(func() { reg.Watch(bgCtx, refreshInterval) })
	bw.run(bgCtx, eng, logger, &bg)
	if err := startRetention(bgCtx, cfg.AuditRetention, st, logger, &bg); err != nil {
		stopBackground()
		bg.Wait()
		return err
	}
	defer func() {
		stopBackground()
		bg.Wait()
		logger.Info("background work stopped")
	}()

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: time.Duration(cfg.HTTP.ReadHeaderTimeout),
		ReadTimeout:       time.Duration(cfg.HTTP.ReadTimeout),
		WriteTimeout:      time.Duration(cfg.HTTP.WriteTimeout),
		IdleTimeout:       time.Duration(cfg.HTTP.IdleTimeout),
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	warnWriteTimeout(cfg.HTTP, logger)
	srv.RegisterOnShutdown(bw.stopLongPolls)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Info("listening", "addr", ln.Addr().String())
	bg.Go(func() { warm.run(bgCtx, reg, eng, logger) })

	select {
	case err := <-served:
		return fmt.Errorf("http server: %w", err)
	case sig := <-sigs:
		logger.Info("shutting down", "signal", sig.String(), "timeout", cfg.ShutdownTimeout.String())
	case <-ctx.Done():
		logger.Info("shutting down", "reason", context.Cause(ctx).Error(), "timeout", cfg.ShutdownTimeout.String())
	}
	return shutdown(srv, time.Duration(cfg.ShutdownTimeout), sigs, logger)
}

// shutdown stops srv accepting connections and waits up to timeout for
// in-flight requests; a second signal, or the timeout, closes the
// remaining connections at once.
func shutdown(srv *http.Server, timeout time.Duration, sigs <-chan os.Signal, logger *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	go func() {
		select {
		case sig := <-sigs:
			logger.Warn("second signal: closing connections now", "signal", sig.String())
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := srv.Shutdown(ctx); err != nil {
		_ = srv.Close()
		logger.Error("in-flight requests did not finish; connections closed", "error", err)
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("http server stopped")
	return nil
}

// openStore opens the store the DSN names, traced with tp (and opts).
func openStore(ctx context.Context, dsn string, tp trace.TracerProvider, opts ...store.TraceOption) (store.Store, error) {
	return openObservedStore(ctx, dsn, tp, nil, opts...)
}

// openObservedStore is openStore with batches of the audit group commit
// reported to batches (the audit batch-size metric); nil reports nothing.
func openObservedStore(ctx context.Context, dsn string, tp trace.TracerProvider, batches store.AuditBatchObserver, opts ...store.TraceOption) (store.Store, error) {
	backend, path, err := store.ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	var sqliteOpts []sqlite.Option
	var postgresOpts []postgres.Option
	if batches != nil {
		sqliteOpts = append(sqliteOpts, sqlite.WithAuditBatchObserver(batches))
		postgresOpts = append(postgresOpts, postgres.WithAuditBatchObserver(batches))
	}
	switch backend {
	case store.BackendSQLite:
		db, err := sqlite.Open(ctx, path, sqliteOpts...)
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		return traceStore(db, tp, opts...), nil
	case store.BackendPostgres:
		db, err := postgres.Open(ctx, path, postgresOpts...)
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		return traceStore(db, tp, opts...), nil
	}
	return nil, fmt.Errorf("store backend %q is not supported", backend)
}

// redactDSN returns dsn fit for a log line: a PostgreSQL URL loses its
// password.
func redactDSN(dsn string) string {
	backend, _, err := store.ParseDSN(dsn)
	if err != nil || backend != store.BackendPostgres {
		return dsn
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "postgres://(unparsable URL)"
	}
	return u.Redacted()
}

// bootstrap creates the first tenant on an empty store: with the
// configured key, or in dev mode with a generated one that is printed once.
func bootstrap(ctx context.Context, cfg Config, reg *registry.Registry, st store.Tenants, s stdio, logger *slog.Logger) error {
	if cfg.BootstrapKey == "" && !cfg.Dev {
		// Not an error: an operator may create tenants beside the server.
		if n, err := st.CountTenants(ctx); err == nil && n == 0 {
			logger.Warn("the store has no tenants: create one with `gatehouse tenant create`, or start with --bootstrap-key or --dev")
		}
		return nil
	}
	created, key, err := reg.Bootstrap(ctx, cfg.BootstrapKey)
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if !created {
		logger.Info("store has tenants; bootstrap skipped")
		return nil
	}
	logger.Info("bootstrap: created tenant", "tenant_id", registry.BootstrapTenant, "tier", store.TierEnterprise)
	if cfg.BootstrapKey != "" {
		return nil
	}
	// Generated: the only time the key is ever shown.
	line, err := json.Marshal(struct {
		TenantID string `json:"tenant_id"`
		APIKey   string `json:"api_key"`
	}{registry.BootstrapTenant, key})
	if err != nil {
		return err
	}
	fmt.Fprintf(s.stdout, "%s\n", line)
	fmt.Fprintf(s.stderr, "gatehouse: dev mode: created tenant %q with API key %s — it is shown only this once\n", registry.BootstrapTenant, key)
	return nil
}
