package sqlite

import (
	"syscall"
	"testing"

	sqlite3 "modernc.org/sqlite/lib"
)

// TestRawSyncFailure checks that a sync made in place fails as SQLite's
// own does: SQLITE_IOERR_FSYNC, the errno kept on the file (SQLite reads
// it back for sqlite3_system_errno), and no sync counted.
func TestRawSyncFailure(t *testing.T) {
	for _, dataOnly := range []bool{true, false} {
		before := rawSyncs.Load()
		u := sqlite3.TunixFile{Fh: -1}
		if rc := rawSyncFd(&u, dataOnly); rc != sqlite3.SQLITE_IOERR_FSYNC {
			t.Errorf("dataOnly %v: rc %d, want SQLITE_IOERR_FSYNC (%d)", dataOnly, rc, sqlite3.SQLITE_IOERR_FSYNC)
		}
		if u.FlastErrno != int32(syscall.EBADF) {
			t.Errorf("dataOnly %v: lastErrno %d, want EBADF", dataOnly, u.FlastErrno)
		}
		if rawSyncs.Load() != before {
			t.Errorf("dataOnly %v: a failed sync was counted", dataOnly)
		}
	}
}
