package sqlite_test

import (
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/sqlite"
)

// TestWALSyncKeepsProcessor checks when the write connection's WAL sync
// is made in place, keeping the committer's processor (rawsync.go): on one
// processor with nothing else runnable, yes (every acknowledged write is
// still on disk: the crash-copy tests cover the same sync); with a
// goroutine runnable beside it, or more than one processor, no (the
// ordinary system call, whose processor the runtime may hand over).
func TestWALSyncKeepsProcessor(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("in-place syncs are Linux only")
	}
	db := open(t, filepath.Join(t.TempDir(), "g.db"))
	if err := benchTenant(t.Context(), db, "t0"); err != nil {
		t.Fatal(err)
	}
	n := 0
	write := func(t *testing.T, count int) {
		t.Helper()
		for range count {
			n++
			r := store.ActionRecord{ID: fmt.Sprintf("act_%d", n), TenantID: "t0", Action: "email.send", Status: "allowed", CreatedAt: time.Now()}
			if _, _, err := db.InsertActionAudited(t.Context(), r, store.AuditEvent{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// syncs runs f at GOMAXPROCS procs and returns the WAL syncs it made
	// and how many of them kept their processor.
	syncs := func(procs int, f func()) (all, raw int64) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		all0, raw0 := db.WALStats().WALSyncs, sqlite.RawWALSyncs()
		f()
		return db.WALStats().WALSyncs - all0, sqlite.RawWALSyncs() - raw0
	}
	const count = 40

	t.Run("one processor, nothing runnable", func(t *testing.T) {
		all, raw := syncs(1, func() { write(t, count) })
		// Each write is its own batch and its own sync. A timer or the
		// runtime's own goroutines may be runnable at a few of them.
		if all < count || raw < all/2 {
			t.Errorf("%d of %d WAL syncs in place for %d writes, want at least half", raw, all, count)
		}
	})
	t.Run("one processor, a goroutine runnable", func(t *testing.T) {
		var stop atomic.Bool
		var wg sync.WaitGroup
		all, raw := syncs(1, func() {
			wg.Go(func() { // always runnable: it never blocks
				for !stop.Load() {
					runtime.Gosched()
				}
			})
			write(t, count)
			stop.Store(true)
			wg.Wait()
		})
		if all < count || raw != 0 {
			t.Errorf("%d of %d WAL syncs in place with a goroutine runnable, want none", raw, all)
		}
	})
	t.Run("two processors", func(t *testing.T) {
		all, raw := syncs(2, func() { write(t, count) })
		if all < count || raw != 0 {
			t.Errorf("%d of %d WAL syncs in place on two processors, want none", raw, all)
		}
	})
}
