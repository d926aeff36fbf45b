package gatehouse.policies.t1.tenant.many

# METADATA
# labels:
#   on_violation: warn
#   policy: many
#   rule: 0
#   scope: tenant
#   severity: critical
violations contains {"confidence": 0, "match": m, "on_violation": "warn", "reason": concat("", ["Policy 'many' violated: ", m]), "rule": 0, "severity": "critical"} if {
	_r0_match
	ms := regex.find_n("(?i)straße|ǅ|kelvin", data.gatehouse.text.text, 1)
	m := ms[0]
}

_r0_match if contains(data.gatehouse.text.folded, "kelvin")

_r0_match if contains(data.gatehouse.text.folded, "straße")

_r0_match if contains(data.gatehouse.text.folded, "ǆ")

# METADATA
# labels:
#   on_violation: block
#   policy: many
#   rule: 1
#   scope: tenant
#   severity: high
violations contains {"confidence": 1, "match": m, "on_violation": "block", "reason": concat("", ["Policy 'many' violated: ", m]), "rule": 1, "severity": "high"} if {
	contains(data.gatehouse.text.folded, "akia")
	ms := regex.find_n("(?i)(?-i:AKIA)[0-9A-Z]{16}", data.gatehouse.text.text, 1)
	m := ms[0]
}

# METADATA
# labels:
#   on_violation: require_approval
#   policy: many
#   rule: 2
#   scope: tenant
#   severity: low
violations contains {"confidence": 0.5, "match": m, "on_violation": "require_approval", "reason": concat("", ["Policy 'many' violated: ", m]), "rule": 2, "severity": "low"} if {
	contains(data.gatehouse.text.folded, "pass")
	ms := regex.find_n("(?i)\\bpass(word)?\\b", data.gatehouse.text.text, 1)
	m := ms[0]
}
