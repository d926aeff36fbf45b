package sqlite

import (
	"path/filepath"
	"testing"

	"modernc.org/sqlite"
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
		{"temp_store", "2"},             // MEMORY: statement journals of trigger-firing writes
		{"wal_autocheckpoint", "80000"}, // a safety net past walForceBytes: checkpoints run beside the writer and between batches (checkpoint.go)
		{"cache_size", "-8192"},         // 8 MiB: the hot index leaves of ~160 tenants (writeCacheKiB)
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
