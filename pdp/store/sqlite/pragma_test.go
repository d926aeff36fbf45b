package sqlite

import (
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"modernc.org/sqlite"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// TestPragmas checks the settings durability and correctness rest on.
func TestPragmas(t *testing.T) {
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "g.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, c := range []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"foreign_keys", "1"},
		{"busy_timeout", "5000"},
		{"temp_store", "2"},              // MEMORY: statement journals of trigger-firing writes
		{"wal_autocheckpoint", "323884"}, // a safety net past walForceBytes, in 2 KiB frames: checkpoints run beside the writer and between batches (checkpoint.go)
		{"cache_size", "-8192"},          // 8 MiB: the hot index leaves of ~160 tenants (writeCacheKiB)
		{"page_size", "2048"},            // a new file's (pageSize)
	} {
		var got string
		if err := db.w.QueryRowContext(t.Context(), "PRAGMA "+c.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("writer PRAGMA %s = %s, want %s", c.pragma, got, c.want)
		}
	}
	if !sqlite.FdatasyncEnabled() {
		t.Error("SQLite syncs with fsync, want fdatasync (syncDataOnly)")
	}
	var qo string
	if err := db.r.QueryRowContext(t.Context(), "PRAGMA query_only").Scan(&qo); err != nil || qo != "1" {
		t.Errorf("reader PRAGMA query_only = %s, %v; want 1", qo, err)
	}
	if _, err := db.r.ExecContext(t.Context(), "DELETE FROM tenants"); err == nil {
		t.Error("a write through the read pool succeeded")
	}
}

// TestCheckpointCycle pins the WAL's cycle: it restarts after 256 MiB
// (each restart costs a pause between two batches, the catch-up's fsync
// of the database file, so the cycle is kept long), the committer forces
// a catch-up at twice that, and SQLite's own autocheckpoint inside COMMIT
// only acts beyond the forced one.
func TestCheckpointCycle(t *testing.T) {
	if walCkptBytes != 256<<20 {
		t.Errorf("walCkptBytes = %d MiB, want 256", walCkptBytes>>20)
	}
	if walForceBytes != 2*walCkptBytes {
		t.Errorf("walForceBytes = %d, want twice walCkptBytes", walForceBytes)
	}
	// A WAL frame is a page plus a 24-byte header; a store keeps the page
	// size it was created with, whatever it is.
	for _, size := range []int{512, 1024, 2048, 4096, 8192, 65536} {
		pages := walSafetyPages(size)
		if safety := int64(pages) * int64(size+24); safety <= walForceBytes || safety > walSafetyBytes {
			t.Errorf("%d-byte pages: wal_autocheckpoint at %d pages (%d bytes), want past the forced catch-up at %d bytes and at most %d", size, pages, safety, walForceBytes, walSafetyBytes)
		}
	}
}

// TestPageSize checks that a new database gets pageSize, and that an
// existing one keeps the page size it was created with (SQLite cannot
// change it in WAL mode) and gets the safety net counted in its pages.
func TestPageSize(t *testing.T) {
	ctx := t.Context()
	check := func(t *testing.T, db *DB, want int) {
		t.Helper()
		for _, c := range []struct {
			pool *sql.DB
			name string
			want int
		}{{db.w, "page_size", want}, {db.r, "page_size", want}, {db.w, "wal_autocheckpoint", walSafetyPages(want)}} {
			var got int
			if err := c.pool.QueryRowContext(ctx, "PRAGMA "+c.name).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("PRAGMA %s = %d, want %d", c.name, got, c.want)
			}
		}
	}
	reopen := func(t *testing.T, path string, want int) {
		t.Helper()
		db, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		check(t, db, want)
		if _, err := db.CreateTenant(ctx, store.Tenant{ID: "t2", Tier: store.TierEnterprise, Mode: pdp.ModeEnforcement}); err != nil {
			t.Fatal(err)
		}
		if n, err := db.ListTenants(ctx); err != nil || len(n) != 2 {
			t.Fatalf("tenants after reopening: %d, %v; want 2", len(n), err)
		}
	}
	for _, c := range []struct {
		name     string
		opts     []Option
		want     int
		existing bool
	}{
		{"new", nil, pageSize, false},
		{"existing 4 KiB", []Option{WithPageSize(4096)}, 4096, true},
		{"existing 1 KiB", []Option{WithPageSize(1024)}, 1024, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "g.db")
			db, err := Open(ctx, path, c.opts...)
			if err != nil {
				t.Fatal(err)
			}
			check(t, db, c.want)
			if _, err := db.CreateTenant(ctx, store.Tenant{ID: "t1", Tier: store.TierEnterprise, Mode: pdp.ModeEnforcement}); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if got := filePageSize(path, 0); got != c.want {
				t.Errorf("the file's header says %d-byte pages, want %d", got, c.want)
			}
			reopen(t, path, c.want) // Open's default leaves an existing file alone
		})
	}
	t.Run("empty file", func(t *testing.T) {
		// SQLite treats an empty file as a new database.
		path := filepath.Join(t.TempDir(), "g.db")
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if got := filePageSize(path, 123); got != 123 {
			t.Errorf("filePageSize of an empty file = %d, want the default", got)
		}
		db, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		check(t, db, pageSize)
	})
}

// TestFilePageSize reads page sizes from headers as SQLite writes them
// (big-endian at offset 16, 1 meaning 65536).
func TestFilePageSize(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		raw  []byte // bytes 16 and 17
		want int
	}{
		{"4096", []byte{0x10, 0x00}, 4096},
		{"512", []byte{0x02, 0x00}, 512},
		{"65536", []byte{0x00, 0x01}, 65536},
		{"not a power of two", []byte{0x03, 0x00}, 7},
		{"zero", []byte{0x00, 0x00}, 7},
	} {
		h := make([]byte, 100)
		copy(h, "SQLite format 3\x00")
		copy(h[16:], c.raw)
		path := filepath.Join(dir, c.name)
		if err := os.WriteFile(path, h, 0o600); err != nil {
			t.Fatal(err)
		}
		if got := filePageSize(path, 7); got != c.want {
			t.Errorf("%s: filePageSize = %d, want %d", c.name, got, c.want)
		}
	}
	if got := filePageSize(filepath.Join(dir, "absent"), 7); got != 7 {
		t.Errorf("absent file: filePageSize = %d, want the default", got)
	}
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("SQLite format 3\x00\x10\x00"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := filePageSize(short, 7); got != 7 {
		t.Errorf("short file: filePageSize = %d, want the default", got)
	}
}
