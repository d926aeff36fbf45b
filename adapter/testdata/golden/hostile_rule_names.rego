package gatehouse.policies.t1.agents._r0_match.violations

# METADATA
# labels:
#   on_violation: warn
#   policy: violations
#   rule: 0
#   scope: agent
#   severity: low
hits contains [-1, -1, 0, "violations", 0, v, {"reason": reason, "risk_score": 0.21, "severity": "low", "status": "allowed", "triggered_policy": "violations", "violations": [v], "warnings": [v]}] if {
	_r0_match
	ms := regex.find_n("_[Rr]0_[Mm][Aa][Tt][Cc][Hh]|[Vv][Ii\\x{130}\\x{131}][Oo][Ll][Aa][Tt][Ii\\x{130}\\x{131}][Oo][Nn][Ss\\x{17f}]|[Dd][Aa][Tt][Aa]\\.[Gg][Aa][Tt][Ee][Hh][Oo][Uu][Ss\\x{17f}][Ee]", data.gatehouse.text.text, 1)
	m := ms[0]
	reason := replace("Policy 'violations' violated: {match}", "{match}", m)
	v := {"confidence": 0.85, "match": m, "on_violation": "warn", "policy": "violations", "reason": reason, "rule": 0, "scope": "agent", "severity": "low"}
}

_r0_match if {
	f := data.gatehouse.text.folded
	some lit in ["_r0_match", "data.gatehouse", "violations"]
	contains(f, lit)
}
