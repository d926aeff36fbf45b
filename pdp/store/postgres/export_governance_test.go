package postgres

import "context"

// ExecRaw runs one statement on the pool, bypassing the store: the tests'
// way to tamper with what it wrote.
func (db *DB) ExecRaw(ctx context.Context, query string, args ...any) error {
	_, err := db.pool.Exec(ctx, query, args...)
	return err
}

// WithVerifyParallelism makes VerifyAudit split chains into segments of at
// least minSegment entries over up to workers connections, so tests reach
// the joins between segments with small chains.
func WithVerifyParallelism(workers int, minSegment int64) Option {
	return func(o *options) { o.gov.verifiers, o.gov.verifySegment = workers, minSegment }
}
