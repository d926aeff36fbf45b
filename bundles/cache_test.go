package bundles_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gatehouse-pdp/gatehouse/bundles"
	"github.com/gatehouse-pdp/gatehouse/pdp"
)

func TestCacheGet(t *testing.T) {
	ctx := context.Background()
	cache := bundles.NewCache(engineConfig.ConfigData())
	r1 := sampleTenant(t, "acme", 1, "")
	r2 := sampleTenant(t, "acme", 2, "")
	r2.Policies = r2.Policies[1:]

	// Many requests for a new revision at once build it once.
	var wg sync.WaitGroup
	got := make([]*bundles.Built, 32)
	for i := range got {
		wg.Go(func() {
			b, err := cache.Get(ctx, r1)
			if err != nil {
				t.Error(err)
			}
			got[i] = b
		})
	}
	wg.Wait()
	for _, b := range got {
		if b != got[0] {
			t.Fatal("concurrent requests got different bundles")
		}
	}

	steps := []struct {
		name       string
		tp         pdp.TenantPolicies
		wantBuilds uint64
		wantRev    string
	}{
		{"same revision again", r1, 1, "1"},
		{"new revision", r2, 2, "2"},
		{"new revision again", r2, 2, "2"},
		{"older revision is built but not kept", r1, 3, "1"},
		{"newest stays cached", r2, 3, "2"},
		{"another tenant", sampleTenant(t, "other", 1, ""), 4, "1"},
	}
	for _, s := range steps {
		b, err := cache.Get(ctx, s.tp)
		if err != nil {
			t.Fatal(err)
		}
		if st := cache.Stats(); st.Builds != s.wantBuilds || b.Revision != s.wantRev || b.TenantID != s.tp.TenantID {
			t.Errorf("%s: builds %d (want %d), revision %s (want %s)", s.name, st.Builds, s.wantBuilds, b.Revision, s.wantRev)
		}
	}

	// A failed build is reported and not cached.
	bad := sampleTenant(t, "acme", 3, "")
	bad.Policies[0].Rules[0].Match = "(?<=x)"
	if _, err := cache.Get(ctx, bad); err == nil {
		t.Error("no error for an invalid policy")
	}
}

func TestCacheWait(t *testing.T) {
	ctx := context.Background()
	cache := bundles.NewCache(nil)
	r1, err := cache.Get(ctx, sampleTenant(t, "acme", 1, ""))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("times out", func(t *testing.T) {
		start := time.Now()
		if cache.Wait(ctx, "acme", r1.ETag, 200*time.Millisecond) || time.Since(start) < 200*time.Millisecond {
			t.Error("returned early")
		}
	})
	t.Run("zero timeout", func(t *testing.T) {
		if cache.Wait(ctx, "acme", r1.ETag, 0) {
			t.Error("changed")
		}
	})
	// Whether a Notify wakes a waiter depends on the waiter having begun to
	// wait: each case runs in a synctest bubble, where synctest.Wait returns
	// once the waiter is blocked (no sleep guessing how long that takes) and
	// the timeouts pass on the bubble's fake clock, at once.
	inBubble := func(t *testing.T, f func(t *testing.T, cache *bundles.Cache, etag string)) {
		synctest.Test(t, func(t *testing.T) {
			cache := bundles.NewCache(nil)
			r, err := cache.Get(t.Context(), sampleTenant(t, "acme", 1, ""))
			if err != nil {
				t.Fatal(err)
			}
			f(t, cache, r.ETag)
		})
	}
	t.Run("released by Notify", func(t *testing.T) {
		inBubble(t, func(t *testing.T, cache *bundles.Cache, etag string) {
			done := make(chan bool)
			go func() { done <- cache.Wait(t.Context(), "acme", etag, 10*time.Second) }()
			synctest.Wait()
			start := time.Now()
			cache.Notify("acme", 2)
			if !<-done || time.Since(start) != 0 {
				t.Error("not released at once")
			}
		})
	})
	t.Run("repeated revision wakes no one", func(t *testing.T) {
		inBubble(t, func(t *testing.T, cache *bundles.Cache, etag string) {
			cache.Notify("acme", 2)
			done := make(chan bool)
			go func() { done <- cache.Wait(t.Context(), "acme", etag, 300*time.Millisecond) }()
			synctest.Wait()
			cache.Notify("acme", 2)
			synctest.Wait()
			select {
			case <-done:
				t.Error("woken by a repeated revision")
			default:
			}
			if <-done {
				t.Error("reported a change at the timeout")
			}
		})
	})
	t.Run("other tenants stay asleep", func(t *testing.T) {
		inBubble(t, func(t *testing.T, cache *bundles.Cache, etag string) {
			done := make(chan bool)
			go func() { done <- cache.Wait(t.Context(), "acme", etag, 300*time.Millisecond) }()
			synctest.Wait()
			cache.Notify("other", 7)
			synctest.Wait()
			select {
			case <-done:
				t.Error("woken by another tenant")
			default:
			}
			if <-done {
				t.Error("reported a change at the timeout")
			}
		})
	})
	// The cases below share the cache above, at revision 2 from now on.
	cache.Notify("acme", 2)
	t.Run("newer bundle already cached", func(t *testing.T) {
		if _, err := cache.Get(ctx, sampleTenant(t, "acme", 2, "")); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		// Had it waited, it would have waited the whole 10 s: nothing
		// notifies it.
		if !cache.Wait(ctx, "acme", r1.ETag, 10*time.Second) || time.Since(start) > 5*time.Second {
			t.Errorf("did not return at once (%s)", time.Since(start))
		}
	})
	t.Run("context", func(t *testing.T) {
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if cache.Wait(cctx, "acme", "unknown", 10*time.Second) {
			t.Error("changed")
		}
	})
	t.Run("Remove wakes waiters", func(t *testing.T) {
		w := cache.Watch("gone")
		cache.Remove("gone")
		select {
		case <-w:
		case <-time.After(time.Second):
			t.Error("not woken")
		}
	})
}
