package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/sqlite"
)

// TestWALBoundedUnderSustainedWrites writes actions from 8 callers
// without pause (so a batch is always queued behind the one committing)
// until the WAL has restarted several times, and checks it stayed
// bounded: the checkpoint cycle (shrunk here to 256 KiB) lets the WAL
// restart between batches, without the write connection's safety net.
// With the background checkpointer off, the committer's own catch-up
// must do it alone, within its force threshold plus a batch; with it
// on, the file stays far below the safety net whatever the scheduling.
// Every acknowledged action is then there and every chain verifies.
func TestWALBoundedUnderSustainedWrites(t *testing.T) {
	const cycle = 256 << 10
	frame := int64(4096 + 24)
	for _, c := range []struct {
		name  string
		opts  []sqlite.Option
		bound int64
	}{
		// The force threshold is two cycles; a batch of 8 actions over
		// 8 tenants writes under 100 frames.
		{"committer only", []sqlite.Option{sqlite.WithoutBackgroundCheckpoints()}, 2*cycle + 200*frame},
		{"with checkpointer", nil, sqlite.WALSafetyPages * frame / 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := t.Context()
			path := filepath.Join(t.TempDir(), "g.db")
			db := open(t, path, append(c.opts, sqlite.WithWALCheckpointBytes(cycle))...)
			tenants := make([]string, 8)
			for i := range tenants {
				tenants[i] = fmt.Sprintf("t%d", i)
				if err := benchTenant(ctx, db, tenants[i]); err != nil {
					t.Fatal(err)
				}
			}
			const restarts, most = 5, 20_000 // most: the writes allowed to get there
			var (
				wrote atomic.Int64
				acked sync.Map // tenant → *atomic.Int64
				wg    sync.WaitGroup
			)
			for _, tn := range tenants {
				acked.Store(tn, new(atomic.Int64))
			}
			pad := strings.Repeat("x", 300)
			for g := range 8 {
				wg.Go(func() {
					for i := 0; ; i++ {
						if db.WALStats().Restarts >= restarts || wrote.Add(1) > most {
							return
						}
						tn := tenants[(g+i)%len(tenants)]
						a := store.ActionRecord{ID: fmt.Sprintf("act_%d_%d", g, i), TenantID: tn, Action: "email.send", Status: "allowed", CreatedAt: time.Now()}
						if _, _, err := db.InsertActionAudited(ctx, a, store.AuditEvent{Metadata: []byte(`{"pad":"` + pad + `"}`)}); err != nil {
							t.Error(err)
							return
						}
						n, _ := acked.Load(tn)
						n.(*atomic.Int64).Add(1)
					}
				})
			}
			wg.Wait()
			w := db.WALStats()
			if w.Restarts < restarts {
				t.Fatalf("the WAL restarted %d times in %d writes, want %d: %+v", w.Restarts, most, restarts, w)
			}
			size := fileSize(t, path+"-wal")
			if size > c.bound {
				t.Errorf("the WAL file grew to %d bytes (%d frames), want at most %d: %+v", size, size/frame, c.bound, w)
			}
			t.Logf("%d writes; WAL file %d KiB; %+v", min(wrote.Load(), most), size>>10, w)
			checkActions(t, ctx, db, tenants, &acked)
		})
	}
}

// checkActions checks that every tenant has the actions acknowledged to
// it and a valid chain.
func checkActions(t *testing.T, ctx context.Context, db *sqlite.DB, tenants []string, acked *sync.Map) {
	t.Helper()
	for _, tn := range tenants {
		n, _ := acked.Load(tn)
		want := n.(*atomic.Int64).Load()
		_, total, err := db.ListActions(ctx, tn, store.ActionQuery{Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if int64(total) != want {
			t.Errorf("tenant %s: %d actions stored, %d acknowledged", tn, total, want)
		}
		v, err := db.VerifyAudit(ctx, tn)
		if err != nil {
			t.Fatal(err)
		}
		if !v.Valid || int64(v.Entries) != want {
			t.Errorf("tenant %s: verification %+v, want valid with %d entries", tn, v, want)
		}
	}
}
