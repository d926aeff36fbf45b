package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
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
	frame := int64(sqlite.PageSize + 24)
	for _, c := range []struct {
		name  string
		opts  []sqlite.Option
		bound int64
	}{
		// The force threshold is two cycles; a batch of 8 actions over
		// 8 tenants writes under 100 frames.
		{"committer only", []sqlite.Option{sqlite.WithoutBackgroundCheckpoints()}, 2*cycle + 200*frame},
		{"with checkpointer", nil, sqlite.WALSafetyBytes / 2},
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

// TestCheckpointYieldsTheCPU runs a checkpoint over ~80 MiB of WAL with
// GOMAXPROCS=1, as the server runs, beside a goroutine that is always
// runnable, and counts the pages the checkpoint copied between two of
// that goroutine's turns: how long it kept the one P from everyone
// else, in a unit the machine's other load does not stretch. A pass
// that does not yield runs until the scheduler preempts it: with the
// yields switched off, 9,100-12,700 of 30,083 pages (2 KiB) between two
// turns, in 4-6 turns. One that yields every ckptYieldEvery (0.5 ms)
// copied at most 511-1,024 per turn (the yields come every 1-2 ms of
// the catch-up's copying, ~4 µs a page). The bound, a twelfth of the
// pass, sits between the two with a margin of more than 2x each way;
// pages/40 failed at 1,024 once pages shrank to 2 KiB. Both the
// background connection's pass and the committer's catch-up between
// batches yield.
func TestCheckpointYieldsTheCPU(t *testing.T) {
	for _, c := range []struct {
		name       string
		opts       []sqlite.Option
		background bool
	}{
		{"background pass", []sqlite.Option{sqlite.WithIdleCheckpointer()}, true},
		{"committer's catch-up", []sqlite.Option{sqlite.WithoutBackgroundCheckpoints()}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := t.Context()
			path := filepath.Join(t.TempDir(), "g.db")
			db := open(t, path, c.opts...)
			// 20,000 pages of WAL in one transaction outside the
			// committer: nothing checkpoints them until the test does.
			if err := db.ExecRaw(ctx, `CREATE TABLE pad (x BLOB)`); err != nil {
				t.Fatal(err)
			}
			if err := db.ExecRaw(ctx, `WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 20000)
INSERT INTO pad SELECT randomblob(3000) FROM c`); err != nil {
				t.Fatal(err)
			}
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
			readsBefore, yieldsBefore := db.WALStats().WALReads, sqlite.CheckpointYields()
			var (
				done   atomic.Bool
				most   int64 // WAL reads (pages copied) between two turns
				turns  int
				probed = make(chan struct{})
			)
			go func() {
				defer close(probed)
				last := readsBefore
				for !done.Load() {
					r := db.WALStats().WALReads
					most = max(most, r-last)
					if r > last {
						turns++
					}
					last = r
					runtime.Gosched()
				}
			}()
			start := time.Now()
			if c.background {
				busy, log, copied, err := db.Checkpoint(ctx, true)
				if err != nil || busy != 0 || copied != log {
					t.Fatalf("checkpoint: busy %d, log %d, copied %d, %v", busy, log, copied, err)
				}
			} else if !db.CatchUp() {
				t.Fatal("the catch-up did not copy every frame")
			}
			took := time.Since(start)
			done.Store(true)
			<-probed
			pages := db.WALStats().WALReads - readsBefore
			yields := sqlite.CheckpointYields() - yieldsBefore
			t.Logf("%d pages in %v, %d yields; the other goroutine saw the copy advance in %d turns, at most %d pages between two", pages, took, yields, turns, most)
			if pages < 10_000 {
				t.Fatalf("the checkpoint read %d pages of the WAL, want the ~20,000 written", pages)
			}
			if most > pages/12 {
				t.Errorf("the checkpoint copied %d of %d pages without letting a runnable goroutine run, want at most %d", most, pages, pages/12)
			}
		})
	}
}
