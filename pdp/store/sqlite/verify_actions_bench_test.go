package sqlite_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp/store/sqlite"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/storetest"
)

// BenchmarkVerifyAuditActions verifies a tenant of 100,000 actions
// recorded with their evaluation entries by 16 concurrent callers (the
// chain, the actions' cross-check and the rollups'), and one of 300,000
// bulk-loaded actions without entries (what is left is the rollups'
// check: an empty chain, no action an entry vouches for). Both the
// dashboard benchmark's mix: 30 days, 50 agents, a violation in three of
// ten. Set GATEHOUSE_BENCH_DIR to share the stores between binaries.
//
//	go test ./pdp/store/sqlite -run '^$' -bench VerifyAuditActions -benchtime 3x -cpu 1
func BenchmarkVerifyAuditActions(b *testing.B) {
	until := time.Date(2025, 7, 1, 13, 37, 42, 0, time.UTC)
	for _, c := range []struct {
		name    string
		n       int
		audited bool
	}{{"audited=100k", 100_000, true}, {"bulk=300k", 300_000, false}} {
		b.Run(c.name, func(b *testing.B) {
			db := benchDB(b, "verify-actions-"+c.name, func(ctx context.Context, db *sqlite.DB) error {
				if err := benchTenant(ctx, db, "acme"); err != nil {
					return err
				}
				mix := storetest.DefaultMix("acme", c.n, until)
				if !c.audited {
					got, err := db.BulkInsertActions(ctx, storetest.GenerateActions(mix))
					if err == nil && got != c.n {
						err = fmt.Errorf("loaded %d actions, want %d", got, c.n)
					}
					return err
				}
				storetest.InsertConcurrently(ctx, b, db, slices.Collect(storetest.GenerateActions(mix)), 16)
				return nil
			})
			want := 0
			if c.audited {
				want = c.n
			}
			benchVerifyLoop(b, db, want)
		})
	}
}
