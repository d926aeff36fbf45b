package gatehouse.policies.t1.tenant.controls

# METADATA
# labels:
#   on_violation: warn
#   policy: controls
#   rule: 0
#   scope: tenant
#   severity: low
hits contains [-1, -1, 1, "controls", 0, v, {"reason": reason, "risk_score": 0.21, "severity": "low", "status": "allowed", "triggered_policy": "controls", "violations": [v], "warnings": [v]}] if {
	_r0_match
	ms := regex.find_n("[Aa]\\x{10}[Bb]\\\u007f\\x{feff}|\\x{7}\\x{b}\\x{e0001}[Xx]", data.gatehouse.text.text, 1)
	m := ms[0]
	reason := replace("\u0007\u000b\u0010\u007f\ufeff\udb40\udc01😀 \u00ad {match}", "{match}", m)
	v := {"confidence": 0.85, "match": m, "on_violation": "warn", "policy": "controls", "reason": reason, "rule": 0, "scope": "tenant", "severity": "low"}
}

_r0_match if {
	f := data.gatehouse.text.folded
	some lit in ["\u0007\u000b\udb40\udc01x", "a\u0010b\u007f\ufeff"]
	contains(f, lit)
}
