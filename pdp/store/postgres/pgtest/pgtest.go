// Package pgtest gives tests a PostgreSQL database of their own: the
// driver's tests, the registry's replica tests and the multi-replica
// end-to-end suite all run against a real server, each test in a fresh
// database that is dropped when it ends.
//
// GATEHOUSE_TEST_POSTGRES names a database on a server the tests may create
// and drop databases on (trust, or a password in the URL); the default is
// the local server as user postgres. Without a server the tests skip,
// except in CI (CI=true), which starts one, where a missing server fails.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultAdminURL is the server the tests use when GATEHOUSE_TEST_POSTGRES
// is not set.
const DefaultAdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Bounds of the helpers' own work.
const (
	connectTimeout = 5 * time.Second
	dropTimeout    = 30 * time.Second
)

// AdminURL returns GATEHOUSE_TEST_POSTGRES, else DefaultAdminURL.
func AdminURL() string {
	if u := os.Getenv("GATEHOUSE_TEST_POSTGRES"); u != "" {
		return u
	}
	return DefaultAdminURL
}

// Connect opens one connection to u, closed when t ends, or ends the test:
// a skip when no server answers outside CI, a failure otherwise.
func Connect(t testing.TB, u string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), connectTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		msg := fmt.Sprintf("PostgreSQL at %s is unreachable (set GATEHOUSE_TEST_POSTGRES to a postgres:// URL of a server the tests may create databases on): %v", Redacted(u), err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// Redacted returns u without its password, for messages.
func Redacted(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "<unparsable URL>"
	}
	return p.Redacted()
}

// NewDatabase creates an empty database gatehouse_test_<random> for t and
// drops it (WITH FORCE, whatever is still connected) when t ends. It
// returns the database's URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	admin := Connect(t, AdminURL())
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	name := "gatehouse_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(t.Context(), `CREATE DATABASE `+name); err != nil {
		t.Fatalf("CREATE DATABASE %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), dropTimeout)
		defer cancel()
		if _, err := admin.Exec(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("DROP DATABASE %s: %v", name, err)
		}
	})
	u, err := url.Parse(AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}
