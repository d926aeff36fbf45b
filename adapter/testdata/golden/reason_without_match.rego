package gatehouse.policies.t1.tenant.no_secrets

# METADATA
# labels:
#   on_violation: warn
#   policy: no_secrets
#   rule: 0
#   scope: tenant
#   severity: low
violations contains {"confidence": 0.85, "match": m, "on_violation": "warn", "reason": "Secrets must not leave the tenant", "rule": 0, "severity": "low"} if {
	contains(data.gatehouse.text.folded, "secret")
	ms := regex.find_n("(?i)secret", data.gatehouse.text.text, 1)
	m := ms[0]
}
