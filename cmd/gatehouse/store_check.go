package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// existingStore returns an error naming the file when dsn is a SQLite
// store that does not exist. Opening a SQLite store creates it, so a
// command run from another folder (sqlite://./gatehouse.db is relative)
// or with a mistyped path would otherwise work on a new, empty store and
// look like it succeeded. Only `serve` creates stores. PostgreSQL
// databases are never created by Gatehouse, so they always pass here.
func existingStore(dsn string) error {
	backend, path, err := store.ParseDSN(dsn)
	if err != nil || backend != store.BackendSQLite {
		return nil // the open reports a bad DSN
	}
	abs, aerr := filepath.Abs(path)
	if aerr != nil {
		abs = path
	}
	_, err = os.Stat(path)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("no store at %s (--store %s): run the command where the server's store is, or give its --store (or GATEHOUSE_STORE); only `gatehouse serve` creates a store", abs, dsn)
	}
	return fmt.Errorf("store %s: %w", abs, err)
}
