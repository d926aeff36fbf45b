// Package registry owns tenants, API keys and custom policies on top of a
// store.Store, enforces the tier rules and the policy CRUD semantics of the
// Control API, and publishes every change to the engine before returning.
//
// # Read-after-write
//
// Every policy write and tenant update re-reads the tenant's snapshot
// (store.TenantPolicies: revision, mode, enabled policies, all from one read
// transaction) and hands it to engine.SetTenant before the call returns, so
// the very next decision on this server sees the change; other tenants are
// not touched. Publishing is serialized per tenant and only ever moves a
// tenant's revision forward, so two concurrent writes cannot leave the
// engine on the older snapshot. If the snapshot cannot be read after a
// durable write, the tenant is removed from the engine: its decisions then
// fail closed (evaluation unavailable) until a later write, Authenticate or
// Refresh publishes it again, never running on stale policies.
//
// Changes made by another process on the same database (a second replica,
// `gatehouse tenant create`) are picked up by Watch: at once through the
// store's revision notifications when it has them (PostgreSQL), and by
// Refresh on a ticker in any case, so a write is enforced by every replica
// within max(notification latency, refresh interval); see Watch.
// Authenticate also publishes a tenant the engine does not know yet.
//
// # Budgets and compiles
//
// A policy write is checked, under the tenant's lock and before anything
// is stored, against the regex budget (adapter.CheckTenantWrite) and the
// engine's compile budget (engine.CompileCost over the tenant's policies
// as the write would leave them): either refusal is a
// *pdp.ValidationError (400) naming the bound. After publishing, the
// write compiles the tenant's prepared queries (engine.Warm) before it
// returns. Publish and Warm split Load so that a server can listen, and
// say it is warming, while the tenants it starts with compile.
//
// # Authentication cache
//
// Authenticate keeps key-hash → (tenant, key) lookups in memory for a short
// TTL (WithAuthCacheTTL, default 5s), so the hot path costs no database
// round trip. Unknown keys are never cached (a flood of bad keys cannot
// evict good ones or grow memory). RevokeKey drops the key from the cache
// after the store write, and a generation counter stops a lookup that raced
// the revocation from re-inserting it: a revocation through this registry
// takes effect at once. Whenever a tenant's revision moves past what this
// registry published, the tenant's entries are dropped the same way; since
// the PostgreSQL store bumps the revision when it revokes a key, a
// revocation on another replica takes effect within Watch's bound. On a
// store that does not (SQLite), one made by another process takes effect
// within the TTL.
package registry
