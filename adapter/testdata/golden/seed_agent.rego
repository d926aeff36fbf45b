package gatehouse.policies.t1.agents["billing-bot"].pii_protection

# METADATA
# labels:
#   on_violation: block
#   policy: pii_protection
#   rule: 0
#   scope: agent
#   severity: critical
violations contains {"confidence": 0.85, "match": m, "on_violation": "block", "reason": replace("PII blocked for billing-bot: {match}", "{match}", m), "rule": 0, "severity": "critical"} if {
	_r0_match
	ms := regex.find_n("(?i)(email|phone|ssn|passport|routing)", data.gatehouse.text.text, 1)
	m := ms[0]
}

_r0_match if contains(data.gatehouse.text.folded, "email")

_r0_match if contains(data.gatehouse.text.folded, "passport")

_r0_match if contains(data.gatehouse.text.folded, "phone")

_r0_match if contains(data.gatehouse.text.folded, "routing")

_r0_match if contains(data.gatehouse.text.folded, "ssn")
