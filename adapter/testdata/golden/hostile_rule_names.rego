package gatehouse.policies.t1.agents._r0_match.violations

# METADATA
# labels:
#   on_violation: warn
#   policy: violations
#   rule: 0
#   scope: agent
#   severity: low
violations contains {"confidence": 0.85, "match": m, "on_violation": "warn", "reason": replace("Policy 'violations' violated: {match}", "{match}", m), "rule": 0, "severity": "low"} if {
	_r0_match
	ms := regex.find_n("_[Rr]0_[Mm][Aa][Tt][Cc][Hh]|[Vv][Ii\\x{130}\\x{131}][Oo][Ll][Aa][Tt][Ii\\x{130}\\x{131}][Oo][Nn][Ss\\x{17f}]|[Dd][Aa][Tt][Aa]\\.[Gg][Aa][Tt][Ee][Hh][Oo][Uu][Ss\\x{17f}][Ee]", data.gatehouse.text.text, 1)
	m := ms[0]
}

_r0_match if contains(data.gatehouse.text.folded, "_r0_match")

_r0_match if contains(data.gatehouse.text.folded, "data.gatehouse")

_r0_match if contains(data.gatehouse.text.folded, "violations")
