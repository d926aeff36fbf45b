package gatehouse.policies.t1.tenant.export_guard

# METADATA
# labels:
#   on_violation: require_approval
#   policy: export_guard
#   rule: 0
#   scope: tenant
#   severity: high
violations contains {"confidence": 0.85, "match": m, "on_violation": "require_approval", "reason": replace("Export of {match} needs approval", "{match}", m), "rule": 0, "severity": "high"} if {
	_r0_match
	m := _r0_found
	_r0_context
	regex.match("(?i)(upload|export)\\.", data.gatehouse.text.text)
}

_r0_match if contains(data.gatehouse.text.folded, "passport")

_r0_match if contains(data.gatehouse.text.folded, "routing")

_r0_match if contains(data.gatehouse.text.folded, "ssn")

_r0_found := substring(data.gatehouse.text.text, x[0], x[2]) if {
	data.gatehouse.text.ascii
	x := min([[i, k, n] |
		some k, lit in ["ssn", "passport", "routing"]
		i := indexof(data.gatehouse.text.folded, lit)
		i >= 0
		n := count(lit)
	])
} else := ms[0] if {
	ms := regex.find_n(
		"(?i)(ssn|passport|routing)",
		data.gatehouse.text.text, 1,
	)
}

_r0_context if contains(data.gatehouse.text.folded, "export.")

_r0_context if contains(data.gatehouse.text.folded, "upload.")

# METADATA
# labels:
#   on_violation: block
#   policy: export_guard
#   rule: 1
#   scope: tenant
#   severity: critical
violations contains {"confidence": 0.85, "match": m, "on_violation": "block", "reason": concat("", ["Policy 'export_guard' violated: ", m]), "rule": 1, "severity": "critical"} if {
	_r1_match
	ms := regex.find_n("(?i)api[_-]?key", data.gatehouse.text.text, 1)
	m := ms[0]
	regex.match("(?i)\\d{3}-\\d{2}", data.gatehouse.text.text)
}

_r1_match if contains(data.gatehouse.text.folded, "api-key")

_r1_match if contains(data.gatehouse.text.folded, "api_key")

_r1_match if contains(data.gatehouse.text.folded, "apikey")
