package store

import (
	"fmt"
	"strings"
)

// Backend names returned by ParseDSN and Driver.Backend.
const (
	BackendSQLite   = "sqlite"
	BackendPostgres = "postgres"
)

// ParseDSN splits a --store value into a backend name and what that
// backend's Open takes:
//
//	sqlite://./gatehouse.db          → ("sqlite", "./gatehouse.db")
//	sqlite:///var/lib/gatehouse/g.db → ("sqlite", "/var/lib/gatehouse/g.db")
//	postgres://user@host:5432/db     → ("postgres", the URL unchanged)
//
// postgresql:// is accepted as postgres://. Anything else is an error.
func ParseDSN(s string) (backend, dsn string, err error) {
	switch {
	case strings.HasPrefix(s, "sqlite://"):
		path := strings.TrimPrefix(s, "sqlite://")
		if path == "" {
			return "", "", fmt.Errorf("store %q: sqlite:// needs a file path, e.g. sqlite://./gatehouse.db", s)
		}
		if strings.ContainsAny(path, "?#") {
			return "", "", fmt.Errorf("store %q: a sqlite path may not contain '?' or '#'", s)
		}
		return BackendSQLite, path, nil
	case strings.HasPrefix(s, "postgres://"), strings.HasPrefix(s, "postgresql://"):
		return BackendPostgres, s, nil
	}
	return "", "", fmt.Errorf("store %q: want sqlite://<path> or postgres://<url>", s)
}
