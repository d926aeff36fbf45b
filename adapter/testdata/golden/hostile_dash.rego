package gatehouse.policies["tenant:a@b.c"].agents["."]["x-y"]

# METADATA
# labels:
#   on_violation: warn
#   policy: x-y
#   rule: 0
#   scope: agent
#   severity: low
hits contains [-1, -1, 0, "x-y", 0, v, {"reason": reason, "risk_score": 0.21, "severity": "low", "status": "allowed", "triggered_policy": "x-y", "violations": [v], "warnings": [v]}] if {
	_r0_match
	ms := regex.find_n("\\`{3}\\x{a}(\\#|\\\")", data.gatehouse.text.text, 1)
	m := ms[0]
	reason := replace("\n}\n{match}\n", "{match}", m)
	v := {"confidence": 0.85, "match": m, "on_violation": "warn", "policy": "x-y", "reason": reason, "rule": 0, "scope": "agent", "severity": "low"}
}

_r0_match if {
	f := data.gatehouse.text.folded
	some lit in ["```\n\"", "```\n#"]
	contains(f, lit)
}
