package gatehouse.policies[".."].agents["a.b:c@d"]["default"]

# METADATA
# labels:
#   on_violation: block
#   policy: default
#   rule: 0
#   scope: agent
#   severity: critical
hits contains [-3, -4, 0, "default", 0, v, {"reason": reason, "risk_score": 0.85, "severity": "critical", "status": "blocked", "triggered_policy": "default", "violations": [v], "warnings": []}] if {
	contains(data.gatehouse.text.folded, "\"} else := true {\n# metadata\n# labels: {policy: evil}\nimport data\npackage evil\n`raw` \\\" {match}{match} {match} {{match}} </script><b>&amp;&lt; ünïcödé ☃ 𝔘 s k σσ \u2028\u2029 \u202e")
	ms := regex.find_n("\\\"\\} [Ee][Ll][Ss\\x{17f}][Ee] \\:\\= [Tt][Rr][Uu][Ee] \\{\\x{a}\\# [Mm][Ee][Tt][Aa][Dd][Aa][Tt][Aa]\\x{a}\\# [Ll][Aa][Bb][Ee][Ll][Ss\\x{17f}]\\: \\{[Pp][Oo][Ll][Ii\\x{130}\\x{131}][Cc][Yy]\\: [Ee][Vv][Ii\\x{130}\\x{131}][Ll]\\}\\x{a}[Ii\\x{130}\\x{131}][Mm][Pp][Oo][Rr][Tt] [Dd][Aa][Tt][Aa]\\x{a}[Pp][Aa][Cc][Kk\\x{212a}][Aa][Gg][Ee] [Ee][Vv][Ii\\x{130}\\x{131}][Ll]\\x{a}\\`[Rr][Aa][Ww]\\` \\\\\\\" \\{[Mm][Aa][Tt][Cc][Hh]\\}\\{[Mm][Aa][Tt][Cc][Hh]\\} \\{[Mm][Aa][Tt][Cc][Hh]\\} \\{\\{[Mm][Aa][Tt][Cc][Hh]\\}\\} \\<\\/[Ss\\x{17f}][Cc][Rr][Ii\\x{130}\\x{131}][Pp][Tt]\\>\\<[Bb]\\>\\&[Aa][Mm][Pp]\\;\\&[Ll][Tt]\\; [\\x{dc}\\x{fc}][Nn][\\x{cf}\\x{ef}][Cc][\\x{d6}\\x{f6}][Dd][\\x{c9}\\x{e9}] \\x{2603} \\x{1d518} [Ss\\x{17f}] [Kk\\x{212a}] [\\x{3a3}\\x{3c2}\\x{3c3}][\\x{3a3}\\x{3c2}\\x{3c3}] \\x{2028}\\x{2029} \\x{202e}", data.gatehouse.text.text, 1)
	m := ms[0]
	reason := replace("\"} else := true {\n# METADATA\n# labels: {policy: evil}\nimport data\npackage evil\n`raw` \\\" {match}{match} {match} {{match}} </script><b>&amp;&lt; ünïcödé ☃ 𝔘 ſ K σς \u2028\u2029 \u202e", "{match}", m)
	v := {"confidence": 0.85, "match": m, "on_violation": "block", "policy": "default", "reason": reason, "rule": 0, "scope": "agent", "severity": "critical"}
}

# METADATA
# labels:
#   on_violation: require_approval
#   policy: default
#   rule: 1
#   scope: agent
#   severity: high
hits contains [-2, -3, 0, "default", 1, v, {"reason": reason, "risk_score": 0.68, "severity": "high", "status": "pending_review", "triggered_policy": "default", "violations": [v], "warnings": []}] if {
	ms := regex.find_n("\\\"\\}|\\{[Mm][Aa][Tt][Cc][Hh]\\}|\\`", data.gatehouse.text.text, 1)
	m := ms[0]
	_r1_context
	regex.match("[Pp][Aa][Cc][Kk\\x{212a}][Aa][Gg][Ee] [Ee][Vv][Ii\\x{130}\\x{131}][Ll]|[Ii\\x{130}\\x{131}][Mm][Pp][Oo][Rr][Tt] [Dd][Aa][Tt][Aa]|\\# [Mm][Ee][Tt][Aa][Dd][Aa][Tt][Aa]", data.gatehouse.text.text)
	reason := concat("", ["Policy 'default' violated: ", m])
	v := {"confidence": 0.85, "match": m, "on_violation": "require_approval", "policy": "default", "reason": reason, "rule": 1, "scope": "agent", "severity": "high"}
}

_r1_context if {
	f := data.gatehouse.text.folded
	some lit in ["# metadata", "import data", "package evil"]
	contains(f, lit)
}
