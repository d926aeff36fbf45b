package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// The guard's bookkeeping: a truncation is skipped only when no page at
// or past the limit can be cached.
func TestPageCacheGuardBookkeeping(t *testing.T) {
	const temp = 262145
	g := pcacheGuard{tempKey: pendingBytePage(4096)}
	if g.tempKey != temp {
		t.Fatalf("pending-byte page at 4 KiB = %d, want %d", g.tempKey, temp)
	}
	g.maxKey = 100 // pages 1..100 fetched
	if !g.skip(101) {
		t.Error("nothing past 100 cached, yet the truncation to 100 pages is passed on")
	}
	if g.skip(100) {
		t.Error("page 100 may be cached, yet the truncation to 99 pages is skipped")
	}
	// balance_nonroot swaps pages 40 and 30 through the temporary key.
	g.track(40, temp)
	if g.skip(101) {
		t.Error("a page parked at the temporary key, yet the truncation is skipped")
	}
	g.track(30, 40)
	g.track(temp, 30)
	if g.parked != 0 || g.maxKey != 100 || !g.skip(101) {
		t.Errorf("after the swap: parked %d, maxKey %d, skip %v; want 0, 100, true", g.parked, g.maxKey, g.skip(101))
	}
	// A page moved past the end (as SQLite's autovacuum does) counts.
	g.track(50, 150)
	if g.skip(101) {
		t.Error("page 150 cached, yet the truncation to 100 pages is skipped")
	}
	g.truncated(101)
	if g.maxKey != 100 || !g.skip(101) {
		t.Errorf("after the truncation: maxKey %d, want 100", g.maxKey)
	}
	// A page parked and then dropped by a truncation below the key.
	g.track(60, temp)
	g.truncated(101)
	if g.parked != 0 || !g.skip(101) {
		t.Errorf("after a truncation below the temporary key: parked %d, want 0", g.parked)
	}
	g.truncated(0)
	if g.maxKey != 0 || !g.skip(1) {
		t.Errorf("after the truncation to nothing: maxKey %d, want 0", g.maxKey)
	}
}

func openPlain(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_journal_mode=WAL&_synchronous=FULL&_pragma=cache_size(-8192)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func integrityOK(t *testing.T, db *sql.DB) {
	t.Helper()
	var res string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&res); err != nil || res != "ok" {
		t.Fatalf("integrity_check: %q, %v", res, err)
	}
}

// Random inserts into indexes make B-tree balancing swap sibling page
// numbers through the pending-byte page in most transactions: the guard
// skips the cache walks their COMMITs cost pcache1, and the database stays
// intact, read back by the same connection (its cache) and a fresh one.
func TestPageCacheGuardSkipsBalanceWalks(t *testing.T) {
	if _, err := pageCacheGuardStats(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "g.db")
	db := openPlain(t, path)
	if _, err := db.Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT NOT NULL, v TEXT NOT NULL);
CREATE INDEX t_k ON t (k); CREATE INDEX t_v ON t (v, k)`); err != nil {
		t.Fatal(err)
	}
	before, _ := pageCacheGuardStats()
	rng := rand.New(rand.NewPCG(1, 2))
	want := map[int64]string{}
	var id int64
	for range 150 {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		for range 40 {
			id++
			k := fmt.Sprintf("%016x-%s", rng.Uint64(), "some padding to fill pages faster")
			if _, err := tx.Exec(`INSERT INTO t (id, k, v) VALUES (?, ?, ?)`, id, k, k[:8]); err != nil {
				t.Fatal(err)
			}
			want[id] = k
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	after, _ := pageCacheGuardStats()
	if after.WalksAvoided == before.WalksAvoided {
		t.Errorf("no cache walk avoided over 150 transactions of random inserts (%+v → %+v)", before, after)
	}
	t.Logf("%+v → %+v", before, after)
	integrityOK(t, db)
	check := func(db *sql.DB) {
		t.Helper()
		for _, i := range []int64{1, id / 3, id / 2, id} {
			var k string
			if err := db.QueryRow(`SELECT k FROM t INDEXED BY t_v WHERE v = ? AND k = ?`, want[i][:8], want[i]).Scan(&k); err != nil || k != want[i] {
				t.Fatalf("row %d by index: %q, %v; want %q", i, k, err, want[i])
			}
		}
		var n int64
		if err := db.QueryRow(`SELECT count(*) FROM t INDEXED BY t_k`).Scan(&n); err != nil || n != id {
			t.Fatalf("count: %d, %v; want %d", n, err, id)
		}
	}
	check(db)
	check(openPlain(t, path))
}

// A rolled-back transaction that grew the database leaves pages past its
// end in the cache: the guard passes that truncation on, and the pages the
// next transaction reuses for other rows are not the rolled-back ones.
func TestPageCacheGuardRollbackDropsPages(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "g.db")
	db := openPlain(t, path)
	if _, err := db.Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL); CREATE INDEX t_v ON t (v)`); err != nil {
		t.Fatal(err)
	}
	fill := func(tx *sql.Tx, from, n int, tag string) {
		for i := from; i < from+n; i++ {
			if _, err := tx.Exec(`INSERT INTO t (id, v) VALUES (?, ?)`, i, fmt.Sprintf("%s-%06d-%0200d", tag, i, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	fill(tx, 0, 500, "kept")
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	before, _ := pageCacheGuardStats()
	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	fill(tx, 500, 3000, "gone")
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	after, _ := pageCacheGuardStats()
	if after.Passed == before.Passed {
		t.Fatalf("the rollback's truncation was not passed on (%+v → %+v)", before, after)
	}
	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	fill(tx, 500, 3000, "new")
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	integrityOK(t, db)
	for _, d := range []*sql.DB{db, openPlain(t, path)} {
		var gone, n int
		if err := d.QueryRow(`SELECT count(*) FILTER (WHERE v LIKE 'gone-%'), count(*) FROM t`).Scan(&gone, &n); err != nil || gone != 0 || n != 3500 {
			t.Fatalf("rows: %d rolled back ones of %d, %v; want 0 of 3500", gone, n, err)
		}
	}
}
