package gatehouse.policies.t1.tenant.export_guard

# METADATA
# labels:
#   on_violation: require_approval
#   policy: export_guard
#   rule: 0
#   scope: tenant
#   severity: high
hits contains [-2, -3, 1, "export_guard", 0, v, {"reason": reason, "risk_score": 0.68, "severity": "high", "status": "pending_review", "triggered_policy": "export_guard", "violations": [v], "warnings": []}] if {
	_r0_match
	m := _r0_found
	_r0_context
	regex.match("([Uu][Pp][Ll][Oo][Aa][Dd]|[Ee][Xx][Pp][Oo][Rr][Tt])\\.", data.gatehouse.text.text)
	reason := replace("Export of {match} needs approval", "{match}", m)
	v := {"confidence": 0.85, "match": m, "on_violation": "require_approval", "policy": "export_guard", "reason": reason, "rule": 0, "scope": "tenant", "severity": "high"}
}

_r0_match if {
	f := data.gatehouse.text.folded
	some lit in ["passport", "routing", "ssn"]
	contains(f, lit)
}

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
		"([Ss\\x{17f}][Ss\\x{17f}][Nn]|[Pp][Aa][Ss\\x{17f}][Ss\\x{17f}][Pp][Oo][Rr][Tt]|[Rr][Oo][Uu][Tt][Ii\\x{130}\\x{131}][Nn][Gg])",
		data.gatehouse.text.text, 1,
	)
}

_r0_context if {
	f := data.gatehouse.text.folded
	some lit in ["export.", "upload."]
	contains(f, lit)
}

# METADATA
# labels:
#   on_violation: block
#   policy: export_guard
#   rule: 1
#   scope: tenant
#   severity: critical
hits contains [-3, -4, 1, "export_guard", 1, v, {"reason": reason, "risk_score": 0.85, "severity": "critical", "status": "blocked", "triggered_policy": "export_guard", "violations": [v], "warnings": []}] if {
	_r1_match
	ms := regex.find_n("[Aa][Pp][Ii\\x{130}\\x{131}][\\-\\_]?[Kk\\x{212a}][Ee][Yy]", data.gatehouse.text.text, 1)
	m := ms[0]
	regex.match("[0-9\\x{660}-\\x{669}\\x{6f0}-\\x{6f9}\\x{7c0}-\\x{7c9}\\x{966}-\\x{96f}\\x{9e6}-\\x{9ef}\\x{a66}-\\x{a6f}\\x{ae6}-\\x{aef}\\x{b66}-\\x{b6f}\\x{be6}-\\x{bef}\\x{c66}-\\x{c6f}\\x{ce6}-\\x{cef}\\x{d66}-\\x{d6f}\\x{de6}-\\x{def}\\x{e50}-\\x{e59}\\x{ed0}-\\x{ed9}\\x{f20}-\\x{f29}\\x{1040}-\\x{1049}\\x{1090}-\\x{1099}\\x{17e0}-\\x{17e9}\\x{1810}-\\x{1819}\\x{1946}-\\x{194f}\\x{19d0}-\\x{19d9}\\x{1a80}-\\x{1a89}\\x{1a90}-\\x{1a99}\\x{1b50}-\\x{1b59}\\x{1bb0}-\\x{1bb9}\\x{1c40}-\\x{1c49}\\x{1c50}-\\x{1c59}\\x{a620}-\\x{a629}\\x{a8d0}-\\x{a8d9}\\x{a900}-\\x{a909}\\x{a9d0}-\\x{a9d9}\\x{a9f0}-\\x{a9f9}\\x{aa50}-\\x{aa59}\\x{abf0}-\\x{abf9}\\x{ff10}-\\x{ff19}\\x{104a0}-\\x{104a9}\\x{10d30}-\\x{10d39}\\x{11066}-\\x{1106f}\\x{110f0}-\\x{110f9}\\x{11136}-\\x{1113f}\\x{111d0}-\\x{111d9}\\x{112f0}-\\x{112f9}\\x{11450}-\\x{11459}\\x{114d0}-\\x{114d9}\\x{11650}-\\x{11659}\\x{116c0}-\\x{116c9}\\x{11730}-\\x{11739}\\x{118e0}-\\x{118e9}\\x{11950}-\\x{11959}\\x{11c50}-\\x{11c59}\\x{11d50}-\\x{11d59}\\x{11da0}-\\x{11da9}\\x{16a60}-\\x{16a69}\\x{16ac0}-\\x{16ac9}\\x{16b50}-\\x{16b59}\\x{1d7ce}-\\x{1d7ff}\\x{1e140}-\\x{1e149}\\x{1e2f0}-\\x{1e2f9}\\x{1e950}-\\x{1e959}\\x{1fbf0}-\\x{1fbf9}]{3}\\-[0-9\\x{660}-\\x{669}\\x{6f0}-\\x{6f9}\\x{7c0}-\\x{7c9}\\x{966}-\\x{96f}\\x{9e6}-\\x{9ef}\\x{a66}-\\x{a6f}\\x{ae6}-\\x{aef}\\x{b66}-\\x{b6f}\\x{be6}-\\x{bef}\\x{c66}-\\x{c6f}\\x{ce6}-\\x{cef}\\x{d66}-\\x{d6f}\\x{de6}-\\x{def}\\x{e50}-\\x{e59}\\x{ed0}-\\x{ed9}\\x{f20}-\\x{f29}\\x{1040}-\\x{1049}\\x{1090}-\\x{1099}\\x{17e0}-\\x{17e9}\\x{1810}-\\x{1819}\\x{1946}-\\x{194f}\\x{19d0}-\\x{19d9}\\x{1a80}-\\x{1a89}\\x{1a90}-\\x{1a99}\\x{1b50}-\\x{1b59}\\x{1bb0}-\\x{1bb9}\\x{1c40}-\\x{1c49}\\x{1c50}-\\x{1c59}\\x{a620}-\\x{a629}\\x{a8d0}-\\x{a8d9}\\x{a900}-\\x{a909}\\x{a9d0}-\\x{a9d9}\\x{a9f0}-\\x{a9f9}\\x{aa50}-\\x{aa59}\\x{abf0}-\\x{abf9}\\x{ff10}-\\x{ff19}\\x{104a0}-\\x{104a9}\\x{10d30}-\\x{10d39}\\x{11066}-\\x{1106f}\\x{110f0}-\\x{110f9}\\x{11136}-\\x{1113f}\\x{111d0}-\\x{111d9}\\x{112f0}-\\x{112f9}\\x{11450}-\\x{11459}\\x{114d0}-\\x{114d9}\\x{11650}-\\x{11659}\\x{116c0}-\\x{116c9}\\x{11730}-\\x{11739}\\x{118e0}-\\x{118e9}\\x{11950}-\\x{11959}\\x{11c50}-\\x{11c59}\\x{11d50}-\\x{11d59}\\x{11da0}-\\x{11da9}\\x{16a60}-\\x{16a69}\\x{16ac0}-\\x{16ac9}\\x{16b50}-\\x{16b59}\\x{1d7ce}-\\x{1d7ff}\\x{1e140}-\\x{1e149}\\x{1e2f0}-\\x{1e2f9}\\x{1e950}-\\x{1e959}\\x{1fbf0}-\\x{1fbf9}]{2}", data.gatehouse.text.text)
	reason := concat("", ["Policy 'export_guard' violated: ", m])
	v := {"confidence": 0.85, "match": m, "on_violation": "block", "policy": "export_guard", "reason": reason, "rule": 1, "scope": "tenant", "severity": "critical"}
}

_r1_match if {
	f := data.gatehouse.text.folded
	some lit in ["api-key", "api_key", "apikey"]
	contains(f, lit)
}
