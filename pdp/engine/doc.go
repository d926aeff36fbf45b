// Package engine decides agents' actions with an embedded OPA: it compiles
// each tenant's generated Rego with the library of package rego, prepares
// the decision query once, and caches the prepared query.
//
// # Cache design
//
// One prepared query per (tenant, agent, revision), in a size-bounded LRU
// (hashicorp/golang-lru/v2). agent is the agent id only when that agent has
// enabled agent-scoped policies; every other agent (and "no agent") shares
// the tenant's entry, whose data holds no agent scope at all. A prepared
// query contains nothing but the library, the tenant's modules and the
// tenant's data, so a decision can never see another tenant's policies.
//
// The registry pushes every change with SetTenant, which records the
// tenant's new revision in memory: the very next Evaluate builds a key with
// it, so stale entries are unreachable at once (read-after-write) and the
// tenant's old keys are dropped from the LRU one by one; other tenants'
// entries are untouched and never recompiled. Concurrent misses on one key
// compile once (singleflight). Translating a policy into a module is cached
// by (scope, name, version), so a write re-translates only what changed.
//
// On a hit Evaluate compiles nothing and does no I/O: it converts the input,
// evaluates the prepared query with the shared inter-query value cache (so
// regexes are compiled once per process, not per evaluation, and not in
// OPA's 100-entry global cache) and converts the result.
//
// # Bundle tenants
//
// `gatehouse serve --bundle` publishes tenants with LoadBundle instead of
// SetTenant: the bundle's modules (library included) are compiled once per
// bundle revision into one unit its tenants share, each tenant's query is
// prepared before the revision replaces the previous one, and every load
// is a new revision, so the cache works as above. Query and TenantData
// serve OPA's Data API for both kinds of tenant.
//
// # Failing closed
//
// An evaluation error, an undefined result, a timeout (Config.Timeout) or a
// cancelled context returns an error wrapping pdp.ErrEvaluationFailed; a
// Decision is returned only for a defined result of a finished evaluation.
package engine
