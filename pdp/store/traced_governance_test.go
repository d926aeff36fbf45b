package store_test

import (
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/sqlite"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/storetest"
)

// pathTamperer tampers through its own connection to the file of each
// store it opened: the traced wrapper hides the driver.
type pathTamperer struct {
	mu    sync.Mutex
	paths map[store.GovernanceStore]string
}

func (p *pathTamperer) Exec(t *testing.T, s store.GovernanceStore, q string, args ...any) {
	t.Helper()
	p.mu.Lock()
	path := p.paths[s]
	p.mu.Unlock()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.ExecContext(t.Context(), q, args...); err != nil {
		t.Fatalf("tamper: %v", err)
	}
}

func (p *pathTamperer) SetAuditField(t *testing.T, s store.GovernanceStore, tenantID string, seq int64, field, value string) {
	p.Exec(t, s, fmt.Sprintf(`UPDATE audit_log SET %s = ? WHERE tenant_id = ? AND seq = ?`, field), value, tenantID, seq)
}

func (p *pathTamperer) DeleteAuditEntry(t *testing.T, s store.GovernanceStore, tenantID string, seq int64) {
	p.Exec(t, s, `DELETE FROM audit_log WHERE tenant_id = ? AND seq = ?`, tenantID, seq)
}

func (p *pathTamperer) InsertAuditEntry(t *testing.T, s store.GovernanceStore, e store.AuditEntry) {
	p.Exec(t, s, `INSERT INTO audit_log (tenant_id, seq, ts, event, metadata, prev_hash, entry_hash) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		e.TenantID, e.SequenceNumber, e.Timestamp.UnixMicro(), e.Event, string(e.Metadata), e.PrevHash, e.EntryHash)
}

// TestTracedGovernanceConformance proves the decorator forwards every
// governance method intact.
func TestTracedGovernanceConformance(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	tamper := &pathTamperer{paths: map[store.GovernanceStore]string{}}
	storetest.RunGovernance(t, func(t *testing.T) store.GovernanceStore {
		path := filepath.Join(t.TempDir(), "g.db")
		db, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		s := store.TracedGovernance(db, tp)
		tamper.mu.Lock()
		tamper.paths[s] = path
		tamper.mu.Unlock()
		return s
	}, tamper)
}

func TestTracedGovernanceSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "g.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := store.TracedGovernance(db, sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	ctx := t.Context()
	if _, err := s.CreateTenant(ctx, store.Tenant{ID: "acme", Tier: store.TierPro, Mode: pdp.ModeEnforcement}); err != nil {
		t.Fatal(err)
	}
	a := store.ActionRecord{ID: "act_1", TenantID: "acme", Action: "x", Status: pdp.StatusPendingReview}
	if _, _, err := s.InsertActionAudited(ctx, a, store.AuditEvent{}); err != nil {
		t.Fatal(err)
	}
	req := store.DecideRequest{TenantID: "acme", ActionID: "act_1", Status: pdp.StatusApproved, ApproverID: "al"}
	if _, _, err := s.DecideAction(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.DecideAction(ctx, req); !errors.Is(err, store.ErrAlreadyDecided) {
		t.Fatalf("second decision: %v", err)
	}
	spans := rec.Ended()
	var names []string
	for _, sp := range spans {
		names = append(names, sp.Name())
	}
	want := []string{"store.CreateTenant", "store.InsertActionAudited", "store.DecideAction", "store.DecideAction"}
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("spans %v, want %v", names, want)
	}
	lost := spans[3]
	if lost.Status().Code != 0 || len(lost.Events()) != 1 {
		t.Errorf("a lost decision is an answer, not a failure: status %v, events %v", lost.Status(), lost.Events())
	}
	attrs := map[string]string{}
	for _, kv := range spans[1].Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	if attrs["tenant_id"] != "acme" || attrs["action_id"] != "act_1" {
		t.Errorf("InsertActionAudited attributes %v", attrs)
	}
}
