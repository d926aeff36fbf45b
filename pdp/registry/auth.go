package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// maxKeyLen bounds what Authenticate will hash: no real key is longer.
const maxKeyLen = 256

// Authenticate returns the tenant owning key, or ErrUnauthorized for a
// missing, malformed, unknown or revoked key. A key seen recently is
// answered from memory (see the package doc); the tenant's settings come
// from the registry's latest view of the tenant.
func (r *Registry) Authenticate(ctx context.Context, key string) (store.Tenant, error) {
	id, err := r.Identify(ctx, key)
	return id.Tenant, err
}

// Identity is who an accepted API key speaks for.
type Identity struct {
	Tenant store.Tenant
	// KeyID names the key (never the key itself): who acted, as
	// approvals and the audit chain record it.
	KeyID string
	// KeyHash is store.HashAPIKey of the key, already computed.
	KeyHash string
	// Key is the key as stored (its hash aside): its owner, role, manager
	// flag, scopes, bound agent and step types.
	Key store.APIKey
}

// Identify is Authenticate returning the key's identity and hash too, so a
// request computes neither twice. From memory for a key seen within the
// auth cache's TTL; a revoked key is dropped from memory at once on this
// server, and on every replica when its tenant's revision moves (watch.go).
// A rotated key past its grace period is refused from memory too: the
// cached key carries its expiry.
func (r *Registry) Identify(ctx context.Context, key string) (Identity, error) {
	if !strings.HasPrefix(key, KeyPrefix) || len(key) > maxKeyLen {
		return Identity{}, ErrUnauthorized
	}
	// The cache is keyed by the digest itself: a hit needs no hex
	// encoding (the entry keeps the hex, store.HashAPIKey's form). The
	// key is hashed from a copy on the stack: []byte(key) of a key
	// longer than 32 bytes is a heap allocation on every request.
	var buf [maxKeyLen]byte
	sum := sha256.Sum256(buf[:copy(buf[:], key)])
	if e, ok := r.auth.get(sum); ok {
		if e.key.ExpiredAt(r.now()) {
			return Identity{}, ErrUnauthorized
		}
		if t, ok := r.known(e.tenantID); ok {
			r.ensurePublished(ctx, t.ID)
			return Identity{Tenant: t, KeyID: e.keyID, KeyHash: e.hash, Key: e.key}, nil
		}
	}
	hash := hex.EncodeToString(sum[:]) // = store.HashAPIKey(key)
	gen := r.auth.generation()
	t, k, err := r.st.TenantByKeyHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return Identity{}, ErrUnauthorized
	}
	if err != nil {
		return Identity{}, fmt.Errorf("authenticate: %w", err)
	}
	k.Hash = ""
	if k.ExpiredAt(r.now()) {
		return Identity{}, ErrUnauthorized
	}
	r.remember(t)
	r.auth.put(sum, authEntry{tenantID: t.ID, keyID: k.ID, key: k, hash: hash}, gen)
	r.ensurePublished(ctx, t.ID)
	if latest, ok := r.known(t.ID); ok {
		t = latest
	}
	return Identity{Tenant: t, KeyID: k.ID, KeyHash: hash, Key: k}, nil
}

// ensurePublished publishes a tenant the engine does not know, e.g. one
// created by another process since Load, or one whose publishing failed.
// A failure is logged, not returned: the decision then fails closed.
func (r *Registry) ensurePublished(ctx context.Context, tenantID string) {
	if _, ok := r.eng.Revision(tenantID); ok {
		return
	}
	if err := r.publish(ctx, tenantID, 0); err != nil {
		r.log.WarnContext(ctx, "publish on authenticate failed", slog.String("tenant_id", tenantID), slog.Any("error", err))
		return
	}
	r.warm(ctx, tenantID)
}

// authEntry is one cached lookup.
type authEntry struct {
	tenantID string
	keyID    string
	key      store.APIKey // without its hash
	hash     string       // store.HashAPIKey of the key: its digest in hex
	expires  time.Time
}

// keyDigest is the SHA-256 of an API key, the auth cache's key; in hex
// it is store.HashAPIKey.
type keyDigest = [sha256.Size]byte

// authCache maps key digests to successful lookups for ttl. It is a plain
// map under a mutex, bounded by max: when full, expired entries are swept,
// and if that frees nothing the whole map is dropped (the next requests
// repopulate it). No background goroutine, so nothing to stop.
type authCache struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu      sync.Mutex
	gen     uint64 // bumped by every invalidation
	entries map[keyDigest]authEntry
}

func newAuthCache(ttl time.Duration, max int) *authCache {
	return &authCache{ttl: ttl, max: max, now: time.Now, entries: map[keyDigest]authEntry{}}
}

func (c *authCache) get(hash keyDigest) (authEntry, bool) {
	if c.ttl == 0 {
		return authEntry{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[hash]
	if !ok {
		return authEntry{}, false
	}
	if !c.now().Before(e.expires) {
		delete(c.entries, hash)
		return authEntry{}, false
	}
	return e, true
}

// generation is read before a store lookup and handed to put: a lookup
// that raced an invalidation is not cached.
func (c *authCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

func (c *authCache) put(hash keyDigest, e authEntry, gen uint64) {
	if c.ttl == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	now := c.now()
	if len(c.entries) >= c.max {
		for h, old := range c.entries {
			if !now.Before(old.expires) {
				delete(c.entries, h)
			}
		}
		if len(c.entries) >= c.max {
			clear(c.entries)
		}
	}
	e.expires = now.Add(c.ttl)
	c.entries[hash] = e
}

// revokeKey drops every entry of the key and bumps the generation.
func (c *authCache) revokeKey(keyID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for h, e := range c.entries {
		if e.keyID == keyID {
			delete(c.entries, h)
		}
	}
}

// forgetTenant drops every entry of the tenant and bumps the generation:
// its revision moved, perhaps by a key revocation made elsewhere that this
// cache cannot tell apart from a policy write.
func (c *authCache) forgetTenant(tenantID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for h, e := range c.entries {
		if e.tenantID == tenantID {
			delete(c.entries, h)
		}
	}
}
