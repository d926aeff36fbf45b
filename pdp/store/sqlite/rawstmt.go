package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
)

// rawStmts runs the committer's hot statements — an action's two inserts,
// the batch's rollup and head upserts, its data_version and head reads —
// on the write connection's driver connection (sql.Conn.Raw) instead of
// through database/sql's Tx and Stmt wrappers: no per-batch Tx.StmtContext
// binding, no argument conversion and copy per call (database/sql's
// driverArgsConnLocked), no connection lock taken per statement, and the
// arguments' []driver.NamedValue reused. The batch's transaction is still
// database/sql's (BEGIN and COMMIT, and the rare statements of approvals
// and policy writes, go through it): Raw runs these statements inside it,
// on the same connection.
//
// Statements are prepared on first use on the driver connection, kept
// across batches (modernc keeps each one's SQLite handle), and closed by
// Close. If database/sql ever replaces the write connection (it discards
// one its driver calls bad), the statements of the old one are dropped
// with it and prepared again on the new one.
//
// Only the committer goroutine uses a rawStmts, and only inside Raw, so
// it needs no lock of its own. Arguments must be values the driver binds
// as they are (string, int64, float64, bool, nil; see actionArgs):
// nothing converts them on this path.
type rawStmts struct {
	conn  any // the driver connection the statements were prepared on
	stmts map[string]driver.Stmt
	nv    []driver.NamedValue
	buf   []any // the batches' argument space, kept between them

	// The call Raw runs (run reads them: a method value bound once, so a
	// call allocates no closure).
	ctx   context.Context
	query string
	args  []any
	dest  []driver.Value // a query's first row; nil for an exec
	found bool           // the query returned a row
	fn    func(any) error
}

// The driver's connection or statement lacks a method with a context
// (modernc's have them all).
var (
	errNoDriverPrepare = errors.New("sqlite: the driver connection cannot prepare statements with a context")
	errNoDriverContext = errors.New("sqlite: the driver statement cannot run with a context")
)

func newRawStmts() *rawStmts {
	r := &rawStmts{stmts: map[string]driver.Stmt{}}
	r.fn = r.run
	return r
}

// stmt returns query prepared on dc.
func (r *rawStmts) stmt(dc any) (driver.Stmt, error) {
	if dc != r.conn {
		// A new connection: the old one's statements died with it.
		r.conn, r.stmts = dc, map[string]driver.Stmt{}
	}
	if st := r.stmts[r.query]; st != nil {
		return st, nil
	}
	c, ok := dc.(driver.ConnPrepareContext)
	if !ok {
		return nil, errNoDriverPrepare
	}
	st, err := c.PrepareContext(r.ctx, r.query)
	if err != nil {
		return nil, fmt.Errorf("prepare %q: %w", r.query, err)
	}
	r.stmts[r.query] = st
	return st, nil
}

// run is Raw's function: it runs the call r holds on dc.
func (r *rawStmts) run(dc any) error {
	st, err := r.stmt(dc)
	if err != nil {
		return err
	}
	nv := r.nv[:0]
	for i, a := range r.args {
		nv = append(nv, driver.NamedValue{Ordinal: i + 1, Value: a})
	}
	r.nv = nv
	defer clear(nv) // hold no caller's values between calls
	if r.dest == nil {
		ex, ok := st.(driver.StmtExecContext)
		if !ok {
			return errNoDriverContext
		}
		_, err = ex.ExecContext(r.ctx, nv)
		return err
	}
	q, ok := st.(driver.StmtQueryContext)
	if !ok {
		return errNoDriverContext
	}
	rows, err := q.QueryContext(r.ctx, nv)
	if err != nil {
		return err
	}
	switch err = rows.Next(r.dest); {
	case err == nil:
		r.found = true
	case errors.Is(err, io.EOF):
		err = nil
	}
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	return err
}

// close closes the statements prepared on dc (Raw's function at Close).
func (r *rawStmts) close(dc any) error {
	var errs []error
	if dc == r.conn {
		for _, st := range r.stmts {
			errs = append(errs, st.Close())
		}
	}
	r.conn, r.stmts = nil, map[string]driver.Stmt{}
	return errors.Join(errs...)
}
