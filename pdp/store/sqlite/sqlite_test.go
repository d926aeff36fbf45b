package sqlite_test

import (
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/sqlite"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/storetest"
)

func open(t *testing.T, path string, opts ...sqlite.Option) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(t.Context(), path, opts...)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "gatehouse.db"))
	})
}

func TestReopen(t *testing.T) {
	storetest.RunReopen(t, func(t *testing.T) func(t *testing.T) store.Store {
		path := filepath.Join(t.TempDir(), "gatehouse.db")
		return func(t *testing.T) store.Store {
			db, err := sqlite.Open(t.Context(), path)
			if err != nil {
				t.Fatalf("Open(%s): %v", path, err)
			}
			return db
		}
	})
}

// TestManyWriters runs writers through two DBs on one file, as a server and
// a `gatehouse tenant create` beside it would: BEGIN IMMEDIATE and
// busy_timeout must turn contention into waiting, never into an error, a
// lost write or a limit passed.
func TestManyWriters(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	dbs := []*sqlite.DB{open(t, path), open(t, path)}
	if _, err := dbs[0].CreateTenant(ctx, store.Tenant{ID: "acme", Tier: store.TierPro, Mode: pdp.ModeEnforcement}); err != nil {
		t.Fatal(err)
	}
	const (
		writers = 16
		each    = 25
		limit   = 10
	)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		accepted int
	)
	for g := range writers {
		db := dbs[g%2]
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("act_%02d_%02d", g, i)
				if _, err := db.InsertAction(ctx, store.ActionRecord{ID: id, TenantID: "acme", Action: "x", Status: pdp.StatusAllowed}); err != nil {
					t.Errorf("insert %s: %v", id, err)
					return
				}
				_, err := db.PutPolicy(ctx, store.PutPolicyRequest{TenantID: "acme", Limit: limit,
					Policy: pdp.Policy{Name: fmt.Sprintf("P%02d_%02d", g, i), Enabled: true}})
				var le *store.LimitError
				switch {
				case err == nil:
					mu.Lock()
					accepted++
					mu.Unlock()
				case errors.As(err, &le):
				default:
					t.Errorf("put policy: %v", err)
					return
				}
				// UpdateTenant reads before it writes: the transaction
				// that would fail to upgrade without BEGIN IMMEDIATE.
				if _, err := db.UpdateTenant(ctx, "acme", store.TenantUpdate{ApprovalMode: ptr(fmt.Sprint(g))}); err != nil {
					t.Errorf("update tenant: %v", err)
					return
				}
				// Reads interleave with the writes.
				if _, err := db.TenantPolicies(ctx, "acme"); err != nil {
					t.Errorf("TenantPolicies: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	_, total, err := dbs[1].ListActions(ctx, "acme", store.ActionQuery{Limit: 1})
	if err != nil || total != writers*each {
		t.Errorf("ListActions total = %d, %v; want %d", total, err, writers*each)
	}
	if accepted != limit {
		t.Errorf("%d policies accepted under limit %d", accepted, limit)
	}
	tn, err := dbs[0].GetTenant(ctx, "acme")
	if want := uint64(1 + limit + writers*each); err != nil || tn.Revision != want {
		t.Errorf("revision = %d, %v; want %d (refused writes must not count)", tn.Revision, err, want)
	}
}

func ptr[T any](v T) *T { return &v }

func TestOpenRefuses(t *testing.T) {
	for _, path := range []string{"", ":memory:", "file:x.db", "x.db?mode=ro", filepath.Join(t.TempDir(), "missing", "dir", "g.db")} {
		if db, err := sqlite.Open(t.Context(), path); err == nil {
			_ = db.Close()
			t.Errorf("Open(%q) succeeded", path)
		}
	}
	if _, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "g.db"), sqlite.WithReaders(0)); err == nil {
		t.Error("Open with 0 readers succeeded")
	}
}

func TestMigrationsIdempotentAndVersioned(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	for range 3 {
		db, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		_ = db.Close()
	}
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var n, newest int
	if err := raw.QueryRow(`SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &newest); err != nil {
		t.Fatal(err)
	}
	if n != newest || n < 1 {
		t.Errorf("schema_migrations holds %d rows up to version %d after three opens", n, newest)
	}

	// A database a newer binary migrated is refused, not written to.
	if _, err := raw.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'future', 0)`, newest+1); err != nil {
		t.Fatal(err)
	}
	if db, err := sqlite.Open(t.Context(), path); !errors.Is(err, store.ErrSchemaTooNew) {
		if db != nil {
			_ = db.Close()
		}
		t.Errorf("Open of a newer schema: %v, want ErrSchemaTooNew", err)
	}
}

func TestNowFunc(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 6789, time.FixedZone("X", 3600))
	db := open(t, filepath.Join(t.TempDir(), "g.db"), sqlite.WithNowFunc(func() time.Time { return at }))
	tn, err := db.CreateTenant(t.Context(), store.Tenant{ID: "a", Tier: store.TierFree, Mode: pdp.ModeEnforcement})
	if err != nil {
		t.Fatal(err)
	}
	if want := at.UTC().Truncate(time.Microsecond); tn.CreatedAt != want {
		t.Errorf("CreatedAt = %v, want %v", tn.CreatedAt, want)
	}
}

func TestBackend(t *testing.T) {
	if b := open(t, filepath.Join(t.TempDir(), "g.db")).Backend(); b != "sqlite" {
		t.Errorf("Backend() = %q", b)
	}
}
