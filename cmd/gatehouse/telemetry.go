package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// telemetry is the process's tracing: a TracerProvider for the
// constructors, and how to flush it on exit.
type telemetry struct {
	tp        trace.TracerProvider
	exporters []string // what spans are exported with; empty for the no-op provider
	shutdown  func(context.Context) error
}

// Exporter names of OTEL_TRACES_EXPORTER that Gatehouse supports.
const (
	exporterOTLP    = "otlp"
	exporterConsole = "console"
	exporterNone    = "none"
)

// newTelemetry chooses the tracer provider from the standard OTEL_*
// variables, as the OpenTelemetry SDK specification defines them:
//
//   - OTEL_SDK_DISABLED=true, or OTEL_TRACES_EXPORTER=none: no-op.
//   - OTEL_TRACES_EXPORTER=otlp and/or console: those exporters (console
//     writes one JSON span per line to stdout).
//   - OTEL_TRACES_EXPORTER unset: OTLP when OTEL_EXPORTER_OTLP_ENDPOINT or
//     OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, otherwise no-op — tracing
//     costs nothing until someone asks for it.
//
// OTLP speaks OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL (http/protobuf, the
// default, or grpc). lookupEnv decides only which exporters run; the SDK
// reads the rest from the process environment itself: the exporters their
// endpoint, headers, timeout and TLS variables, the provider
// OTEL_TRACES_SAMPLER and OTEL_BSP_*, the resource OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES. Exporters connect lazily, so an unreachable
// collector never stops the server from starting.
//
// It also installs the W3C tracecontext and baggage propagator and the
// provider as OpenTelemetry's globals, for instrumentation that only knows
// those (main is the one place that may set process-wide defaults), and
// routes the SDK's own errors to logger.
func newTelemetry(ctx context.Context, lookupEnv func(string) (string, bool), stdout io.Writer, logger *slog.Logger) (*telemetry, error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("opentelemetry error", "error", err)
	}))

	names, err := traceExporters(lookupEnv)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		tp := noop.NewTracerProvider()
		otel.SetTracerProvider(tp)
		return &telemetry{tp: tp, shutdown: func(context.Context) error { return nil }}, nil
	}

	opts := []sdktrace.TracerProviderOption{}
	for _, name := range names {
		exp, err := newExporter(ctx, name, lookupEnv, stdout)
		if err != nil {
			return nil, err
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	// Ours first: resource.New lets later detectors override earlier ones,
	// so OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win.
	res, err := resource.New(ctx,
		resource.WithAttributes(
			attribute.String("service.name", "gatehouse"),
			attribute.String("service.version", pdp.Version),
		),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, fmt.Errorf("opentelemetry resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(append(opts, sdktrace.WithResource(res))...)
	otel.SetTracerProvider(tp)
	return &telemetry{tp: tp, exporters: names, shutdown: tp.Shutdown}, nil
}

// traceExporters returns the exporters the environment asks for, in
// order, without duplicates; nil for none.
func traceExporters(lookupEnv func(string) (string, bool)) ([]string, error) {
	if v, _ := lookupEnv("OTEL_SDK_DISABLED"); strings.EqualFold(strings.TrimSpace(v), "true") {
		return nil, nil
	}
	v, _ := lookupEnv("OTEL_TRACES_EXPORTER")
	if strings.TrimSpace(v) == "" {
		for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
			if e, _ := lookupEnv(k); strings.TrimSpace(e) != "" {
				return []string{exporterOTLP}, nil
			}
		}
		return nil, nil
	}
	var names []string
	for n := range strings.SplitSeq(v, ",") {
		n = strings.ToLower(strings.TrimSpace(n))
		switch n {
		case exporterNone:
			return nil, nil
		case exporterOTLP, exporterConsole:
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		default:
			return nil, fmt.Errorf("OTEL_TRACES_EXPORTER: %q is not supported (want otlp, console or none)", n)
		}
	}
	return names, nil
}

func newExporter(ctx context.Context, name string, lookupEnv func(string) (string, bool), stdout io.Writer) (sdktrace.SpanExporter, error) {
	if name == exporterConsole {
		exp, err := stdouttrace.New(stdouttrace.WithWriter(stdout))
		if err != nil {
			return nil, fmt.Errorf("console trace exporter: %w", err)
		}
		return exp, nil
	}
	proto := "http/protobuf"
	for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if v, _ := lookupEnv(k); strings.TrimSpace(v) != "" {
			proto = strings.TrimSpace(v)
			break
		}
	}
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch proto {
	case "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		return nil, fmt.Errorf("OTLP protocol %q is not supported (want http/protobuf or grpc)", proto)
	}
	if err != nil {
		return nil, fmt.Errorf("otlp trace exporter: %w", err)
	}
	return exp, nil
}

// traceHandler adds the trace_id and span_id of the context's span to
// every record, so a log line can be found from its trace and back.
type traceHandler struct{ slog.Handler }

// Handle adds the span's ids, when the context carries a valid span; a
// record that names its trace_id itself (the API's request line) keeps
// it, so no line has the key twice.
func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		has := false
		r.Attrs(func(a slog.Attr) bool {
			has = a.Key == "trace_id"
			return !has
		})
		if !has {
			r.AddAttrs(slog.String("trace_id", sc.TraceID().String()))
		}
		r.AddAttrs(slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs keeps the wrapper around the derived handler.
func (h traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(as)}
}

// WithGroup keeps the wrapper around the derived handler.
func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}

// newLogger returns the JSON logger on w at level, with trace ids.
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	l, err := parseLevel(level)
	if err != nil {
		return nil, err
	}
	return slog.New(traceHandler{slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})}), nil
}
