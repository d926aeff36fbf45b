package gatehouse.policies.t1.agents["billing-bot"].pii_protection

# METADATA
# labels:
#   on_violation: block
#   policy: pii_protection
#   rule: 0
#   scope: agent
#   severity: critical
hits contains [-3, -4, 0, "pii_protection", 0, v, {"reason": reason, "risk_score": 0.85, "severity": "critical", "status": "blocked", "triggered_policy": "pii_protection", "violations": [v], "warnings": []}] if {
	_r0_match
	m := _r0_found
	reason := replace("PII blocked for billing-bot: {match}", "{match}", m)
	v := {"confidence": 0.85, "match": m, "on_violation": "block", "policy": "pii_protection", "reason": reason, "rule": 0, "scope": "agent", "severity": "critical"}
}

_r0_match if {
	f := data.gatehouse.text.folded
	some lit in ["email", "passport", "phone", "routing", "ssn"]
	contains(f, lit)
}

_r0_found := substring(data.gatehouse.text.text, x[0], x[2]) if {
	data.gatehouse.text.ascii
	x := min([[i, k, n] |
		some k, lit in ["email", "phone", "ssn", "passport", "routing"]
		i := indexof(data.gatehouse.text.folded, lit)
		i >= 0
		n := count(lit)
	])
} else := ms[0] if {
	ms := regex.find_n(
		"([Ee][Mm][Aa][Ii\\x{130}\\x{131}][Ll]|[Pp][Hh][Oo][Nn][Ee]|[Ss\\x{17f}][Ss\\x{17f}][Nn]|[Pp][Aa][Ss\\x{17f}][Ss\\x{17f}][Pp][Oo][Rr][Tt]|[Rr][Oo][Uu][Tt][Ii\\x{130}\\x{131}][Nn][Gg])",
		data.gatehouse.text.text, 1,
	)
}
