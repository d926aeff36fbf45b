package gatehouse.policies.t1.tenant.digits

# METADATA
# labels:
#   on_violation: require_approval
#   policy: digits
#   rule: 0
#   scope: tenant
#   severity: high
violations contains {"confidence": 0.85, "match": m, "on_violation": "require_approval", "reason": replace("SSN-like number {match}", "{match}", m), "rule": 0, "severity": "high"} if {
	ms := regex.find_n("(?i)\\d{3}-\\d{2}", data.gatehouse.text.text, 1)
	m := ms[0]
}

# METADATA
# labels:
#   on_violation: warn
#   policy: digits
#   rule: 1
#   scope: tenant
#   severity: low
violations contains {"confidence": 0.85, "match": m, "on_violation": "warn", "reason": concat("", ["Policy 'digits' violated: ", m]), "rule": 1, "severity": "low"} if {
	ms := regex.find_n("(?i)[0-9a-f]{32}", data.gatehouse.text.text, 1)
	m := ms[0]
	regex.match("(?i).", data.gatehouse.text.text)
}
