package sqlite_test

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/sqlite"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/storetest"
)

// TestWALWritesOnDiskAtCommit checks what the write connection's combined
// WAL writes (walvfs.go) must keep: when a write returns, its frames are
// in the WAL file. After each step a copy of the database and its WAL is
// taken while the store is still open, as a crash would leave them, and
// opened apart: every acknowledged action is in it, its chains verify,
// and SQLite finds the copy intact. The steps cover group commits from
// concurrent callers, a transaction larger than the buffer (a bulk load,
// written in several writes), a WAL restarted at its start after a
// checkpoint, and one truncated by a checkpoint.
func TestWALWritesOnDiskAtCommit(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "g.db")
	db := open(t, path, sqlite.WithoutCheckpoints())
	acks := newAcknowledged(t, db, strings.Repeat("x", 300), "t0", "t1", "t2")
	want, insert := acks.want, acks.insert
	check := func(t *testing.T, step string, bulk int) {
		t.Helper()
		dir := t.TempDir()
		for _, suffix := range []string{"", "-wal"} {
			data, err := os.ReadFile(path + suffix)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "copy.db"+suffix), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		requireAcknowledged(t, filepath.Join(dir, "copy.db"), step, "the copy", bulk, want)
	}

	insert(t, 400)
	check(t, "group commits", 0)

	// One transaction of several MiB of WAL: the buffer is written out
	// whenever it fills, in writes the default VFS takes whole.
	bulk := slices.Collect(storetest.GenerateActions(storetest.ActionMix{TenantID: "t0", N: 20_000, Since: time.Now().Add(-time.Hour), Until: time.Now(), Agents: 10, Policies: 5, Seed: 5}))
	if got, err := db.BulkInsertActions(ctx, slices.Values(bulk)); err != nil || got != len(bulk) {
		t.Fatalf("bulk insert: %d, %v", got, err)
	}
	check(t, "a bulk load", len(bulk))

	// A checkpoint of the whole WAL lets the next commit write the WAL
	// from its start (a write before the buffered ones); TRUNCATE also
	// cuts the file to nothing.
	for _, mode := range []string{"RESTART", "TRUNCATE"} {
		if err := db.ExecRaw(ctx, `PRAGMA wal_checkpoint(`+mode+`)`); err != nil {
			t.Fatal(err)
		}
		insert(t, 80)
		check(t, "after a "+mode+" checkpoint", len(bulk))
	}
}

// TestCheckpointCopiesOnDiskAtSync checks what the combined writes of
// checkpoints to the database file (walvfs.go) must keep: when a
// checkpoint syncs the database file, every page it copied is in the
// file. A copy of the database file alone (no WAL) is taken at each such
// sync, as a crash right after it would leave the file, and once a
// checkpoint reports every frame of the WAL copied, the last copy is
// opened apart: every acknowledged action is in it, its chains verify
// and SQLite finds it intact. Checkpoints run on both connections that
// make them (the background one and the write connection, between
// batches), after group commits and after a bulk load (long runs of
// consecutive pages, written in several writes).
func TestCheckpointCopiesOnDiskAtSync(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	path := filepath.Join(dir, "g.db")
	var (
		mu     sync.Mutex
		synced []byte // the database file at its last sync
		syncs  int
	)
	restore := sqlite.SetDBSyncHook(func(p string) {
		if p != path {
			return
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		synced, syncs = data, syncs+1
		mu.Unlock()
	})
	defer restore()
	// The background checkpointer runs, but its cycle is out of reach:
	// the test's checkpoints are the only ones.
	db := open(t, path, sqlite.WithWALCheckpointBytes(1<<40))
	acks := newAcknowledged(t, db, strings.Repeat("y", 200), "t0", "t1", "t2", "t3")
	want, insert := acks.want, acks.insert
	checkpoint := func(t *testing.T, step string, background bool, bulk int) {
		t.Helper()
		mu.Lock()
		before := syncs
		mu.Unlock()
		// The background checkpointer's idle pass may hold the lock.
		var (
			busy, log, done int64
			err             error
		)
		for deadline := time.Now().Add(30 * time.Second); ; {
			busy, log, done, err = db.Checkpoint(ctx, background)
			if err != nil || busy == 0 || time.Now().After(deadline) {
				break
			}
			runtime.Gosched()
		}
		if err != nil || busy != 0 || done != log || log == 0 {
			t.Fatalf("%s: checkpoint: busy %d, log %d, checkpointed %d, %v; want every frame", step, busy, log, done, err)
		}
		mu.Lock()
		data, n := synced, syncs
		mu.Unlock()
		if n == before {
			t.Fatalf("%s: the checkpoint did not sync the database file through walVFS", step)
		}
		cp := filepath.Join(t.TempDir(), "copy.db")
		if err := os.WriteFile(cp, data, 0o600); err != nil {
			t.Fatal(err)
		}
		requireAcknowledged(t, cp, step, "the database file as synced", bulk, want)
	}

	insert(t, 400)
	checkpoint(t, "background, after group commits", true, 0)
	insert(t, 400)
	checkpoint(t, "write connection, after group commits", false, 0)

	bulk := slices.Collect(storetest.GenerateActions(storetest.ActionMix{TenantID: "t1", N: 20_000, Since: time.Now().Add(-time.Hour), Until: time.Now(), Agents: 10, Policies: 5, Seed: 9}))
	if got, err := db.BulkInsertActions(ctx, slices.Values(bulk)); err != nil || got != len(bulk) {
		t.Fatalf("bulk insert: %d, %v", got, err)
	}
	checkpoint(t, "background, after a bulk load", true, len(bulk))
	insert(t, 200)
	bulk2 := slices.Collect(storetest.GenerateActions(storetest.ActionMix{TenantID: "t2", N: 5_000, Since: time.Now().Add(-time.Hour), Until: time.Now(), Agents: 10, Policies: 5, Seed: 10}))
	for i := range bulk2 {
		bulk2[i].ID = fmt.Sprintf("act_second_%d", i)
	}
	if got, err := db.BulkInsertActions(ctx, slices.Values(bulk2)); err != nil || got != len(bulk2) {
		t.Fatalf("bulk insert: %d, %v", got, err)
	}
	checkpoint(t, "write connection, after a bulk load", false, len(bulk)+5_000)
	if s := db.WALStats(); s.DBWrites == 0 || s.DBWrites >= s.DBBytes/4096 {
		t.Errorf("the checkpoints wrote %d pages in %d writes, want fewer writes than pages: %+v", s.DBBytes/4096, s.DBWrites, s)
	}
}

// acknowledged group-commits audited actions of its tenants from 8
// goroutines at once and counts, per tenant, those the store
// acknowledged (want).
type acknowledged struct {
	db      *sqlite.DB
	tenants []string
	pad     string // the audit entries' metadata padding
	want    map[string]int
	round   int
}

// newAcknowledged creates the tenants in db.
func newAcknowledged(t *testing.T, db *sqlite.DB, pad string, tenants ...string) *acknowledged {
	t.Helper()
	for _, tn := range tenants {
		if err := benchTenant(t.Context(), db, tn); err != nil {
			t.Fatal(err)
		}
	}
	return &acknowledged{db: db, tenants: tenants, pad: pad, want: map[string]int{}}
}

// insert writes count actions (a multiple of 8) and waits for them.
func (a *acknowledged) insert(t *testing.T, count int) {
	t.Helper()
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	meta := []byte(`{"pad":"` + a.pad + `"}`)
	for g := range 8 {
		wg.Go(func() {
			for i := range count / 8 {
				tn := a.tenants[(g+i)%len(a.tenants)]
				r := store.ActionRecord{ID: fmt.Sprintf("act_%s_%d_%d_%d", tn, a.round, g, i), TenantID: tn, Action: "email.send", Status: "allowed", CreatedAt: time.Now()}
				if _, _, err := a.db.InsertActionAudited(t.Context(), r, store.AuditEvent{Metadata: meta}); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				a.want[tn]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	a.round++
}

// requireAcknowledged fails t unless the database at path (a copy, opened
// on its own) is intact and holds bulk bulk-loaded actions plus every
// acknowledged one (want: per tenant), each tenant's chain valid with its
// want entries. what names the copy in messages.
func requireAcknowledged(t *testing.T, path, step, what string, bulk int, want map[string]int) {
	t.Helper()
	ctx := t.Context()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var ok string
	if err := raw.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("%s: integrity_check of %s: %q, %v", step, what, ok, err)
	}
	var got int
	if err := raw.QueryRowContext(ctx, `SELECT count(*) FROM actions`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	total := bulk
	for _, c := range want {
		total += c
	}
	if got != total {
		t.Fatalf("%s: %s holds %d actions, %d were acknowledged", step, what, got, total)
	}
	_ = raw.Close()
	db, err := sqlite.Open(ctx, path, sqlite.WithoutCheckpoints())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for tn, n := range want {
		if v, err := db.VerifyAudit(ctx, tn); err != nil || !v.Valid || v.Entries != n {
			t.Fatalf("%s: %s in %s: %+v, %v; want a valid chain of %d", step, tn, what, v, err, n)
		}
	}
}
