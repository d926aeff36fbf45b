package postgres

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
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
// Group commit is store.Committer's (queue, batches, reruns without a
// culprit, answers); this file is PostgreSQL's transaction for one batch,
// committed with one WAL flush:
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
//   - An error means not written, with one exception no client of a
//     remote database escapes: a connection lost while COMMIT was in
//     flight leaves the outcome unknown (the error says "commit batch").
type committer = store.Committer[*batch]

// DefaultMaxBatch is how many writes one group commit holds at most.
const DefaultMaxBatch = 256

// rollbackTimeout bounds rolling back a failed attempt (store.BatchTimeout
// bounds the attempt).
const rollbackTimeout = 5 * time.Second

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

type op = store.Op[*batch]

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
func (db *DB) attempt(ctx context.Context, ops []*op, live []int) (res []error, culprit int, err error) {
	tx, err := db.pool.BeginTx(ctx, writeTx)
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
	b := &batch{ctx: ctx, tx: tx, db: db, cur: -1, chains: store.NewChains(db.now)}
	var tenants []string
	for _, i := range live {
		if t := ops[i].Tenant; t != "" && !slices.Contains(tenants, t) {
			tenants = append(tenants, t)
		}
	}
	if err := b.lockHeads(tenants); err != nil {
		return nil, -1, fmt.Errorf("lock audit heads: %w", err)
	}
	res = make([]error, len(ops))
	for _, i := range live {
		o := ops[i]
		if err := b.headErr[o.Tenant]; err != nil {
			res[i] = err
			continue
		}
		b.start(i)
		err, panicked := store.SafeRun(o.Run, b)
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
			b.chains.Undo()
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

// batch is the state one attempt's ops share.
type batch struct {
	ctx     context.Context
	tx      pgx.Tx
	db      *DB
	chains  *store.Chains
	headErr map[string]error // tenant → why its chain cannot be extended

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

// start begins op i.
func (b *batch) start(i int) {
	b.cur, b.dirty = i, false
	b.chains.StartOp()
}

// The statements of the heads.
const (
	sqlLockHeads = `SELECT tenant_id, seq, entry_hash FROM audit_heads WHERE tenant_id = ANY ($1) ORDER BY tenant_id FOR UPDATE`
	// The later of the head and the last stored entry: see audit_heads.
	sqlTips = `SELECT t.id, l.seq, l.entry_hash FROM unnest($1::text[]) AS t (id)
CROSS JOIN LATERAL (SELECT seq, entry_hash FROM audit_log WHERE tenant_id = t.id ORDER BY seq DESC LIMIT 1) AS l`
	sqlTenants   = `SELECT id FROM tenants WHERE id = ANY ($1)`
	sqlSaveHeads = `UPDATE audit_heads AS h SET seq = v.seq, entry_hash = v.entry_hash
FROM unnest($1::text[], $2::bigint[], $3::text[]) AS v (tenant_id, seq, entry_hash) WHERE h.tenant_id = v.tenant_id`
)

// lockHeads locks the heads of tenants and reads them, with the last
// entry of each chain and whether the tenant exists, in one round trip;
// store.ResolveHead judges each, and an op appending to a tenant it
// refuses gets its error before running.
func (b *batch) lockHeads(tenants []string) error {
	b.headErr = map[string]error{}
	if len(tenants) == 0 {
		return nil
	}
	heads := map[string]*store.ChainHead{}
	tips := map[string]*store.ChainHead{}
	exists := map[string]bool{}
	pb := &pgx.Batch{}
	pb.Queue(sqlLockHeads, tenants)
	pb.Queue(sqlTips, tenants) // a statement of its own: a snapshot taken after the locks
	pb.Queue(sqlTenants, tenants)
	br := b.tx.SendBatch(b.ctx, pb)
	defer br.Close()
	for _, into := range []map[string]*store.ChainHead{heads, tips} {
		rows, err := br.Query()
		if err != nil {
			return err
		}
		var (
			t string
			h store.ChainHead
		)
		_, err = pgx.ForEachRow(rows, []any{&t, &h.Seq, &h.Hash}, func() error {
			into[t] = &store.ChainHead{Seq: h.Seq, Hash: h.Hash}
			return nil
		})
		if err != nil {
			return err
		}
	}
	rows, err := br.Query()
	if err != nil {
		return err
	}
	var t string
	if _, err := pgx.ForEachRow(rows, []any{&t}, func() error { exists[t] = true; return nil }); err != nil {
		return err
	}
	for _, t := range tenants {
		h, err := store.ResolveHead(t, exists[t], heads[t], tips[t])
		if err != nil {
			b.headErr[t] = err
			continue
		}
		b.chains.Load(t, h)
	}
	return br.Close()
}

// Chains is the batch's chain bookkeeping.
func (b *batch) Chains() *store.Chains { return b.chains }

// LoadHead checks the tenant's head was locked and loaded by lockHeads.
func (b *batch) LoadHead(tenantID string) error {
	switch {
	case b.chains.Loaded(tenantID):
		return nil
	case b.headErr[tenantID] != nil:
		return b.headErr[tenantID]
	}
	// An op appending to a chain it did not declare: a bug.
	return fmt.Errorf("postgres: tenant %q's chain is not locked by this batch", tenantID)
}

// saveHeads sends what is queued and records the heads the batch moved.
func (b *batch) saveHeads() error {
	ts, heads := b.chains.Moved()
	if len(ts) > 0 {
		seqs, hashes := make([]int64, len(heads)), make([]string, len(heads))
		for i, h := range heads {
			seqs[i], hashes[i] = h.Seq, h.Hash
		}
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

// PolicyTx sends what is queued and returns the batch's transaction for
// a policy write, which marks the op as having written when it writes.
func (b *batch) PolicyTx() (store.PolicyTx, error) {
	tx, err := b.conn()
	if err != nil {
		return nil, err
	}
	return policyTx{ctx: b.ctx, tx: tx, wrote: func() { b.dirty = true }}, nil
}
