package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// migrationFS holds the schema, one file per version: NNNN_name.sql,
// numbered from 0001 without gaps. A released file is never edited; a
// change is a new file.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// migrationLockKey is the pg_advisory_lock key every Gatehouse takes while
// it migrates a database: the ASCII of "gatehous". It is fixed, not derived
// from the schema or URL, so every replica of every version agrees on it.
const migrationLockKey int64 = 0x67617465686f7573

// unlockTimeout bounds releasing the advisory lock, which must be tried
// even when the caller's context is done.
const unlockTimeout = 5 * time.Second

type migration = store.Migration

// migrations returns the embedded migrations in version order.
func migrations() ([]migration, error) {
	return store.ReadMigrations(migrationFS, "migrations")
}

// migrate applies, in order, each migration the database has not recorded
// in schema_migrations, each in its own transaction together with its
// record. It holds migrationLockKey on one connection throughout: replicas
// starting at once take turns, and each later one finds the versions
// recorded and applies nothing. A session lock rather than a transaction
// one keeps each migration in its own transaction (a failed migration
// leaves the earlier ones applied) while the whole run stays exclusive.
// Waiting for the lock is bounded only by ctx.
func migrate(ctx context.Context, pool *pgxpool.Pool, now func() time.Time) (err error) {
	ms, err := migrations()
	if err != nil {
		return err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLockKey); err != nil {
		return fmt.Errorf("take the migration lock: %w", err)
	}
	defer func() {
		if uerr := unlock(ctx, conn); uerr != nil {
			err = errors.Join(err, uerr)
		}
	}()

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL
)`); err != nil {
		return err
	}
	applied := map[int]bool{}
	rows, err := conn.Query(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return err
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return err
	}
	newest := 0
	for _, v := range versions {
		applied[int(v)] = true
		newest = max(newest, int(v))
	}
	if newest > len(ms) {
		return fmt.Errorf("%w: database at version %d, binary knows up to %d", store.ErrSchemaTooNew, newest, len(ms))
	}
	for _, m := range ms {
		if applied[m.Version] {
			continue
		}
		if err := pgx.BeginTxFunc(ctx, conn, writeTx, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.Version, m.Name, now())
			return err
		}); err != nil {
			return fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
		}
	}
	return nil
}

// unlock releases the migration lock. If that fails (ctx was cancelled
// mid-query, the connection broke), it closes the connection instead, which
// ends the session and with it the lock, rather than return to the pool a
// connection that still holds it.
func unlock(ctx context.Context, conn *pgxpool.Conn) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unlockTimeout)
	defer cancel()
	var released bool
	err := conn.QueryRow(ctx, `SELECT pg_advisory_unlock($1)`, migrationLockKey).Scan(&released)
	if err == nil && released {
		return nil
	}
	c := conn.Hijack()
	if cerr := c.Close(ctx); cerr != nil {
		return fmt.Errorf("release the migration lock: %w", errors.Join(err, cerr))
	}
	return nil
}
