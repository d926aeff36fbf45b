package gatehouse.policies[".."].agents["a.b:c@d"]["default"]

# METADATA
# labels:
#   on_violation: block
#   policy: default
#   rule: 0
#   scope: agent
#   severity: critical
violations contains {"confidence": 0.85, "match": m, "on_violation": "block", "reason": replace("\"} else := true {\n# METADATA\n# labels: {policy: evil}\nimport data\npackage evil\n`raw` \\\" {match}{match} {match} {{match}} </script><b>&amp;&lt; ünïcödé ☃ 𝔘 ſ K σς \u2028\u2029 \u202e", "{match}", m), "rule": 0, "severity": "critical"} if {
	contains(data.gatehouse.text.folded, "\"} else := true {\n# metadata\n# labels: {policy: evil}\nimport data\npackage evil\n`raw` \\\" {match}{match} {match} {{match}} </script><b>&amp;&lt; ünïcödé ☃ 𝔘 s k σσ \u2028\u2029 \u202e")
	ms := regex.find_n("(?i)\"\\} else := true \\{\n# METADATA\n# labels: \\{policy: evil\\}\nimport data\npackage evil\n`raw` \\\\\" \\{match\\}\\{match\\} \\{match\\} \\{\\{match\\}\\} </script><b>&amp;&lt; ünïcödé ☃ 𝔘 ſ K σς \u2028\u2029 \u202e", data.gatehouse.text.text, 1)
	m := ms[0]
}

# METADATA
# labels:
#   on_violation: require_approval
#   policy: default
#   rule: 1
#   scope: agent
#   severity: high
violations contains {"confidence": 0.85, "match": m, "on_violation": "require_approval", "reason": concat("", ["Policy 'default' violated: ", m]), "rule": 1, "severity": "high"} if {
	ms := regex.find_n("(?i)\"\\}|\\{match\\}|`", data.gatehouse.text.text, 1)
	m := ms[0]
	_r1_context
	regex.match("(?i)package evil|import data|# METADATA", data.gatehouse.text.text)
}

_r1_context if contains(data.gatehouse.text.folded, "# metadata")

_r1_context if contains(data.gatehouse.text.folded, "import data")

_r1_context if contains(data.gatehouse.text.folded, "package evil")
