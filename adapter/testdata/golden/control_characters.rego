package gatehouse.policies.t1.tenant.controls

# METADATA
# labels:
#   on_violation: warn
#   policy: controls
#   rule: 0
#   scope: tenant
#   severity: low
violations contains {"confidence": 0.85, "match": m, "on_violation": "warn", "reason": replace("\u0007\u000b\u0010\u007f\ufeff\udb40\udc01😀 \u00ad {match}", "{match}", m), "rule": 0, "severity": "low"} if {
	_r0_match
	ms := regex.find_n("[Aa]\\x{10}[Bb]\\\u007f\\x{feff}|\\x{7}\\x{b}\\x{e0001}[Xx]", data.gatehouse.text.text, 1)
	m := ms[0]
}

_r0_match if contains(data.gatehouse.text.folded, "\u0007\u000b\udb40\udc01x")

_r0_match if contains(data.gatehouse.text.folded, "a\u0010b\u007f\ufeff")
