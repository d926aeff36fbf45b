// Package postgres is Gatehouse's shared store: one PostgreSQL database
// that several Gatehouse replicas use at once (pgx v5, pgxpool).
//
// Concurrency. Writes run at READ COMMITTED and serialize per tenant on the
// tenant's row: every write that reads before it writes (a policy write,
// which checks the limit and numbers itself with the next revision, or a
// tenant update) first takes `SELECT … FOR NO KEY UPDATE` on that row. A
// second writer, in this process or another replica, waits for the lock
// and, since each READ COMMITTED statement takes a fresh snapshot, its
// following statements see everything the first one committed: the count
// of enabled policies it checks the limit against is the current one and
// the revision it bumps to is the next one, with no retry loop. SERIALIZABLE
// with retries would be correct too, but would make every conflicting
// writer redo its work instead of waiting its turn for one row lock.
//
// FOR NO KEY UPDATE rather than FOR UPDATE: it is the lock an UPDATE that
// leaves the key alone takes, and it does not conflict with the KEY SHARE
// lock a foreign-key check takes, so inserting the tenant's actions or keys
// never waits behind its policy writes. Single-statement writes (inserts,
// revocations) need no lock beyond their own.
//
// Audit chains serialize the same way, on a row per tenant: every append,
// from whichever replica, first locks the tenant's audit head FOR UPDATE,
// and appends within one process are group-committed (see commit.go).
//
// Reads that must agree with each other (TenantPolicies' revision and
// policies, ListActions' page and total) run in one REPEATABLE READ, READ
// ONLY transaction, which sees one snapshot and cannot fail to serialize.
//
// Migrations are embedded and applied under a session advisory lock, so
// replicas starting together take turns and all but the first find the
// work done (see migrate.go).
//
// Replicas learn of one another's writes through LISTEN/NOTIFY: every
// write that bumps a tenant's revision queues a notification in its own
// transaction, which PostgreSQL delivers to every listener on commit and
// drops on rollback; SubscribeRevisions listens on a dedicated connection
// (see notify.go).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

var (
	_ store.Store            = (*DB)(nil)
	_ store.RevisionNotifier = (*DB)(nil)
)

// DB is a Store on one PostgreSQL database. It is safe for concurrent use,
// and any number of DBs, in any number of processes, may share a database.
type DB struct {
	pool *pgxpool.Pool
	now  func() time.Time

	// listenCfg is what a revision subscription connects with: the pool's
	// connection settings under their own application_name.
	listenCfg *pgx.ConnConfig
	reconnect backoff
	// closing ends every subscription when Close is called; listeners
	// counts the ones still running, which Close waits for.
	closing   context.Context
	close     context.CancelFunc
	listeners sync.WaitGroup

	// AuditedWriter group-commits every write that appends to an audit
	// chain, and verify says how VerifyAudit splits a chain (see
	// commit.go, audit.go).
	store.AuditedWriter[*batch]
	verify verifyConfig
}

// Option configures Open.
type Option func(*options)

type options struct {
	now       func() time.Time
	maxConns  int // 0: the URL's pool_max_conns, else pgxpool's default
	minConns  int // 0: the URL's pool_min_conns, else none
	reconnect backoff
	gov       govOptions // the audit chain's options (commit.go)
}

// WithNowFunc sets the clock timestamps are taken from (default time.Now).
func WithNowFunc(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// WithMaxConns sets the most connections the pool opens (default: the URL's
// pool_max_conns, else max(4, NumCPU)). Each replica has its own pool, so
// replicas × n must stay under the server's max_connections.
func WithMaxConns(n int) Option {
	return func(o *options) { o.maxConns = n }
}

// WithMinConns sets how many connections the pool keeps open when idle
// (default: the URL's pool_min_conns, else 0).
func WithMinConns(n int) Option {
	return func(o *options) { o.minConns = n }
}

func (o options) validate() error {
	var errs []error
	if o.now == nil {
		errs = append(errs, errors.New("now func is nil"))
	}
	if o.maxConns < 0 || o.maxConns > math.MaxInt32 {
		errs = append(errs, fmt.Errorf("max conns must be ≥ 1 (or 0 for the default), got %d", o.maxConns))
	}
	if o.minConns < 0 || o.minConns > math.MaxInt32 {
		errs = append(errs, fmt.Errorf("min conns must be ≥ 0 (0 for the default), got %d", o.minConns))
	}
	if err := o.reconnect.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := o.gov.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Open connects to the database at url (postgres:// or postgresql://, as
// store.ParseDSN returns it; pgx's parameters such as sslmode, search_path
// and pool_max_conns are honoured) and applies the schema migrations it
// lacks. ErrSchemaTooNew if a newer Gatehouse has migrated the database.
func Open(ctx context.Context, url string, opts ...Option) (*DB, error) {
	o := options{now: time.Now, reconnect: defaultReconnect, gov: defaultGovOptions()}
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if !strings.HasPrefix(url, "postgres://") && !strings.HasPrefix(url, "postgresql://") {
		return nil, fmt.Errorf("postgres: %s: want a postgres:// or postgresql:// URL", redact(url))
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx redacts the password from its parse errors.
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if o.maxConns > 0 {
		cfg.MaxConns = int32(o.maxConns)
	}
	if o.minConns > 0 {
		cfg.MinConns = int32(o.minConns)
	}
	if cfg.MinConns > cfg.MaxConns {
		return nil, fmt.Errorf("postgres: min conns %d > max conns %d", cfg.MinConns, cfg.MaxConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open %s: %w", redact(url), err)
	}
	db := &DB{pool: pool, now: o.now, listenCfg: listenConfig(cfg.ConnConfig), reconnect: o.reconnect}
	db.closing, db.close = context.WithCancel(context.Background())
	if err := db.Ping(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("postgres: open %s: %w", redact(url), err)
	}
	if err := migrate(ctx, pool, db.nowUTC); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("postgres: migrate %s: %w", redact(url), err)
	}
	db.verify = o.gov.verifyConfig(cfg.MaxConns)
	db.AuditedWriter = store.AuditedWriter[*batch]{
		GC: store.NewCommitter(o.gov.maxBatch, o.gov.batchObs, db.attempt, retryable), Now: db.now,
		Duplicate: isDuplicate, MissingParent: isMissingParent,
	}
	return db, nil
}

// redact returns u without its password, for errors and logs.
func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "<unparsable postgres URL>"
	}
	return p.Redacted()
}

// Backend returns "postgres".
func (db *DB) Backend() string { return store.BackendPostgres }

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// Close finishes the audited writes already queued, ends every revision
// subscription and closes the pool, waiting for connections in use to be
// returned.
func (db *DB) Close() error {
	if db.GC != nil {
		db.GC.Close()
	}
	db.close()
	db.listeners.Wait()
	db.pool.Close()
	return nil
}

// writeTx is the isolation every write runs at; the package comment says
// why READ COMMITTED with row locks is enough. It is set explicitly so a
// server whose default_transaction_isolation is stricter changes nothing.
var writeTx = pgx.TxOptions{IsoLevel: pgx.ReadCommitted}

// snapshotTx is the isolation of reads that must see one snapshot.
var snapshotTx = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}

// write runs fn in a write transaction and commits when fn returns nil;
// otherwise, or on a panic, it rolls back. Like OPA's storage.Txn, a
// transaction never leaks open.
func (db *DB) write(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, db.pool, writeTx, fn)
}

// read runs fn in a read-only transaction on one snapshot and always ends
// it.
func (db *DB) read(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, db.pool, snapshotTx, fn)
}

// lockTenant takes the tenant's row lock for the rest of the transaction
// and returns its revision; ErrNotFound if there is no such tenant. Every
// write that reads before it writes calls it first: it is what serializes
// a tenant's writes across connections and replicas.
func lockTenant(ctx context.Context, tx pgx.Tx, tenantID string) (uint64, error) {
	var rev uint64
	err := tx.QueryRow(ctx, `SELECT revision FROM tenants WHERE id = $1 FOR NO KEY UPDATE`, tenantID).Scan(&rev)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("tenant %q: %w", tenantID, store.ErrNotFound)
	}
	return rev, err
}

// nowUTC is the current time as stored: UTC at store.TimePrecision.
func (db *DB) nowUTC() time.Time { return stamp(db.now()) }

// stamp returns t as it will read back. PostgreSQL would round to the
// microsecond; truncating first keeps the value the caller gets back equal
// to the stored one, as in every driver.
func stamp(t time.Time) time.Time { return t.UTC().Truncate(store.TimePrecision) }

func stampPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	s := stamp(*t)
	return &s
}

// utcPtr returns a scanned nullable timestamp in UTC (pgx scans into the
// local zone).
func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// PostgreSQL error codes the driver classifies.
const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
)

func hasCode(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}

func isDuplicate(err error) bool { return hasCode(err, codeUniqueViolation) }

func isMissingParent(err error) bool { return hasCode(err, codeForeignKeyViolation) }

// noRows turns pgx.ErrNoRows into store.ErrNotFound and passes other errors
// through; callers add what was looked up.
func noRows(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

// rowScanner is what pgx.Row and pgx.Rows share.
type rowScanner = store.Scanner

// querier is what *pgxpool.Pool and pgx.Tx share.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}
