package gatehouse.policies.t1.tenant.plain

# METADATA
# labels:
#   on_violation: warn
#   policy: plain
#   rule: 0
#   scope: tenant
#   severity: medium
violations contains {"confidence": 0.85, "match": m, "on_violation": "warn", "reason": concat("", ["Policy 'plain' violated: ", m]), "rule": 0, "severity": "medium"} if {
	_r0_match
	ms := regex.find_n("([Dd][Ee][Ll][Ee][Tt][Ee]|[Dd][Rr][Oo][Pp])_[Tt][Aa][Bb][Ll][Ee]", data.gatehouse.text.text, 1)
	m := ms[0]
}

_r0_match if contains(data.gatehouse.text.folded, "delete_table")

_r0_match if contains(data.gatehouse.text.folded, "drop_table")
