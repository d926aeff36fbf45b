package store_test

import (
	"errors"
	"path/filepath"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/sqlite"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/storetest"
)

func openSQLite(t *testing.T) store.Store {
	t.Helper()
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "g.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// TestTracedConformance proves the decorator forwards every method intact.
func TestTracedConformance(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	storetest.Run(t, func(t *testing.T) store.Store { return store.Traced(openSQLite(t), tp) })
}

func TestTracedSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	s := store.Traced(openSQLite(t), sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	ctx := t.Context()
	if _, err := s.CreateTenant(ctx, store.Tenant{ID: "acme", Tier: store.TierPro, Mode: pdp.ModeEnforcement}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutPolicy(ctx, store.PutPolicyRequest{TenantID: "acme", Policy: pdp.Policy{Name: "P", AgentID: "bot", Enabled: true}, Limit: 0}); !errors.Is(err, store.ErrLimitExceeded) {
		t.Fatalf("PutPolicy: %v", err)
	}
	if _, err := s.GetAction(ctx, "acme", "act_x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetAction: %v", err)
	}
	if _, err := s.CreateTenant(ctx, store.Tenant{ID: "acme", Tier: store.TierPro, Mode: pdp.ModeEnforcement}); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("CreateTenant: %v", err)
	}

	spans := rec.Ended()
	want := []struct {
		name   string
		status codes.Code
	}{
		{"store.CreateTenant", codes.Unset},
		{"store.PutPolicy", codes.Unset}, // a refusal is an answer
		{"store.GetAction", codes.Unset}, // so is a miss
		{"store.CreateTenant", codes.Error},
	}
	if len(spans) != len(want) {
		t.Fatalf("%d spans, want %d", len(spans), len(want))
	}
	for i, w := range want {
		if spans[i].Name() != w.name || spans[i].Status().Code != w.status {
			t.Errorf("span %d = %s (%v), want %s (%v)", i, spans[i].Name(), spans[i].Status().Code, w.name, w.status)
		}
	}
	attrs := map[string]string{}
	for _, kv := range spans[1].Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	if attrs["tenant_id"] != "acme" || attrs["agent_id"] != "bot" || attrs["policy"] != "P" || attrs["db.system.name"] != "sqlite" {
		t.Errorf("PutPolicy span attributes = %v", attrs)
	}
}
