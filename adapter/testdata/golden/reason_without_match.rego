package gatehouse.policies.t1.tenant.no_secrets

# METADATA
# labels:
#   on_violation: warn
#   policy: no_secrets
#   rule: 0
#   scope: tenant
#   severity: low
hits contains [-1, -1, 1, "no_secrets", 0, v, {"reason": "Secrets must not leave the tenant", "risk_score": 0.21, "severity": "low", "status": "allowed", "triggered_policy": "no_secrets", "violations": [v], "warnings": [v]}] if {
	contains(data.gatehouse.text.folded, "secret")
	m := _r0_found
	v := {"confidence": 0.85, "match": m, "on_violation": "warn", "policy": "no_secrets", "reason": "Secrets must not leave the tenant", "rule": 0, "scope": "tenant", "severity": "low"}
}

_r0_found := substring(data.gatehouse.text.text, x[0], x[2]) if {
	data.gatehouse.text.ascii
	x := min([[i, k, n] |
		some k, lit in ["secret"]
		i := indexof(data.gatehouse.text.folded, lit)
		i >= 0
		n := count(lit)
	])
} else := ms[0] if {
	ms := regex.find_n(
		"[Ss\\x{17f}][Ee][Cc][Rr][Ee][Tt]",
		data.gatehouse.text.text, 1,
	)
}
