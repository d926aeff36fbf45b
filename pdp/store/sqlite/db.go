// Package sqlite is Gatehouse's embedded store: one SQLite file, pure Go
// (modernc.org/sqlite, no cgo), nothing to run beside the binary.
//
// Concurrency. A DB holds two pools on the same file. Writes go through a
// pool of exactly one connection, so the process's write transactions run
// one after another and a transaction that reads before it writes (the
// policy limit check, revision bumps) sees no interleaved write. Every
// write transaction also starts with BEGIN IMMEDIATE, which takes SQLite's
// write lock at BEGIN rather than at the first write: another process on
// the same file (`gatehouse tenant create` beside a running server) then
// waits for the lock under busy_timeout instead of failing halfway with
// SQLITE_BUSY when a deferred transaction tries to upgrade. Reads go through
// a separate pool of query_only connections; in WAL mode they never block
// the writer nor wait for it, and each read transaction sees one snapshot.
//
// Durability. journal_mode=WAL with synchronous=FULL: the WAL is fsynced at
// every commit, so a write is on disk when its method returns (the contract
// answers only after an action or audit entry is durable). WAL's default
// NORMAL syncs only at checkpoints and can lose the last commits on power
// loss; that is the cost FULL avoids, at one fsync per write transaction.
// Writes that append to an audit chain share that fsync: they are group
// committed (see committer). The write connection's WAL writes reach the
// file in a few large writes before that fsync rather than two per page
// (see walvfs.go).
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

var _ store.Store = (*DB)(nil)

// DB is a Store on one SQLite file. It is safe for concurrent use.
type DB struct {
	path string
	w    *sql.DB // one connection: every write transaction
	r    *sql.DB // query_only connections: every read
	now  func() time.Time
	// AuditedWriter is every write that appends an audit entry, on the
	// group committer (see commit.go).
	store.AuditedWriter[*batch]
	// raw runs the statements every batch runs, prepared once on the
	// write connection's driver connection (see rawstmt.go).
	raw *rawStmts
	// keyLookup is TenantByKeyHash's query on the read pool, prepared on
	// each read connection the first time it runs there.
	keyLookup *sql.Stmt
	// writes counts write transactions outside the committer (write), so
	// the committer forgets the heads it remembers (heads) after one.
	writes atomic.Uint64
	heads  headCache
	// ckpt is the connection that checkpoints the WAL in the background
	// (see checkpoint.go).
	ckpt               *sql.DB
	ckptStop, ckptDone chan struct{}
	ckptOnce           sync.Once
	wal                *walCkpt // nil: checkpoints are off
	// walName is SQLite's name of the write connection's WAL, for its
	// syncs in place (rawsync.go); "" if unknown.
	walName string

	verifiers     int   // how many read connections one VerifyAudit may use
	verifySegment int64 // the fewest entries worth a verification worker
	schemaVersion int   // see options
}

// writeCacheKiB is the write connection's page cache size in KiB: 8 MiB,
// about 2,000 pages. Every batch touches, for each tenant in it, the leaf
// of each index its new rows go to (about a dozen); with SQLite's default
// 2 MiB the hot leaves of more than ~40 tenants did not fit, and the next
// batch read them back, a pread each (BenchmarkActionWritePath, 100
// tenants: 6.5 reads per action at 2 MiB, 0.06 at 8 MiB). More cost CPU
// at every COMMIT before pcacheGuard (pcache.go), which SQLite's walk of
// the whole cache did (3% at 8 MiB, 10% at 32 MiB with one tenant); with
// the guard a larger cache costs memory only, but 32 MiB showed no fewer
// reads (the prefilled benchmark, docs/benchmarks.md, storecpu). Pages
// are allocated as they are used.
const writeCacheKiB = 8 << 10

// syncDataOnly makes SQLite sync files with fdatasync(2) rather than
// fsync(2), process-wide (modernc.org/sqlite's switch; SQLite's own builds
// for Linux do so): the data and the size a read needs, not the
// timestamps. A commit overwriting a WAL that restarted (the file never
// shrinks here) then changes no metadata a read needs, and on ext4 its
// sync no longer waits for a journal commit of the file's mtime; nor does
// a checkpoint's sync of the database file, the pause between two
// batches when the committer catches up (checkpoint.go). Durability is
// unchanged: fdatasync returns once the written data and the file's size
// are on stable storage. Where the switch does not exist (macOS, Windows)
// SQLite keeps its own choice.
func syncDataOnly() {
	syncOnce.Do(func() { _, _ = sqlite.Fdatasync(true) })
}

var syncOnce sync.Once

// Option configures Open.
type Option func(*options)

type options struct {
	now         func() time.Time
	readers     int
	busyTimeout time.Duration
	maxBatch    int
	batchObs    store.AuditBatchObserver

	verifiers     int // 0: min(readers, GOMAXPROCS)
	verifySegment int64
	noCheckpoints bool                // tests: the WAL only grows (see export_test.go)
	walCkptBytes  int64               // tests: smaller checkpoint cycles (see checkpoint.go)
	catchUpObs    func(time.Duration) // tests: each catch-up's duration
	writeCacheKiB int                 // tests: the write connection's cache (0: writeCacheKiB)
	noBackground  bool                // tests: no background checkpointer, the committer's only
	idleCkpt      bool                // tests: the checkpoint connection without its loop
	schemaVersion int                 // tests: migrate up to this version only (0: every migration)
}

// WithNowFunc sets the clock timestamps are taken from (default time.Now).
func WithNowFunc(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// WithReaders sets how many read connections may be open at once
// (default max(4, GOMAXPROCS)).
func WithReaders(n int) Option {
	return func(o *options) { o.readers = n }
}

// WithBusyTimeout sets how long a connection waits for a lock another
// connection or process holds before failing (default 5s).
func WithBusyTimeout(d time.Duration) Option {
	return func(o *options) { o.busyTimeout = d }
}

// DefaultMaxBatch is how many writes one group commit holds at most.
const DefaultMaxBatch = 256

// WithMaxBatch sets how many audited writes one group-committed transaction
// holds at most (default DefaultMaxBatch; 1 turns batching off).
func WithMaxBatch(n int) Option {
	return func(o *options) { o.maxBatch = n }
}

// WithAuditBatchObserver reports the size of every committed group commit
// to o (pdp/metrics' gatehouse_audit_append_batch_size).
func WithAuditBatchObserver(o store.AuditBatchObserver) Option {
	return func(opts *options) { opts.batchObs = o }
}

// Open opens the SQLite database at path, creating the file if needed, and
// applies the schema migrations it lacks. path is a file path (see
// store.ParseDSN); in-memory databases are refused because the read and
// write pools must share one database.
func Open(ctx context.Context, path string, opts ...Option) (*DB, error) {
	o := options{now: time.Now, readers: max(4, runtime.GOMAXPROCS(0)), busyTimeout: 5 * time.Second, maxBatch: DefaultMaxBatch, verifySegment: 50_000, walCkptBytes: walCkptBytes}
	for _, opt := range opts {
		opt(&o)
	}
	if err := checkPath(path); err != nil {
		return nil, err
	}
	if o.readers < 1 {
		return nil, fmt.Errorf("sqlite: readers must be ≥ 1, got %d", o.readers)
	}
	if o.busyTimeout < 0 {
		return nil, fmt.Errorf("sqlite: busy timeout must be ≥ 0, got %v", o.busyTimeout)
	}
	if o.maxBatch < 1 {
		return nil, fmt.Errorf("sqlite: max batch must be ≥ 1, got %d", o.maxBatch)
	}
	busy := strconv.FormatInt(o.busyTimeout.Milliseconds(), 10)

	wq := url.Values{}
	wq.Set("_busy_timeout", busy)
	wq.Set("_journal_mode", "WAL")
	wq.Set("_synchronous", "FULL")
	wq.Set("_foreign_keys", "1")
	wq.Set("_txlock", "immediate")
	// Statements that fire triggers (every action insert or decision, which
	// keep the dashboard's rollups) and the group committer's savepoints
	// need a statement journal; in a temporary file it cost a third of a
	// bulk load in write syscalls. It is small and lives for one statement,
	// so it lives in memory. Reads keep file-backed temporary storage, so a
	// large sort cannot grow without bound.
	wq.Add("_pragma", "temp_store(memory)")
	if o.writeCacheKiB <= 0 {
		o.writeCacheKiB = writeCacheKiB
	}
	wq.Add("_pragma", fmt.Sprintf("cache_size(-%d)", o.writeCacheKiB))
	autoCkpt := walSafetyPages // see checkpoint.go
	if o.noCheckpoints {
		autoCkpt = 0
	}
	wq.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", autoCkpt))
	if err := registerWALVFS(); err != nil {
		return nil, err
	}
	syncDataOnly()
	wq.Set("vfs", walVFSName) // its WAL writes combined: see walvfs.go
	w, err := sql.Open("sqlite", path+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)

	if o.verifiers < 1 {
		o.verifiers = max(1, min(o.readers, runtime.GOMAXPROCS(0)))
	}
	db := &DB{path: path, w: w, now: o.now, verifiers: o.verifiers, verifySegment: max(o.verifySegment, 1), schemaVersion: o.schemaVersion}
	if err := db.init(ctx); err != nil {
		_ = w.Close()
		return nil, err
	}

	rq := url.Values{}
	rq.Set("_busy_timeout", busy)
	rq.Set("_foreign_keys", "1")
	rq.Set("_query_only", "1")
	r, err := sql.Open("sqlite", path+"?"+rq.Encode())
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("sqlite: open %s for reading: %w", path, err)
	}
	r.SetMaxOpenConns(o.readers)
	r.SetMaxIdleConns(o.readers)
	db.r = r
	if db.keyLookup, err = r.PrepareContext(ctx, sqlKeyLookup); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("sqlite: prepare the key lookup: %w", err)
	}
	if name, err := db.walPath(ctx); err == nil {
		db.walName = name
	}
	if !o.noCheckpoints {
		name, err := db.walPath(ctx)
		if err == nil {
			if _, _, ok := walState(name); !ok { // the write connection opened it, under SQLite's name
				err = fmt.Errorf("%s is not open through %s", name, walVFSName)
			}
		}
		if err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("sqlite: open %s: the WAL's name: %w", path, err)
		}
		db.wal = &walCkpt{name: name, wake: make(chan struct{}, 1), ckptBytes: o.walCkptBytes, forceBytes: o.walCkptBytes * (walForceBytes / walCkptBytes), catchUpObs: o.catchUpObs}
	}
	db.startCommitter(o.maxBatch, o.batchObs)
	if !o.noCheckpoints && !o.noBackground {
		if err = db.startCheckpointer(ctx, busy, o.idleCkpt); err != nil {
			_ = db.Close()
			return nil, err
		}
	}
	if err := db.Ping(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

func checkPath(path string) error {
	switch {
	case path == "":
		return errors.New("sqlite: empty database path")
	case path == ":memory:" || strings.HasPrefix(path, "file:"):
		return fmt.Errorf("sqlite: %q: want a file path (in-memory and URI databases are not supported)", path)
	case strings.ContainsAny(path, "?#"):
		return fmt.Errorf("sqlite: %q: a path may not contain '?' or '#'", path)
	}
	return nil
}

// init checks the journal mode took and migrates the schema.
func (db *DB) init(ctx context.Context) error {
	var mode string
	if err := db.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", db.path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("sqlite: open %s: journal_mode is %q, want wal (is the file system local?)", db.path, mode)
	}
	if err := migrate(ctx, db.w, db.now, db.schemaVersion); err != nil {
		return fmt.Errorf("sqlite: migrate %s: %w", db.path, err)
	}
	return nil
}

// Backend returns "sqlite".
func (db *DB) Backend() string { return store.BackendSQLite }

// Ping checks that both pools reach the database.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.w.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	if err := db.r.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

// Close finishes the audited writes already queued, then closes both
// pools. Closing the last connection checkpoints the WAL into the database
// file.
func (db *DB) Close() error {
	if db.GC != nil {
		db.GC.Close()
	}
	errs := []error{db.closeStmts(), db.stopCheckpointer()}
	if db.keyLookup != nil {
		errs = append(errs, db.keyLookup.Close())
	}
	if db.r != nil {
		errs = append(errs, db.r.Close())
	}
	errs = append(errs, db.w.Close())
	return errors.Join(errs...)
}

// write runs fn in a write transaction (BEGIN IMMEDIATE on the single write
// connection) and commits when fn returns nil; otherwise, or on a panic,
// it rolls back. Like OPA's storage.Txn, a transaction never leaks open.
func (db *DB) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	db.writes.Add(1) // before it can write: the next batch reads heads again
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			_ = tx.Rollback()
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	done = true
	return tx.Commit()
}

// read runs fn in a read transaction, so every query in fn sees the same
// snapshot, and always ends it.
func (db *DB) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	return fn(tx)
}

// nowUTC is the current time as stored: UTC at store.TimePrecision.
func (db *DB) nowUTC() time.Time { return stamp(db.now()) }

// stamp returns t as it will read back.
func stamp(t time.Time) time.Time { return t.UTC().Truncate(store.TimePrecision) }

func toMicros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

func nullMicros(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: toMicros(*t), Valid: true}
}

func fromNullMicros(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := fromMicros(n.Int64)
	return &t
}

func stampPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	s := stamp(*t)
	return &s
}

// nullJSON stores a JSON document as TEXT, nil as NULL.
func nullJSON(b []byte) sql.NullString {
	if b == nil {
		return sql.NullString{}
	}
	return sql.NullString{String: string(b), Valid: true}
}

func fromNullJSON(s sql.NullString) []byte {
	if !s.Valid {
		return nil
	}
	return []byte(s.String)
}

// isConstraint reports whether err is a SQLite constraint violation with
// one of the given extended result codes.
func isConstraint(err error, codes ...int) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	for _, c := range codes {
		if se.Code() == c {
			return true
		}
	}
	return false
}

func isDuplicate(err error) bool {
	return isConstraint(err, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE)
}

func isMissingParent(err error) bool {
	return isConstraint(err, sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY)
}

// rowScanner is what *sql.Row and *sql.Rows share.
type rowScanner = store.Scanner

// execer is what *sql.DB and *sql.Tx share for statements.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// queryRower is what *sql.DB and *sql.Tx share for single-row queries.
type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}
