package sqlite_test

import (
	"fmt"
	"path/filepath"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/sqlite"
)

// TestBatchStartsOneGoroutine checks that a group commit's transaction
// runs without a context that can be done (commit.go): modernc's driver
// then starts no goroutine to watch one at BEGIN and at COMMIT, and a
// batch starts only database/sql's watcher of its transaction (three
// before). Each write below is a batch of its own.
func TestBatchStartsOneGoroutine(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "g.db"), sqlite.WithoutCheckpoints())
	if err := benchTenant(t.Context(), db, "t0"); err != nil {
		t.Fatal(err)
	}
	created := func() uint64 {
		s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	const writes = 50
	before := created()
	for i := range writes {
		r := store.ActionRecord{ID: fmt.Sprintf("act_%d", i), TenantID: "t0", Action: "email.send", Status: "allowed", CreatedAt: time.Now()}
		if _, _, err := db.InsertActionAudited(t.Context(), r, store.AuditEvent{}); err != nil {
			t.Fatal(err)
		}
	}
	if per := float64(created()-before) / writes; per > 1.5 {
		t.Errorf("%.2f goroutines started per batch, want 1 (database/sql's watcher of the transaction)", per)
	}
}
