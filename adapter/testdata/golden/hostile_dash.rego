package gatehouse.policies["tenant:a@b.c"].agents["."]["x-y"]

# METADATA
# labels:
#   on_violation: warn
#   policy: x-y
#   rule: 0
#   scope: agent
#   severity: low
violations contains {"confidence": 0.85, "match": m, "on_violation": "warn", "reason": replace("\n}\n{match}\n", "{match}", m), "rule": 0, "severity": "low"} if {
	_r0_match
	ms := regex.find_n("\\`{3}\\x{a}(\\#|\\\")", data.gatehouse.text.text, 1)
	m := ms[0]
}

_r0_match if contains(data.gatehouse.text.folded, "```\n\"")

_r0_match if contains(data.gatehouse.text.folded, "```\n#")
