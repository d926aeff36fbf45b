package postgres

import (
	"context"
	"fmt"
	"iter"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// copyCols are the columns BulkInsertActions loads: the action's, without
// an audit entry.
var copyCols = []string{"id", "tenant_id", "agent_id", "action", "connector", "operation", "params", "step_type", "status", "decision",
	"triggered_policy", "severity", "risk_score", "violation_count", "trace_id", "created_at", "decided_at", "approver_id", "decision_reason"}

// BulkInsertActions loads recs with one COPY in one transaction, streamed
// from the iterator in PostgreSQL's binary format. The dashboard's rollups
// are kept by the statement trigger as for any insert — one aggregate over
// the whole load — which also holds the heads of the loaded tenants' audit
// chains until the load commits, so their appends wait for it. Records in
// CreatedAt order load fastest (the time indexes are appended to rather
// than split).
func (db *DB) BulkInsertActions(ctx context.Context, recs iter.Seq[store.ActionRecord]) (int, error) {
	var n int64
	err := db.write(ctx, func(tx pgx.Tx) error {
		next, stop := iter.Pull(recs)
		defer stop()
		src := &actionSource{db: db, next: next}
		var err error
		n, err = tx.CopyFrom(ctx, pgx.Identifier{"actions"}, copyCols, src)
		if src.err != nil { // the record's own problem, not COPY's
			return src.err
		}
		return err
	})
	switch {
	case isDuplicate(err): // COPY does not say which record; PostgreSQL's detail does
		return 0, fmt.Errorf("bulk insert actions: %w (%v)", store.ErrDuplicate, err)
	case isMissingParent(err):
		return 0, fmt.Errorf("bulk insert actions: tenant: %w (%v)", store.ErrNotFound, err)
	case err != nil:
		return 0, fmt.Errorf("bulk insert actions: %w", err)
	}
	return int(n), nil
}

// actionSource feeds records to COPY, checking each as InsertAction does.
type actionSource struct {
	db   *DB
	next func() (store.ActionRecord, bool)
	n    int
	vals []any
	err  error
}

func (s *actionSource) Next() bool {
	a, ok := s.next()
	if !ok {
		return false
	}
	a, err := s.db.prepareAction(a)
	if err != nil {
		s.err = fmt.Errorf("record %d: %w", s.n, err)
		return false
	}
	s.n++
	s.vals = actionArgs(a, nil)[:len(copyCols)]
	return true
}

func (s *actionSource) Values() ([]any, error) { return s.vals, nil }

func (s *actionSource) Err() error { return s.err }
