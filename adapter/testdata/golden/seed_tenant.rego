package gatehouse.policies.t1.tenant.pii_protection

# METADATA
# labels:
#   on_violation: warn
#   policy: pii_protection
#   rule: 0
#   scope: tenant
#   severity: medium
hits contains [-1, -2, 1, "pii_protection", 0, v, {"reason": reason, "risk_score": 0.43, "severity": "medium", "status": "allowed", "triggered_policy": "pii_protection", "violations": [v], "warnings": [v]}] if {
	_r0_match
	m := _r0_found
	_r0_context
	regex.match("([Ee][Xx][Tt][Ee][Rr][Nn][Aa][Ll]|[Pp][Uu][Bb][Ll][Ii\\x{130}\\x{131}][Cc])", data.gatehouse.text.text)
	reason := concat("", ["Policy 'pii_protection' violated: ", m])
	v := {"confidence": 0.85, "match": m, "on_violation": "warn", "policy": "pii_protection", "reason": reason, "rule": 0, "scope": "tenant", "severity": "medium"}
}

_r0_match if {
	f := data.gatehouse.text.folded
	some lit in ["email", "phone"]
	contains(f, lit)
}

_r0_found := substring(data.gatehouse.text.text, x[0], x[2]) if {
	data.gatehouse.text.ascii
	x := min([[i, k, n] |
		some k, lit in ["email", "phone"]
		i := indexof(data.gatehouse.text.folded, lit)
		i >= 0
		n := count(lit)
	])
} else := ms[0] if {
	ms := regex.find_n(
		"([Ee][Mm][Aa][Ii\\x{130}\\x{131}][Ll]|[Pp][Hh][Oo][Nn][Ee])",
		data.gatehouse.text.text, 1,
	)
}

_r0_context if {
	f := data.gatehouse.text.folded
	some lit in ["external", "public"]
	contains(f, lit)
}
