package retention_test

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/retention"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/sqlite"

	_ "modernc.org/sqlite"
)

// TestPrunerOnce: each tenant is pruned by its own tier's period, in
// batches; a tenant whose chain does not verify is left alone and logged,
// and the others are still pruned. Real SQLite, an injected clock.
func TestPrunerOnce(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "g.db")
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	// Ten entries per tenant, one a day, the newest yesterday.
	for _, tn := range []struct {
		id   string
		tier store.Tier
	}{{"free-1", store.TierFree}, {"pro-1", store.TierPro}, {"ent-1", store.TierEnterprise}, {"broken", store.TierFree}} {
		if _, err := db.CreateTenant(ctx, store.Tenant{ID: tn.id, Name: tn.id, Tier: tn.tier, Mode: pdp.ModeEnforcement, ApprovalMode: "solo"}); err != nil {
			t.Fatal(err)
		}
		for d := 10; d >= 1; d-- {
			if _, err := db.AppendAudit(ctx, tn.id, store.AuditEvent{Event: "note", Metadata: json.RawMessage(fmt.Sprintf(`{"d":%d}`, d)), Timestamp: now.Add(-time.Duration(d) * 24 * time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	var logs bytes.Buffer
	p := &retention.Pruner{
		Store: db, Archive: db, Now: func() time.Time { return now },
		Periods: map[store.Tier]time.Duration{store.TierFree: 3*24*time.Hour + time.Hour, store.TierPro: 30 * 24 * time.Hour},
		Log:     slog.New(slog.NewJSONHandler(&logs, nil)),
	}
	// "broken" is pruned cleanly once, then an old entry is edited: the
	// pruner must not prune that evidence away.
	if _, _, err := db.PruneAudit(ctx, "broken", now, 1); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.ExecContext(ctx, `UPDATE audit_log SET metadata = '{"d":99}' WHERE tenant_id = 'broken' AND seq = 3`); err != nil {
		t.Fatal(err)
	}

	n, err := p.Once(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// free-1: entries older than 3 days 1 hour: days 10..4, seven entries;
	// pro-1: nothing older than 30 days; ent-1: no period, kept forever.
	if n != 7 {
		t.Errorf("pruned %d entries, want 7", n)
	}
	for id, from := range map[string]int64{"free-1": 8, "pro-1": 1, "ent-1": 1} {
		v, err := db.VerifyAudit(ctx, id)
		if err != nil || !v.Valid || v.RetainedFrom != from {
			t.Errorf("%s after pruning: %s, retained from %d, want %d (%v)", id, v, v.RetainedFrom, from, err)
		}
	}
	if v, _ := db.VerifyAudit(ctx, "broken"); v.Valid || v.RetainedFrom != 2 {
		t.Errorf("broken after pruning: %s, retained from %d; want still broken, from 2", v, v.RetainedFrom)
	}
	if !strings.Contains(logs.String(), "not pruning a chain that does not verify") {
		t.Errorf("the refusal is not logged:\n%s", logs.String())
	}
	// A second pass finds nothing more.
	if n, err := p.Once(ctx); err != nil || n != 0 {
		t.Errorf("second pass pruned %d, %v", n, err)
	}
}
