package sqlite_test

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/sqlite"
)

// TestDeferredSyncAnswersAfterOwnSync checks the committer's deferred WAL
// sync (pipesync.go): a caller is answered only after a sync of the WAL
// that started once its batch had committed. A copy of the database and
// its WAL is taken as each deferred sync starts (what a crash right after
// that sync would leave at the least); every action acknowledged after
// sync k ended must be in copy k, and SQLite must find each copy intact.
// Sixteen writers keep batches queued, so syncs run both inline and on
// the syncing goroutine beside the next batch.
func TestDeferredSyncAnswersAfterOwnSync(t *testing.T) {
	t.Setenv("GATEHOUSE_PIPESYNC", "queued")
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "g.db")
	copies := t.TempDir()
	var mu sync.Mutex
	db := open(t, path, sqlite.WithoutCheckpoints())
	for _, tn := range []string{"t0", "t1"} {
		if err := benchTenant(ctx, db, tn); err != nil {
			t.Fatal(err)
		}
	}
	started := 0
	restore := sqlite.SetOwedSyncHook(func(wal string) bool {
		if wal != path+"-wal" {
			return false
		}
		mu.Lock()
		k := started
		started++
		mu.Unlock()
		for _, suffix := range []string{"", "-wal"} {
			data, err := os.ReadFile(path + suffix)
			if err != nil {
				t.Error(err)
				return false
			}
			if err := os.WriteFile(filepath.Join(copies, fmt.Sprintf("c%d.db%s", k, suffix)), data, 0o600); err != nil {
				t.Error(err)
			}
		}
		return false
	})
	defer restore()

	type ack struct {
		id    string
		after int // the last deferred sync started before its answer
	}
	var (
		acks []ack
		wg   sync.WaitGroup
	)
	for g := range 16 {
		wg.Go(func() {
			for i := range 15 {
				tn := []string{"t0", "t1"}[(g+i)%2]
				id := fmt.Sprintf("act_%d_%d", g, i)
				r := store.ActionRecord{ID: id, TenantID: tn, Action: "email.send", Status: "allowed", CreatedAt: time.Now()}
				if _, _, err := db.InsertActionAudited(ctx, r, store.AuditEvent{}); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				// The sync that answered this write started before now
				// and is copy started-1 or earlier; it must hold it.
				acks = append(acks, ack{id, started - 1})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if started == 0 {
		t.Fatal("no deferred sync ran: the committer's COMMITs synced themselves")
	}
	// Each action must be in the copy of the last sync started before its
	// answer (that sync, or a later one, answered it; a later one started
	// after the answer is impossible).
	byCopy := map[int][]string{}
	for _, a := range acks {
		if a.after < 0 {
			t.Fatalf("%s answered before any deferred sync started", a.id)
		}
		byCopy[a.after] = append(byCopy[a.after], a.id)
	}
	for k, ids := range byCopy {
		cp := filepath.Join(copies, fmt.Sprintf("c%d.db", k))
		raw, err := sql.Open("sqlite", cp)
		if err != nil {
			t.Fatal(err)
		}
		var ok string
		if err := raw.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
			t.Fatalf("copy %d: integrity_check %q, %v", k, ok, err)
		}
		for _, id := range ids {
			var n int
			if err := raw.QueryRowContext(ctx, `SELECT count(*) FROM actions WHERE id = ?`, id).Scan(&n); err != nil || n != 1 {
				t.Fatalf("copy %d (taken as the last sync before its answer started) lacks acknowledged %s: %d, %v", k, id, n, err)
			}
		}
		_ = raw.Close()
	}
	t.Logf("%d actions answered over %d deferred syncs", len(acks), started)
}

// TestDeferredSyncFailureStopsWrites injects a failed fdatasync into a
// deferred WAL sync: the callers of its batch get an error, and so does
// every later write (fail-stop: what is on disk is not known after it).
func TestDeferredSyncFailureStopsWrites(t *testing.T) {
	t.Setenv("GATEHOUSE_PIPESYNC", "queued")
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "g.db")
	db := open(t, path, sqlite.WithoutCheckpoints())
	if err := benchTenant(ctx, db, "t0"); err != nil {
		t.Fatal(err)
	}
	insert := func(id string) error {
		r := store.ActionRecord{ID: id, TenantID: "t0", Action: "email.send", Status: "allowed", CreatedAt: time.Now()}
		_, _, err := db.InsertActionAudited(ctx, r, store.AuditEvent{})
		return err
	}
	if err := insert("act_before"); err != nil {
		t.Fatal(err)
	}
	restore := sqlite.SetOwedSyncHook(func(wal string) bool { return wal == path+"-wal" })
	defer restore()
	err := insert("act_failed")
	if err == nil || !strings.Contains(err.Error(), "sync") {
		t.Fatalf("a write whose sync failed: %v, want a sync error", err)
	}
	restore()
	for i := range 3 {
		if err := insert(fmt.Sprintf("act_after_%d", i)); err == nil {
			t.Fatalf("write %d after a failed sync succeeded, want every later write refused", i)
		}
	}
	if err := benchTenant(ctx, db, "t9"); err == nil {
		t.Error("a write outside the committer after a failed sync succeeded")
	}
}
