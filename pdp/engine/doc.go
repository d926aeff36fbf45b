// Package engine decides agents' actions with an embedded OPA: it compiles
// the library of package rego once per process, gives each tenant a data
// store holding its policies' rules as data (adapter.TenantData, policy as
// data), prepares the decision query over the two, and caches the
// prepared query.
//
// # Cache design
//
// One prepared query per (tenant, agent, revision), in a size-bounded LRU
// (hashicorp/golang-lru/v2). agent is the agent id only when that agent has
// enabled agent-scoped policies; every other agent (and "no agent") shares
// the tenant's entry, whose data holds no agent scope at all. A prepared
// query contains nothing but the library and the tenant's data, so a
// decision can never see another tenant's policies.
//
// The registry pushes every change with SetTenant, which records the
// tenant's new revision in memory: the very next Evaluate builds a key with
// it, so stale entries are unreachable at once (read-after-write) and the
// tenant's old keys are dropped from the LRU one by one; other tenants'
// entries are untouched and never rebuilt. Concurrent misses on one key
// build once (singleflight). Validating a policy and measuring its cost
// are cached by content, so a write re-checks only what changed.
//
// # Compiles
//
// Compiles stay off the request path: the registry warms a tenant (Warm)
// before a write returns, and a server warms every tenant before it
// reports ready. Every compile — a tenant's unit, a draft, a bundle — runs
// in a bounded pool (Config.CompileWorkers), and one revision compiles
// once however many callers miss on it, detached from their contexts: a
// caller that gives up returns its own context's error and the others
// still get the compile. A registry tenant's "compile" builds its unit —
// its data store and hinter over the shared library (libcompile.go) —
// and prepares its queries; its cost is predicted from its rules' data
// (CompileCost, policyCost) and bounded by Config.CompileBudget, which the
// registry checks before it stores a write. An LRU eviction drops a
// prepared query only: the tenant keeps its unit, and the next decision
// re-prepares the query against it without rebuilding. Engine's doc comment gives the lock order.
//
// # Fair evaluation
//
// Evaluations take one of Config.MaxConcurrent slots, and one tenant at
// most Config.MaxConcurrentPerTenant of them (half by default), so a
// burst from one tenant leaves slots free for the others (see slots).
//
// On a hit Evaluate compiles nothing and does no I/O: it converts the input,
// evaluates the prepared query with the shared inter-query value cache (so
// regexes are compiled once per process, not per evaluation, and not in
// OPA's 100-entry global cache) and converts the result. A registry
// tenant's hinted query is evaluated with topdown directly (direct.go),
// and a decision on which the hints say nothing can fire is answered
// from the view's precomputed result without evaluating (nohit.go), in a
// slot and within the timeout like an evaluation.
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
