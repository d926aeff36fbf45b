package sqlite

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// The write connection's WAL writes are combined (walVFS).
//
// SQLite appends each dirty page to the WAL as two write(2) calls, the
// frame's 24-byte header and the page, and a group commit of a hundred
// pages made two hundred system calls, a third of the committer's CPU
// (BenchmarkActionWritePath's profile). walVFS is SQLite's default VFS
// ("unix") with one change: writes to a WAL file that continue the
// previous one are gathered in a buffer and reach the file in writes of
// up to 128 KiB when anything could look at the file. So a commit of ~90
// frames (370 KB) is three writes, then the fsync.
//
// What a WAL write may wait for, and what it may not:
//
//   - Durability is unchanged. The buffer is written out before every
//     xSync, so the fsync SQLite makes at each commit (synchronous=FULL)
//     covers every frame of the commit, as before; until that fsync
//     returns, a commit is not done and its caller is not answered. A
//     process that dies with frames in the buffer loses frames of a
//     transaction that had not committed, as it could before (unsynced
//     writes are not durable either).
//   - Visibility is unchanged. Other connections find frames through the
//     wal-index (-shm), whose header a commit writes after its frames,
//     with a memory barrier (xShmBarrier) in between; every buffer is
//     written out at every barrier, wal-index lock and mapping, so frames
//     are in the file before any reader can know of them, whatever the
//     synchronous setting. The
//     connection itself reads its WAL back (xRead) only after its
//     buffer is written out, and so does anything that asks the file's
//     size, truncates it, controls it or closes it.
//   - Order is unchanged. A write that does not continue the buffer (a
//     frame rewritten in place, the WAL restarting at its header) writes
//     the buffer out first, so the file sees the same writes in the same
//     order, fewer of them.
//
// Checkpoints' writes to the database file are combined the same way
// (dbBuf): a checkpoint copies each page of the WAL back to its place in
// the database, in page order, one write(2) per page, and about half of
// those pages follow the one before (the server's checkpoints, issue 11).
// Writes that continue the previous one are gathered and reach the file
// in writes of up to 128 KiB; the rest as before. What they may wait
// for, and what they may not:
//
//   - Durability is unchanged. A checkpoint syncs the database file
//     after copying and only then records (in the wal-index) how far it
//     copied; the buffer is written out before that xSync, so the fsync
//     covers every page, as before. Until it returns nothing can restart
//     the WAL over the copied frames, and a process that dies with pages
//     in the buffer leaves the WAL holding them, as a crash in the middle
//     of a checkpoint did.
//   - Visibility is unchanged. A checkpoint copies only frames that every
//     reader finds in the WAL (none reads those pages from the database
//     file until the wal-index says they were copied, which is after the
//     sync); the buffer is also written out at every lock, barrier and
//     wal-index call, before any read, size, truncate, control or close
//     of the file, and before a write that does not continue it.
//
// The write connection opens its files through walVFS (Open's "vfs"
// parameter), and the checkpoint connection through walCkptVFSName:
// the same methods, but its WAL (which it only reads) gets no buffer, so
// walState keeps following the write connection's. The readers use the
// default VFS. Other files (statement journals) are passed through
// untouched.
const walVFSName = "gatehouse-walbuf"

// walCkptVFSName is the checkpoint connection's VFS (see walVFSName).
const walCkptVFSName = "gatehouse-ckpt"

// walBufSize is the most a WAL buffer holds (allocated once per WAL file
// the write connection opens): a group commit of ~90 frames fits several
// times; a larger transaction (256 actions over 100 tenants is ~2,000
// frames, a bulk load more) writes it out whenever it is full.
const walBufSize = 1 << 20

// walFile is the part of a walVFS file before the wrapped one (the
// default VFS's file, which follows it): its methods and, for a WAL, the
// buffer's registration (walVFS.bufs).
type walFile struct {
	methods uintptr // *sqlite3.Tsqlite3_io_methods: walVFS.methods
	buf     uintptr // key of the file's walBuf in walVFS.bufs, 0 if none
	// io is the database's counters, for its file and WAL; nil for
	// other files. It is Go memory referenced from C memory, kept alive
	// by walVFS.io, which never forgets a database.
	io  *walIO
	wal bool // the file is a WAL
	// ckpt: the file is the checkpoint connection's, whose reads and
	// writes yield the CPU every ckptYieldEvery (ckptYield); yieldAt is
	// when it last did (ckptClock).
	ckpt    bool
	yieldAt int64
}

const walFileSize = int32(unsafe.Sizeof(walFile{}))

// walBuf is a WAL's or database file's pending writes: n bytes at mem (C
// memory, walBufSize) that go to the file at off.
type walBuf struct {
	mu   sync.Mutex
	real uintptr // the wrapped file
	mem  uintptr
	n    int
	off  int64
	name string // the WAL's path as SQLite names it (walVFS.byName); "" for a database file
	// stats counts the database's I/O through walVFS (walIOStats).
	stats *walIO
	path  string // the file's path as SQLite names it
	// extent is where the WAL's frames end: the end of the last write
	// to the file (buffered or not). SQLite writes a WAL from its start
	// and restarts it by rewriting its header at offset 0, so extent is
	// the WAL in use, not the file's size (which never shrinks here).
	// restarts counts those header rewrites after the first. Both are
	// read by the committer (walState) without b.mu.
	extent, restarts atomic.Int64
	// failed is the error of a flush the file's connection has not been
	// told of (see flush); b.mu guards it.
	failed int32
	// synced: nothing was written or truncated since the last xSync
	// succeeded, so another has nothing to make durable (walSync).
	synced atomic.Bool
	// inPlace: the committer's batch under way found nothing else
	// runnable as it began, so this WAL's sync may keep its processor
	// (rawsync.go).
	inPlace atomic.Bool
	// yield: the write connection is checkpointing (the committer's
	// catch-up), and its reads of this WAL yield the CPU (ckptYield).
	yield   atomic.Bool
	yieldAt atomic.Int64
}

// wrote records a write of n bytes at off (see extent).
func (b *walBuf) wrote(off int64, n int32) {
	b.synced.Store(false)
	if b.name == "" {
		return // a database file
	}
	if off == 0 && b.extent.Load() > 0 {
		b.restarts.Add(1)
	}
	b.extent.Store(off + int64(n))
}

// walVFS is the registered VFS.
var walVFS struct {
	once    sync.Once
	err     error
	orig    uintptr // the default VFS it wraps
	methods uintptr // the io_methods of every file it opens
	mu      sync.Mutex
	bufs    map[uintptr]*walBuf
	byName  map[string]*walBuf // the open WALs by path (walState)
	io      map[string]*walIO  // by database path (walIOStats)
	next    uintptr
	// pending counts the buffers holding bytes, so a barrier with
	// nothing to write (most) costs an atomic load.
	pending atomic.Int64
}

// registerWALVFS registers walVFS once per process.
func registerWALVFS() error {
	walVFS.once.Do(func() {
		tls := libc.NewTLS()
		defer tls.Close()
		orig := sqlite3.Xsqlite3_vfs_find(tls, 0)
		if orig == 0 {
			walVFS.err = fmt.Errorf("sqlite: no default VFS")
			return
		}
		o := (*sqlite3.Tsqlite3_vfs)(ptr(orig))
		p := libc.Xmalloc(tls, libc.Tsize_t(unsafe.Sizeof(sqlite3.Tsqlite3_vfs{})))
		name, err := libc.CString(walVFSName)
		if p == 0 || err != nil {
			walVFS.err = fmt.Errorf("sqlite: register the WAL VFS: out of memory")
			return
		}
		v := (*sqlite3.Tsqlite3_vfs)(ptr(p))
		*v = *o // the default VFS's methods and data, which they read
		v.FpNext = 0
		v.FzName = name
		v.FszOsFile = o.FszOsFile + walFileSize
		v.FxOpen = cfunc(walOpen)

		m := libc.Xmalloc(tls, libc.Tsize_t(unsafe.Sizeof(sqlite3.Tsqlite3_io_methods{})))
		if m == 0 {
			walVFS.err = fmt.Errorf("sqlite: register the WAL VFS: out of memory")
			return
		}
		*(*sqlite3.Tsqlite3_io_methods)(ptr(m)) = sqlite3.Tsqlite3_io_methods{
			FiVersion:               3,
			FxClose:                 cfunc(walClose),
			FxRead:                  cfunc(walRead),
			FxWrite:                 cfunc(walWrite),
			FxTruncate:              cfunc(walTruncate),
			FxSync:                  cfunc(walSync),
			FxFileSize:              cfunc(walFileSizeOf),
			FxLock:                  cfunc(walLock),
			FxUnlock:                cfunc(walUnlock),
			FxCheckReservedLock:     cfunc(walCheckReservedLock),
			FxFileControl:           cfunc(walFileControl),
			FxSectorSize:            cfunc(walSectorSize),
			FxDeviceCharacteristics: cfunc(walDeviceCharacteristics),
			FxShmMap:                cfunc(walShmMap),
			FxShmLock:               cfunc(walShmLock),
			FxShmBarrier:            cfunc(walShmBarrier),
			FxShmUnmap:              cfunc(walShmUnmap),
			FxFetch:                 cfunc(walFetch),
			FxUnfetch:               cfunc(walUnfetch),
		}
		walVFS.orig, walVFS.methods = orig, m
		walVFS.bufs = map[uintptr]*walBuf{}
		walVFS.byName = map[string]*walBuf{}
		walVFS.io = map[string]*walIO{}
		if rc := sqlite3.Xsqlite3_vfs_register(tls, p, 0); rc != sqlite3.SQLITE_OK {
			walVFS.err = fmt.Errorf("sqlite: register the WAL VFS: code %d", rc)
			return
		}
		// The checkpoint connection's: the same but its xOpen.
		p2 := libc.Xmalloc(tls, libc.Tsize_t(unsafe.Sizeof(sqlite3.Tsqlite3_vfs{})))
		name2, err := libc.CString(walCkptVFSName)
		if p2 == 0 || err != nil {
			walVFS.err = fmt.Errorf("sqlite: register the checkpoint VFS: out of memory")
			return
		}
		v2 := (*sqlite3.Tsqlite3_vfs)(ptr(p2))
		*v2 = *v
		v2.FzName = name2
		v2.FxOpen = cfunc(walCkptOpen)
		if rc := sqlite3.Xsqlite3_vfs_register(tls, p2, 0); rc != sqlite3.SQLITE_OK {
			walVFS.err = fmt.Errorf("sqlite: register the checkpoint VFS: code %d", rc)
		}
	})
	return walVFS.err
}

// ptr is p as a pointer: p is C memory (SQLite's or modernc's allocator),
// never Go's.
func ptr(p uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&p)) }

// cfunc is f as a C function pointer (https://golang.org/s/go11func: a
// top-level function's value points to read-only data).
func cfunc[F any](f F) uintptr { return *(*uintptr)(unsafe.Pointer(&struct{ f F }{f})) }

// call returns the C function pointer fp as a Go function of type F.
func call[F any](fp uintptr) F { return *(*F)(unsafe.Pointer(&struct{ uintptr }{fp})) }

func walf(f uintptr) *walFile { return (*walFile)(ptr(f)) }

// inner is the wrapped file inside f, and its methods.
func inner(f uintptr) (uintptr, *sqlite3.Tsqlite3_io_methods) {
	r := f + uintptr(walFileSize)
	return r, (*sqlite3.Tsqlite3_io_methods)(ptr((*sqlite3.Tsqlite3_file)(ptr(r)).FpMethods))
}

// bufOf is f's buffer, nil unless f is a WAL.
func bufOf(f uintptr) *walBuf {
	k := walf(f).buf
	if k == 0 {
		return nil
	}
	walVFS.mu.Lock()
	defer walVFS.mu.Unlock()
	return walVFS.bufs[k]
}

// flush writes b's pending bytes out; b.mu is held. The buffer is empty
// afterwards even if a write failed: the error goes to the SQLite call
// that asked for the flush (a commit's sync: the commit fails, and its
// frames, past the WAL's last commit, are never read). Any connection
// of walVFS may flush every buffer (flushAll, at its wal-index calls),
// so a failed write is also kept in b.failed until the file's own
// connection flushes (flushOf, at its next sync at the latest): its
// commit or checkpoint fails as if it had written the bytes itself.
func (b *walBuf) flush(tls *libc.TLS) int32 {
	if b.n == 0 {
		return sqlite3.SQLITE_OK
	}
	n, off := b.n, b.off
	b.n = 0
	walVFS.pending.Add(-1)
	m := (*sqlite3.Tsqlite3_io_methods)(ptr((*sqlite3.Tsqlite3_file)(ptr(b.real)).FpMethods))
	write := call[func(*libc.TLS, uintptr, uintptr, int32, int64) int32](m.FxWrite)
	for i := 0; i < n; i += walWriteMax {
		if b.name == "" {
			b.stats.dbWrites.Add(1)
		}
		if rc := write(tls, b.real, b.mem+uintptr(i), int32(min(n-i, walWriteMax)), off+int64(i)); rc != sqlite3.SQLITE_OK {
			b.failed = rc
			return rc
		}
	}
	return sqlite3.SQLITE_OK
}

// flushOwn is flush for the file's own connection: it also reports (and
// forgets) a failure of a flush another connection made.
func (b *walBuf) flushOwn(tls *libc.TLS) int32 {
	rc := b.flush(tls)
	if b.failed != sqlite3.SQLITE_OK {
		rc, b.failed = b.failed, sqlite3.SQLITE_OK
	}
	return rc
}

// walWriteMax is the most one write of the default VFS takes: it masks a
// write's length to 17 bits (seekAndWriteFd's nBuf &= 0x1ffff), so 128 KiB
// would be written as 0 bytes and reported as a full disk.
const walWriteMax = 0x1ffff

// flushOf writes f's buffer out, if it has one.
func flushOf(tls *libc.TLS, f uintptr) int32 {
	b := bufOf(f)
	if b == nil {
		return sqlite3.SQLITE_OK
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flushOwn(tls)
}

// flushAll writes every buffer out (a memory barrier on the wal-index:
// what a commit publishes must be in its WAL first).
func flushAll(tls *libc.TLS) int32 {
	if walVFS.pending.Load() == 0 {
		return sqlite3.SQLITE_OK
	}
	walVFS.mu.Lock()
	bufs := make([]*walBuf, 0, len(walVFS.bufs))
	for _, b := range walVFS.bufs {
		bufs = append(bufs, b)
	}
	walVFS.mu.Unlock()
	rc := int32(sqlite3.SQLITE_OK)
	for _, b := range bufs {
		b.mu.Lock()
		if r := b.flush(tls); r != sqlite3.SQLITE_OK && rc == sqlite3.SQLITE_OK {
			rc = r
		}
		b.mu.Unlock()
	}
	return rc
}

func walOpen(tls *libc.TLS, vfs, name, f uintptr, flags int32, outFlags uintptr) int32 {
	return openBuffered(tls, name, f, flags, outFlags, true)
}

func walCkptOpen(tls *libc.TLS, vfs, name, f uintptr, flags int32, outFlags uintptr) int32 {
	rc := openBuffered(tls, name, f, flags, outFlags, false)
	if (*sqlite3.Tsqlite3_file)(ptr(f+uintptr(walFileSize))).FpMethods != 0 {
		walf(f).ckpt = true
	}
	return rc
}

// The checkpoint connection yields the CPU (issue 11's tail). A pass
// copies thousands of pages, each a read of the WAL and a write to the
// database file served from the page cache: system calls too short for
// the runtime to hand the P to another goroutine, so the pass runs on,
// and with GOMAXPROCS=1 (the server pinned to one core) every request
// and the committer waited until the scheduler preempted it, after
// ~10 ms, and again at its next turn. So each read and write of its
// files yields (runtime.Gosched) once ckptYieldEvery has passed since
// the last: the pass holds the CPU at most that long while anything
// else can run, and runs on at once when nothing else can. It holds no
// lock another connection waits for while it yields (SQLite's locks of
// a PASSIVE checkpoint keep no writer or reader out; walVFS's mutexes
// are released first). The committer's catch-up between batches yields
// the same way on its reads of the WAL (walYielding): the batch before
// it is answered, and the next batch's requests are decided meanwhile.
const ckptYieldEvery = 500 * time.Microsecond

// ckptEpoch is ckptClock's origin.
var ckptEpoch = time.Now()

// ckptClock is the time since ckptEpoch, monotonic.
func ckptClock() int64 { return int64(time.Since(ckptEpoch)) }

// ckptYields counts the checkpoint connection's yields (tests).
var ckptYields atomic.Int64

// ckptYield yields the CPU if f is the checkpoint connection's, or a
// WAL the write connection is checkpointing (walYielding), and
// ckptYieldEvery has passed since it last did.
func ckptYield(f uintptr) {
	w := walf(f)
	if w.ckpt {
		if now := ckptClock(); now-w.yieldAt >= int64(ckptYieldEvery) {
			ckptYields.Add(1)
			runtime.Gosched()
			w.yieldAt = ckptClock()
		}
		return
	}
	if !w.wal || w.buf == 0 {
		return
	}
	if b := bufOf(f); b != nil && b.yield.Load() {
		if now := ckptClock(); now-b.yieldAt.Load() >= int64(ckptYieldEvery) {
			ckptYields.Add(1)
			runtime.Gosched()
			b.yieldAt.Store(ckptClock())
		}
	}
}

// walYielding makes the write connection's reads of the WAL at path
// (walState's name) yield the CPU while on: its checkpoint between
// batches copies as many pages as a background pass's last stretch.
func walYielding(path string, on bool) {
	walVFS.mu.Lock()
	b := walVFS.byName[path]
	walVFS.mu.Unlock()
	if b != nil {
		b.yieldAt.Store(ckptClock())
		b.yield.Store(on)
	}
}

// walIO counts a database's I/O through walVFS, on every connection that
// opens it so (walIOStats).
type walIO struct {
	dbWrites atomic.Int64 // write(2) calls to the database file
	dbBytes  atomic.Int64 // bytes written to the database file
	walReads atomic.Int64 // read(2) calls on the WAL
	dbSyncs  atomic.Int64 // syncs of the database file
	walSyncs atomic.Int64 // syncs of the WAL that reached the file
}

// ioFor returns the counters of the database whose file or WAL SQLite
// names path; walVFS.mu is held.
func ioFor(path string) *walIO {
	path = strings.TrimSuffix(path, "-wal")
	c := walVFS.io[path]
	if c == nil {
		c = &walIO{}
		walVFS.io[path] = c
	}
	return c
}

// walIOStats returns the I/O counters of the database at path (SQLite's
// name for it) through walVFS so far.
func walIOStats(path string) (dbWrites, dbBytes, walReads, dbSyncs, walSyncs int64) {
	walVFS.mu.Lock()
	c := walVFS.io[path]
	walVFS.mu.Unlock()
	if c == nil {
		return
	}
	return c.dbWrites.Load(), c.dbBytes.Load(), c.walReads.Load(), c.dbSyncs.Load(), c.walSyncs.Load()
}

// openBuffered opens a file through the default VFS, with a buffer if it
// is a database file, or a WAL and walBuffered (see walVFSName).
func openBuffered(tls *libc.TLS, name, f uintptr, flags int32, outFlags uintptr, walBuffered bool) int32 {
	o := (*sqlite3.Tsqlite3_vfs)(ptr(walVFS.orig))
	r := f + uintptr(walFileSize)
	*walf(f) = walFile{}
	rc := call[func(*libc.TLS, uintptr, uintptr, uintptr, int32, uintptr) int32](o.FxOpen)(tls, walVFS.orig, name, r, flags, outFlags)
	if (*sqlite3.Tsqlite3_file)(ptr(r)).FpMethods == 0 {
		return rc // SQLite closes nothing
	}
	walf(f).methods = walVFS.methods
	wal := flags&sqlite3.SQLITE_OPEN_WAL != 0
	if rc != sqlite3.SQLITE_OK || name == 0 || !(wal && walBuffered || flags&sqlite3.SQLITE_OPEN_MAIN_DB != 0) {
		if rc == sqlite3.SQLITE_OK && wal && name != 0 {
			walVFS.mu.Lock()
			walf(f).io, walf(f).wal = ioFor(libc.GoString(name)), true
			walVFS.mu.Unlock()
		}
		return rc
	}
	mem := libc.Xmalloc(tls, walBufSize)
	if mem == 0 {
		return rc // unbuffered
	}
	path := libc.GoString(name)
	b := &walBuf{real: r, mem: mem, path: path}
	if wal {
		b.name = path
	}
	walVFS.mu.Lock()
	b.stats = ioFor(path)
	walf(f).io, walf(f).wal = b.stats, wal
	walVFS.next++
	walVFS.bufs[walVFS.next] = b
	if wal {
		walVFS.byName[b.name] = b
	}
	walf(f).buf = walVFS.next
	walVFS.mu.Unlock()
	return rc
}

// walState is how far the WAL at path (SQLite's name for it: the
// database's path as PRAGMA database_list gives it, plus "-wal") extends,
// in bytes, and how often it has restarted, while a write connection has
// it open through walVFS; ok is false otherwise. Two stores of one file
// in one process (tests) share the entry of the last to open it, and
// neither has one once that one closes: their committers then leave the
// WAL to the background checkpointer and the safety net, as before.
func walState(path string) (extent, restarts int64, ok bool) {
	walVFS.mu.Lock()
	b := walVFS.byName[path]
	walVFS.mu.Unlock()
	if b == nil {
		return 0, 0, false
	}
	return b.extent.Load(), b.restarts.Load(), true
}

func walClose(tls *libc.TLS, f uintptr) int32 {
	rc := flushOf(tls, f)
	if k := walf(f).buf; k != 0 {
		walVFS.mu.Lock()
		b := walVFS.bufs[k]
		delete(walVFS.bufs, k)
		if b.name != "" && walVFS.byName[b.name] == b {
			delete(walVFS.byName, b.name)
		}
		walVFS.mu.Unlock()
		b.mu.Lock() // a flushAll may hold it; flushOf left it empty
		libc.Xfree(tls, b.mem)
		b.mem, b.n = 0, 0
		b.mu.Unlock()
		walf(f).buf = 0
	}
	r, m := inner(f)
	if rc2 := call[func(*libc.TLS, uintptr) int32](m.FxClose)(tls, r); rc == sqlite3.SQLITE_OK {
		rc = rc2
	}
	return rc
}

func walRead(tls *libc.TLS, f, p uintptr, n int32, off int64) int32 {
	if rc := flushOf(tls, f); rc != sqlite3.SQLITE_OK {
		return rc
	}
	if c := walf(f).io; c != nil && walf(f).wal {
		c.walReads.Add(1)
	}
	r, m := inner(f)
	rc := call[func(*libc.TLS, uintptr, uintptr, int32, int64) int32](m.FxRead)(tls, r, p, n, off)
	ckptYield(f)
	return rc
}

func walWrite(tls *libc.TLS, f, p uintptr, n int32, off int64) int32 {
	if walf(f).ckpt {
		defer ckptYield(f) // after walVFS's mutexes are released
	}
	if b := bufOf(f); b != nil && n > 0 && n <= walBufSize {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.n > 0 && (off != b.off+int64(b.n) || b.n+int(n) > walBufSize) {
			if rc := b.flushOwn(tls); rc != sqlite3.SQLITE_OK {
				return rc
			}
		}
		if b.n == 0 {
			b.off = off
			walVFS.pending.Add(1)
		}
		copy(unsafe.Slice((*byte)(ptr(b.mem+uintptr(b.n))), n), unsafe.Slice((*byte)(ptr(p)), n))
		b.n += int(n)
		b.wrote(off, n)
		if b.name == "" {
			b.stats.dbBytes.Add(int64(n))
		}
		return sqlite3.SQLITE_OK
	}
	if rc := flushOf(tls, f); rc != sqlite3.SQLITE_OK {
		return rc
	}
	r, m := inner(f)
	if b := bufOf(f); b != nil && b.name == "" {
		b.stats.dbWrites.Add(1)
		b.stats.dbBytes.Add(int64(n))
	}
	rc := call[func(*libc.TLS, uintptr, uintptr, int32, int64) int32](m.FxWrite)(tls, r, p, n, off)
	if b := bufOf(f); b != nil && rc == sqlite3.SQLITE_OK {
		b.wrote(off, n)
	}
	return rc
}

func walTruncate(tls *libc.TLS, f uintptr, size int64) int32 {
	if rc := flushOf(tls, f); rc != sqlite3.SQLITE_OK {
		return rc
	}
	r, m := inner(f)
	b := bufOf(f)
	if b != nil {
		b.synced.Store(false)
	}
	rc := call[func(*libc.TLS, uintptr, int64) int32](m.FxTruncate)(tls, r, size)
	if b != nil && rc == sqlite3.SQLITE_OK && b.extent.Load() > size {
		b.extent.Store(size)
	}
	return rc
}

// walSync syncs the file, unless it is a WAL with nothing written since
// its last sync: a checkpoint on the write connection syncs the WAL
// before copying it, right after the COMMIT that synced every frame
// (synchronous=FULL), and that fsync of a clean file still cost up to a
// few milliseconds on a busy disk, in the pause between two batches (see
// checkpoint.go).
func walSync(tls *libc.TLS, f uintptr, flags int32) int32 {
	if rc := flushOf(tls, f); rc != sqlite3.SQLITE_OK {
		return rc
	}
	b := bufOf(f)
	if b != nil && b.synced.Load() {
		return sqlite3.SQLITE_OK
	}
	r, m := inner(f)
	var rc int32
	inPlace := false
	if b != nil && b.inPlace.Load() { // the write connection's WAL in a batch (rawsync.go)
		rc, inPlace = rawSync(tls, r)
	}
	if !inPlace {
		rc = call[func(*libc.TLS, uintptr, int32) int32](m.FxSync)(tls, r, flags)
	}
	if b != nil && rc == sqlite3.SQLITE_OK {
		b.synced.Store(true)
	}
	if c := walf(f).io; c != nil {
		if walf(f).wal {
			c.walSyncs.Add(1)
		} else {
			c.dbSyncs.Add(1)
		}
	}
	if h := dbSynced.Load(); h != nil && b != nil && b.name == "" && rc == sqlite3.SQLITE_OK {
		(*h)(b.path)
	}
	return rc
}

// dbSynced, if set (tests), is called with the path of a database file
// whose sync through walVFS just succeeded: what a crash would leave.
var dbSynced atomic.Pointer[func(path string)]

func walFileSizeOf(tls *libc.TLS, f, size uintptr) int32 {
	if rc := flushOf(tls, f); rc != sqlite3.SQLITE_OK {
		return rc
	}
	r, m := inner(f)
	return call[func(*libc.TLS, uintptr, uintptr) int32](m.FxFileSize)(tls, r, size)
}

func walLock(tls *libc.TLS, f uintptr, lock int32) int32 {
	if walVFS.pending.Load() != 0 {
		if rc := flushOf(tls, f); rc != sqlite3.SQLITE_OK {
			return rc
		}
	}
	r, m := inner(f)
	return call[func(*libc.TLS, uintptr, int32) int32](m.FxLock)(tls, r, lock)
}

func walUnlock(tls *libc.TLS, f uintptr, lock int32) int32 {
	if walVFS.pending.Load() != 0 {
		if rc := flushOf(tls, f); rc != sqlite3.SQLITE_OK {
			return rc
		}
	}
	r, m := inner(f)
	return call[func(*libc.TLS, uintptr, int32) int32](m.FxUnlock)(tls, r, lock)
}

func walCheckReservedLock(tls *libc.TLS, f, out uintptr) int32 {
	r, m := inner(f)
	return call[func(*libc.TLS, uintptr, uintptr) int32](m.FxCheckReservedLock)(tls, r, out)
}

func walFileControl(tls *libc.TLS, f uintptr, op int32, arg uintptr) int32 {
	if rc := flushOf(tls, f); rc != sqlite3.SQLITE_OK {
		return rc
	}
	r, m := inner(f)
	return call[func(*libc.TLS, uintptr, int32, uintptr) int32](m.FxFileControl)(tls, r, op, arg)
}

func walSectorSize(tls *libc.TLS, f uintptr) int32 {
	r, m := inner(f)
	return call[func(*libc.TLS, uintptr) int32](m.FxSectorSize)(tls, r)
}

func walDeviceCharacteristics(tls *libc.TLS, f uintptr) int32 {
	r, m := inner(f)
	return call[func(*libc.TLS, uintptr) int32](m.FxDeviceCharacteristics)(tls, r)
}

// The wal-index methods exist on the database file. The default VFS's
// files all have them (io_methods version 3); a file without them
// answers as SQLite's own callers of an older file would.

func walShmMap(tls *libc.TLS, f uintptr, page, size, extend int32, pp uintptr) int32 {
	r, m := inner(f)
	if m.FiVersion < 2 || m.FxShmMap == 0 {
		return sqlite3.SQLITE_IOERR_SHMMAP
	}
	if rc := flushAll(tls); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return call[func(*libc.TLS, uintptr, int32, int32, int32, uintptr) int32](m.FxShmMap)(tls, r, page, size, extend, pp)
}

func walShmLock(tls *libc.TLS, f uintptr, off, n, flags int32) int32 {
	r, m := inner(f)
	if m.FiVersion < 2 || m.FxShmLock == 0 {
		return sqlite3.SQLITE_IOERR_SHMLOCK
	}
	if rc := flushAll(tls); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return call[func(*libc.TLS, uintptr, int32, int32, int32) int32](m.FxShmLock)(tls, r, off, n, flags)
}

func walShmBarrier(tls *libc.TLS, f uintptr) {
	// A barrier cannot fail. On the write connection (synchronous=FULL)
	// a commit's frames were written out by its sync, which reports a
	// failed write and fails the commit before its header is published,
	// so there is nothing left to write here; this is for a connection
	// without that sync.
	flushAll(tls)
	r, m := inner(f)
	if m.FiVersion >= 2 && m.FxShmBarrier != 0 {
		call[func(*libc.TLS, uintptr)](m.FxShmBarrier)(tls, r)
	}
}

func walShmUnmap(tls *libc.TLS, f uintptr, del int32) int32 {
	r, m := inner(f)
	if m.FiVersion < 2 || m.FxShmUnmap == 0 {
		return sqlite3.SQLITE_OK
	}
	if rc := flushAll(tls); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return call[func(*libc.TLS, uintptr, int32) int32](m.FxShmUnmap)(tls, r, del)
}

func walFetch(tls *libc.TLS, f uintptr, off int64, n int32, pp uintptr) int32 {
	if rc := flushOf(tls, f); rc != sqlite3.SQLITE_OK {
		*(*uintptr)(ptr(pp)) = 0
		return rc
	}
	r, m := inner(f)
	if m.FiVersion < 3 || m.FxFetch == 0 {
		*(*uintptr)(ptr(pp)) = 0
		return sqlite3.SQLITE_OK
	}
	return call[func(*libc.TLS, uintptr, int64, int32, uintptr) int32](m.FxFetch)(tls, r, off, n, pp)
}

func walUnfetch(tls *libc.TLS, f uintptr, off int64, p uintptr) int32 {
	r, m := inner(f)
	if m.FiVersion < 3 || m.FxUnfetch == 0 {
		return sqlite3.SQLITE_OK
	}
	return call[func(*libc.TLS, uintptr, int64, uintptr) int32](m.FxUnfetch)(tls, r, off, p)
}
