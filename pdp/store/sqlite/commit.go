package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"unsafe"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// Group commit is store.Committer's; this file is SQLite's transaction for
// one batch.
//
//   - Ops run without savepoints (a savepoint costs two statements and a
//     statement journal per op, for failures that are rare). An op that
//     refuses before writing (a limit, a decision lost, a duplicate vote:
//     a failed statement is undone by SQLite alone) gets its error and the
//     batch goes on. An op that fails after writing (a duplicate action
//     ID after its entry), or with an error that may have ended the
//     transaction (I/O, interrupt), is the attempt's culprit: the
//     transaction is rolled back and store.Committer runs the batch again
//     without it.
//   - Chains are extended in memory while the batch runs (store.Chains; one
//     head lookup per tenant per batch), and heads are written back to
//     audit_heads before COMMIT. BEGIN IMMEDIATE holds SQLite's write lock
//     for the whole batch, so no other connection or process can append
//     in between: no gaps, no forks.
//   - COMMIT returns after the WAL is synced (synchronous=FULL), so a
//     caller is answered only once its write is on disk.
//   - The statements every batch runs (an action's two inserts, the
//     rollup and head upserts, the data_version and head reads) run at
//     the driver level on the write connection, prepared once each
//     (rawStmts); the rest — BEGIN and COMMIT, approvals, policy writes —
//     through the batch's database/sql transaction on that connection.
//   - Heads are remembered across batches (headCache): a tenant's head is
//     read from audit_heads and judged against its last entry
//     (store.ResolveHead) on its first append, and again whenever anything
//     but this committer may have written since: another process (SQLite's
//     data_version, read under the batch's write lock) or another write
//     transaction of this process (DB.writes). Otherwise the head is the
//     one this committer's last COMMIT left, and a batch reads nothing
//     before it appends.
type committer = store.Committer[*batch]

// The committer's statements.
const (
	sqlHead   = `SELECT seq, entry_hash FROM audit_heads WHERE tenant_id = ?`
	sqlTip    = `SELECT seq, entry_hash FROM audit_log WHERE tenant_id = ? ORDER BY seq DESC LIMIT 1`
	sqlTenant = `SELECT 1 FROM tenants WHERE id = ?`
	sqlAppend = `INSERT INTO audit_log (tenant_id, seq, ts, event, metadata, action_id, prev_hash, entry_hash, evaluation)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlDataVersion = `PRAGMA data_version`
)

// headCache is the chain heads the committer's own COMMITs left, valid
// while nothing else has written to the database: version is SQLite's
// data_version of the write connection (it changes when another
// connection, in any process, commits) and writes DB.writes (this
// process's write transactions outside the committer) when they were
// taken. Only the committer goroutine touches it.
type headCache struct {
	heads   map[string]store.ChainHead
	version int64
	writes  uint64
}

// check empties the cache unless version and writes are those it was
// filled at, and records them.
func (c *headCache) check(version int64, writes uint64) {
	if c.heads == nil || version != c.version || writes != c.writes {
		c.heads = map[string]store.ChainHead{}
	}
	c.version, c.writes = version, writes
}

func (db *DB) startCommitter(maxBatch int, obs store.AuditBatchObserver) {
	db.raw = newRawStmts()
	var opts []store.CommitterOption
	if db.wal != nil {
		opts = append(opts, store.WithAfterBatch(db.afterBatch))
	}
	db.AuditedWriter = store.AuditedWriter[*batch]{
		GC: store.NewCommitter(maxBatch, obs, db.attempt, nil, opts...), Now: db.now,
		Duplicate: isDuplicate, MissingParent: isMissingParent,
	}
}

// closeStmts closes the committer's statements (after the committer has
// stopped), so the write connection closes with none outstanding.
func (db *DB) closeStmts() error {
	if db.raw == nil || db.raw.conn == nil {
		return nil
	}
	conn, err := db.w.Conn(context.Background())
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(db.raw.close)
}

// attempt runs the live ops in one transaction.
func (db *DB) attempt(ctx context.Context, ops []*store.Op[*batch], live []int) ([]error, int, error) {
	r := db.raw
	// Whether this batch's WAL sync may keep the processor is judged as
	// it begins, before it starts goroutines of its own (rawsync.go).
	if db.walName != "" {
		allowSyncInPlace(db.walName, syncInPlace())
		defer allowSyncInPlace(db.walName, false)
	}
	conn, err := db.w.Conn(ctx)
	if err != nil {
		return nil, -1, fmt.Errorf("begin batch: %w", err)
	}
	defer conn.Close()
	// The transaction runs without the attempt's deadline too: a context
	// that can be done costs modernc's driver a goroutine to watch it at
	// BEGIN and another at COMMIT (and interrupting a COMMIT helps no
	// one); BEGIN IMMEDIATE's wait for the write lock is bounded by
	// busy_timeout, and the wait for the connection above by ctx.
	tx, err := conn.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		return nil, -1, fmt.Errorf("begin batch: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = tx.Rollback()
		}
	}()
	// The statements run without the attempt's deadline: once BEGIN
	// IMMEDIATE holds the write lock (under ctx) they wait for no one, and
	// a context that can be done costs modernc's driver a goroutine per
	// statement to watch it.
	b := &batch{ctx: context.WithoutCancel(ctx), tx: tx, conn: conn, raw: r, db: db, chains: store.NewChains(db.now), args: r.buf}
	defer func() {
		clear(b.args[:cap(b.args)]) // hold no op's values until the next batch
		r.buf = b.args[:0]
	}()
	// Under the write lock BEGIN IMMEDIATE took: no other connection can
	// commit until this batch has.
	writes := db.writes.Load()
	var version int64
	if err := b.queryRow(sqlDataVersion, nil, &version); err != nil {
		return nil, -1, fmt.Errorf("begin batch: data_version: %w", err)
	}
	db.heads.check(version, writes)
	res := make([]error, len(ops))
	for _, i := range live {
		b.dirty = false
		b.chains.StartOp()
		err, panicked := store.SafeRun(ops[i].Run, b)
		switch {
		case err == nil:
		case panicked || b.dirty || !refusal(err):
			return nil, i, err
		default:
			b.chains.Undo()
			res[i] = err
		}
	}
	if b.args, err = b.roll.write(b.execArgs, b.args); err != nil {
		return nil, -1, fmt.Errorf("batch rollups: %w", err)
	}
	tenants, heads := b.chains.Moved()
	b.args = b.args[:0]
	for i, t := range tenants {
		b.args = append(b.args, t, heads[i].Seq, heads[i].Hash)
	}
	if err := headsTable.upsert(b.execArgs, b.args); err != nil {
		return nil, -1, fmt.Errorf("batch heads: %w", err)
	}
	if err := tx.Commit(); err != nil {
		db.heads.heads = nil // whatever COMMIT left, it is read again
		return nil, -1, fmt.Errorf("commit batch: %w", err)
	}
	committed = true
	b.chains.Heads(func(t string, h store.ChainHead) { db.heads.heads[t] = h })
	return res, -1, nil
}

// batch is the state one batch's ops share.
type batch struct {
	ctx    context.Context
	tx     *sql.Tx   // the batch's transaction, on conn
	conn   *sql.Conn // the write connection
	raw    *rawStmts // the committer's statements on conn's driver connection
	db     *DB
	chains *store.Chains
	roll   rollups // the actions the batch inserted
	dirty  bool    // the running op has written
	args   []any   // a statement's arguments, reused
}

// execArgs runs one of the committer's writes in the batch at the driver
// level (rawStmts); args are values the driver binds as they are.
func (b *batch) execArgs(query string, args []any) error {
	r := b.raw
	r.ctx, r.query, r.args, r.dest = b.ctx, query, args, nil
	err := b.conn.Raw(r.fn)
	r.args = nil
	b.wrote(err)
	return err
}

// wrote marks the running op as having written if err is nil.
func (b *batch) wrote(err error) {
	if err == nil {
		b.dirty = true
	}
}

// refusal reports whether an op's error left the transaction as it was
// before the failed statement: any error of the store's own, or a
// constraint violation (SQLite undoes the statement, not the
// transaction). Other SQLite errors may have rolled the transaction back.
func refusal(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return true
	}
	return se.Code()&0xff == sqlite3.SQLITE_CONSTRAINT
}

// queryRow runs one of the committer's single-row queries in the batch
// at the driver level and stores its row's first columns (at most two)
// in dest (*int64 or *string each); sql.ErrNoRows if there is none.
func (b *batch) queryRow(query string, args []any, dest ...any) error {
	r := b.raw
	var vals [2]driver.Value
	r.ctx, r.query, r.args, r.dest, r.found = b.ctx, query, args, vals[:len(dest)], false
	err := b.conn.Raw(r.fn)
	r.args, r.dest = nil, nil
	if err != nil {
		return err
	}
	if !r.found {
		return sql.ErrNoRows
	}
	for i, d := range dest {
		if err := assign(d, vals[i]); err != nil {
			return fmt.Errorf("%s: column %d: %w", query, i, err)
		}
	}
	return nil
}

// assign stores a driver value in *int64 or *string.
func assign(dest any, v driver.Value) error {
	switch d := dest.(type) {
	case *int64:
		if n, ok := v.(int64); ok {
			*d = n
			return nil
		}
	case *string:
		switch s := v.(type) {
		case string:
			*d = s
			return nil
		case []byte:
			*d = string(s)
			return nil
		}
	}
	return fmt.Errorf("cannot store %T in %T", v, dest)
}

// LoadHead reads the tenant's head on its first use in the batch and lets
// store.ResolveHead judge it against the last stored entry.
func (b *batch) LoadHead(tenantID string) error {
	if b.chains.Loaded(tenantID) {
		return nil
	}
	if h, ok := b.db.heads.heads[tenantID]; ok { // this committer's own last COMMIT
		b.chains.Load(tenantID, h)
		return nil
	}
	head, err := b.scanHead(sqlHead, tenantID)
	if err != nil {
		return err
	}
	tip, err := b.scanHead(sqlTip, tenantID)
	if err != nil {
		return err
	}
	exists := head != nil
	if !exists {
		var one int64
		switch err := b.queryRow(sqlTenant, []any{tenantID}, &one); {
		case err == nil:
			exists = true
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
	}
	h, err := store.ResolveHead(tenantID, exists, head, tip)
	if err != nil {
		return err
	}
	b.chains.Load(tenantID, h)
	return nil
}

func (b *batch) scanHead(query, tenantID string) (*store.ChainHead, error) {
	var h store.ChainHead
	err := b.queryRow(query, []any{tenantID}, &h.Seq, &h.Hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return &h, nil
}

// Chains is the batch's chain bookkeeping.
func (b *batch) Chains() *store.Chains { return b.chains }

// WriteEntries stores one tenant's entries.
func (b *batch) WriteEntries(tenantID string, es []store.AuditEntry, actionIDs []string) error {
	for i, e := range es {
		if err := b.writeEntry(tenantID, e, actionIDs[i], false); err != nil {
			return err
		}
	}
	return nil
}

// writeEntry stores one entry; evaluation marks an action's evaluation
// entry, which audit_log_action leaves out (migration 0010).
func (b *batch) writeEntry(tenantID string, e store.AuditEntry, actionID string, evaluation bool) error {
	b.args = appendEntryArgs(b.args[:0], tenantID, e, actionID, evaluation)
	return b.execArgs(sqlAppend, b.args)
}

// appendEntryArgs appends sqlAppend's arguments for e to args.
func appendEntryArgs(args []any, tenantID string, e store.AuditEntry, actionID string, evaluation bool) []any {
	var aid any // NULL
	if actionID != "" {
		aid = actionID
	}
	// The metadata is bound as text (json_* functions read it; a []byte
	// would be a BLOB) through a view of its bytes rather than a copy: the
	// driver copies the text into SQLite as it binds, and an entry's
	// metadata is never changed once canonical. Every argument is a value
	// the driver binds as it is (see actionArgs).
	meta := unsafe.String(unsafe.SliceData(e.Metadata), len(e.Metadata))
	return append(args, tenantID, e.SequenceNumber, toMicros(e.Timestamp), e.Event, meta, aid, e.PrevHash, e.EntryHash, evaluation)
}

// InsertEvaluated stores a's evaluation entry e, marked as such, and a
// with e's sequence number. Its rollups are written with the batch's: an
// op that fails after it has written reruns the batch without it, so
// only committed inserts are counted.
func (b *batch) InsertEvaluated(a store.ActionRecord, e store.AuditEntry) error {
	if err := b.writeEntry(a.TenantID, e, a.ID, true); err != nil {
		return err
	}
	b.args = appendActionArgs(b.args[:0], a, e.SequenceNumber)
	if err := b.execArgs(sqlInsertAction, b.args); err != nil {
		return err
	}
	b.roll.add(a)
	return nil
}

// PolicyTx is the batch's transaction for a policy write.
func (b *batch) PolicyTx() (store.PolicyTx, error) {
	return policyTx{ctx: b.ctx, tx: b.tx, wrote: b.wrote}, nil
}
