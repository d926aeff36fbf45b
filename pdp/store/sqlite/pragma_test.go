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
		{"temp_store", "2"},              // MEMORY: statement journals of trigger-firing writes
		{"wal_autocheckpoint", "160000"}, // a safety net past walForceBytes: checkpoints run beside the writer and between batches (checkpoint.go)
		{"cache_size", "-8192"},          // 8 MiB: the hot index leaves of ~160 tenants (writeCacheKiB)
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
	// A WAL frame is a 4 KiB page plus a 24-byte header.
	if safety := int64(walSafetyPages) * (4096 + 24); safety <= walForceBytes {
		t.Errorf("wal_autocheckpoint at %d pages (%d bytes) acts before the forced catch-up at %d bytes", walSafetyPages, safety, walForceBytes)
	}
}
