package gatehouse.policies["."].agents[".."]["import"]

# METADATA
# labels:
#   on_violation: warn
#   policy: import
#   rule: 0
#   scope: agent
#   severity: medium
hits contains [-1, -2, 0, "import", 0, v, {"reason": reason, "risk_score": 0.43, "severity": "medium", "status": "allowed", "triggered_policy": "import", "violations": [v], "warnings": [v]}] if {
	_r0_match
	ms := regex.find_n("[Ii\\x{130}\\x{131}][Mm][Pp][Oo][Rr][Tt] [Dd][Aa][Tt][Aa]\\.|[Pp][Aa][Cc][Kk\\x{212a}][Aa][Gg][Ee][\\x{9}-\\x{d}\\x{1c}-\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}]+[Ee][Vv][Ii\\x{130}\\x{131}][Ll]", data.gatehouse.text.text, 1)
	m := ms[0]
	reason := replace("{match}", "{match}", m)
	v := {"confidence": 0.85, "match": m, "on_violation": "warn", "policy": "import", "reason": reason, "rule": 0, "scope": "agent", "severity": "medium"}
}

_r0_match if {
	f := data.gatehouse.text.folded
	some lit in ["import data.", "package"]
	contains(f, lit)
}
