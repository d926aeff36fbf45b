package gatehouse.policies["."].agents[".."]["import"]

# METADATA
# labels:
#   on_violation: warn
#   policy: import
#   rule: 0
#   scope: agent
#   severity: medium
violations contains {"confidence": 0.85, "match": m, "on_violation": "warn", "reason": replace("{match}", "{match}", m), "rule": 0, "severity": "medium"} if {
	_r0_match
	ms := regex.find_n("(?i)import data\\.|package\\s+evil", data.gatehouse.text.text, 1)
	m := ms[0]
}

_r0_match if contains(data.gatehouse.text.folded, "import data.")

_r0_match if contains(data.gatehouse.text.folded, "package")
