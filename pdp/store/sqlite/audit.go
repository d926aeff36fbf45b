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
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

var _ store.GovernanceStore = (*DB)(nil)

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
	es := []store.AuditEntry{}
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return nil, err
		}
		es = append(es, e)
	}
	return es, rows.Err()
}

// appendEvent appends ev, whose metadata is canonical and whose
// metadata.action_id is actionID, at its timestamp (or now).
func (b *batch) appendEvent(tenantID string, ev store.AuditEvent, actionID string) (store.AuditEntry, error) {
	ts := ev.Timestamp
	if ts.IsZero() {
		ts = b.db.now()
	}
	return b.appendEntry(tenantID, ts, ev.Event, ev.Metadata, actionID)
}

// canonicalEvent checks ev and makes its metadata canonical with set's
// keys added; event fills an empty Event.
func canonicalEvent(ev store.AuditEvent, event string, set map[string]any) (store.AuditEvent, error) {
	if ev.Event == "" {
		ev.Event = event
	}
	if err := ev.Validate(); err != nil {
		return store.AuditEvent{}, err
	}
	meta, err := store.MergeMetadata(ev.Metadata, set)
	if err != nil {
		return store.AuditEvent{}, err
	}
	ev.Metadata = meta
	return ev, nil
}

// AppendAudit appends events to the tenant's chain in one group-committed
// transaction.
func (db *DB) AppendAudit(ctx context.Context, tenantID string, events ...store.AuditEvent) ([]store.AuditEntry, error) {
	if tenantID == "" {
		return nil, fmt.Errorf("append audit: %w", pdp.Invalid("tenant_id", "required"))
	}
	if len(events) == 0 {
		return []store.AuditEntry{}, nil
	}
	// Canonical forms are computed here, in the callers' goroutines, so
	// the committer only numbers, hashes and writes.
	evs := make([]store.AuditEvent, len(events))
	aids := make([]string, len(events))
	for i, ev := range events {
		var err error
		if evs[i], err = canonicalEvent(ev, "", nil); err != nil {
			return nil, fmt.Errorf("append audit: event %d: %w", i, err)
		}
		aids[i] = store.MetadataActionID(evs[i].Metadata)
	}
	out := make([]store.AuditEntry, 0, len(evs))
	err := db.gc.do(ctx, func(b *batch) error {
		out = out[:0]
		for i, ev := range evs {
			e, err := b.appendEvent(tenantID, ev, aids[i])
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, auditError("append audit", tenantID, err)
	}
	return out, nil
}

func auditError(op, tenantID string, err error) error {
	if isMissingParent(err) {
		return fmt.Errorf("%s: tenant %q: %w", op, tenantID, store.ErrNotFound)
	}
	return fmt.Errorf("%s of %q: %w", op, tenantID, err)
}

// FlushAudit waits until every audited write queued before it is answered.
func (db *DB) FlushAudit(ctx context.Context) error {
	if err := db.gc.do(ctx, func(*batch) error { return nil }); err != nil {
		return fmt.Errorf("flush audit: %w", err)
	}
	return nil
}

// ListAudit returns one page of the tenant's entries and the total
// matching q, from one snapshot.
func (db *DB) ListAudit(ctx context.Context, tenantID string, q store.AuditQuery) ([]store.AuditEntry, int, error) {
	where := ` WHERE tenant_id = ?`
	args := []any{tenantID}
	if !q.Since.IsZero() {
		where += ` AND ts >= ?`
		args = append(args, toMicros(stampUp(q.Since)))
	}
	if !q.Until.IsZero() {
		where += ` AND ts < ?`
		args = append(args, toMicros(stampUp(q.Until)))
	}
	if q.EventType != "" {
		where += ` AND event = ?`
		args = append(args, q.EventType)
	}
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
	// entries, never over whole rows — and then read by primary key.
	limit := int64(q.Limit)
	if limit <= 0 {
		limit = -1
	}
	pageArgs := append(append([]any(nil), args...), limit, max(q.Offset, 0))
	page := `SELECT ` + auditCols + ` FROM audit_log` + where + order + ` LIMIT ? OFFSET ?`
	switch {
	case q.EventType != "":
		page = `SELECT ` + auditCols + ` FROM audit_log INDEXED BY audit_log_event` + where + order + ` LIMIT ? OFFSET ?`
	case !q.Since.IsZero() || !q.Until.IsZero():
		page = `SELECT ` + auditCols + ` FROM audit_log WHERE tenant_id = ? AND seq IN (
    SELECT seq FROM audit_log INDEXED BY audit_log_ts` + where + order + ` LIMIT ? OFFSET ?)` + order
		pageArgs = append([]any{tenantID}, pageArgs...)
	}
	var (
		total int
		es    []store.AuditEntry
	)
	err := db.read(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM audit_log`+where, args...).Scan(&total); err != nil {
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

// stampUp rounds t up to the stored precision, so a bound between two
// stored instants selects what a full-precision comparison would.
func stampUp(t time.Time) time.Time {
	s := stamp(t)
	if s.Before(t) {
		s = s.Add(store.TimePrecision)
	}
	return s
}

// AuditTrail returns the tenant's entries about one action, in chain order.
func (db *DB) AuditTrail(ctx context.Context, tenantID, actionID string) ([]store.AuditEntry, error) {
	// INDEXED BY: see ListAudit; without it the planner walks the chain.
	rows, err := db.r.QueryContext(ctx, `SELECT `+auditCols+` FROM audit_log INDEXED BY audit_log_action
WHERE tenant_id = ? AND action_id = ? ORDER BY seq`, tenantID, actionID)
	if err != nil {
		return nil, fmt.Errorf("audit trail of %q: %w", actionID, err)
	}
	es, err := scanAudits(rows)
	if err != nil {
		return nil, fmt.Errorf("audit trail of %q: %w", actionID, err)
	}
	return es, nil
}

// VerifyAudit recomputes the tenant's chain. It reads the head and the
// highest sequence number, splits [1, highest] into one range per worker
// (up to GOMAXPROCS, within the read pool), streams each range through a
// store.ChainVerifier on its own read connection, and joins the segments
// (store.JoinSegments). The workers read from different snapshots, which
// is sound because the store never changes an entry once written and the
// ranges end at the highest number read first; appends made meanwhile are
// not part of this verification.
func (db *DB) VerifyAudit(ctx context.Context, tenantID string) (store.AuditVerification, error) {
	var (
		headSeq, top int64
		headHash     string
	)
	err := db.read(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT seq, entry_hash FROM audit_heads WHERE tenant_id = ?`, tenantID).Scan(&headSeq, &headHash)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		var n sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT max(seq) FROM audit_log WHERE tenant_id = ?`, tenantID).Scan(&n); err != nil {
			return err
		}
		top = n.Int64
		return nil
	})
	if err != nil {
		return store.AuditVerification{}, fmt.Errorf("verify audit of %q: %w", tenantID, err)
	}
	// Below verifySegment entries per worker, splitting costs more than it
	// saves.
	workers := int(min(int64(db.verifiers), max(top/db.verifySegment, 1)))
	segs := make([]store.ChainSegment, workers)
	g, gctx := errgroup.WithContext(ctx)
	for i := range workers {
		lo, hi := 1+top*int64(i)/int64(workers), 1+top*int64(i+1)/int64(workers)
		if i == 0 {
			lo = math.MinInt64 // whatever precedes entry 1 is a problem too
		}
		g.Go(func() (err error) {
			segs[i], err = db.verifyRange(gctx, tenantID, lo, hi)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return store.AuditVerification{}, fmt.Errorf("verify audit of %q: %w", tenantID, err)
	}
	return store.JoinSegments(headSeq, headHash, segs...), nil
}

// verifyRange streams the tenant's entries with lo ≤ seq < hi through a
// verifier, holding one row at a time.
//
// Each row comes back as one packed column, "<seq> <ts> <len(event)>
// <len(metadata)> <len(prev_hash)> " followed by the four texts, because
// with this driver every column fetch costs a mutex round trip, and those
// dominated a streaming read: one column instead of six doubles the rate.
func (db *DB) verifyRange(ctx context.Context, tenantID string, lo, hi int64) (store.ChainSegment, error) {
	v := store.NewChainVerifier()
	err := db.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT printf('%d %d %d %d %d ', seq, ts, octet_length(event), octet_length(metadata),
    octet_length(prev_hash)) || event || metadata || prev_hash || entry_hash
FROM audit_log WHERE tenant_id = ? AND seq >= ? AND seq < ? ORDER BY seq`, tenantID, lo, hi)
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
	})
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

// InsertActionAudited inserts a and appends its evaluation entry in one
// group-committed transaction.
func (db *DB) InsertActionAudited(ctx context.Context, a store.ActionRecord, ev store.AuditEvent) (store.ActionRecord, store.AuditEntry, error) {
	a, err := db.prepareAction(a)
	if err != nil {
		return store.ActionRecord{}, store.AuditEntry{}, fmt.Errorf("insert action: %w", err)
	}
	if ev.Timestamp.IsZero() {
		ev.Timestamp = a.CreatedAt
	}
	ev, err = canonicalEvent(ev, store.EventForStatus(a.Status), map[string]any{"action_id": a.ID})
	if err != nil {
		return store.ActionRecord{}, store.AuditEntry{}, fmt.Errorf("insert action %q: audit: %w", a.ID, err)
	}
	var entry store.AuditEntry
	err = db.gc.do(ctx, func(b *batch) error {
		e, err := b.appendEvent(a.TenantID, ev, a.ID)
		if err != nil {
			return err
		}
		if err := insertAction(b.ctx, b.tx, a, sql.NullInt64{Int64: e.SequenceNumber, Valid: true}); err != nil {
			return err
		}
		entry = e
		return nil
	})
	if err != nil {
		return store.ActionRecord{}, store.AuditEntry{}, insertActionError(a, err)
	}
	return a, entry, nil
}

// policyFacts are the metadata keys the store sets on a policy entry
// (see store.AuditedWrites).
func policyFacts(p pdp.Policy) map[string]any {
	var agent any // null for a tenant-wide policy
	scope := "tenant"
	if p.AgentID != "" {
		agent, scope = p.AgentID, "agent"
	}
	return map[string]any{"policy_name": p.Name, "agent_id": agent, "scope": scope, "version": p.Version, "enabled": p.Enabled}
}

// policyEntry appends the entry of policy write w.
func (b *batch) policyEntry(tenantID string, w store.PolicyWrite, ev store.AuditEvent, event string) (store.AuditEntry, error) {
	if ev.Timestamp.IsZero() {
		ev.Timestamp = w.Policy.UpdatedAt
	}
	ev, err := canonicalEvent(ev, event, policyFacts(w.Policy))
	if err != nil {
		return store.AuditEntry{}, err
	}
	return b.appendEvent(tenantID, ev, store.MetadataActionID(ev.Metadata))
}

// PutPolicyAudited is PutPolicy with its entry in the same transaction.
func (db *DB) PutPolicyAudited(ctx context.Context, req store.PutPolicyRequest, ev store.AuditEvent) (store.PolicyWrite, store.AuditEntry, error) {
	pw, err := db.preparePut(req)
	if err != nil {
		return store.PolicyWrite{}, store.AuditEntry{}, err
	}
	if _, err := canonicalEvent(ev, store.EventPolicyUpdated, nil); err != nil { // refuse bad metadata before queueing
		return store.PolicyWrite{}, store.AuditEntry{}, fmt.Errorf("put policy %s: audit: %w", keyString(pw.key), err)
	}
	var (
		out   store.PolicyWrite
		entry store.AuditEntry
	)
	err = db.gc.do(ctx, func(b *batch) error {
		w, err := db.putPolicy(b.ctx, b.tx, pw)
		if err != nil {
			return err
		}
		event := store.EventPolicyUpdated
		if w.Created {
			event = store.EventPolicyCreated
		}
		if entry, err = b.policyEntry(req.TenantID, w, ev, event); err != nil {
			return err
		}
		out = w
		return nil
	})
	if err != nil {
		return store.PolicyWrite{}, store.AuditEntry{}, fmt.Errorf("put policy %s: %w", keyString(pw.key), err)
	}
	return out, entry, nil
}

// DisablePolicyAudited is DisablePolicy with its entry in the same
// transaction.
func (db *DB) DisablePolicyAudited(ctx context.Context, key store.PolicyKey, ev store.AuditEvent) (store.PolicyWrite, store.AuditEntry, error) {
	if _, err := canonicalEvent(ev, store.EventPolicyDisabled, nil); err != nil {
		return store.PolicyWrite{}, store.AuditEntry{}, fmt.Errorf("disable policy %s: audit: %w", keyString(key), err)
	}
	var (
		out   store.PolicyWrite
		entry store.AuditEntry
	)
	err := db.gc.do(ctx, func(b *batch) error {
		w, err := db.disablePolicy(b.ctx, b.tx, key)
		if err != nil {
			return err
		}
		if entry, err = b.policyEntry(key.TenantID, w, ev, store.EventPolicyDisabled); err != nil {
			return err
		}
		out = w
		return nil
	})
	if err != nil {
		return store.PolicyWrite{}, store.AuditEntry{}, fmt.Errorf("disable policy %s: %w", keyString(key), err)
	}
	return out, entry, nil
}
