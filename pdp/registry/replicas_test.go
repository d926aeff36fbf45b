package registry_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/postgres"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/postgres/pgtest"
)

// replicaBound is docs/api.md §A4's "within 1 s on every replica". A loaded
// CI machine can stall one goroutine past it, so the tests hold the
// median of repeated writes to it, and each single change to loadedBound.
const replicaBound = time.Second

// loadedBound is how long any one change may take here: below the auth
// cache's 5 s TTL, so a pass still proves a revocation or tier change was
// pushed, not waited out.
const loadedBound = 4 * time.Second

// wantMedian fails the test unless the median of delays is within
// replicaBound.
func wantMedian(t *testing.T, what string, delays []time.Duration) {
	t.Helper()
	slices.Sort(delays)
	if m := delays[len(delays)/2]; m > replicaBound {
		t.Errorf("%s: median %s, want ≤ %s (docs/api.md §A4)", what, m, replicaBound)
	}
}

// Unwrap lets store.RevisionsOf find the notifier of the store a
// countingStore wraps, as it finds the one store.Traced wraps.
func (s *countingStore) Unwrap() store.Store { return s.Store }

// newReplica is one Gatehouse replica on the PostgreSQL database at u: a
// registry with its own engine, loaded, and watching the database with
// the given fallback interval until the test ends.
func newReplica(t *testing.T, u string, interval time.Duration, opts ...postgres.Option) *env {
	t.Helper()
	db, err := postgres.Open(t.Context(), u, opts...)
	if err != nil {
		t.Fatal(err)
	}
	st := &countingStore{Store: db}
	eng, err := engine.New(engine.Config{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(st, eng)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	var wg sync.WaitGroup
	wg.Go(func() { reg.Watch(ctx, interval) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		_ = db.Close()
	})
	return &env{t: t, st: st, eng: eng, reg: reg}
}

// within polls ok until it holds, failing the test when bound passes
// first; it returns how long that took.
func within(t *testing.T, bound time.Duration, what string, ok func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !ok() {
		if time.Since(start) > bound {
			t.Fatalf("%s: not within %s", what, bound)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

func (e *env) blocks(tenantID, text string) bool {
	e.t.Helper()
	d, err := e.eng.Evaluate(e.t.Context(), pdp.Action{TenantID: tenantID, Name: "do", Params: map[string]any{"text": text}})
	return err == nil && d.Status == pdp.StatusBlocked
}

// live waits until two knows a tenant one just created: its subscription
// (or the Refresh its first Resync runs) is then in place.
func live(t *testing.T, one, two *env) store.Tenant {
	t.Helper()
	tn, _ := one.tenant(store.TierEnterprise)
	within(t, 10*time.Second, "second replica learns of the first tenant", func() bool {
		_, ok := two.eng.Revision(tn.ID)
		return ok
	})
	return tn
}

// TestReplicasFollowNotifications: with the fallback refresh practically
// off (an hour), policy writes, tenant settings and key revocations made
// through one replica reach the other by notification alone, each within
// 1 s.
func TestReplicasFollowNotifications(t *testing.T) {
	u := pgtest.NewDatabase(t)
	one := newReplica(t, u, time.Hour)
	two := newReplica(t, u, time.Hour)
	tn := live(t, one, two)

	var delays []time.Duration
	for i := range 20 {
		word := fmt.Sprintf("word%02d", i)
		one.put(tn.ID, simple(t, "p", "", word))
		delays = append(delays, within(t, loadedBound, "policy write "+word, func() bool { return two.blocks(tn.ID, word) }))
	}
	wantMedian(t, "write → enforced on the other replica", delays)
	t.Logf("write → enforced on the other replica: median %s, max %s", delays[len(delays)/2], delays[len(delays)-1])

	// Tenant settings, which Authenticate serves from memory along with
	// the cached key.
	k, key, err := one.reg.CreateKey(t.Context(), tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := two.reg.Authenticate(t.Context(), key); err != nil || got.Tier != store.TierEnterprise {
		t.Fatalf("Authenticate on the second replica: %+v, %v", got, err)
	}
	tier := store.TierFree
	if _, err := one.reg.UpdateTenant(t.Context(), tn.ID, registry.TenantUpdate{Tier: &tier}); err != nil {
		t.Fatal(err)
	}
	within(t, loadedBound, "tier change", func() bool {
		got, err := two.reg.Authenticate(t.Context(), key)
		return err == nil && got.Tier == store.TierFree
	})

	// The key is in the second replica's auth cache now (TTL 5s): the
	// revocation must evict it, not the TTL.
	if err := one.reg.RevokeKey(t.Context(), k.ID); err != nil {
		t.Fatal(err)
	}
	d := within(t, loadedBound, "revocation", func() bool {
		_, err := two.reg.Authenticate(t.Context(), key)
		return errors.Is(err, registry.ErrUnauthorized)
	})
	t.Logf("revocation → refused on the other replica after %s", d)
}

// TestReplicasFallBackToRefresh kills the second replica's subscription
// and keeps it down (its reconnection backoff is an hour): writes made
// meanwhile, whose notifications are lost, still reach it within 1 s
// through the periodic refresh at the interval `gatehouse serve` uses.
func TestReplicasFallBackToRefresh(t *testing.T) {
	u := pgtest.NewDatabase(t)
	one := newReplica(t, u, time.Hour)
	two := newReplica(t, u, 500*time.Millisecond, postgres.WithReconnectBackoff(time.Hour, time.Hour))
	tn := live(t, one, two)
	k, key, err := one.reg.CreateKey(t.Context(), tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := two.reg.Authenticate(t.Context(), key); err != nil {
		t.Fatal(err)
	}

	admin := pgtest.Connect(t, u)
	var n int
	if err := admin.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity
WHERE application_name = 'gatehouse revisions' AND datname = current_database()`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("terminated %d subscription sessions (%v), want both replicas'", n, err)
	}
	// The first replica reconnects within its backoff; the second does not.
	within(t, 10*time.Second, "first replica resubscribes", func() bool { return listeners(t, admin) == 1 })

	var delays []time.Duration
	for i := range 5 {
		word := fmt.Sprintf("fallback%d", i)
		one.put(tn.ID, simple(t, "p", "", word))
		delays = append(delays, within(t, loadedBound, "policy write "+word, func() bool { return two.blocks(tn.ID, word) }))
	}
	wantMedian(t, "write → enforced without notifications", delays)
	t.Logf("write → enforced without notifications: median %s, max %s", delays[len(delays)/2], delays[len(delays)-1])
	if err := one.reg.RevokeKey(t.Context(), k.ID); err != nil {
		t.Fatal(err)
	}
	within(t, loadedBound, "revocation without notifications", func() bool {
		_, err := two.reg.Authenticate(t.Context(), key)
		return errors.Is(err, registry.ErrUnauthorized)
	})
	if got := listeners(t, admin); got != 1 {
		t.Fatalf("%d subscription sessions: the second replica reconnected, so this did not test the fallback", got)
	}
}

// listeners counts the database's subscription sessions.
func listeners(t *testing.T, conn *pgx.Conn) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
WHERE application_name = 'gatehouse revisions' AND datname = current_database()`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
