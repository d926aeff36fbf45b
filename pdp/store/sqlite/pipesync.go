package sqlite

import (
	"fmt"
	"os"
	"runtime/metrics"
	"sync/atomic"
	"syscall"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// walHeaderSize is the WAL's header: a WAL this long has just restarted,
// and its sync (of the new header, before any frame) stays SQLite's own.
const walHeaderSize = 32

// pipeMode is how the committer's WAL syncs are deferred (an experiment,
// session 14, docs/benchmarks.md "pipesync"; not merged): "off" (COMMIT
// syncs, the default), "queued" (a batch's sync is handed to a goroutine
// when writes are queued behind it), "begin" (also when goroutines were
// runnable as the batch began), "busy" (also when any are runnable after
// its COMMIT). GATEHOUSE_PIPESYNC picks it.
func pipeMode() string {
	switch m := os.Getenv("GATEHOUSE_PIPESYNC"); m {
	case "queued", "begin", "busy":
		return m
	}
	return "off"
}

// walBufNamed is the write connection's buffer of the WAL SQLite names
// name, nil if none is open.
func walBufNamed(name string) *walBuf {
	walVFS.mu.Lock()
	defer walVFS.mu.Unlock()
	return walVFS.byName[name]
}

// deferredSync is the committer's view of the WAL's owed syncs.
func (db *DB) deferredSync(mode string) *store.DeferredSync {
	d := &store.DeferredSync{
		Owed: func() bool {
			b := walBufNamed(db.walName)
			if b == nil {
				return false
			}
			b.syncMu.Lock() // a sync under way elsewhere may have taken it
			defer b.syncMu.Unlock()
			return b.owed.Load()
		},
		Sync: func(inline bool) error {
			b := walBufNamed(db.walName)
			if b == nil {
				return nil
			}
			if rc := b.syncOwed(inline && db.inPlace); rc != sqlite3.SQLITE_OK {
				return fmt.Errorf("sqlite: fdatasync %s: code %d", db.walName, rc)
			}
			return nil
		},
	}
	switch mode {
	case "busy":
		d.Busy = func() bool { return !syncInPlaceAny() }
	case "begin":
		d.Busy = func() bool { return db.runnable }
	}
	return d
}

// syncInPlaceAny reports whether nothing is runnable (any GOMAXPROCS).
func syncInPlaceAny() bool {
	runnableSample.mu.Lock()
	defer runnableSample.mu.Unlock()
	metrics.Read(runnableSample.s[:])
	v := runnableSample.s[0].Value
	return v.Kind() == metrics.KindUint64 && v.Uint64() == 0
}

// setDeferSync turns the deferral of the WAL's syncs on or off.
func setDeferSync(name string, on bool) {
	if b := walBufNamed(name); b != nil {
		b.deferSync.Store(on)
	}
}

// syncOwed syncs the WAL if a sync is owed: with a raw system call that
// keeps the processor if inPlace (rawsync.go), else an ordinary one.
func (b *walBuf) syncOwed(inPlace bool) int32 {
	b.syncMu.Lock()
	defer b.syncMu.Unlock()
	if rc := b.syncErr.Load(); rc != sqlite3.SQLITE_OK {
		return rc
	}
	if !b.owed.Swap(false) {
		return sqlite3.SQLITE_OK
	}
	if h := owedSyncHook.Load(); h != nil {
		if rc := (*h)(b.name); rc != sqlite3.SQLITE_OK { // an injected failure
			b.syncErr.Store(rc)
			return rc
		}
	}
	u := (*sqlite3.TunixFile)(ptr(b.real))
	trap := uintptr(syscall.SYS_FSYNC)
	if sqlite.FdatasyncEnabled() {
		trap = syscall.SYS_FDATASYNC
	}
	var errno syscall.Errno
	if inPlace {
		_, _, errno = syscall.RawSyscall(trap, uintptr(u.Fh), 0, 0)
		rawSyncs.Add(1)
	} else {
		_, _, errno = syscall.Syscall(trap, uintptr(u.Fh), 0, 0)
	}
	if b.stats != nil {
		b.stats.walSyncs.Add(1)
	}
	if errno != 0 {
		b.syncErr.Store(sqlite3.SQLITE_IOERR_FSYNC)
		return sqlite3.SQLITE_IOERR_FSYNC
	}
	return sqlite3.SQLITE_OK
}

// syncOwedBefore pays the WAL's owed sync before a write to the database
// file b (a checkpoint's copy): a page may reach the database only once
// the frame it comes from is on disk.
func syncOwedBefore(b *walBuf) int32 {
	w := walBufNamed(b.path + "-wal")
	if w == nil {
		return sqlite3.SQLITE_OK
	}
	if rc := w.syncErr.Load(); rc != sqlite3.SQLITE_OK {
		return rc
	}
	if !w.owed.Load() {
		w.syncMu.Lock() // wait for one under way
		w.syncMu.Unlock()
		return sqlite3.SQLITE_OK
	}
	return w.syncOwed(false)
}

// owedSyncHook, if set (tests), is called with the WAL's name as a
// deferred sync starts, before its system call: what a crash right after
// the sync would leave is the file as it is then. A result other than
// SQLITE_OK fails the sync as the system call would.
var owedSyncHook atomic.Pointer[func(wal string) int32]
