package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/postgres"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/postgres/pgtest"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/storetest"
)

// The tests run against a real PostgreSQL, each in a database of its own;
// see pgtest for which server and what happens without one.
var (
	adminURL    = pgtest.AdminURL
	connect     = pgtest.Connect
	redacted    = pgtest.Redacted
	newDatabase = pgtest.NewDatabase
)

// withParam returns u with the query parameter k set to v.
func withParam(t *testing.T, u, k, v string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	q := p.Query()
	q.Set(k, v)
	p.RawQuery = q.Encode()
	return p.String()
}

func open(t *testing.T, u string, opts ...postgres.Option) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(t.Context(), u, opts...)
	if err != nil {
		t.Fatalf("Open(%s): %v", redacted(u), err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// TestConformance runs the suite in one fresh database, each subtest in a
// schema of its own (search_path), so the suite's parallel subtests each
// get an empty store without a CREATE DATABASE apiece.
func TestConformance(t *testing.T) {
	u := newDatabase(t)
	admin := connect(t, u)
	var mu sync.Mutex // one pgx.Conn is not for concurrent use
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T) store.Store {
		schema := fmt.Sprintf("conformance_%d", n.Add(1))
		mu.Lock()
		_, err := admin.Exec(t.Context(), `CREATE SCHEMA `+schema)
		mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		return open(t, withParam(t, u, "search_path", schema), postgres.WithMaxConns(4))
	})
}

func TestReopen(t *testing.T) {
	storetest.RunReopen(t, func(t *testing.T) func(t *testing.T) store.Store {
		u := newDatabase(t)
		return func(t *testing.T) store.Store {
			db, err := postgres.Open(t.Context(), u)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return db
		}
	})
}

// TestConcurrentMigrate starts several replicas on one empty database at
// the same instant: every Open succeeds and the schema is there once.
func TestConcurrentMigrate(t *testing.T) {
	u := newDatabase(t)
	const replicas = 4
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, replicas)
	)
	for i := range replicas {
		wg.Go(func() {
			<-start
			db, err := postgres.Open(t.Context(), u)
			if err == nil {
				err = db.Close()
			}
			errs[i] = err
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: Open: %v", i, err)
		}
	}
	conn := connect(t, u)
	var rows, distinct, newest int
	if err := conn.QueryRow(t.Context(), `SELECT count(*), count(DISTINCT version), max(version) FROM schema_migrations`).Scan(&rows, &distinct, &newest); err != nil {
		t.Fatal(err)
	}
	if rows != newest || distinct != newest || newest < 1 {
		t.Errorf("schema_migrations: %d rows, %d distinct, newest %d; want each version once", rows, distinct, newest)
	}
	var tables []string
	r, err := conn.Query(t.Context(), `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`)
	if err != nil {
		t.Fatal(err)
	}
	if tables, err = pgx.CollectRows(r, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(tables, ","), "action_counts_hourly,actions,agent_violations_daily,api_keys,approval_votes,audit_checkpoints,audit_heads,audit_log,policies,policy_versions,policy_violations_daily,schema_migrations,tenants"; got != want {
		t.Errorf("tables = %s, want %s", got, want)
	}
}

// TestMigrationWaitsForLock holds the migration lock as a replica in the
// middle of migrating would: Open must wait for it, not migrate beside it,
// and give up when its context ends.
func TestMigrationWaitsForLock(t *testing.T) {
	u := newDatabase(t)
	holder := connect(t, u)
	if _, err := holder.Exec(t.Context(), `SELECT pg_advisory_lock($1)`, postgres.MigrationLockKey); err != nil {
		t.Fatal(err)
	}

	short, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if db, err := postgres.Open(short, u); err == nil {
		_ = db.Close()
		t.Fatal("Open succeeded while another session held the migration lock")
	}

	done := make(chan error, 1)
	go func() {
		db, err := postgres.Open(t.Context(), u)
		if err == nil {
			err = db.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Open returned (%v) while another session held the migration lock", err)
	case <-time.After(300 * time.Millisecond):
	}
	var migrated bool
	if err := holder.QueryRow(t.Context(), `SELECT to_regclass('tenants') IS NOT NULL`).Scan(&migrated); err != nil || migrated {
		t.Fatalf("tables created under another session's lock: %v, %v", migrated, err)
	}
	if _, err := holder.Exec(t.Context(), `SELECT pg_advisory_unlock($1)`, postgres.MigrationLockKey); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Open after the lock was released: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Open still waiting 10s after the lock was released")
	}
	// Neither the cancelled nor the finished Open left the lock held.
	var free bool
	if err := holder.QueryRow(t.Context(), `SELECT pg_try_advisory_lock($1)`, postgres.MigrationLockKey).Scan(&free); err != nil || !free {
		t.Errorf("migration lock still held after Open: %v, %v", free, err)
	}
}

func TestMigrationsIdempotentAndVersioned(t *testing.T) {
	u := newDatabase(t)
	for range 3 {
		db, err := postgres.Open(t.Context(), u)
		if err != nil {
			t.Fatal(err)
		}
		_ = db.Close()
	}
	conn := connect(t, u)
	var n, newest int
	if err := conn.QueryRow(t.Context(), `SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &newest); err != nil {
		t.Fatal(err)
	}
	if n != newest || n < 1 {
		t.Errorf("schema_migrations holds %d rows up to version %d after three opens", n, newest)
	}

	// A database a newer binary migrated is refused, not written to.
	if _, err := conn.Exec(t.Context(), `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'future', now())`, newest+1); err != nil {
		t.Fatal(err)
	}
	if db, err := postgres.Open(t.Context(), u); !errors.Is(err, store.ErrSchemaTooNew) {
		if db != nil {
			_ = db.Close()
		}
		t.Errorf("Open of a newer schema: %v, want ErrSchemaTooNew", err)
	}
}

// TestReplicas runs writers through two DBs on one database, as two
// Gatehouse replicas would: the tenant's row lock must keep the limit and
// the revisions exact across them.
func TestReplicas(t *testing.T) {
	ctx := t.Context()
	u := newDatabase(t)
	dbs := []*postgres.DB{open(t, u, postgres.WithMaxConns(4)), open(t, u, postgres.WithMaxConns(4))}
	tn, err := dbs[0].CreateTenant(ctx, store.Tenant{ID: "acme", Tier: store.TierPro, Mode: pdp.ModeEnforcement})
	if err != nil {
		t.Fatal(err)
	}
	const (
		writers = 16
		each    = 20
		limit   = 10
	)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		accepted int
		revs     = map[uint64]bool{}
	)
	record := func(g int, last *uint64, rev uint64) {
		if rev <= *last {
			t.Errorf("writer %d: revision %d after %d", g, rev, *last)
		}
		*last = rev
		mu.Lock()
		defer mu.Unlock()
		if revs[rev] {
			t.Errorf("revision %d returned twice", rev)
		}
		revs[rev] = true
	}
	for g := range writers {
		db := dbs[g%2]
		wg.Go(func() {
			var last uint64
			for i := range each {
				id := fmt.Sprintf("act_%02d_%02d", g, i)
				if _, err := db.InsertAction(ctx, store.ActionRecord{ID: id, TenantID: "acme", Action: "x", Status: pdp.StatusAllowed}); err != nil {
					t.Errorf("insert %s: %v", id, err)
					return
				}
				agent := ""
				if i%2 == 1 {
					agent = "bot" // both scopes count against one limit
				}
				w, err := db.PutPolicy(ctx, store.PutPolicyRequest{TenantID: "acme", Limit: limit,
					Policy: pdp.Policy{Name: fmt.Sprintf("P%02d_%02d", g, i), AgentID: agent, Enabled: true}})
				var le *store.LimitError
				switch {
				case err == nil:
					record(g, &last, w.Revision)
					mu.Lock()
					accepted++
					mu.Unlock()
				case errors.As(err, &le):
					if le.Current != limit {
						t.Errorf("refused at %d of %d", le.Current, le.Limit)
					}
				default:
					t.Errorf("put policy: %v", err)
					return
				}
				// UpdateTenant reads before it writes, under the same lock.
				mode := fmt.Sprint(g)
				upd, err := db.UpdateTenant(ctx, "acme", store.TenantUpdate{ApprovalMode: &mode})
				if err != nil {
					t.Errorf("update tenant: %v", err)
					return
				}
				record(g, &last, upd.Revision)
				// Reads interleave with the writes and see whole writes.
				tp, err := db.TenantPolicies(ctx, "acme")
				if err != nil {
					t.Errorf("TenantPolicies: %v", err)
					return
				}
				if len(tp.Policies) > limit {
					t.Errorf("TenantPolicies at revision %d holds %d enabled policies, limit %d", tp.Revision, len(tp.Policies), limit)
				}
			}
		})
	}
	wg.Wait()
	if accepted != limit {
		t.Errorf("%d policies accepted under limit %d", accepted, limit)
	}
	if n, err := dbs[1].CountEnabledPolicies(ctx, "acme"); err != nil || n != limit {
		t.Errorf("CountEnabledPolicies = %d, %v; want %d", n, err, limit)
	}
	_, total, err := dbs[1].ListActions(ctx, "acme", store.ActionQuery{Limit: 1})
	if err != nil || total != writers*each {
		t.Errorf("ListActions total = %d, %v; want %d", total, err, writers*each)
	}
	// Refused writes take no revision: the successful ones are exactly the
	// revisions after the tenant's first, without gaps.
	final := tn.Revision + uint64(limit+writers*each)
	if got, err := dbs[0].GetTenant(ctx, "acme"); err != nil || got.Revision != final {
		t.Errorf("revision = %d, %v; want %d", got.Revision, err, final)
	}
	for r := tn.Revision + 1; r <= final; r++ {
		if !revs[r] {
			t.Errorf("revision %d was never returned", r)
		}
	}
}

func TestOpenRefuses(t *testing.T) {
	u := adminURL()
	cases := []struct {
		name string
		url  string
		opts []postgres.Option
	}{
		{"sqlite URL", "sqlite://./g.db", nil},
		{"keyword DSN", "host=127.0.0.1 user=postgres", nil},
		{"empty", "", nil},
		{"negative max conns", u, []postgres.Option{postgres.WithMaxConns(-1)}},
		{"min above max", u, []postgres.Option{postgres.WithMaxConns(2), postgres.WithMinConns(3)}},
		{"nil clock", u, []postgres.Option{postgres.WithNowFunc(nil)}},
	}
	for _, c := range cases {
		if db, err := postgres.Open(t.Context(), c.url, c.opts...); err == nil {
			_ = db.Close()
			t.Errorf("%s: Open succeeded", c.name)
		}
	}
	// A server that does not answer fails Open, without the password.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := postgres.Open(ctx, "postgres://gatehouse:s3cr3t-pw@127.0.0.1:1/db?sslmode=disable&connect_timeout=2")
	if err == nil {
		t.Fatal("Open of an unreachable server succeeded")
	}
	if strings.Contains(err.Error(), "s3cr3t-pw") {
		t.Errorf("error leaks the password: %v", err)
	}
}

func TestPostgresqlScheme(t *testing.T) {
	u := newDatabase(t)
	db := open(t, "postgresql://"+strings.TrimPrefix(u, "postgres://"))
	if b := db.Backend(); b != "postgres" {
		t.Errorf("Backend() = %q", b)
	}
}

func TestNowFunc(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 6789, time.FixedZone("X", 3600))
	db := open(t, newDatabase(t), postgres.WithNowFunc(func() time.Time { return at }))
	tn, err := db.CreateTenant(t.Context(), store.Tenant{ID: "a", Tier: store.TierFree, Mode: pdp.ModeEnforcement})
	if err != nil {
		t.Fatal(err)
	}
	want := at.UTC().Truncate(time.Microsecond)
	if tn.CreatedAt != want {
		t.Errorf("CreatedAt = %v, want %v", tn.CreatedAt, want)
	}
	if read, err := db.GetTenant(t.Context(), "a"); err != nil || read.CreatedAt != want {
		t.Errorf("read back CreatedAt = %v, %v; want %v", read.CreatedAt, err, want)
	}
}

// TestText checks what PostgreSQL cannot store as text (NUL, invalid
// UTF-8): a write of it is a validation error, a lookup by it finds nothing
// (it could never have been written), never a database error.
func TestText(t *testing.T) {
	ctx := t.Context()
	db := open(t, newDatabase(t))
	if _, err := db.CreateTenant(ctx, store.Tenant{ID: "acme", Tier: store.TierPro, Mode: pdp.ModeEnforcement}); err != nil {
		t.Fatal(err)
	}
	var ve *pdp.ValidationError
	bad := []string{"nul\x00name", "bad\xffutf8"}
	for _, s := range bad {
		if _, err := db.PutPolicy(ctx, store.PutPolicyRequest{TenantID: "acme", Limit: store.Unlimited, Policy: pdp.Policy{Name: s, Enabled: true}}); !errors.As(err, &ve) || ve.Field != "name" {
			t.Errorf("PutPolicy name %q: %v, want a validation error for name", s, err)
		}
		if _, err := db.CreateTenant(ctx, store.Tenant{ID: "t", Name: s, Tier: store.TierPro, Mode: pdp.ModeEnforcement}); !errors.As(err, &ve) || ve.Field != "name" {
			t.Errorf("CreateTenant name %q: %v, want a validation error for name", s, err)
		}
		if _, err := db.InsertAction(ctx, store.ActionRecord{ID: "act_1", TenantID: "acme", Action: s, Status: pdp.StatusAllowed}); !errors.As(err, &ve) || ve.Field != "action" {
			t.Errorf("InsertAction action %q: %v, want a validation error for action", s, err)
		}
		if _, err := db.GetAction(ctx, "acme", s); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetAction %q: %v, want ErrNotFound", s, err)
		}
		if _, err := db.GetTenant(ctx, s); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetTenant %q: %v, want ErrNotFound", s, err)
		}
		if _, err := db.GetPolicy(ctx, store.PolicyKey{TenantID: "acme", AgentID: s, Name: "P"}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetPolicy agent %q: %v, want ErrNotFound", s, err)
		}
		// store.ValidateAction refuses it on every driver, before any lookup.
		if _, err := db.InsertAction(ctx, store.ActionRecord{ID: "act_2", TenantID: s, Action: "x", Status: pdp.StatusAllowed}); !errors.As(err, &ve) || ve.Field != "tenant_id" {
			t.Errorf("InsertAction tenant %q: %v, want a validation error for tenant_id", s, err)
		}
		if ps, err := db.ListPolicies(ctx, "acme", store.PolicyFilter{AgentID: &s}); err != nil || len(ps) != 0 {
			t.Errorf("ListPolicies agent %q: %v, %v; want none", s, ps, err)
		}
	}
	// Invalid UTF-8 inside a JSON string is valid JSON to Go, not to
	// PostgreSQL's text.
	params := []byte("{\"a\":\"\xff\"}")
	if _, err := db.InsertAction(ctx, store.ActionRecord{ID: "act_3", TenantID: "acme", Action: "x", Status: pdp.StatusAllowed, Params: params}); !errors.As(err, &ve) || ve.Field != "params" {
		t.Errorf("InsertAction with invalid UTF-8 params: %v, want a validation error for params", err)
	}
	// What PostgreSQL's json does accept and jsonb would not: \u0000, lone
	// surrogates, key order and spacing, all read back byte for byte.
	params = []byte(`{"z": "\u0000", "a" : "\ud800", "n": 1.10}`)
	if _, err := db.InsertAction(ctx, store.ActionRecord{ID: "act_4", TenantID: "acme", Action: "x", Status: pdp.StatusAllowed, Params: params}); err != nil {
		t.Fatal(err)
	}
	if a, err := db.GetAction(ctx, "acme", "act_4"); err != nil || string(a.Params) != string(params) {
		t.Errorf("params read back as %s, %v; want %s", a.Params, err, params)
	}
}

// TestPolicyOrderIsByteOrder checks listings sort as SQLite does, whatever
// the database's locale: upper case before lower case, '-' before letters.
func TestPolicyOrderIsByteOrder(t *testing.T) {
	ctx := t.Context()
	db := open(t, newDatabase(t))
	if _, err := db.CreateTenant(ctx, store.Tenant{ID: "acme", Tier: store.TierPro, Mode: pdp.ModeEnforcement}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"b", "B", "a-b", "ab", "A", "_x", "é"} {
		if _, err := db.PutPolicy(ctx, store.PutPolicyRequest{TenantID: "acme", Limit: store.Unlimited, Policy: pdp.Policy{Name: n, Enabled: true}}); err != nil {
			t.Fatal(err)
		}
	}
	ps, err := db.ListPolicies(ctx, "acme", store.PolicyFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.Name)
	}
	if g, want := strings.Join(got, " "), "A B _x a-b ab b é"; g != want {
		t.Errorf("order = %s, want %s", g, want)
	}
}
