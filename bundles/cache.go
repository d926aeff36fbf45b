package bundles

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// Cache keeps the latest built bundle of each tenant and lets requests wait
// for the next revision.
//
// Why: OPA's bundle plugin polls every 60-120 s per instance, or holds a
// long poll open; a fleet of OPAs asking for the same tenant must not each
// translate and compress its policies. A bundle is a pure function of the
// tenant's policies at a revision (plus the fixed library, config and
// signing key), so one build per (tenant, revision) serves everyone:
//   - Get returns the cached bundle while the revision is unchanged and
//     never rebuilds it; callers that miss on a new revision at the same
//     moment share one build (singleflight), and only a build at least as
//     new as the cached one replaces it.
//   - Notify, which the registry calls after every write, wakes every
//     waiter on that tenant (Watch, Wait). Waking is all it does: waiters
//     then read the tenant again, which is what makes the answer right even
//     when a notification overtakes a read or changes nothing the bundle
//     holds (the waiter finds the same ETag and waits again).
//
// It is safe for concurrent use. Revisions must change whenever anything in
// a tenant's pdp.TenantPolicies changes (the registry's do).
type Cache struct {
	config map[string]any
	opts   []Option

	mu      sync.Mutex
	tenants map[string]*tenantEntry
	flight  singleflight.Group

	builds, hits atomic.Uint64
}

// recentETags is how many of a tenant's ETags Wait can place by revision.
const recentETags = 16

type tenantEntry struct {
	built    *Built            // latest built bundle, or nil
	etags    map[string]uint64 // recent ETags → tenant revision
	notified uint64            // revision of the last Notify
	changed  chan struct{}     // closed and replaced by Notify
}

// NewCache returns a cache that builds with Build(tp, config, opts...).
func NewCache(config map[string]any, opts ...Option) *Cache {
	return &Cache{config: config, opts: opts, tenants: map[string]*tenantEntry{}}
}

// CacheStats count the cache's builds and the requests served without one.
type CacheStats struct {
	Builds, Hits uint64
}

// Stats returns the cache's counters.
func (c *Cache) Stats() CacheStats {
	return CacheStats{Builds: c.builds.Load(), Hits: c.hits.Load()}
}

// entry returns the tenant's entry; c.mu must be held.
func (c *Cache) entry(tenant string) *tenantEntry {
	e := c.tenants[tenant]
	if e == nil {
		e = &tenantEntry{etags: map[string]uint64{}, changed: make(chan struct{})}
		c.tenants[tenant] = e
	}
	return e
}

// Get returns the bundle of tp, building it only if the cache does not hold
// tp's revision. A cancelled ctx abandons the wait, not a shared build.
func (c *Cache) Get(ctx context.Context, tp pdp.TenantPolicies) (*Built, error) {
	c.mu.Lock()
	if b := c.entry(tp.TenantID).built; b != nil && b.TenantRevision == tp.Revision {
		c.mu.Unlock()
		c.hits.Add(1)
		return b, nil
	}
	c.mu.Unlock()

	key := tp.TenantID + "\x00" + strconv.FormatUint(tp.Revision, 10)
	ch := c.flight.DoChan(key, func() (any, error) {
		// A caller that missed just before another flight stored its
		// result starts a flight of its own: look again before building.
		c.mu.Lock()
		if b := c.entry(tp.TenantID).built; b != nil && b.TenantRevision == tp.Revision {
			c.mu.Unlock()
			return b, nil
		}
		c.mu.Unlock()
		c.builds.Add(1)
		b, err := Build(tp, c.config, c.opts...)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		e := c.entry(tp.TenantID)
		if e.built == nil || e.built.TenantRevision <= b.TenantRevision {
			e.built = b
		}
		if len(e.etags) >= recentETags {
			for etag, rev := range e.etags {
				if rev < e.built.TenantRevision {
					delete(e.etags, etag)
				}
			}
		}
		if len(e.etags) < recentETags {
			e.etags[b.ETag] = b.TenantRevision
		}
		c.mu.Unlock()
		return b, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*Built), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Notify records that tenant is now at revision and wakes its waiters. The
// registry calls it after every write, once the write is visible to the
// snapshots bundle requests read. Repeating the last revision wakes no one;
// revision 0 always wakes.
func (c *Cache) Notify(tenant string, revision uint64) {
	c.mu.Lock()
	e := c.entry(tenant)
	if e.notified != revision || revision == 0 {
		e.notified = revision
		close(e.changed)
		e.changed = make(chan struct{})
	}
	c.mu.Unlock()
}

// Watch returns a channel closed at the tenant's next Notify (or Remove).
// Taken before reading the tenant's policies, it cannot miss a write made
// after that read: the loop NewHandler's long poll runs.
func (c *Cache) Watch(tenant string) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entry(tenant).changed
}

// Wait blocks until tenant may have a bundle other than the one served under
// etag, and reports whether that happened (true) or the timeout or ctx ended
// first (false). It returns true at once when the cache already holds a
// bundle of a newer revision than the one etag names, and otherwise at the
// tenant's next Notify. A Notify between the caller's read and Wait is seen
// only through a newer cached bundle; callers that read the tenant
// themselves should take Watch before the read instead.
func (c *Cache) Wait(ctx context.Context, tenant, etag string, timeout time.Duration) bool {
	c.mu.Lock()
	e := c.entry(tenant)
	if rev, ok := e.etags[etag]; ok && e.built != nil && e.built.TenantRevision > rev {
		c.mu.Unlock()
		return true
	}
	changed := e.changed
	c.mu.Unlock()
	return waitFor(ctx, changed, timeout)
}

// waitFor waits for ch to close, at most timeout.
func waitFor(ctx context.Context, ch <-chan struct{}, timeout time.Duration) bool {
	if timeout <= 0 {
		return false
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-ch:
		return true
	case <-timer.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// Remove forgets a tenant's bundle (after the tenant is deleted) and wakes
// its waiters.
func (c *Cache) Remove(tenant string) {
	c.mu.Lock()
	if e := c.tenants[tenant]; e != nil {
		close(e.changed)
		delete(c.tenants, tenant)
	}
	c.mu.Unlock()
}
