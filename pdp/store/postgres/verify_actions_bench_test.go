package postgres_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/postgres"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/storetest"
)

// BenchmarkVerifyAuditBulk300K verifies a tenant of 300,000 bulk-loaded
// actions (COPY; the dashboard mix) without entries: what verification
// spends on them is the rollups' check.
//
//	go test ./pdp/store/postgres -run '^$' -bench VerifyAuditBulk300K -benchtime 5x -cpu 1
func BenchmarkVerifyAuditBulk300K(b *testing.B) {
	const n = 300_000
	ctx := b.Context()
	u := newDatabase(b)
	db := benchOpen(b, u)
	if err := benchTenant(ctx, db, "acme"); err != nil {
		b.Fatal(err)
	}
	got, err := db.BulkInsertActions(ctx, storetest.GenerateActions(storetest.DefaultMix("acme", n, time.Date(2025, 7, 1, 13, 37, 42, 0, time.UTC))))
	if err != nil || got != n {
		b.Fatalf("loaded %d actions: %v", got, err)
	}
	if err := db.ExecRaw(ctx, `VACUUM ANALYZE actions`); err != nil {
		b.Fatal(err)
	}
	db = benchOpen(b, u, postgres.WithVerifyParallelism(1, 50_000))
	var v store.AuditVerification
	for b.Loop() {
		if v, err = db.VerifyAudit(b.Context(), "acme"); err != nil {
			b.Fatal(err)
		}
	}
	if !v.Valid {
		b.Fatal(fmt.Sprintf("verification %+v", v))
	}
}
