package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/postgres"
)

// notifyBound is docs/api.md §A4's "within 1 s on every replica": what one
// notification may take from commit to subscriber.
const notifyBound = time.Second

// liveWithin bounds a subscription's first connection, or a reconnection.
const liveWithin = 10 * time.Second

// next returns the next change on ch within d, failing the test otherwise.
func next(t *testing.T, ch <-chan store.RevisionChange, d time.Duration) store.RevisionChange {
	t.Helper()
	select {
	case c, ok := <-ch:
		if !ok {
			t.Fatal("subscription closed")
		}
		return c
	case <-time.After(d):
		t.Fatalf("no revision change within %s", d)
	}
	panic("unreachable")
}

// subscribe subscribes db and waits for the subscription's first Resync,
// after which every commit is notified.
func subscribe(t *testing.T, db *postgres.DB) <-chan store.RevisionChange {
	t.Helper()
	ch, err := db.SubscribeRevisions(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if c := next(t, ch, liveWithin); !c.Resync {
		t.Fatalf("first change %+v, want a Resync", c)
	}
	return ch
}

// wantChange fails unless the next change on ch, within notifyBound, is
// the tenant's revision rev.
func wantChange(t *testing.T, ch <-chan store.RevisionChange, what, tenant string, rev uint64) {
	t.Helper()
	c := next(t, ch, notifyBound)
	if c.TenantID != tenant || c.Revision != rev || c.Resync || c.Err != nil {
		t.Fatalf("%s: notified %+v, want %s at revision %d", what, c, tenant, rev)
	}
}

// TestRevisionNotifications writes through one handle and checks another
// handle on the same database, as another replica, hears every revision
// each write returns, within 1 s of the commit, and nothing for writes that
// roll back or change no revision. A plain LISTEN sees the documented
// payload.
func TestRevisionNotifications(t *testing.T) {
	ctx := t.Context()
	u := newDatabase(t)
	a, b := open(t, u), open(t, u)
	sub := subscribe(t, b)
	raw := connect(t, u)
	if _, err := raw.Exec(ctx, `LISTEN gatehouse_revisions`); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	tn, err := a.CreateTenant(ctx, store.Tenant{ID: "acme:eu", Tier: store.TierStarter, Mode: pdp.ModeEnforcement},
		store.OwnerKey(store.APIKey{ID: "key_1", Hash: "h1", Prefix: "nram_1"}))
	if err != nil {
		t.Fatal(err)
	}
	wantChange(t, sub, "CreateTenant", "acme:eu", tn.Revision)
	t.Logf("CreateTenant → notification in %s", time.Since(start))
	rctx, cancel := context.WithTimeout(ctx, notifyBound)
	n, err := raw.WaitForNotification(rctx)
	cancel()
	if err != nil || n.Channel != "gatehouse_revisions" || n.Payload != "acme:eu:1" {
		t.Fatalf("plain LISTEN got %+v, %v; want payload acme:eu:1", n, err)
	}

	pol := pdp.Policy{Name: "p", Enabled: true}
	writes := []struct {
		what  string
		write func() (uint64, error)
	}{
		{"PutPolicy", func() (uint64, error) {
			w, err := a.PutPolicy(ctx, store.PutPolicyRequest{TenantID: tn.ID, Policy: pol, Limit: 1})
			return w.Revision, err
		}},
		{"DisablePolicy", func() (uint64, error) {
			w, err := a.DisablePolicy(ctx, store.PolicyKey{TenantID: tn.ID, Name: "p"})
			return w.Revision, err
		}},
		{"UpdateTenant", func() (uint64, error) {
			mode := pdp.ModeShadow
			t, err := a.UpdateTenant(ctx, tn.ID, store.TenantUpdate{Mode: &mode})
			return t.Revision, err
		}},
		{"RevokeAPIKey", func() (uint64, error) {
			if err := a.RevokeAPIKey(ctx, "key_1"); err != nil {
				return 0, err
			}
			t, err := a.GetTenant(ctx, tn.ID)
			return t.Revision, err
		}},
	}
	last := tn.Revision
	for _, w := range writes {
		start := time.Now()
		rev, err := w.write()
		if err != nil {
			t.Fatalf("%s: %v", w.what, err)
		}
		if rev != last+1 {
			t.Fatalf("%s: revision %d after %d", w.what, rev, last)
		}
		last = rev
		wantChange(t, sub, w.what, tn.ID, rev)
		t.Logf("%s → notification in %s", w.what, time.Since(start))
	}

	// Writes that bump nothing notify nothing: a repeated revocation, a
	// new key, an action, a write refused inside its transaction.
	if err := a.RevokeAPIKey(ctx, "key_1"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateAPIKey(ctx, store.OwnerKey(store.APIKey{ID: "key_2", TenantID: tn.ID, Hash: "h2", Prefix: "nram_2"})); err != nil {
		t.Fatal(err)
	}
	if _, err := a.InsertAction(ctx, store.ActionRecord{ID: "act_1", TenantID: tn.ID, Action: "x", Status: pdp.StatusAllowed}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.PutPolicy(ctx, store.PutPolicyRequest{TenantID: tn.ID, Policy: pdp.Policy{Name: "q", Enabled: true}, Limit: 1}); err != nil {
		t.Fatal(err)
	}
	last++
	wantChange(t, sub, "PutPolicy q", tn.ID, last)
	var le *store.LimitError
	if _, err := a.PutPolicy(ctx, store.PutPolicyRequest{TenantID: tn.ID, Policy: pdp.Policy{Name: "r", Enabled: true}, Limit: 1}); !errors.As(err, &le) {
		t.Fatalf("PutPolicy over the limit: %v", err)
	}
	if err := a.RevokeAPIKey(ctx, "key_missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoke a missing key: %v", err)
	}
	w, err := a.PutPolicy(ctx, store.PutPolicyRequest{TenantID: tn.ID, Policy: pdp.Policy{Name: "q", Enabled: true}, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if w.Revision != last+1 {
		t.Fatalf("revision %d after %d: a write without a revision took one", w.Revision, last)
	}
	wantChange(t, sub, "PutPolicy q again", tn.ID, w.Revision)

	// An ID too long for a payload asks for a resynchronization instead.
	long := strings.Repeat("x", 7001)
	if _, err := a.CreateTenant(ctx, store.Tenant{ID: long, Tier: store.TierFree, Mode: pdp.ModeEnforcement}); err != nil {
		t.Fatal(err)
	}
	if c := next(t, sub, notifyBound); !c.Resync {
		t.Fatalf("long tenant ID: notified %+v, want a Resync", c)
	}
}

// listener returns the process ID of the database's subscription session.
func listener(t *testing.T, conn *pgx.Conn) int {
	t.Helper()
	var pids []int
	rows, err := conn.Query(t.Context(), `SELECT pid FROM pg_stat_activity
WHERE application_name = 'gatehouse revisions' AND datname = current_database()`)
	if err == nil {
		pids, err = pgx.CollectRows(rows, pgx.RowTo[int])
	}
	if err != nil || len(pids) != 1 {
		t.Fatalf("subscription sessions: %v, %v; want exactly one", pids, err)
	}
	return pids[0]
}

// terminate ends the session pid as an operator, a failover or a broken
// network would, and waits until it is gone.
func terminate(t *testing.T, conn *pgx.Conn, pid int) {
	t.Helper()
	var ok bool
	if err := conn.QueryRow(t.Context(), `SELECT pg_terminate_backend($1, 5000)`, pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend(%d): %v, %v", pid, ok, err)
	}
}

// TestRevisionSubscriptionReconnects kills the subscription's session:
// the subscriber is told (Err), reconnects on its own, announces a Resync
// (it may have missed changes) and hears the next write again.
func TestRevisionSubscriptionReconnects(t *testing.T) {
	ctx := t.Context()
	u := newDatabase(t)
	a := open(t, u)
	b := open(t, u, postgres.WithReconnectBackoff(20*time.Millisecond, 200*time.Millisecond))
	sub := subscribe(t, b)
	admin := connect(t, u)
	if _, err := a.CreateTenant(ctx, store.Tenant{ID: "acme", Tier: store.TierPro, Mode: pdp.ModeEnforcement}); err != nil {
		t.Fatal(err)
	}
	wantChange(t, sub, "CreateTenant", "acme", 1)

	for round := range 3 {
		old := listener(t, admin)
		start := time.Now()
		terminate(t, admin, old)
		if c := next(t, sub, liveWithin); c.Err == nil {
			t.Fatalf("round %d: after the session was killed: %+v, want an Err", round, c)
		}
		for {
			c := next(t, sub, liveWithin)
			if c.Resync {
				break
			}
			if c.Err == nil {
				t.Fatalf("round %d: while reconnecting: %+v", round, c)
			}
		}
		t.Logf("round %d: resubscribed %s after the session was killed", round, time.Since(start))
		if pid := listener(t, admin); pid == old {
			t.Fatalf("round %d: still session %d", round, pid)
		}
		w, err := a.PutPolicy(ctx, store.PutPolicyRequest{TenantID: "acme", Policy: pdp.Policy{Name: "p", Enabled: true}, Limit: store.Unlimited})
		if err != nil {
			t.Fatal(err)
		}
		wantChange(t, sub, "PutPolicy after reconnecting", "acme", w.Revision)
	}
}

// TestRevisionSubscriptionEnds: a subscription's channel closes when its
// context ends or the DB is closed, and a closed DB refuses new ones.
func TestRevisionSubscriptionEnds(t *testing.T) {
	u := newDatabase(t)
	db, err := postgres.Open(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	byCtx, err := db.SubscribeRevisions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byClose := subscribe(t, db)
	drained := func(ch <-chan store.RevisionChange, what string) {
		t.Helper()
		deadline := time.After(liveWithin)
		for {
			select {
			case _, ok := <-ch:
				if !ok {
					return
				}
			case <-deadline:
				t.Fatalf("%s: subscription still open after %s", what, liveWithin)
			}
		}
	}
	cancel()
	drained(byCtx, "context cancelled")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	drained(byClose, "DB closed")
	if _, err := db.SubscribeRevisions(t.Context()); err == nil {
		t.Error("SubscribeRevisions on a closed DB succeeded")
	}
}

// TestReconnectBackoffOption refuses backoffs that could spin or never
// wait.
func TestReconnectBackoffOption(t *testing.T) {
	for _, b := range [][2]time.Duration{{0, time.Second}, {time.Second, time.Millisecond}, {-time.Second, time.Second}} {
		if db, err := postgres.Open(t.Context(), adminURL(), postgres.WithReconnectBackoff(b[0], b[1])); err == nil {
			_ = db.Close()
			t.Errorf("WithReconnectBackoff(%s, %s) accepted", b[0], b[1])
		}
	}
}
