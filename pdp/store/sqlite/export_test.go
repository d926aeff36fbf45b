package sqlite

import "context"

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
