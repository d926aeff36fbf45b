package sqlite

import (
	"time"

	"context"
	"database/sql"
	"fmt"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// ExecRaw runs one statement on the write connection, bypassing the store:
// the tests' way to tamper with what it wrote.
func (db *DB) ExecRaw(ctx context.Context, query string, args ...any) error {
	// Tampering comes from another connection in real life, which changes
	// data_version; on the store's own connection it must be counted as
	// a write outside the committer instead.
	db.writes.Add(1)
	_, err := db.w.ExecContext(ctx, query, args...)
	return err
}

// WithVerifyParallelism makes VerifyAudit split chains into segments of at
// least minSegment entries over up to workers connections, so tests reach
// the joins between segments with small chains.
func WithVerifyParallelism(workers int, minSegment int64) Option {
	return func(o *options) { o.verifiers, o.verifySegment = workers, minSegment }
}

// UnpackEntry exposes unpackEntry to the fuzz test.
func UnpackEntry(row []byte) (seq, ts int64, event, meta, prev, hash []byte, ok bool) {
	e, ok := unpackEntry(row)
	return e.seq, e.ts, e.event, e.meta, e.prev, e.hash, ok
}

// QueryPlan returns EXPLAIN QUERY PLAN's detail lines for query, in order.
func (db *DB) QueryPlan(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := db.r.QueryContext(ctx, `EXPLAIN QUERY PLAN `+query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			return nil, err
		}
		out = append(out, detail)
	}
	return out, rows.Err()
}

// FastActionQueries are actionsFast's queries.
var FastActionQueries = []string{sqlFastUndecided, sqlFastDecided}

// WithoutCheckpoints turns every checkpoint off, so the WAL only grows
// while the database is open: its size counts the pages written.
func WithoutCheckpoints() Option {
	return func(o *options) { o.noCheckpoints = true }
}

// ApprovalQueries are ListApprovals' count and page queries for status st
// ("" for all three).
func ApprovalQueries(st pdp.Status) (count, page string) {
	where, _ := approvalsWhere("", st)
	return sqlCountActions + where, sqlApprovalsPage(where)
}

// Explain returns EXPLAIN's opcodes for query.
func (db *DB) Explain(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := db.r.QueryContext(ctx, `EXPLAIN `+query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var addr, p1, p2, p3 int
		var op string
		var p4, comment sql.NullString
		var p5 any
		if err := rows.Scan(&addr, &op, &p1, &p2, &p3, &p4, &p5, &comment); err != nil {
			return nil, err
		}
		out = append(out, fmt.Sprintf("%d %s %d %d %d %s", addr, op, p1, p2, p3, p4.String))
	}
	return out, rows.Err()
}

// AuditTrailQuery and CheckActionsQuery are AuditTrail's and the
// verifier's exhaustive pass's queries.
var AuditTrailQuery, CheckActionsQuery = sqlAuditTrail, sqlCheckActions

// AuditLogQuery is one of the store's queries on audit_log, with
// arguments to plan it with.
type AuditLogQuery struct {
	Name string
	SQL  string
	Args []any
}

// AuditLogQueries returns the store's queries that read or delete
// audit_log entries (the committer's tip, GET /v1/audit's count and page
// plain, by event and by window, the export, the verifier's passes,
// pruning and its checkpoint, an agent's violations).
func AuditLogQueries() []AuditLogQuery {
	var out []AuditLogQuery
	add := func(name, sql string, args ...any) { out = append(out, AuditLogQuery{name, sql, args}) }
	add("tip", sqlTip, "acme")
	add("top", sqlTopSeq, "acme")
	since := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		q    store.AuditQuery
	}{
		{"plain", store.AuditQuery{Limit: 50}},
		{"newest", store.AuditQuery{Limit: 50, NewestFirst: true}},
		{"event", store.AuditQuery{Limit: 50, EventType: store.EventActionApproved}},
		{"events", store.AuditQuery{Limit: 50, EventTypes: []string{store.EventActionApproved, store.EventActionDenied}}},
		{"window", store.AuditQuery{Limit: 50, Since: since, Until: since.Add(time.Hour)}},
	} {
		count, args, page, pageArgs := listAuditQueries("acme", c.q)
		add("list "+c.name+" count", count, args...)
		add("list "+c.name+" page", page, pageArgs...)
		export, args := exportAuditQuery("acme", c.q)
		add("export "+c.name, export, args...)
	}
	add("verify range", sqlVerifyRange, "acme", 1, 50_001)
	add("vouched", sqlVouched, "acme")
	add("orphans", sqlOrphans, "acme")
	add("prune first", sqlPruneFirst, "acme", since.UnixMicro())
	add("prune", sqlPrune, "acme", 100)
	add("checkpoint", sqlCheckpoint, "acme")
	add("agent violations", sqlAgentViolations, "acme", "bot", 0, since.UnixMicro(), 50, 0)
	return out
}

// WithWALCheckpointBytes shrinks the checkpoint cycle (walCkptBytes) to n
// bytes of WAL, so tests go round it quickly.
func WithWALCheckpointBytes(n int64) Option {
	return func(o *options) { o.walCkptBytes = n }
}

// WithoutBackgroundCheckpoints leaves checkpoints to the committer alone
// (and the safety net): the background checkpointer never runs.
func WithoutBackgroundCheckpoints() Option {
	return func(o *options) { o.noBackground = true }
}

// WithIdleCheckpointer opens the background checkpoint connection but runs
// no pass on it: only Checkpoint(ctx, true) does.
func WithIdleCheckpointer() Option {
	return func(o *options) { o.idleCkpt = true }
}

// CatchUp runs the committer's catch-up (walCatchUp) on the calling
// goroutine and reports whether it copied every frame.
func (db *DB) CatchUp() bool { return db.walCatchUp() }

// CheckpointYields is how often checkpoints have yielded the CPU.
func CheckpointYields() int64 { return ckptYields.Load() }

// WALSafetyPages is the write connection's wal_autocheckpoint.
const WALSafetyPages = walSafetyPages

// WithCatchUpObserver tells obs the duration of every checkpoint the
// committer runs between batches (the pauses of checkpoint.go).
func WithCatchUpObserver(obs func(time.Duration)) Option {
	return func(o *options) { o.catchUpObs = obs }
}

// SetDBSyncHook makes fn run, on the syncing goroutine, after every
// successful sync of a database file through the write or checkpoint
// connection (the moment its copies are durable); restore undoes it.
func SetDBSyncHook(fn func(path string)) (restore func()) {
	dbSynced.Store(&fn)
	return func() { dbSynced.Store(nil) }
}

// Checkpoint runs PRAGMA wal_checkpoint(PASSIVE) on the background
// checkpoint connection (background) or the write connection (the
// committer's catch-up), and returns its busy, log and checkpointed
// counts.
func (db *DB) Checkpoint(ctx context.Context, background bool) (busy, log, done int64, err error) {
	c := db.w
	if background {
		c = db.ckpt
	}
	err = c.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &log, &done)
	return busy, log, done, err
}

// WithWriteCacheKiB sets the write connection's page cache (KiB).
func WithWriteCacheKiB(n int) Option {
	return func(o *options) { o.writeCacheKiB = n }
}

// PageOwners maps every page of the database (as the read connections
// see it, WAL included) to the table or index it belongs to (SQLite's
// dbstat), so tests can attribute WAL frames to B-trees.
func (db *DB) PageOwners(ctx context.Context) (map[uint32]string, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT name, pageno FROM dbstat`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[uint32]string{}
	for rows.Next() {
		var (
			name string
			page int64
		)
		if err := rows.Scan(&name, &page); err != nil {
			return nil, err
		}
		out[uint32(page)] = name
	}
	return out, rows.Err()
}

// ActionReadQueries are ListActions' queries (the hourly counts and the
// page, without and with a status) and the dashboard's scans of the
// actions of a window's partial hours and days, with arguments to plan
// them with.
func ActionReadQueries() []AuditLogQuery {
	since := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	until := since + hourUS
	return []AuditLogQuery{
		{"list actions hours", sqlActionHours, []any{"acme"}},
		{"list actions hours status", sqlActionHoursStatus, []any{"acme", "pending_review"}},
		{"list actions page", sqlActionsPage, []any{"acme", since, until, 50, 0}},
		{"list actions page status", sqlActionsPageStatus, []any{"acme", "pending_review", since, until, 50, 0}},
		{"dashboard edge statuses", sqlEdgeStatuses, []any{"acme", since, until}},
		{"dashboard edge violations", sqlEdgeViolations, []any{"acme", since, until, floorDiv(since, dayUS), floorDiv(until-1, dayUS)}},
	}
}

// RollupDialect is rollupDialect, for plan tests.
var RollupDialect = rollupDialect

// RawWALSyncs is how many WAL syncs kept their processor so far, in the
// whole process (rawsync.go).
func RawWALSyncs() int64 { return rawSyncs.Load() }
