package store_test

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/storetest"
)

// opRecorder is an OpObserver that remembers what it was told.
type opRecorder struct {
	mu  sync.Mutex
	ops []string
	dur []time.Duration
}

func (r *opRecorder) ObserveStoreOp(op string, took time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, op)
	r.dur = append(r.dur, took)
}

// TestOpObserver: with WithOpObserver, every call is reported once under
// its span's name, failures included, and spans are still recorded.
func TestOpObserver(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	obs := &opRecorder{}
	s := store.Traced(openSQLite(t), sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)), store.WithOpObserver(obs))
	ctx := t.Context()
	if _, err := s.CreateTenant(ctx, store.Tenant{ID: "acme", Tier: store.TierPro, Mode: pdp.ModeEnforcement}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAction(ctx, "acme", "act_x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetAction: %v", err)
	}
	if _, err := s.CreateTenant(ctx, store.Tenant{ID: "acme", Tier: store.TierPro, Mode: pdp.ModeEnforcement}); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("CreateTenant: %v", err)
	}
	if want := []string{"CreateTenant", "GetAction", "CreateTenant"}; !slices.Equal(obs.ops, want) {
		t.Errorf("observed %q, want %q", obs.ops, want)
	}
	for i, d := range obs.dur {
		if d <= 0 {
			t.Errorf("%s took %v", obs.ops[i], d)
		}
	}
	var names []string
	for _, sp := range rec.Ended() {
		names = append(names, sp.Name())
	}
	if want := []string{"store.CreateTenant", "store.GetAction", "store.CreateTenant"}; !slices.Equal(names, want) {
		t.Errorf("spans %q, want %q", names, want)
	}
}

// TestOpObserverConformance: the observing wrapper forwards every method
// intact (with the no-op tracer production runs without OTEL_*).
func TestOpObserverConformance(t *testing.T) {
	obs := &opRecorder{}
	storetest.Run(t, func(t *testing.T) store.Store {
		return store.Traced(openSQLite(t), noop.NewTracerProvider(), store.WithOpObserver(obs))
	})
}
