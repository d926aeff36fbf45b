package postgres

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// The audit chain across processes, and group commit within one.
//
// Serialization. Each tenant's chain has one head row (audit_heads, see
// migration 0003). A transaction that appends to a chain first locks the
// head rows of every tenant it will append to, FOR UPDATE, in tenant
// order, and numbers and hashes its entries after what it finds there. A
// second appender of the same tenant — another batch of this process, or
// of any replica — waits for that lock; READ COMMITTED hands it the head
// the first one committed, and its next statements see the first one's
// entries. So chains stay gap-free and fork-free whichever replica
// appends, with no retry loop, and appenders of different tenants never
// wait for one another. Locks are always taken heads first, in tenant
// order, then anything else (a tenant's row for a policy write, action
// rows, the dashboard's rollup rows, whose trigger locks the heads it
// needs first too), so two transactions never wait for each other in a
// cycle.
//
// Group commit. Every write that appends an entry is an op handed to one
// committer goroutine per DB, which runs the ops queued meanwhile — of any
// tenants — in one transaction, committed with one WAL flush:
//
//   - The ops' statements are pipelined: an op queues its writes (and
//     their entries, hashed in memory from the heads) and reads only when
//     it must decide something from the database (is this approval still
//     pending?), so a batch of plain appends and action inserts costs
//     four round trips — BEGIN, lock the heads, every op's writes and the
//     new heads, COMMIT — however many ops it holds.
//   - No savepoints (a batch of hundreds would overflow PostgreSQL's
//     subtransaction cache and slow every snapshot on the server). An op
//     refuses (not found, already decided, over the limit) only before it
//     writes, which leaves the batch intact. A statement that fails, or an
//     op that fails after writing, aborts the transaction: the batch is
//     rolled back and run again without that op, which gets its error;
//     the others are unaffected. A deadlock or serialization failure is
//     retried as is, a few times.
//   - A caller waits until its batch has committed (or failed) and gets
//     the result; a nil error means durable. An error means not written,
//     with one exception no client of a remote database escapes: a
//     connection lost while COMMIT was in flight leaves the outcome
//     unknown (the error says "commit batch"). Its context only matters
//     before its op starts: a cancelled op is skipped, a started one
//     finishes.
//   - Batches hold at most maxBatch ops. The committer never waits to fill
//     one: it takes what queued while the previous batch was committing.
//   - Close stops accepting ops, lets the committer drain the queue, and
//     only then is the pool closed; FlushAudit waits for what is queued.
type committer struct {
	db       *DB
	queue    chan *op
	maxBatch int
	obs      store.AuditBatchObserver // nil: batch sizes are not reported

	mu     sync.RWMutex // guards closed against sends in flight
	closed bool
	done   chan struct{} // closed when the committer has exited

	batches, ops, reruns atomic.Int64
}

// DefaultMaxBatch is how many writes one group commit holds at most.
const DefaultMaxBatch = 256

// Bounds of a batch.
const (
	// batchTimeout bounds one attempt at a batch's transaction, so a
	// wedged database cannot hold every writer forever.
	batchTimeout = time.Minute
	// rollbackTimeout bounds rolling back a failed attempt.
	rollbackTimeout = 5 * time.Second
	// maxRetries is how often a batch that hit a deadlock or a
	// serialization failure is retried before its culprit is failed.
	maxRetries = 3
)

// govOptions are the audit chain's options.
type govOptions struct {
	maxBatch      int
	batchObs      store.AuditBatchObserver
	verifiers     int   // 0: min(GOMAXPROCS, half the pool)
	verifySegment int64 // the fewest entries worth a verification worker
}

func defaultGovOptions() govOptions {
	return govOptions{maxBatch: DefaultMaxBatch, verifySegment: 100_000}
}

func (o govOptions) validate() error {
	var errs []error
	if o.maxBatch < 1 {
		errs = append(errs, fmt.Errorf("max batch must be ≥ 1, got %d", o.maxBatch))
	}
	if o.verifiers < 0 {
		errs = append(errs, fmt.Errorf("verifiers must be ≥ 1 (or 0 for the default), got %d", o.verifiers))
	}
	if o.verifySegment < 1 {
		errs = append(errs, fmt.Errorf("verify segment must be ≥ 1, got %d", o.verifySegment))
	}
	return errors.Join(errs...)
}

// verifyConfig is how VerifyAudit splits a chain over connections.
type verifyConfig struct {
	workers int
	segment int64
}

// verifyConfig leaves half of a pool of maxConns to the requests that run
// beside a verification.
func (o govOptions) verifyConfig(maxConns int32) verifyConfig {
	w := o.verifiers
	if w == 0 {
		w = max(1, min(runtime.GOMAXPROCS(0), int(maxConns)/2))
	}
	return verifyConfig{workers: w, segment: o.verifySegment}
}

// WithMaxBatch sets how many audited writes one group-committed transaction
// holds at most (default DefaultMaxBatch; 1 turns batching off).
func WithMaxBatch(n int) Option {
	return func(o *options) { o.gov.maxBatch = n }
}

// WithAuditBatchObserver reports the size of every committed group commit
// to o (pdp/metrics' gatehouse_audit_append_batch_size).
func WithAuditBatchObserver(o store.AuditBatchObserver) Option {
	return func(opts *options) { opts.gov.batchObs = o }
}

// op is one write in a batch. tenant is the chain it appends to ("" for
// none); run executes inside the batch's transaction and must be safe to
// run again (a batch whose transaction is rolled back runs its ops again).
type op struct {
	ctx    context.Context
	tenant string
	run    func(b *batch) error
	done   chan error // buffered: the committer never blocks on a caller
}

// errClosed is returned for writes submitted after Close.
var errClosed = errors.New("postgres: database is closed")

func newCommitter(db *DB, o govOptions) *committer {
	c := &committer{db: db, queue: make(chan *op, 4*o.maxBatch), maxBatch: o.maxBatch, obs: o.batchObs, done: make(chan struct{})}
	go c.loop()
	return c
}

// do queues run, which appends to tenant's chain, and waits for its
// batch's outcome.
func (c *committer) do(ctx context.Context, tenant string, run func(b *batch) error) error {
	o := &op{ctx: ctx, tenant: tenant, run: run, done: make(chan error, 1)}
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

// commit runs one batch, again without its culprits until it commits, and
// answers each of its ops.
func (c *committer) commit(ops []*op) {
	results := make([]error, len(ops))
	live := make([]int, 0, len(ops))
	for i, o := range ops {
		if err := o.ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		live = append(live, i)
	}
	retries := 0
	for len(live) > 0 {
		res, culprit, err := c.attempt(ops, live)
		if err == nil {
			for _, i := range live {
				results[i] = res[i]
			}
			c.batches.Add(1)
			c.ops.Add(int64(len(ops)))
			if c.obs != nil {
				c.obs.ObserveAuditBatch(len(ops))
			}
			break
		}
		if retryable(err) && retries < maxRetries {
			retries++
			continue
		}
		if culprit < 0 { // the batch itself failed: nothing of it was written
			for _, i := range live {
				results[i] = err
			}
			break
		}
		results[culprit] = err
		live = slices.DeleteFunc(live, func(i int) bool { return i == culprit })
		c.reruns.Add(1)
	}
	for i, o := range ops {
		o.done <- results[i]
	}
}

// retryable reports a failure that says nothing about the ops themselves.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001") // deadlock_detected, serialization_failure
}

// attempt runs the live ops in one transaction and commits it. On success
// res holds each op's own answer (nil, or a refusal that wrote nothing).
// Otherwise nothing was written, and culprit is the index of the op whose
// write failed, to leave out of the next attempt, or -1 when the failure is
// the batch's own.
func (c *committer) attempt(ops []*op, live []int) (res []error, culprit int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	tx, err := c.db.pool.BeginTx(ctx, writeTx)
	if err != nil {
		return nil, -1, fmt.Errorf("begin batch: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			rctx, cancel := context.WithTimeout(context.Background(), rollbackTimeout)
			defer cancel()
			_ = tx.Rollback(rctx)
		}
	}()
	b := &batch{ctx: ctx, tx: tx, db: c.db, cur: -1}
	var tenants []string
	for _, i := range live {
		if t := ops[i].tenant; t != "" && !slices.Contains(tenants, t) {
			tenants = append(tenants, t)
		}
	}
	if err := b.lockHeads(tenants); err != nil {
		return nil, -1, fmt.Errorf("lock audit heads: %w", err)
	}
	res = make([]error, len(ops))
	for _, i := range live {
		o := ops[i]
		if o.tenant != "" && b.heads[o.tenant] == nil {
			res[i] = fmt.Errorf("tenant %q: %w", o.tenant, store.ErrNotFound)
			continue
		}
		b.start(i)
		err, panicked := safeRun(o.run, b)
		switch {
		case b.fatal != nil:
			return nil, -1, b.fatal
		case b.failure != nil: // a queued write failed: the transaction is aborted
			if b.failure.op == i && err != nil {
				return nil, i, err
			}
			return nil, b.failure.op, b.failure.err
		case panicked || (err != nil && b.dirty) || b.txFailed():
			if err == nil {
				err = errors.New("postgres: write left its transaction failed")
			}
			return nil, i, err
		case err != nil: // a refusal before writing anything
			b.restore()
			res[i] = err
		}
	}
	b.start(-1)
	if err := b.saveHeads(); err != nil {
		if b.failure != nil && b.failure.op >= 0 {
			return nil, b.failure.op, b.failure.err
		}
		return nil, -1, fmt.Errorf("batch heads: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, -1, fmt.Errorf("commit batch: %w", err)
	}
	committed = true
	return res, -1, nil
}

// safeRun runs one op, turning a panic into that op's error so the
// committer — every audited writer's only path to the database — survives
// it.
func safeRun(run func(b *batch) error, b *batch) (err error, panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			err, panicked = fmt.Errorf("postgres: write panicked: %v", r), true
		}
	}()
	return run(b), false
}

// CommitStats reports how the group committer has batched so far.
type CommitStats struct {
	Batches int64 // transactions committed
	Ops     int64 // writes they held
	Reruns  int64 // attempts rolled back and run again without a failed write
}

// CommitStats returns the group committer's counters; Ops/Batches is the
// mean batch size.
func (db *DB) CommitStats() CommitStats {
	return CommitStats{Batches: db.gc.batches.Load(), Ops: db.gc.ops.Load(), Reruns: db.gc.reruns.Load()}
}

// batch is the state one attempt's ops share.
type batch struct {
	ctx   context.Context
	tx    pgx.Tx
	db    *DB
	heads map[string]*chainHead // tenant → its chain's head, as extended so far
	undo  map[string]chainHead  // the current op's first change per tenant

	cur   int  // the running op's index, -1 for the batch's own statements
	dirty bool // the running op has written, or queued a write

	queue   []stmt       // writes not yet sent
	failure *stmtFailure // a statement failed: the transaction is aborted
	fatal   error        // the connection failed: the attempt is over
}

// stmt is a queued write and the op it belongs to.
type stmt struct {
	op   int
	sql  string
	args []any
}

type stmtFailure struct {
	op  int
	err error
}

// errAborted is what an op reads when a write of an earlier op in the same
// round trip failed: the attempt is over, and is rerun without that op.
var errAborted = errors.New("postgres: batch aborted by another write")

// chainHead is the last entry of a tenant's chain. moved marks heads to
// write back to audit_heads.
type chainHead struct {
	seq   int64
	hash  string
	moved bool
}

// start begins op i.
func (b *batch) start(i int) {
	b.cur, b.dirty, b.undo = i, false, map[string]chainHead{}
}

// The statements of the heads.
const (
	sqlLockHeads = `SELECT tenant_id, seq, entry_hash FROM audit_heads WHERE tenant_id = ANY ($1) ORDER BY tenant_id FOR UPDATE`
	// The later of the head and the last stored entry: see audit_heads.
	sqlTips = `SELECT t.id, l.seq, l.entry_hash FROM unnest($1::text[]) AS t (id)
CROSS JOIN LATERAL (SELECT seq, entry_hash FROM audit_log WHERE tenant_id = t.id ORDER BY seq DESC LIMIT 1) AS l`
	sqlSaveHeads = `UPDATE audit_heads AS h SET seq = v.seq, entry_hash = v.entry_hash
FROM unnest($1::text[], $2::bigint[], $3::text[]) AS v (tenant_id, seq, entry_hash) WHERE h.tenant_id = v.tenant_id`
)

// lockHeads locks the heads of tenants and reads them, in one round trip.
// A tenant without a head does not exist.
func (b *batch) lockHeads(tenants []string) error {
	b.heads = map[string]*chainHead{}
	if len(tenants) == 0 {
		return nil
	}
	pb := &pgx.Batch{}
	pb.Queue(sqlLockHeads, tenants)
	pb.Queue(sqlTips, tenants) // a statement of its own: a snapshot taken after the locks
	br := b.tx.SendBatch(b.ctx, pb)
	defer br.Close()
	for _, add := range []func(t string, seq int64, hash string){
		func(t string, seq int64, hash string) { b.heads[t] = &chainHead{seq: seq, hash: hash} },
		func(t string, seq int64, hash string) {
			if h := b.heads[t]; h != nil && seq > h.seq {
				h.seq, h.hash = seq, hash
			}
		},
	} {
		rows, err := br.Query()
		if err != nil {
			return err
		}
		var (
			t    string
			seq  int64
			hash string
		)
		_, err = pgx.ForEachRow(rows, []any{&t, &seq, &hash}, func() error {
			add(t, seq, hash)
			return nil
		})
		if err != nil {
			return err
		}
	}
	return br.Close()
}

// head returns the tenant's head; the op's tenant was locked by the batch.
func (b *batch) head(tenantID string) (*chainHead, error) {
	h := b.heads[tenantID]
	if h == nil { // an op appending to a chain it did not declare: a bug
		return nil, fmt.Errorf("postgres: tenant %q's chain is not locked by this batch", tenantID)
	}
	return h, nil
}

// restore puts back the heads the current op moved.
func (b *batch) restore() {
	for t, h := range b.undo {
		*b.heads[t] = h
	}
}

// saveHeads sends what is queued and records the heads the batch moved.
func (b *batch) saveHeads() error {
	var (
		ts, hashes []string
		seqs       []int64
	)
	for t, h := range b.heads {
		if h.moved {
			ts, seqs, hashes = append(ts, t), append(seqs, h.seq), append(hashes, h.hash)
		}
	}
	if len(ts) > 0 {
		b.exec(sqlSaveHeads, ts, seqs, hashes)
	}
	return b.flush()
}

// exec queues a write; it is sent with the next read or at the end of the
// batch.
func (b *batch) exec(sql string, args ...any) {
	b.queue = append(b.queue, stmt{op: b.cur, sql: sql, args: args})
	b.dirty = true
}

// flush sends the queued writes.
func (b *batch) flush() error { return b.send(nil, "") }

// query sends the queued writes and then sql, whose rows scan reads, in
// one round trip. The error is scan's, the statement's, or errAborted when
// a queued write of another op failed.
func (b *batch) query(scan func(pgx.Rows) error, sql string, args ...any) error {
	return b.send(scan, sql, args...)
}

// queryRow is query for one row, which scan reads; pgx.ErrNoRows if there
// is none.
func (b *batch) queryRow(scan func(rowScanner) error, sql string, args ...any) error {
	return b.query(func(rows pgx.Rows) error {
		if !rows.Next() {
			if err := rows.Err(); err != nil {
				return err
			}
			return pgx.ErrNoRows
		}
		return scan(rows)
	}, sql, args...)
}

// writeRow is queryRow for a write that returns its row (UPDATE …
// RETURNING, INSERT … ON CONFLICT DO NOTHING RETURNING): the op has
// written when it returns nil, and has not when it returns pgx.ErrNoRows.
func (b *batch) writeRow(scan func(rowScanner) error, sql string, args ...any) error {
	err := b.queryRow(scan, sql, args...)
	if err == nil {
		b.dirty = true
	}
	return err
}

// into scans a row into dest.
func into(dest ...any) func(rowScanner) error {
	return func(r rowScanner) error { return r.Scan(dest...) }
}

// conn sends the queued writes and returns the transaction, for code that
// runs its own statements (policy writes). The caller marks the op dirty
// once it has written.
func (b *batch) conn() (pgx.Tx, error) {
	if err := b.flush(); err != nil {
		return nil, err
	}
	return b.tx, nil
}

func (b *batch) send(scan func(pgx.Rows) error, sql string, args ...any) error {
	switch {
	case b.fatal != nil:
		return b.fatal
	case b.failure != nil:
		return errAborted
	case len(b.queue) == 0 && scan == nil:
		return nil
	}
	pb := &pgx.Batch{}
	for _, s := range b.queue {
		pb.Queue(s.sql, s.args...)
	}
	if scan != nil {
		pb.Queue(sql, args...)
	}
	queued := b.queue
	b.queue = nil
	br := b.tx.SendBatch(b.ctx, pb)
	for _, s := range queued {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return b.fail(s.op, err)
		}
	}
	var serr error
	if scan != nil {
		rows, _ := br.Query() // a failure shows in rows.Err
		serr = scan(rows)
		rows.Close()
		if err := rows.Err(); err != nil {
			_ = br.Close()
			return b.fail(b.cur, err)
		}
	}
	if err := br.Close(); err != nil {
		return b.fail(b.cur, err)
	}
	return serr
}

// fail records a failed statement of op. A statement PostgreSQL refused
// aborts the transaction; anything else (a broken connection, the batch's
// deadline) ends the attempt.
func (b *batch) fail(op int, err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		b.fatal = err
		return err
	}
	b.failure = &stmtFailure{op: op, err: err}
	if op == b.cur {
		return err
	}
	return errAborted
}

// txFailed reports whether a statement the op ran itself (through conn)
// left the transaction aborted.
func (b *batch) txFailed() bool {
	return b.tx.Conn().PgConn().TxStatus() == 'E'
}
