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
	ms := regex.find_n("(?i)_r0_match|violations|data\\.gatehouse", data.gatehouse.text.text, 1)
	m := ms[0]
}

_r0_match if contains(data.gatehouse.text.folded, "_r0_match")

_r0_match if contains(data.gatehouse.text.folded, "data.gatehouse")

_r0_match if contains(data.gatehouse.text.folded, "violations")
