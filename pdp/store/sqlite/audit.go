package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

var (
	_ store.GovernanceStore = (*DB)(nil)
	_ store.AuditArchive    = (*DB)(nil)
)

const auditCols = `tenant_id, seq, ts, event, metadata, prev_hash, entry_hash`

func scanAudit(row rowScanner) (store.AuditEntry, error) {
	var (
		e    store.AuditEntry
		ts   int64
		meta string
	)
	if err := row.Scan(&e.TenantID, &e.SequenceNumber, &ts, &e.Event, &meta, &e.PrevHash, &e.EntryHash); err != nil {
		return store.AuditEntry{}, err
	}
	e.Timestamp = fromMicros(ts)
	e.Metadata = json.RawMessage(meta)
	return e, nil
}

func scanAudits(rows *sql.Rows) ([]store.AuditEntry, error) {
	defer rows.Close()
	return store.Collect(rows, scanAudit)
}

// ListAudit returns one page of the tenant's entries and the total
// matching q, from one snapshot.
func (db *DB) ListAudit(ctx context.Context, tenantID string, q store.AuditQuery) ([]store.AuditEntry, int, error) {
	count, args, page, pageArgs := listAuditQueries(tenantID, q)
	var (
		total int
		es    []store.AuditEntry
	)
	err := db.read(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, count, args...).Scan(&total); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, page, pageArgs...)
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

// listAuditQueries returns ListAudit's count and page queries for q, with
// their arguments.
func listAuditQueries(tenantID string, q store.AuditQuery) (count string, args []any, page string, pageArgs []any) {
	where, args := auditWhere(tenantID, q)
	events := q.Events()
	order := ` ORDER BY seq`
	if q.NewestFirst {
		order = ` ORDER BY seq DESC`
	}
	// The planner has no statistics on a young database and prefers
	// walking the chain in sequence order over a filtering index, which
	// scans a whole chain for a rare event or a recent window: name the
	// index the filter needs. An event's index is in sequence order
	// already. A window's is not, so the page is chosen from the time
	// index alone (it holds seq) — a top-N over the window's index
	// entries, never over whole rows — and then read by (tenant_id, seq).
	limit := int64(q.Limit)
	if limit <= 0 {
		limit = -1
	}
	pageArgs = append(append([]any(nil), args...), limit, max(q.Offset, 0))
	page = `SELECT ` + auditCols + ` FROM audit_log` + where + order + ` LIMIT ? OFFSET ?`
	switch {
	case len(events) > 0:
		page = `SELECT ` + auditCols + ` FROM audit_log INDEXED BY audit_log_event` + where + order + ` LIMIT ? OFFSET ?`
	case !q.Since.IsZero() || !q.Until.IsZero():
		page = `SELECT ` + auditCols + ` FROM audit_log WHERE tenant_id = ? AND seq IN (
    SELECT seq FROM audit_log INDEXED BY audit_log_ts` + where + order + ` LIMIT ? OFFSET ?)` + order
		pageArgs = append([]any{tenantID}, pageArgs...)
	}
	return `SELECT count(*) FROM audit_log` + where, args, page, pageArgs
}

// auditWhere is the WHERE clause selecting the tenant's entries matching
// q's window and events.
func auditWhere(tenantID string, q store.AuditQuery) (string, []any) {
	where := ` WHERE tenant_id = ?`
	args := []any{tenantID}
	if !q.Since.IsZero() {
		where += ` AND ts >= ?`
		args = append(args, toMicros(store.StampUp(q.Since)))
	}
	if !q.Until.IsZero() {
		where += ` AND ts < ?`
		args = append(args, toMicros(store.StampUp(q.Until)))
	}
	if events := q.Events(); len(events) > 0 {
		where += ` AND event IN (?` + strings.Repeat(`, ?`, len(events)-1) + `)`
		for _, e := range events {
			args = append(args, e)
		}
	}
	return where, args
}

// ExportAudit streams the tenant's entries matching q in chain order from
// one read snapshot, one row at a time.
func (db *DB) ExportAudit(ctx context.Context, tenantID string, q store.AuditQuery, fn func(store.AuditEntry) error) error {
	query, args := exportAuditQuery(tenantID, q)
	err := db.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, query, args...)
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

// exportAuditQuery is ExportAudit's query for q, with its arguments.
func exportAuditQuery(tenantID string, q store.AuditQuery) (string, []any) {
	where, args := auditWhere(tenantID, q)
	return `SELECT ` + auditCols + ` FROM audit_log` + where + ` ORDER BY seq`, args
}

// The chain's bookkeeping queries: its checkpoint, its last sequence
// number, pruning's first entry kept (the first at or after a time, read
// from the time index alone) and its removal.
const (
	sqlCheckpoint = `SELECT seq, entry_hash, pruned_at FROM audit_checkpoints WHERE tenant_id = ?`
	sqlTopSeq     = `SELECT max(seq) FROM audit_log WHERE tenant_id = ?`
	sqlPruneFirst = `SELECT min(seq) FROM audit_log INDEXED BY audit_log_ts WHERE tenant_id = ? AND ts >= ?`
	sqlPrune      = `DELETE FROM audit_log WHERE tenant_id = ? AND seq <= ?`
)

func scanCheckpoint(row *sql.Row) (*store.AuditCheckpoint, error) {
	var (
		cp store.AuditCheckpoint
		at int64
	)
	switch err := row.Scan(&cp.Seq, &cp.Hash, &at); {
	case errors.Is(err, sql.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, err
	}
	cp.PrunedAt = fromMicros(at)
	return &cp, nil
}

// PruneAudit removes the tenant's oldest entries up to the cutoff and
// moves its checkpoint, in one write transaction, after verifying what it
// removes (store.AuditArchive).
func (db *DB) PruneAudit(ctx context.Context, tenantID string, before time.Time, maxEntries int) (*store.AuditCheckpoint, int, error) {
	var (
		out     *store.AuditCheckpoint
		removed int
	)
	err := db.write(ctx, func(tx *sql.Tx) error {
		cp, err := scanCheckpoint(tx.QueryRowContext(ctx, sqlCheckpoint, tenantID))
		if err != nil {
			return err
		}
		out = cp
		var first, top sql.NullInt64
		if err := tx.QueryRowContext(ctx, sqlPruneFirst,
			tenantID, toMicros(store.StampUp(before))).Scan(&first); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, sqlTopSeq, tenantID).Scan(&top); err != nil {
			return err
		}
		upTo := store.PruneUpTo(cp, first.Int64, top.Int64, maxEntries)
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
		res, err := tx.ExecContext(ctx, sqlPrune, tenantID, upTo)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		removed = int(n)
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_checkpoints (tenant_id, seq, entry_hash, pruned_at) VALUES (?, ?, ?, ?)
ON CONFLICT (tenant_id) DO UPDATE SET seq = excluded.seq, entry_hash = excluded.entry_hash, pruned_at = excluded.pruned_at`,
			tenantID, next.Seq, next.Hash, toMicros(next.PrunedAt)); err != nil {
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

// sqlAuditTrail is AuditTrail's query: the entries audit_log_action
// holds (every entry naming the action but its evaluation entry, and
// evaluation entries written before migration 0010), and the action's
// evaluation entry by its audit_seq. INDEXED BY: see ListAudit; without
// it the planner walks the chain. The CROSS JOIN reads the action first
// (one row by its ID), then the entry by (tenant_id, seq) (audit_log_seq).
var sqlAuditTrail = `SELECT ` + auditCols + ` FROM audit_log INDEXED BY audit_log_action
WHERE tenant_id = ?1 AND action_id = ?2 AND action_id IS NOT NULL AND evaluation = 0
UNION ALL
SELECT ` + store.Qualified("l", auditCols) + `
FROM actions AS a CROSS JOIN audit_log AS l ON l.tenant_id = a.tenant_id AND l.seq = a.audit_seq
WHERE a.id = ?2 AND a.tenant_id = ?1 AND l.action_id = ?2 AND l.evaluation = 1
ORDER BY 2`

// AuditTrail returns the tenant's entries about one action, in chain order.
func (db *DB) AuditTrail(ctx context.Context, tenantID, actionID string) ([]store.AuditEntry, error) {
	rows, err := db.r.QueryContext(ctx, sqlAuditTrail, tenantID, actionID)
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
// it (store.VerifyChain), each range on its own read connection (up to
// GOMAXPROCS, within the read pool).
func (db *DB) VerifyAudit(ctx context.Context, tenantID string) (store.AuditVerification, error) {
	return store.VerifyChain(ctx, tenantID, store.ChainSource{
		Head: func(ctx context.Context) (head *store.ChainHead, top int64, err error) {
			err = db.read(ctx, func(tx *sql.Tx) error {
				var h store.ChainHead
				switch err := tx.QueryRowContext(ctx, sqlHead, tenantID).Scan(&h.Seq, &h.Hash); {
				case err == nil:
					head = &h
				case !errors.Is(err, sql.ErrNoRows):
					return err
				}
				var n sql.NullInt64
				err := tx.QueryRowContext(ctx, sqlTopSeq, tenantID).Scan(&n)
				top = n.Int64
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
				err = db.r.QueryRowContext(ctx, sqlVouched, tenantID).Scan(&n, &d)
				return n, d, err
			},
			All: func(ctx context.Context, c *store.ActionCheck) error { return db.checkActions(ctx, tenantID, c) },
		},
		Rollups: func(ctx context.Context) (*store.RollupMismatch, error) { return db.checkRollups(ctx, tenantID) },
		Checkpoint: func(ctx context.Context) (*store.AuditCheckpoint, error) {
			return scanCheckpoint(db.r.QueryRowContext(ctx, sqlCheckpoint, tenantID))
		},
		Workers: db.verifiers, Segment: db.verifySegment,
	})
}

// rollupDialect is SQLite's part of store.Rollup.MismatchQuery: buckets
// are floor(created_at / span) in Unix microseconds, as rollups.go and the
// triggers of migration 0002 compute them; text compares bytewise.
var rollupDialect = store.RollupDialect{
	Tenant: "?1",
	BucketOf: func(span time.Duration) string {
		us := strconv.FormatInt(span.Microseconds(), 10)
		return "created_at / " + us + " - (created_at % " + us + " < 0)"
	},
	// The indexes that cover each pass (named: with no statistics the
	// planner reads violations along actions_tenant_created, every row).
	Actions: func(r store.Rollup) string {
		if r.Violations {
			return "actions INDEXED BY actions_agent_violations"
		}
		return "actions INDEXED BY actions_tenant_created"
	},
}

// checkRollups compares the tenant's rollups with its actions
// (store.CheckRollups) in one read transaction.
func (db *DB) checkRollups(ctx context.Context, tenantID string) (m *store.RollupMismatch, err error) {
	err = db.read(ctx, func(tx *sql.Tx) error {
		m, err = store.CheckRollups(func(q string, scan func(store.Scanner) error) (bool, error) {
			switch err := scan(tx.QueryRowContext(ctx, q, tenantID)); {
			case errors.Is(err, sql.ErrNoRows):
				return false, nil
			case err != nil:
				return false, err
			}
			return true, nil
		}, rollupDialect, func(row store.Scanner, r store.Rollup) (store.RollupMismatch, error) {
			var bucket int64
			m, err := store.ScanRollupRow(row, r, &bucket)
			m.Start = fromMicros(bucket * r.Span.Microseconds())
			return m, err
		})
		return err
	})
	return m, err
}

// digested selects the entries l that name an action and mention an
// action digest.
const digested = ` AND l.action_id IS NOT NULL AND instr(l.metadata, '"` + store.MetaActionDigest + `":') > 0`

// sqlVouched is store.ActionSource.Vouched: how many actions the chain
// vouches for, and how many decisions among its entries.
const sqlVouched = `SELECT count(DISTINCT action_id), coalesce(sum(event IN ('action_approved', 'action_denied')), 0)
FROM audit_log AS l WHERE l.tenant_id = ?` + digested

// actionsFast is store.ActionSource.Fast: undecided actions that have an
// evaluation entry, in audit order, each with that entry by (tenant_id, seq);
// then every decision entry (a decided action's latest digest entry: a
// decision happens once, after the evaluation) with its action by ID. So
// it reads audited actions and decisions, never a bulk-loaded action.
func (db *DB) actionsFast(ctx context.Context, tenantID string, c *store.ActionCheck) error {
	return db.read(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{sqlFastUndecided, sqlFastDecided} {
			if err := feedEntries(tx.QueryContext(ctx, q, tenantID))(c); err != nil {
				return err
			}
		}
		return nil
	})
}

// sqlFastUndecided and sqlFastDecided are actionsFast's queries. Each is
// a CROSS JOIN, which in SQLite fixes the join order (left table outer):
// with a plain JOIN the planner walked the whole chain in seq order and
// probed the actions index once per entry for each of the three statuses,
// 3,000,000 index seeks for a 1,000,000-entry chain (seconds). Undecided
// actions are read along actions_tenant_created (actions_approvals holds
// only held ones, migration 0009), which carries status and audit_seq
// after its key (migration 0013): a decided or bulk-loaded action
// (audit_seq NULL) is skipped on its index entry, its row never read nor
// joined.
var (
	sqlFastUndecided = `SELECT ` + store.Qualified("a", actionCols) + `, l.seq, l.prev_hash, l.metadata
FROM actions AS a INDEXED BY actions_tenant_created CROSS JOIN audit_log AS l ON l.tenant_id = a.tenant_id AND l.seq = a.audit_seq
WHERE a.tenant_id = ? AND a.status IN ('allowed', 'blocked', 'pending_review') AND a.audit_seq > 0`
	sqlFastDecided = `SELECT ` + store.Qualified("a", actionCols) + `, l.seq, l.prev_hash, l.metadata
FROM audit_log AS l INDEXED BY audit_log_event CROSS JOIN actions AS a ON a.id = l.action_id AND a.tenant_id = l.tenant_id
WHERE l.tenant_id = ? AND l.event IN ('action_approved', 'action_denied')` + digested
)

// feedEntries feeds c the rows of a query of action columns followed by
// an entry's seq, prev_hash and metadata (store.ActionCheck.Feed).
func feedEntries(rows *sql.Rows, err error) func(c *store.ActionCheck) error {
	return func(c *store.ActionCheck) error {
		if err != nil {
			return err
		}
		defer rows.Close()
		return c.Feed(rows, scanAction)
	}
}

// sqlCheckActions is checkActions' first query: the entries
// audit_log_action holds, in (action_id, seq) order along it, merged with
// the evaluation entries it leaves out (migration 0010), sorted apart.
// Those are found by scanning the chain, not by their actions' audit_seq,
// so an action whose audit_seq was edited is still compared with its
// entry. Each part selects l.action_id, equal to a.id, as the action's
// first column, so the merge orders by what the index is ordered by.
var sqlCheckActions = `SELECT l.action_id, ` + store.Qualified("a", actionCols[strings.Index(actionCols, ",")+1:]) + `, l.seq, l.prev_hash, l.metadata
FROM audit_log AS l INDEXED BY audit_log_action JOIN actions AS a ON a.id = l.action_id AND a.tenant_id = l.tenant_id
WHERE l.tenant_id = ?1 AND l.evaluation = 0` + digested + `
UNION ALL
SELECT l.action_id, ` + store.Qualified("a", actionCols[strings.Index(actionCols, ",")+1:]) + `, l.seq, l.prev_hash, l.metadata
FROM audit_log AS l JOIN actions AS a ON a.id = l.action_id AND a.tenant_id = l.tenant_id
WHERE l.tenant_id = ?1 AND l.evaluation = 1` + digested + `
ORDER BY 1, 20`

// sqlOrphans is checkActions' second query: the entries that name an
// action and mention a digest, whose action is gone.
const sqlOrphans = `SELECT l.action_id, l.seq, l.prev_hash, l.metadata FROM audit_log AS l
WHERE l.tenant_id = ?` + digested + ` AND NOT EXISTS (SELECT 1 FROM actions AS a WHERE a.id = l.action_id AND a.tenant_id = l.tenant_id)`

// checkActions feeds c the tenant's entries that name an action and
// mention an action digest, with their actions, in (action_id, seq) order
// (sqlCheckActions), then those whose action is gone (store.ActionCheck).
func (db *DB) checkActions(ctx context.Context, tenantID string, c *store.ActionCheck) error {
	return db.read(ctx, func(tx *sql.Tx) error {
		if err := feedEntries(tx.QueryContext(ctx, sqlCheckActions, tenantID))(c); err != nil {
			return err
		}
		var (
			id, prev, meta string
			seq            int64
		)
		orphans, err := tx.QueryContext(ctx, sqlOrphans, tenantID)
		if err != nil {
			return err
		}
		defer orphans.Close()
		for orphans.Next() {
			if err := orphans.Scan(&id, &seq, &prev, &meta); err != nil {
				return err
			}
			c.Orphan(id, seq, prev, []byte(meta))
		}
		return orphans.Err()
	})
}

// verifyRange streams the tenant's entries with lo ≤ seq < hi through a
// verifier, holding one row at a time.
//
// Each row comes back as one packed column, "<seq> <ts> <len(event)>
// <len(metadata)> <len(prev_hash)> " followed by the four texts, because
// with this driver every column fetch costs a mutex round trip, and those
// dominated a streaming read: one column instead of six doubles the rate.
func (db *DB) verifyRange(ctx context.Context, tenantID string, lo, hi int64) (seg store.ChainSegment, err error) {
	err = db.read(ctx, func(tx *sql.Tx) error {
		seg, err = verifyIn(ctx, tx, tenantID, lo, hi)
		return err
	})
	return seg, err
}

// sqlVerifyRange is verifyIn's query: the entries with lo ≤ seq < hi in
// chain order, each packed into one column (see verifyRange).
const sqlVerifyRange = `SELECT printf('%d %d %d %d %d ', seq, ts, octet_length(event), octet_length(metadata),
    octet_length(prev_hash)) || event || metadata || prev_hash || entry_hash
FROM audit_log WHERE tenant_id = ? AND seq >= ? AND seq < ? ORDER BY seq`

// verifyIn is verifyRange in the transaction tx.
func verifyIn(ctx context.Context, tx *sql.Tx, tenantID string, lo, hi int64) (store.ChainSegment, error) {
	v := store.NewChainVerifier()
	err := func() error {
		rows, err := tx.QueryContext(ctx, sqlVerifyRange, tenantID, lo, hi)
		if err != nil {
			return err
		}
		defer rows.Close()
		var row sql.RawBytes
		for rows.Next() {
			if err := rows.Scan(&row); err != nil {
				return err
			}
			r, ok := unpackEntry(row)
			if !ok {
				return fmt.Errorf("malformed packed audit row %.40q", row)
			}
			v.Add(r.seq, fromMicros(r.ts), r.event, r.meta, r.prev, r.hash)
		}
		return rows.Err()
	}()
	return v.Segment(), err
}

// packedEntry is a row of verifyRange, its texts pointing into the row.
type packedEntry struct {
	seq, ts                 int64
	event, meta, prev, hash []byte
}

// unpackEntry splits a packed row: five space-terminated integers, then
// event, metadata and prev_hash of the given lengths, then entry_hash.
func unpackEntry(row []byte) (packedEntry, bool) {
	var n [5]int64
	for i := range n {
		sp := bytes.IndexByte(row, ' ')
		if sp < 0 {
			return packedEntry{}, false
		}
		x, err := strconv.ParseInt(string(row[:sp]), 10, 64)
		if err != nil {
			return packedEntry{}, false
		}
		n[i], row = x, row[sp+1:]
	}
	le, lm, lp, size := n[2], n[3], n[4], int64(len(row))
	// Each length is bounded before they are added, so the sum cannot wrap.
	if le < 0 || lm < 0 || lp < 0 || le > size || lm > size || lp > size || le+lm+lp > size {
		return packedEntry{}, false
	}
	return packedEntry{seq: n[0], ts: n[1], event: row[:le], meta: row[le : le+lm], prev: row[le+lm : le+lm+lp], hash: row[le+lm+lp:]}, true
}
