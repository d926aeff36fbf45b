package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// Group commit. Every write that appends to an audit chain is an op handed
// to one committer goroutine, which runs queued ops — of any tenants — in
// one write transaction and commits them with one fsync: under load, the
// cost of durability is shared by a whole batch instead of paid per write.
//
//   - Each op runs inside its own SAVEPOINT, so an op that fails (a
//     duplicate ID, a limit refused, a decision lost) is rolled back alone
//     and the rest of its batch commits; its caller gets its own error.
//   - Chains are extended in memory while the batch runs (one head lookup
//     per tenant per batch); an op that fails restores the heads it moved,
//     and heads are written back to audit_heads before COMMIT. BEGIN
//     IMMEDIATE holds SQLite's write lock for the whole batch, so no other
//     connection or process can append in between: no gaps, no forks.
//   - A caller waits until its batch has committed (or failed) and gets
//     the result; a nil error means durable. Its context only matters
//     before its op starts: a cancelled op is skipped, a started one
//     finishes, so an error always means "not written".
//   - Batches hold at most maxBatch ops. The committer never waits to fill
//     one: it takes what queued while the previous batch was committing, so
//     a lone write pays one transaction and no added latency, and a
//     caller's wait is bounded by the batch before its own plus its own.
//   - Close stops accepting ops, lets the committer drain the queue, and
//     only then closes the database; FlushAudit waits for what is queued.
type committer struct {
	db       *DB
	queue    chan *op
	maxBatch int
	obs      store.AuditBatchObserver // nil: batch sizes are not reported

	mu     sync.RWMutex // guards closed against sends in flight
	closed bool
	done   chan struct{} // closed when the committer has exited

	// stmts are the statements every batch runs, prepared once on the
	// write connection; Tx.StmtContext reuses them inside each batch
	// instead of compiling them per op.
	stmts map[string]*sql.Stmt

	batches, ops atomic.Int64
}

// The committer's own statements.
const (
	sqlSavepoint  = `SAVEPOINT op`
	sqlRelease    = `RELEASE op`
	sqlRollbackTo = `ROLLBACK TO op`
	sqlHead       = `SELECT seq, entry_hash FROM audit_heads WHERE tenant_id = ?`
	sqlTip        = `SELECT seq, entry_hash FROM audit_log WHERE tenant_id = ? ORDER BY seq DESC LIMIT 1`
	sqlAppend     = `INSERT INTO audit_log (tenant_id, seq, ts, event, metadata, action_id, prev_hash, entry_hash)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
	sqlSaveHead = `INSERT INTO audit_heads (tenant_id, seq, entry_hash) VALUES (?, ?, ?)
ON CONFLICT (tenant_id) DO UPDATE SET seq = excluded.seq, entry_hash = excluded.entry_hash`
)

// op is one write in a batch. run executes inside the batch's transaction
// and its own savepoint.
type op struct {
	ctx  context.Context
	run  func(b *batch) error
	done chan error // buffered: the committer never blocks on a caller
}

// errClosed is returned for writes submitted after Close.
var errClosed = errors.New("sqlite: database is closed")

func newCommitter(ctx context.Context, db *DB, maxBatch int, obs store.AuditBatchObserver) (*committer, error) {
	c := &committer{db: db, queue: make(chan *op, 4*maxBatch), maxBatch: maxBatch, obs: obs, done: make(chan struct{}), stmts: map[string]*sql.Stmt{}}
	for _, q := range []string{sqlSavepoint, sqlRelease, sqlRollbackTo, sqlHead, sqlTip, sqlAppend, sqlSaveHead} {
		st, err := db.w.PrepareContext(ctx, q)
		if err != nil {
			c.closeStmts()
			return nil, fmt.Errorf("sqlite: prepare %q: %w", q, err)
		}
		c.stmts[q] = st
	}
	go c.loop()
	return c, nil
}

func (c *committer) closeStmts() {
	for _, st := range c.stmts {
		_ = st.Close()
	}
}

// do queues run and waits for its batch's outcome.
func (c *committer) do(ctx context.Context, run func(b *batch) error) error {
	o := &op{ctx: ctx, run: run, done: make(chan error, 1)}
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return errClosed
	}
	select {
	case c.queue <- o:
	case <-ctx.Done():
		c.mu.RUnlock()
		return ctx.Err()
	}
	c.mu.RUnlock()
	return <-o.done // the committer answers every queued op, also when closing
}

// close stops accepting ops and waits until every queued one is answered.
func (c *committer) close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.queue)
	}
	c.mu.Unlock()
	<-c.done
	c.closeStmts()
}

func (c *committer) loop() {
	defer close(c.done)
	ops := make([]*op, 0, c.maxBatch)
	for {
		o, ok := <-c.queue
		if !ok {
			return
		}
		ops = append(ops[:0], o)
	fill:
		for len(ops) < c.maxBatch {
			select {
			case o, ok := <-c.queue:
				if !ok {
					break fill
				}
				ops = append(ops, o)
			default:
				break fill
			}
		}
		c.commit(ops)
		clear(ops) // drop references to finished ops
	}
}

// commit runs one batch and answers each of its ops.
func (c *committer) commit(ops []*op) {
	results := make([]error, len(ops))
	err := c.runBatch(ops, results)
	c.batches.Add(1)
	c.ops.Add(int64(len(ops)))
	if err == nil && c.obs != nil {
		c.obs.ObserveAuditBatch(len(ops))
	}
	for i, o := range ops {
		switch {
		case results[i] != nil: // the op's own failure: nothing of it was written
			o.done <- results[i]
		case err != nil:
			o.done <- err
		default:
			o.done <- nil
		}
	}
}

// runBatch runs ops in one transaction. results gets each op's own error;
// the returned error fails every op that did not fail on its own.
func (c *committer) runBatch(ops []*op, results []error) (err error) {
	// The batch is not any caller's: one caller giving up must not abort
	// the others' statements. Bound it so a wedged database cannot hold
	// every writer forever.
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	tx, err := c.db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin batch: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = tx.Rollback()
		}
	}()
	b := &batch{ctx: ctx, tx: tx, db: c.db, c: c, heads: map[string]*chainHead{}}
	for i, o := range ops {
		if err := o.ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		if _, err := b.exec(sqlSavepoint); err != nil {
			return fmt.Errorf("batch savepoint: %w", err)
		}
		b.undo = map[string]chainHead{}
		if err := safeRun(o.run, b); err != nil {
			results[i] = err
			b.restore()
			if _, rerr := b.exec(sqlRollbackTo); rerr != nil {
				return fmt.Errorf("batch rollback to savepoint: %w (after %w)", rerr, err)
			}
		}
		if _, err := b.exec(sqlRelease); err != nil {
			return fmt.Errorf("batch release savepoint: %w", err)
		}
	}
	if err := b.saveHeads(); err != nil {
		return fmt.Errorf("batch heads: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit batch: %w", err)
	}
	committed = true
	return nil
}

// safeRun runs one op, turning a panic into that op's error so the
// committer — every writer's only path to the database — survives it.
func safeRun(run func(b *batch) error, b *batch) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("sqlite: write panicked: %v", r)
		}
	}()
	return run(b)
}

// batchTimeout bounds one batch's transaction.
const batchTimeout = time.Minute

// CommitStats reports how the group committer has batched so far.
type CommitStats struct {
	Batches int64 // transactions committed or failed
	Ops     int64 // writes they held
}

// CommitStats returns the group committer's counters; Ops/Batches is the
// mean batch size.
func (db *DB) CommitStats() CommitStats {
	return CommitStats{Batches: db.gc.batches.Load(), Ops: db.gc.ops.Load()}
}

// batch is the state one batch's ops share.
type batch struct {
	ctx   context.Context
	tx    *sql.Tx
	db    *DB
	c     *committer
	heads map[string]*chainHead // tenant → its chain's head, as extended so far
	undo  map[string]chainHead  // the current op's first change per tenant
}

// exec runs one of the committer's prepared statements in the batch.
func (b *batch) exec(query string, args ...any) (sql.Result, error) {
	return b.tx.StmtContext(b.ctx, b.c.stmts[query]).ExecContext(b.ctx, args...)
}

// queryRow runs one of the committer's prepared queries in the batch.
func (b *batch) queryRow(query string, args ...any) *sql.Row {
	return b.tx.StmtContext(b.ctx, b.c.stmts[query]).QueryRowContext(b.ctx, args...)
}

// chainHead is the last entry of a tenant's chain. moved marks heads to
// write back to audit_heads.
type chainHead struct {
	seq   int64
	hash  string
	moved bool
}

// head returns the tenant's head, reading it on first use in the batch:
// the later of audit_heads and the last stored entry. Continuing from the
// recorded head after entries were deleted from the end leaves a gap that
// verification reports, instead of silently reusing their numbers.
func (b *batch) head(tenantID string) (*chainHead, error) {
	if h, ok := b.heads[tenantID]; ok {
		return h, nil
	}
	h := &chainHead{hash: store.GenesisHash}
	var (
		seq  int64
		hash string
	)
	err := b.queryRow(sqlHead, tenantID).Scan(&seq, &hash)
	switch {
	case err == nil:
		h.seq, h.hash = seq, hash
	case !errors.Is(err, sql.ErrNoRows):
		return nil, err
	}
	err = b.queryRow(sqlTip, tenantID).Scan(&seq, &hash)
	switch {
	case err == nil && seq > h.seq:
		h.seq, h.hash = seq, hash
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return nil, err
	}
	b.heads[tenantID] = h
	return h, nil
}

// appendEntry stores ev (its metadata canonical, its timestamp set) as
// the next entry of the tenant's chain.
func (b *batch) appendEntry(tenantID string, ts time.Time, event string, metadata []byte, actionID string) (store.AuditEntry, error) {
	h, err := b.head(tenantID)
	if err != nil {
		return store.AuditEntry{}, err
	}
	e := store.NewAuditEntry(tenantID, h.seq, h.hash, ts, event, metadata)
	var aid sql.NullString
	if actionID != "" {
		aid = sql.NullString{String: actionID, Valid: true}
	}
	if _, err := b.exec(sqlAppend, tenantID, e.SequenceNumber, toMicros(e.Timestamp), e.Event, string(e.Metadata), aid, e.PrevHash, e.EntryHash); err != nil {
		return store.AuditEntry{}, err
	}
	if _, ok := b.undo[tenantID]; !ok {
		b.undo[tenantID] = *h
	}
	h.seq, h.hash, h.moved = e.SequenceNumber, e.EntryHash, true
	return e, nil
}

// restore puts back the heads the failed op moved.
func (b *batch) restore() {
	for t, h := range b.undo {
		*b.heads[t] = h
	}
}

// saveHeads records the heads the batch moved.
func (b *batch) saveHeads() error {
	for t, h := range b.heads {
		if !h.moved {
			continue
		}
		if _, err := b.exec(sqlSaveHead, t, h.seq, h.hash); err != nil {
			return err
		}
	}
	return nil
}
