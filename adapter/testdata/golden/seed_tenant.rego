package gatehouse.policies.t1.tenant.pii_protection

# METADATA
# labels:
#   on_violation: warn
#   policy: pii_protection
#   rule: 0
#   scope: tenant
#   severity: medium
violations contains {"confidence": 0.85, "match": m, "on_violation": "warn", "reason": concat("", ["Policy 'pii_protection' violated: ", m]), "rule": 0, "severity": "medium"} if {
	_r0_match
	m := _r0_found
	_r0_context
	regex.match("([Ee][Xx][Tt][Ee][Rr][Nn][Aa][Ll]|[Pp][Uu][Bb][Ll][Ii\\x{130}\\x{131}][Cc])", data.gatehouse.text.text)
}

_r0_match if contains(data.gatehouse.text.folded, "email")

_r0_match if contains(data.gatehouse.text.folded, "phone")

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

_r0_context if contains(data.gatehouse.text.folded, "external")

_r0_context if contains(data.gatehouse.text.folded, "public")
