package postgres

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

var (
	_ store.GovernanceStore = (*DB)(nil)
	_ store.BulkActions     = (*DB)(nil)
	_ store.AuditArchive    = (*DB)(nil)
)

const auditCols = `tenant_id, seq, ts, event, metadata, prev_hash, entry_hash`

func scanAudit(row rowScanner) (store.AuditEntry, error) {
	var (
		e    store.AuditEntry
		meta string
	)
	if err := row.Scan(&e.TenantID, &e.SequenceNumber, &e.Timestamp, &e.Event, &meta, &e.PrevHash, &e.EntryHash); err != nil {
		return store.AuditEntry{}, err
	}
	e.Timestamp = e.Timestamp.UTC()
	e.Metadata = json.RawMessage(meta)
	return e, nil
}

func scanAudits(rows pgx.Rows) ([]store.AuditEntry, error) {
	defer rows.Close()
	return store.Collect(rows, scanAudit)
}

// sqlAppend inserts a run of one tenant's entries, however many, as one
// statement: arrays, zipped by unnest.
const sqlAppend = `INSERT INTO audit_log (tenant_id, seq, ts, event, metadata, action_id, prev_hash, entry_hash)
SELECT $1, seq, ts, event, metadata, NULLIF(action_id, ''), prev_hash, entry_hash
FROM unnest($2::bigint[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
    AS e (seq, ts, event, metadata, action_id, prev_hash, entry_hash)`

// WriteEntries queues the insert of one tenant's entries, however many,
// as one statement.
func (b *batch) WriteEntries(tenantID string, es []store.AuditEntry, actionIDs []string) error {
	n := len(es)
	var (
		seqs                     = make([]int64, n)
		tss                      = make([]time.Time, n)
		events, metas, prevs, hs = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	)
	for i, e := range es {
		seqs[i], tss[i], events[i], metas[i], prevs[i], hs[i] = e.SequenceNumber, e.Timestamp, e.Event, string(e.Metadata), e.PrevHash, e.EntryHash
	}
	b.exec(sqlAppend, tenantID, seqs, tss, events, metas, actionIDs, prevs, hs)
	return nil
}

// InsertEvaluated queues the inserts of a's evaluation entry e and of a
// with e's sequence number.
func (b *batch) InsertEvaluated(a store.ActionRecord, e store.AuditEntry) error {
	if err := b.WriteEntries(a.TenantID, []store.AuditEntry{e}, []string{a.ID}); err != nil {
		return err
	}
	auditSeq := e.SequenceNumber
	b.exec(sqlInsertAction, actionArgs(a, &auditSeq)...)
	return nil
}

// where builds a WHERE clause of conditions, numbering the parameters.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, arg any) {
	w.args = append(w.args, arg)
	w.conds = append(w.conds, strings.ReplaceAll(cond, "?", fmt.Sprintf("$%d", len(w.args))))
}

func (w *where) String() string { return ` WHERE ` + strings.Join(w.conds, ` AND `) }

// page returns " LIMIT $n OFFSET $m" and its arguments (LIMIT NULL is no
// limit).
func (w *where) page(limit, offset int) (string, []any) {
	var l *int64
	if limit > 0 {
		v := int64(limit)
		l = &v
	}
	n := len(w.args)
	return fmt.Sprintf(` LIMIT $%d OFFSET $%d`, n+1, n+2), append(append([]any(nil), w.args...), l, int64(max(offset, 0)))
}

// ListAudit returns one page of the tenant's entries and the total
// matching q, from one snapshot.
func (db *DB) ListAudit(ctx context.Context, tenantID string, q store.AuditQuery) ([]store.AuditEntry, int, error) {
	events := slices.DeleteFunc(q.Events(), func(e string) bool { return !store.Storable(e) })
	if !store.Storable(tenantID) || len(q.Events()) > 0 && len(events) == 0 {
		return []store.AuditEntry{}, 0, nil
	}
	w := auditWhere(tenantID, q, events)
	order := ` ORDER BY seq`
	if q.NewestFirst {
		order = ` ORDER BY seq DESC`
	}
	page, pageArgs := w.page(q.Limit, q.Offset)
	var (
		total int
		es    []store.AuditEntry
	)
	err := db.read(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM audit_log`+w.String(), w.args...).Scan(&total); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+auditCols+` FROM audit_log`+w.String()+order+page, pageArgs...)
		if err != nil {
			return err
		}
		es, err = scanAudits(rows)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list audit of %q: %w", tenantID, err)
	}
	return es, total, nil
}

// auditWhere selects the tenant's entries in q's window with one of events
// (any when empty).
func auditWhere(tenantID string, q store.AuditQuery, events []string) *where {
	w := &where{}
	w.add(`tenant_id = ?`, tenantID)
	if !q.Since.IsZero() {
		w.add(`ts >= ?`, store.StampUp(q.Since))
	}
	if !q.Until.IsZero() {
		w.add(`ts < ?`, store.StampUp(q.Until))
	}
	if len(events) > 0 {
		w.add(`event = ANY(?)`, events)
	}
	return w
}

// ExportAudit streams the tenant's entries matching q in chain order from
// one snapshot, one row at a time.
func (db *DB) ExportAudit(ctx context.Context, tenantID string, q store.AuditQuery, fn func(store.AuditEntry) error) error {
	events := slices.DeleteFunc(q.Events(), func(e string) bool { return !store.Storable(e) })
	if !store.Storable(tenantID) || len(q.Events()) > 0 && len(events) == 0 {
		return nil
	}
	w := auditWhere(tenantID, q, events)
	err := db.read(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+auditCols+` FROM audit_log`+w.String()+` ORDER BY seq`, w.args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			e, err := scanAudit(rows)
			if err != nil {
				return err
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	if err != nil {
		return fmt.Errorf("export audit of %q: %w", tenantID, err)
	}
	return nil
}

const sqlCheckpoint = `SELECT seq, entry_hash, pruned_at FROM audit_checkpoints WHERE tenant_id = $1`

func scanCheckpoint(row pgx.Row) (*store.AuditCheckpoint, error) {
	var cp store.AuditCheckpoint
	switch err := row.Scan(&cp.Seq, &cp.Hash, &cp.PrunedAt); {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, err
	}
	cp.PrunedAt = cp.PrunedAt.UTC()
	return &cp, nil
}

// PruneAudit removes the tenant's oldest entries up to the cutoff and
// moves its checkpoint, in one transaction holding the tenant's head lock
// (which serializes it with appends and other prunes on every replica),
// after verifying what it removes (store.AuditArchive).
func (db *DB) PruneAudit(ctx context.Context, tenantID string, before time.Time, maxEntries int) (*store.AuditCheckpoint, int, error) {
	if !store.Storable(tenantID) {
		return nil, 0, nil
	}
	var (
		out     *store.AuditCheckpoint
		removed int
	)
	err := db.write(ctx, func(tx pgx.Tx) error {
		var one int
		switch err := tx.QueryRow(ctx, `SELECT 1 FROM audit_heads WHERE tenant_id = $1 FOR UPDATE`, tenantID).Scan(&one); {
		case errors.Is(err, pgx.ErrNoRows):
			return nil // no tenant, or no head: nothing this may prune
		case err != nil:
			return err
		}
		cp, err := scanCheckpoint(tx.QueryRow(ctx, sqlCheckpoint, tenantID))
		if err != nil {
			return err
		}
		out = cp
		var first, top *int64
		if err := tx.QueryRow(ctx, `SELECT min(seq) FROM audit_log WHERE tenant_id = $1 AND ts >= $2`, tenantID, store.StampUp(before)).Scan(&first); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT max(seq) FROM audit_log WHERE tenant_id = $1`, tenantID).Scan(&top); err != nil {
			return err
		}
		upTo := store.PruneUpTo(cp, deref(first), deref(top), maxEntries)
		if upTo <= 0 {
			return nil
		}
		seg, err := verifyIn(ctx, tx, tenantID, math.MinInt64, upTo+1)
		if err != nil {
			return err
		}
		next, err := store.CheckPruned(tenantID, cp, seg, upTo, db.now())
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM audit_log WHERE tenant_id = $1 AND seq <= $2`, tenantID, upTo)
		if err != nil {
			return err
		}
		removed = int(tag.RowsAffected())
		if _, err := tx.Exec(ctx, `INSERT INTO audit_checkpoints (tenant_id, seq, entry_hash, pruned_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (tenant_id) DO UPDATE SET seq = excluded.seq, entry_hash = excluded.entry_hash, pruned_at = excluded.pruned_at`,
			tenantID, next.Seq, next.Hash, next.PrunedAt); err != nil {
			return err
		}
		out = &next
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("prune audit of %q: %w", tenantID, err)
	}
	return out, removed, nil
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// AuditTrail returns the tenant's entries about one action, in chain order.
func (db *DB) AuditTrail(ctx context.Context, tenantID, actionID string) ([]store.AuditEntry, error) {
	if !store.AllStorable(tenantID, actionID) {
		return []store.AuditEntry{}, nil
	}
	rows, err := db.pool.Query(ctx, `SELECT `+auditCols+` FROM audit_log
WHERE tenant_id = $1 AND action_id = $2 ORDER BY seq`, tenantID, actionID)
	if err != nil {
		return nil, fmt.Errorf("audit trail of %q: %w", actionID, err)
	}
	es, err := scanAudits(rows)
	if err != nil {
		return nil, fmt.Errorf("audit trail of %q: %w", actionID, err)
	}
	return es, nil
}

// VerifyAudit recomputes the tenant's chain and compares its actions with
// it (store.VerifyChain), each range on a connection of its own (see
// verifyConfig).
func (db *DB) VerifyAudit(ctx context.Context, tenantID string) (store.AuditVerification, error) {
	if !store.Storable(tenantID) {
		return store.JoinSegments(nil), nil
	}
	return store.VerifyChain(ctx, tenantID, store.ChainSource{
		Head: func(ctx context.Context) (head *store.ChainHead, top int64, err error) {
			err = db.read(ctx, func(tx pgx.Tx) error {
				var h store.ChainHead
				switch err := tx.QueryRow(ctx, `SELECT seq, entry_hash FROM audit_heads WHERE tenant_id = $1`, tenantID).Scan(&h.Seq, &h.Hash); {
				case err == nil:
					head = &h
				case !errors.Is(err, pgx.ErrNoRows):
					return err
				}
				var n *int64
				err := tx.QueryRow(ctx, `SELECT max(seq) FROM audit_log WHERE tenant_id = $1`, tenantID).Scan(&n)
				if n != nil {
					top = *n
				}
				return err
			})
			return head, top, err
		},
		Range: func(ctx context.Context, lo, hi int64) (store.ChainSegment, error) {
			return db.verifyRange(ctx, tenantID, lo, hi)
		},
		Actions: store.ActionSource{
			Fast: func(ctx context.Context, c *store.ActionCheck) error { return db.actionsFast(ctx, tenantID, c) },
			Vouched: func(ctx context.Context) (n, d int, err error) {
				err = db.pool.QueryRow(ctx, `SELECT count(DISTINCT action_id), count(*) FILTER (WHERE event IN ('action_approved', 'action_denied'))
FROM audit_log AS l WHERE l.tenant_id = $1`+digested, tenantID).Scan(&n, &d)
				return n, d, err
			},
			All: func(ctx context.Context, c *store.ActionCheck) error { return db.checkActions(ctx, tenantID, c) },
		},
		Rollups: func(ctx context.Context) (*store.RollupMismatch, error) { return db.checkRollups(ctx, tenantID) },
		Checkpoint: func(ctx context.Context) (*store.AuditCheckpoint, error) {
			return scanCheckpoint(db.pool.QueryRow(ctx, sqlCheckpoint, tenantID))
		},
		Workers: db.verify.workers, Segment: db.verify.segment,
	})
}

// rollupDialect is PostgreSQL's part of store.Rollup.MismatchQuery:
// buckets are date_trunc in UTC, as the triggers of migration 0003
// compute them; keys compare and sort bytewise (the rollups' text
// columns are COLLATE "C", the actions' are not).
var rollupDialect = store.RollupDialect{
	Tenant: "$1",
	BucketOf: func(span time.Duration) string {
		if span == time.Hour {
			return `date_trunc('hour', created_at, 'UTC')`
		}
		return `date_trunc('day', created_at, 'UTC')`
	},
	Key: func(col string) string { return col + ` COLLATE "C"` },
}

// checkRollups compares the tenant's rollups with its actions
// (store.CheckRollups) in one snapshot.
func (db *DB) checkRollups(ctx context.Context, tenantID string) (m *store.RollupMismatch, err error) {
	err = db.read(ctx, func(tx pgx.Tx) error {
		m, err = store.CheckRollups(func(q string, scan func(store.Scanner) error) (bool, error) {
			switch err := scan(tx.QueryRow(ctx, q, tenantID)); {
			case errors.Is(err, pgx.ErrNoRows):
				return false, nil
			case err != nil:
				return false, err
			}
			return true, nil
		}, rollupDialect, func(row store.Scanner, r store.Rollup) (store.RollupMismatch, error) {
			var bucket time.Time
			m, err := store.ScanRollupRow(row, r, &bucket)
			m.Start = bucket.UTC()
			return m, err
		})
		return err
	})
	return m, err
}

// digested selects the entries l that name an action and mention an
// action digest.
const digested = ` AND l.action_id IS NOT NULL AND strpos(l.metadata, '"` + store.MetaActionDigest + `":') > 0`

// actionsFast is store.ActionSource.Fast: undecided actions that have an
// evaluation entry, in audit order, each with that entry by primary key;
// then every decision entry (a decided action's latest digest entry: a
// decision happens once, after the evaluation) with its action by ID. So
// it reads audited actions and decisions, never a bulk-loaded action.
func (db *DB) actionsFast(ctx context.Context, tenantID string, c *store.ActionCheck) error {
	return db.read(ctx, func(tx pgx.Tx) error {
		for _, q := range []string{
			`SELECT ` + store.Qualified("a", actionCols) + `, l.seq, l.prev_hash, l.metadata
FROM actions AS a JOIN audit_log AS l ON l.tenant_id = a.tenant_id AND l.seq = a.audit_seq
WHERE a.tenant_id = $1 AND a.status IN ('allowed', 'blocked', 'pending_review') AND a.audit_seq > 0`,
			`SELECT ` + store.Qualified("a", actionCols) + `, l.seq, l.prev_hash, l.metadata
FROM audit_log AS l JOIN actions AS a ON a.id = l.action_id AND a.tenant_id = l.tenant_id
WHERE l.tenant_id = $1 AND l.event IN ('action_approved', 'action_denied')` + digested,
		} {
			if err := feedEntries(tx.Query(ctx, q, tenantID))(c); err != nil {
				return err
			}
		}
		return nil
	})
}

// feedEntries feeds c the rows of a query of action columns followed by
// an entry's seq, prev_hash and metadata (store.ActionCheck.Feed).
func feedEntries(rows pgx.Rows, err error) func(c *store.ActionCheck) error {
	return func(c *store.ActionCheck) error {
		if err != nil {
			return err
		}
		defer rows.Close()
		return c.Feed(rows, scanAction)
	}
}

// checkActions feeds c the tenant's entries that name an action and
// mention an action digest, with their actions, in (action_id, seq)
// order, then those whose action is gone (store.ActionCheck); one
// snapshot.
func (db *DB) checkActions(ctx context.Context, tenantID string, c *store.ActionCheck) error {
	return db.read(ctx, func(tx pgx.Tx) error {
		if err := feedEntries(tx.Query(ctx, `SELECT `+store.Qualified("a", actionCols)+`, l.seq, l.prev_hash, l.metadata
FROM audit_log AS l JOIN actions AS a ON a.id = l.action_id AND a.tenant_id = l.tenant_id
WHERE l.tenant_id = $1`+digested+` ORDER BY l.action_id, l.seq`, tenantID))(c); err != nil {
			return err
		}
		var (
			prev, meta string
			seq        int64
		)
		rows, err := tx.Query(ctx, `SELECT l.action_id, l.seq, l.prev_hash, l.metadata FROM audit_log AS l
WHERE l.tenant_id = $1`+digested+` AND NOT EXISTS (SELECT 1 FROM actions AS a WHERE a.id = l.action_id AND a.tenant_id = l.tenant_id)`, tenantID)
		if err != nil {
			return err
		}
		var id string
		_, err = pgx.ForEachRow(rows, []any{&id, &seq, &prev, &meta}, func() error {
			c.Orphan(id, seq, prev, []byte(meta))
			return nil
		})
		return err
	})
}

// verifyRange streams the tenant's entries with lo ≤ seq < hi through a
// verifier, one row at a time, straight from pgx's read
// buffer: the integers and the timestamp are decoded from PostgreSQL's
// binary format, the texts are used where they lie, and nothing is
// allocated per row.
func (db *DB) verifyRange(ctx context.Context, tenantID string, lo, hi int64) (store.ChainSegment, error) {
	return verifyIn(ctx, db.pool, tenantID, lo, hi)
}

// verifyIn is verifyRange through q (a pool or a transaction).
func verifyIn(ctx context.Context, q querier, tenantID string, lo, hi int64) (store.ChainSegment, error) {
	v := store.NewChainVerifier()
	rows, err := q.Query(ctx, `SELECT seq, ts, event, metadata, prev_hash, entry_hash FROM audit_log
WHERE tenant_id = $1 AND seq >= $2 AND seq < $3 ORDER BY seq`, tenantID, lo, hi)
	if err != nil {
		return store.ChainSegment{}, err
	}
	defer rows.Close()
	for rows.Next() {
		if fds := rows.FieldDescriptions(); fds[0].Format != pgtype.BinaryFormatCode || fds[1].Format != pgtype.BinaryFormatCode {
			return store.ChainSegment{}, errors.New("audit rows arrive in text format, want binary")
		}
		raw := rows.RawValues()
		seq, ts, err := decodeSeqTime(raw[0], raw[1])
		if err != nil {
			return store.ChainSegment{}, err
		}
		v.Add(seq, ts, raw[2], raw[3], raw[4], raw[5])
	}
	if err := rows.Err(); err != nil {
		return store.ChainSegment{}, err
	}
	return v.Segment(), nil
}

// pgEpochMicros is PostgreSQL's epoch, 2000-01-01 UTC, in Unix
// microseconds: binary timestamps count from it.
const pgEpochMicros = 946_684_800_000_000

// decodeSeqTime decodes a binary int8 and a binary timestamptz.
func decodeSeqTime(seq, ts []byte) (int64, time.Time, error) {
	if len(seq) != 8 || len(ts) != 8 {
		return 0, time.Time{}, fmt.Errorf("malformed audit row: %d-byte seq, %d-byte ts", len(seq), len(ts))
	}
	us := int64(binary.BigEndian.Uint64(ts))
	if us == math.MaxInt64 || us == math.MinInt64 { // ±infinity: never written by the store
		return 0, time.Time{}, fmt.Errorf("audit entry %d has an infinite timestamp", int64(binary.BigEndian.Uint64(seq)))
	}
	return int64(binary.BigEndian.Uint64(seq)), time.UnixMicro(us + pgEpochMicros).UTC(), nil
}

// sqlInsertAction inserts an action with the sequence number of its
// evaluation entry (NULL for none).
const sqlInsertAction = `INSERT INTO actions (` + actionCols + `, audit_seq)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)`

func actionArgs(a store.ActionRecord, auditSeq *int64) []any {
	return []any{a.ID, a.TenantID, a.AgentID, a.Action, a.Connector, a.Operation, []byte(a.Params), a.StepType,
		a.Status, []byte(a.Decision), a.TriggeredPolicy, a.Severity, a.RiskScore, a.ViolationCount, a.TraceID,
		a.CreatedAt, a.DecidedAt, a.ApproverID, a.DecisionReason, auditSeq}
}

// prepareAction sets what the store owns on an action about to be
// inserted and validates it (store.PrepareAction).
func (db *DB) prepareAction(a store.ActionRecord) (store.ActionRecord, error) {
	a, err := store.PrepareAction(a, db.now)
	if err != nil {
		return store.ActionRecord{}, fmt.Errorf("insert action: %w", err)
	}
	return a, nil
}
