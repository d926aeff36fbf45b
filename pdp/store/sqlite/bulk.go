package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"iter"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

var _ store.BulkActions = (*DB)(nil)

// BulkInsertActions inserts recs in one transaction through one prepared
// statement, with a larger page cache for the duration, so index updates
// stay in memory, and adds them to the dashboard's rollups at the end. Records in CreatedAt order load fastest (the time indexes are
// appended to rather than split).
func (db *DB) BulkInsertActions(ctx context.Context, recs iter.Seq[store.ActionRecord]) (int, error) {
	n := 0
	err := db.write(ctx, func(tx *sql.Tx) error {
		var old int64
		if err := tx.QueryRowContext(ctx, `PRAGMA cache_size`).Scan(&old); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `PRAGMA cache_size = -262144`); err != nil { // 256 MiB
			return err
		}
		defer func() { _, _ = tx.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf(`PRAGMA cache_size = %d`, old)) }()
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO actions (`+actionCols+`, audit_seq)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		var roll rollups
		for a := range recs {
			a, err := db.prepareAction(a)
			if err != nil {
				return fmt.Errorf("record %d: %w", n, err)
			}
			if _, err := stmt.ExecContext(ctx, a.ID, a.TenantID, a.AgentID, a.Action, a.Connector, a.Operation, nullJSON(a.Params), a.StepType,
				a.Status, nullJSON(a.Decision), a.TriggeredPolicy, a.Severity, a.RiskScore, a.ViolationCount, a.TraceID,
				toMicros(a.CreatedAt), nullMicros(a.DecidedAt), a.ApproverID, a.DecisionReason); err != nil {
				return db.InsertActionError(a, err)
			}
			roll.add(a)
			n++
		}
		return roll.writeTo(ctx, tx)
	})
	if err != nil {
		return 0, fmt.Errorf("bulk insert actions: %w", err)
	}
	return n, nil
}
