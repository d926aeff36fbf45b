package main

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

func TestTraceExporters(t *testing.T) {
	tests := []struct {
		name string
		vars map[string]string
		want []string
		err  bool
	}{
		{"nothing set: off", nil, nil, false},
		{"endpoint: otlp", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, []string{"otlp"}, false},
		{"traces endpoint: otlp", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, []string{"otlp"}, false},
		{"console", map[string]string{"OTEL_TRACES_EXPORTER": "console"}, []string{"console"}, false},
		{"both, deduplicated", map[string]string{"OTEL_TRACES_EXPORTER": "otlp, console,OTLP"}, []string{"otlp", "console"}, false},
		{"none beats the endpoint", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, nil, false},
		{"SDK disabled", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}, nil, false},
		{"unknown exporter", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := traceExporters(env(tc.vars))
			if (err != nil) != tc.err || !slices.Equal(got, tc.want) {
				t.Errorf("got %v, %v; want %v (error %v)", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestNewTelemetry(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	t.Run("off is a no-op provider", func(t *testing.T) {
		tel, err := newTelemetry(t.Context(), env(nil), &bytes.Buffer{}, logger)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := tel.tp.(*sdktrace.TracerProvider); ok || len(tel.exporters) != 0 {
			t.Errorf("an SDK provider without OTEL_* variables")
		}
		if err := tel.shutdown(t.Context()); err != nil {
			t.Error(err)
		}
	})
	t.Run("console writes spans to stdout", func(t *testing.T) {
		// The SDK reads its own variables from the process environment.
		t.Setenv("OTEL_SERVICE_NAME", "svc-x")
		var out bytes.Buffer
		tel, err := newTelemetry(t.Context(), env(map[string]string{"OTEL_TRACES_EXPORTER": "console"}), &out, logger)
		if err != nil {
			t.Fatal(err)
		}
		_, span := tel.tp.Tracer("test").Start(context.Background(), "unit-span")
		span.End()
		if err := tel.shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "unit-span") || !strings.Contains(out.String(), "svc-x") {
			t.Errorf("console output:\n%s", out.String())
		}
	})
	t.Run("otlp over http and grpc", func(t *testing.T) {
		for _, proto := range []string{"", "http/protobuf", "grpc"} {
			tel, err := newTelemetry(t.Context(), env(map[string]string{
				"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": proto,
			}), &bytes.Buffer{}, logger)
			if err != nil {
				t.Fatalf("%q: %v", proto, err)
			}
			if _, ok := tel.tp.(*sdktrace.TracerProvider); !ok {
				t.Errorf("%q: no SDK provider", proto)
			}
			// Nothing was exported, so shutting down does not wait for
			// the unreachable collector.
			_ = tel.shutdown(t.Context())
		}
	})
	t.Run("unsupported protocol", func(t *testing.T) {
		_, err := newTelemetry(t.Context(), env(map[string]string{
			"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json",
		}), &bytes.Buffer{}, logger)
		if err == nil || !strings.Contains(err.Error(), "http/json") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestLoggerAddsTraceIDs(t *testing.T) {
	var out bytes.Buffer
	logger, err := newLogger(&out, "debug")
	if err != nil {
		t.Fatal(err)
	}
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(t.Context(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
	logger.With("k", "v").InfoContext(ctx, "hello")
	logger.Info("no span")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"`) ||
		!strings.Contains(lines[0], `"span_id":"00f067aa0ba902b7"`) || strings.Contains(lines[1], "trace_id") {
		t.Errorf("log:\n%s", out.String())
	}
	if _, err := newLogger(&out, "loud"); err == nil {
		t.Error("bad level accepted")
	}
}

// TestLoggerTraceIDOnce: a record that carries its own trace_id (the API's
// request line) does not get a second one.
func TestLoggerTraceIDOnce(t *testing.T) {
	var out bytes.Buffer
	logger, err := newLogger(&out, "debug")
	if err != nil {
		t.Fatal(err)
	}
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(t.Context(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
	logger.InfoContext(ctx, "request", "trace_id", tid.String(), "status", 200)
	if n := strings.Count(out.String(), `"trace_id"`); n != 1 || !strings.Contains(out.String(), `"span_id":"00f067aa0ba902b7"`) {
		t.Errorf("want trace_id once and span_id:\n%s", out.String())
	}
}
