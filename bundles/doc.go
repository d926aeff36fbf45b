// Package bundles builds, signs, verifies, serves and loads the OPA bundles
// of Gatehouse tenants (docs/api.md §B3), so that a stock `opa` decides exactly
// as Gatehouse does.
//
// # Layout
//
// One bundle holds one tenant, under the single root "gatehouse":
//
//	/.manifest                 {"revision", "roots": ["gatehouse"], "rego_version": 1,
//	                            "metadata": {"gatehouse_version", "tenant_id"}}
//	/.signatures.json          when signed: OPA's {"signatures": ["<JWT>"]}
//	/data.json                 {"gatehouse": {"config": {...}, "tenants": {"<tenant>": {...}}}}
//	                           (adapter.TenantData: every enabled policy's
//	                           rules are data, adapter.PolicyRules)
//	/gatehouse/*.rego          the Rego library (rego.Sources(), no tests),
//	                           whose one generic evaluation runs the rules
//
// A bundle carries no module per policy: the library evaluates the rules
// in data.json (policy as data). adapter.PolicyModule renders a policy as
// a readable Rego module for the rego view of the API and docs.
//
// Query data.gatehouse.decision.result with input {tenant_id, agent_id,
// action, params, step_type}; the result equals the policy_result of
// POST /v1/actions less action_id and evaluation_time_ms.
//
// # Revisions and ETags
//
// The manifest revision of a bundle built from the registry is the
// tenant's revision in decimal ("42"): tenant revisions only grow, so OPA's
// status and decision logs (bundles[n].revision) can be matched against
// Gatehouse's. A bundle built from a policy directory (BuildFromDir) has no
// revision number; its revision is "sha256:" and the hex SHA-256 of its
// content (data.json and every module, in path order), so rebuilding an
// unchanged tree gives the same revision.
//
// The ETag is `"<revision>-<16 hex>"`: the revision (characters an ETag
// cannot carry replaced by "_"), then the first 64 bits of the SHA-256 of
// every file but the signature plus a fingerprint of the signing key. It is
// the same on every replica and for every rebuild of the same input, even
// with ES256, whose signatures differ on every build.
//
// # Determinism
//
// Build writes the tarball itself: entries in path order with a leading
// "/", mode 0644, mtime the Unix epoch, no directories; gzip at best
// compression with no name, time or comment; JSON compact with sorted keys.
// The same input (and the same Gatehouse version, which the manifest names)
// gives the same bytes, unless signed with ES*.
//
// # Serving and loading
//
// Cache holds the latest bundle of each tenant and wakes long polls when the
// registry calls Notify; NewHandler serves GET /v1/bundles/{tenant}.tar.gz
// with the protocol of OPA's bundle plugin. Load reads and verifies a
// bundle; Source fetches one from a file or a bundle service and turns it
// into a Loaded for the engine.
package bundles
