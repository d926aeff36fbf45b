package sqlite

import (
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// The write connection's WAL sync keeps its processor when nothing else
// could use it (walSync, syncInPlace).
//
// A system call made the ordinary way (syscall.Syscall, which modernc's
// libc uses for every call SQLite makes) tells the Go scheduler the
// goroutine may block; once it has blocked for a tick of the runtime's
// monitor thread (sysmon, 20 µs and more), the monitor takes the
// processor (P) away from it and starts another thread to run whatever is
// runnable. On a server given one processor (GOMAXPROCS=1, the deployment
// issue 11 measures) every group commit's fdatasync, ~0.5 ms, lasts that
// long, so every batch paid for a hand-off: the monitor's wake-ups, a
// thread woken to find nothing to run (every request of the batch waits
// for this sync), the processor parked, the syncing thread taking it back
// or queueing its goroutine behind the poller, and the monitor reset to
// its fastest polling each time it took a processor. Each of those is a
// context switch on the server's one core.
//
// So when the process has one processor and no goroutine is runnable (the
// runtime's own count, /sched/goroutines/runnable) as a group commit's
// batch begins (before it starts goroutines of its own: database/sql's
// watcher of the transaction, which Tx.Commit wakes just before the
// COMMIT), that batch's WAL sync is made as a raw system call that keeps
// the processor: the same fdatasync(2) (or fsync(2), following modernc's
// switch) on the same descriptor, its failure reported as SQLite's own
// sync reports it (SQLITE_IOERR_FSYNC, the errno kept on the file).
// Durability is unchanged: the call is the same and the commit still
// waits for it. What changes is that goroutines that become ready during
// the batch (a request arriving) wait for its sync to end instead of
// running beside it; with nothing runnable when the batch began, on one
// processor, that is a wait of one sync at most. With more than one
// processor the runtime already leaves a syscall's P alone while another
// P is idle, and a raw call would hold up a stop-the-world phase for its
// length, so the ordinary call is kept; so it is for every sync outside a
// batch (migrations, bulk loads), for the checkpoints' syncs of the
// database file (they can take tens of milliseconds) and for SQLite's
// one-time sync of a new file's directory.

// rawSyncs counts the WAL syncs made in place (tests).
var rawSyncs atomic.Int64

// runnableSample reads the runtime's count of runnable goroutines; the
// mutex guards the sample, reused so the read allocates nothing.
var runnableSample = struct {
	mu sync.Mutex
	s  [1]metrics.Sample
}{s: [1]metrics.Sample{{Name: "/sched/goroutines/runnable:goroutines"}}}

// syncInPlace reports whether a sync may keep the processor: one
// processor and nothing runnable.
func syncInPlace() bool {
	if runtime.GOMAXPROCS(0) != 1 {
		return false
	}
	runnableSample.mu.Lock()
	defer runnableSample.mu.Unlock()
	metrics.Read(runnableSample.s[:])
	v := runnableSample.s[0].Value
	return v.Kind() == metrics.KindUint64 && v.Uint64() == 0
}

// allowSyncInPlace sets whether the syncs of the WAL SQLite names name,
// open on a write connection through walVFS, may keep their processor.
func allowSyncInPlace(name string, ok bool) {
	walVFS.mu.Lock()
	b := walVFS.byName[name]
	walVFS.mu.Unlock()
	if b != nil {
		b.inPlace.Store(ok)
	}
}
