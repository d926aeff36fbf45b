package sqlite

import (
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// SQLite's default page cache (pcache1) walks its whole hash table at the
// end of a write transaction whenever it has ever held a page numbered
// past the database's end: the pager truncates the cache to the database
// size at every COMMIT, and pcache1 skips that only while the largest key
// it ever saw (iMaxKey) is inside the database. B-tree balancing
// (balance_nonroot) swaps the page numbers of out-of-order siblings
// through a temporary key, the pending-byte page (1 GiB / page size + 1:
// 524,289 at 2 KiB, 262,145 at 4 KiB), which raises iMaxKey past the end
// of any database under 1 GiB although the page is moved back at once.
// With many tenants most batches swap a sibling somewhere, so most COMMITs
// walked every cached page of the write connection (2,048 at 8 MiB): 2.7%
// of the server's CPU under test/load, and the reason a larger write cache
// cost more at each COMMIT than its fewer reads saved (docs/benchmarks.md,
// storecpu).
//
// pcacheGuard wraps pcache1 and passes a truncation on only when a page
// at or past the limit may be cached: it tracks the largest key a fetch
// could have created or a rekey moved a page to, and counts the pages
// parked at the temporary key, which balancing moves back before the
// transaction ends. When it cannot tell, it passes the truncation on, so
// pcache1 drops what it would have dropped; a skipped truncation is one
// that would have found nothing to drop.

// pendingBytePage is the temporary key of a database with pages of size
// bytes: SQLite's PENDING_BYTE (0x40000000 unless a test changes it; a
// different one only makes the guard pass every truncation on).
func pendingBytePage(size int32) uint32 {
	if size <= 0 {
		return 0
	}
	return uint32(0x40000000/int64(size)) + 1
}

// pcacheGuard is one cache's wrapper, in C memory; SQLite holds its
// address as the sqlite3_pcache and serialises the calls for one cache.
type pcacheGuard struct {
	inner   uintptr // pcache1's cache
	maxKey  uint32  // ≥ every cached page's key but those at tempKey
	parked  uint32  // pages rekeyed to tempKey and not yet moved away
	tempKey uint32
	swapped uint32 // 1 if a page was parked since the last truncation
}

const pcacheGuardSize = int(unsafe.Sizeof(pcacheGuard{}))

func guard(p uintptr) *pcacheGuard { return (*pcacheGuard)(ptr(p)) }

// pcacheOrig is pcache1's methods, as Go functions.
var pcacheOrig struct {
	create    func(*libc.TLS, int32, int32, int32) uintptr
	cachesize func(*libc.TLS, uintptr, int32)
	pagecount func(*libc.TLS, uintptr) int32
	fetch     func(*libc.TLS, uintptr, uint32, int32) uintptr
	unpin     func(*libc.TLS, uintptr, uintptr, int32)
	rekey     func(*libc.TLS, uintptr, uintptr, uint32, uint32)
	truncate  func(*libc.TLS, uintptr, uint32)
	destroy   func(*libc.TLS, uintptr)
	shrink    func(*libc.TLS, uintptr)
}

// pcacheStats counts the truncations the guard passed on and skipped.
var pcacheStats struct {
	passed, skipped atomic.Int64
	// walksAvoided counts the skipped truncations after a balance parked
	// a page at tempKey: pcache1 would have walked its whole cache.
	walksAvoided atomic.Int64
}

var pcacheInstall struct {
	once sync.Once
	err  error
}

// SQLite takes a page cache only before it initialises, which the first
// connection or VFS lookup does, so the guard goes in as the package is
// initialised. If it cannot, the caches stay pcache1's own (see
// pageCacheGuardStats); nothing else changes.
func init() { _ = installPageCacheGuard() }

// installPageCacheGuard puts pcacheGuard in front of SQLite's page cache,
// once per process.
func installPageCacheGuard() error {
	pcacheInstall.once.Do(func() {
		tls := libc.NewTLS()
		defer tls.Close()
		size := libc.Tsize_t(unsafe.Sizeof(sqlite3.Tsqlite3_pcache_methods2{}))
		m := libc.Xmalloc(tls, size)
		va := libc.Xmalloc(tls, libc.Tsize_t(unsafe.Sizeof(uintptr(0))))
		if m == 0 || va == 0 {
			pcacheInstall.err = fmt.Errorf("sqlite: page cache guard: out of memory")
			return
		}
		defer libc.Xfree(tls, va)
		if rc := sqlite3.Xsqlite3_config(tls, sqlite3.SQLITE_CONFIG_GETPCACHE2, libc.VaList(va, m)); rc != sqlite3.SQLITE_OK {
			pcacheInstall.err = fmt.Errorf("sqlite: page cache guard: get the page cache: code %d", rc)
			return
		}
		o := (*sqlite3.Tsqlite3_pcache_methods2)(ptr(m))
		if o.FxCreate == 0 || o.FxFetch == 0 || o.FxTruncate == 0 || o.FxRekey == 0 {
			pcacheInstall.err = fmt.Errorf("sqlite: page cache guard: incomplete page cache methods")
			return
		}
		pcacheOrig.create = call[func(*libc.TLS, int32, int32, int32) uintptr](o.FxCreate)
		pcacheOrig.cachesize = call[func(*libc.TLS, uintptr, int32)](o.FxCachesize)
		pcacheOrig.pagecount = call[func(*libc.TLS, uintptr) int32](o.FxPagecount)
		pcacheOrig.fetch = call[func(*libc.TLS, uintptr, uint32, int32) uintptr](o.FxFetch)
		pcacheOrig.unpin = call[func(*libc.TLS, uintptr, uintptr, int32)](o.FxUnpin)
		pcacheOrig.rekey = call[func(*libc.TLS, uintptr, uintptr, uint32, uint32)](o.FxRekey)
		pcacheOrig.truncate = call[func(*libc.TLS, uintptr, uint32)](o.FxTruncate)
		pcacheOrig.destroy = call[func(*libc.TLS, uintptr)](o.FxDestroy)
		pcacheOrig.shrink = call[func(*libc.TLS, uintptr)](o.FxShrink)
		w := *o // pcache1's version, argument, xInit and xShutdown
		w.FxCreate = cfunc(pcacheCreate)
		w.FxCachesize = cfunc(pcacheCachesize)
		w.FxPagecount = cfunc(pcachePagecount)
		w.FxFetch = cfunc(pcacheFetch)
		w.FxUnpin = cfunc(pcacheUnpin)
		w.FxRekey = cfunc(pcacheRekey)
		w.FxTruncate = cfunc(pcacheTruncate)
		w.FxDestroy = cfunc(pcacheDestroy)
		w.FxShrink = cfunc(pcacheShrink)
		*o = w
		if rc := sqlite3.Xsqlite3_config(tls, sqlite3.SQLITE_CONFIG_PCACHE2, libc.VaList(va, m)); rc != sqlite3.SQLITE_OK {
			pcacheInstall.err = fmt.Errorf("sqlite: page cache guard: SQLite is initialised already (code %d)", rc)
		}
		// m stays allocated: SQLite copied it, and it is process-wide.
	})
	return pcacheInstall.err
}

func pcacheCreate(tls *libc.TLS, szPage, szExtra, bPurgeable int32) uintptr {
	inner := pcacheOrig.create(tls, szPage, szExtra, bPurgeable)
	if inner == 0 {
		return 0
	}
	p := libc.Xmalloc(tls, libc.Tsize_t(pcacheGuardSize))
	if p == 0 {
		pcacheOrig.destroy(tls, inner)
		return 0
	}
	*guard(p) = pcacheGuard{inner: inner, tempKey: pendingBytePage(szPage)}
	return p
}

func pcacheCachesize(tls *libc.TLS, p uintptr, n int32) {
	pcacheOrig.cachesize(tls, guard(p).inner, n)
}

func pcachePagecount(tls *libc.TLS, p uintptr) int32 {
	return pcacheOrig.pagecount(tls, guard(p).inner)
}

func pcacheFetch(tls *libc.TLS, p uintptr, key uint32, create int32) uintptr {
	g := guard(p)
	if create != 0 && key > g.maxKey {
		g.maxKey = key // it may create the page
	}
	return pcacheOrig.fetch(tls, g.inner, key, create)
}

func pcacheUnpin(tls *libc.TLS, p, page uintptr, discard int32) {
	pcacheOrig.unpin(tls, guard(p).inner, page, discard)
}

func pcacheRekey(tls *libc.TLS, p, page uintptr, oldKey, newKey uint32) {
	g := guard(p)
	g.track(oldKey, newKey)
	pcacheOrig.rekey(tls, g.inner, page, oldKey, newKey)
}

func pcacheTruncate(tls *libc.TLS, p uintptr, limit uint32) {
	g := guard(p)
	swapped := g.swapped != 0 && limit <= g.tempKey
	g.swapped = 0
	if g.skip(limit) {
		pcacheStats.skipped.Add(1)
		if swapped {
			pcacheStats.walksAvoided.Add(1)
		}
		return
	}
	pcacheStats.passed.Add(1)
	pcacheOrig.truncate(tls, g.inner, limit)
	g.truncated(limit)
}

func pcacheDestroy(tls *libc.TLS, p uintptr) {
	pcacheOrig.destroy(tls, guard(p).inner)
	libc.Xfree(tls, p)
}

func pcacheShrink(tls *libc.TLS, p uintptr) {
	pcacheOrig.shrink(tls, guard(p).inner)
}

// track records a page moving from oldKey to newKey.
func (g *pcacheGuard) track(oldKey, newKey uint32) {
	if newKey == g.tempKey {
		g.parked++
		g.swapped = 1
	} else if newKey > g.maxKey {
		g.maxKey = newKey
	}
	if oldKey == g.tempKey && g.parked > 0 {
		// A page fetched at tempKey itself raised maxKey past it, so
		// maxKey still covers such a page when it leaves.
		g.parked--
	}
}

// skip reports whether no cached page can have a key ≥ limit.
func (g *pcacheGuard) skip(limit uint32) bool {
	return g.parked == 0 && g.maxKey < limit
}

// truncated records that pcache1 dropped every page with a key ≥ limit.
func (g *pcacheGuard) truncated(limit uint32) {
	if limit == 0 {
		g.maxKey, g.parked = 0, 0
		return
	}
	if g.maxKey >= limit {
		g.maxKey = limit - 1
	}
	if limit <= g.tempKey {
		g.parked = 0
	}
}

// pageCacheCounts is how many page cache truncations pcacheGuard passed on
// to SQLite's cache and how many it skipped, since the process started;
// WalksAvoided counts the skipped ones that would have walked the whole
// cache (a page had been parked at the temporary key).
type pageCacheCounts struct {
	Passed, Skipped, WalksAvoided int64
}

// pageCacheGuardStats returns the guard's counts, and the error that kept
// it out if it is not installed.
func pageCacheGuardStats() (pageCacheCounts, error) {
	return pageCacheCounts{Passed: pcacheStats.passed.Load(), Skipped: pcacheStats.skipped.Load(), WalksAvoided: pcacheStats.walksAvoided.Load()}, pcacheInstall.err
}
