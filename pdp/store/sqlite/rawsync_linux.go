package sqlite

import (
	"syscall"

	"modernc.org/libc"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// rawSync syncs the default VFS's file r (a unixFile) as its xSync would,
// by a raw system call that keeps the goroutine's processor (see
// rawsync.go). ok is false when it did nothing: the file still owes its
// directory a sync (SQLite's one-time UNIXFILE_DIRSYNC), which is left to
// SQLite's own xSync.
func rawSync(tls *libc.TLS, r uintptr) (rc int32, ok bool) {
	u := (*sqlite3.TunixFile)(ptr(r))
	if u.FctrlFlags&sqlite3.UNIXFILE_DIRSYNC != 0 {
		return 0, false
	}
	return rawSyncFd(u, sqlite.FdatasyncEnabled()), true
}

// rawSyncFd syncs u's descriptor, with fdatasync(2) if dataOnly.
func rawSyncFd(u *sqlite3.TunixFile, dataOnly bool) int32 {
	trap := uintptr(syscall.SYS_FSYNC)
	if dataOnly {
		trap = syscall.SYS_FDATASYNC
	}
	_, _, errno := syscall.RawSyscall(trap, uintptr(u.Fh), 0, 0)
	if errno != 0 {
		u.FlastErrno = int32(errno)
		return sqlite3.SQLITE_IOERR_FSYNC // as SQLite's unixSync fails
	}
	rawSyncs.Add(1)
	return sqlite3.SQLITE_OK
}
