package gatehouse.policies.t1.tenant.plain

# METADATA
# labels:
#   on_violation: warn
#   policy: plain
#   rule: 0
#   scope: tenant
#   severity: medium
hits contains [-1, -2, 1, "plain", 0, v, {"reason": reason, "risk_score": 0.43, "severity": "medium", "status": "allowed", "triggered_policy": "plain", "violations": [v], "warnings": [v]}] if {
	_r0_match
	ms := regex.find_n("([Dd][Ee][Ll][Ee][Tt][Ee]|[Dd][Rr][Oo][Pp])_[Tt][Aa][Bb][Ll][Ee]", data.gatehouse.text.text, 1)
	m := ms[0]
	reason := concat("", ["Policy 'plain' violated: ", m])
	v := {"confidence": 0.85, "match": m, "on_violation": "warn", "policy": "plain", "reason": reason, "rule": 0, "scope": "tenant", "severity": "medium"}
}

_r0_match if {
	f := data.gatehouse.text.folded
	some lit in ["delete_table", "drop_table"]
	contains(f, lit)
}
