package sqlite_test

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
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
	tenants := []string{"t0", "t1", "t2"}
	for _, tn := range tenants {
		if err := benchTenant(ctx, db, tn); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]int{}
	n := 0
	insert := func(t *testing.T, count int) {
		t.Helper()
		var (
			mu sync.Mutex
			wg sync.WaitGroup
		)
		for g := range 8 {
			wg.Go(func() {
				for i := range count / 8 {
					tn := tenants[(g+i)%len(tenants)]
					id := fmt.Sprintf("act_%s_%d_%d_%d", tn, n, g, i)
					a := store.ActionRecord{ID: id, TenantID: tn, Action: "email.send", Status: "allowed", CreatedAt: time.Now()}
					if _, _, err := db.InsertActionAudited(ctx, a, store.AuditEvent{Metadata: []byte(`{"pad":"` + strings.Repeat("x", 300) + `"}`)}); err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					want[tn]++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		n++
	}
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
		raw, err := sql.Open("sqlite", filepath.Join(dir, "copy.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		var ok string
		if err := raw.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
			t.Fatalf("%s: integrity_check of the copy: %q, %v", step, ok, err)
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
			t.Fatalf("%s: the copy holds %d actions, %d were acknowledged", step, got, total)
		}
		cp, err := sqlite.Open(ctx, filepath.Join(dir, "copy.db"), sqlite.WithoutCheckpoints())
		if err != nil {
			t.Fatal(err)
		}
		defer cp.Close()
		for _, tn := range tenants {
			if v, err := cp.VerifyAudit(ctx, tn); err != nil || !v.Valid || v.Entries != want[tn] {
				t.Fatalf("%s: %s in the copy: %+v, %v; want a valid chain of %d", step, tn, v, err, want[tn])
			}
		}
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
