# METADATA
# title: Per-policy shadow mode tests
# description: |
#   A policy with "mode": "shadow" in its data is evaluated, but its hits go
#   to result.shadow and never change status, triggered_policy, severity,
#   reason, risk_score, violations or warnings. An agent-scoped copy
#   overrides the tenant-wide copy of its name only when it enforces.
package gatehouse.shadow_test

import data.gatehouse.decision

_input := {"tenant_id": "acme", "action": "send_email", "params": {"to": "ops"}, "agent_id": "billing-bot"}

_always := {`{"action":`: ""}

_enforce := {"step_types": {"ACTION": true}, "whitelisted_domains": [], "guard": _always, "mode": "enforce"}

_shadow := object.union(_enforce, {"mode": "shadow"})

_v(rule, severity, on_violation) := {
	"rule": rule,
	"severity": severity,
	"on_violation": on_violation,
	"confidence": 0.85,
	"match": "ssn",
	"reason": sprintf("rule %d: %s", [rule, severity]),
}

_block := _v(0, "critical", "block")

_warn := _v(0, "low", "warn")

# The policies' hits, as decision._ranked ranks them.
_hits := {
	"tenant": {
		"pii": decision._ranked(_warn, "pii", "tenant"),
		"cards": decision._ranked(_block, "cards", "tenant"),
	},
	"agents": {"billing-bot": {"pii": decision._ranked(_block, "pii", "agent")}},
}

# The tenant's data with each policy's one rule (policy as data), firing
# with its hit by way of the mocked decision._fire.
_tenants(mode, tenant, agents) := {"acme": {
	"mode": mode,
	"tenant": {name: object.union(p, {"rules": [{"kind": "mock", "hit": _hits.tenant[name]}], "by_literal": {`{"action":`: [0]}}) | some name, p in tenant},
	"agents": {"billing-bot": {name: object.union(p, {"rules": [{"kind": "mock", "hit": _hits.agents["billing-bot"][name]}], "by_literal": {`{"action":`: [0]}}) | some name, p in agents}},
}}

_mock_fire(_, r) := r.hit

_decide(tenant, agents) := r if {
	r := decision.result with input as _input
		with data.gatehouse.tenants as _tenants("enforcement", tenant, agents)
		with decision._fire as _mock_fire
}

_shadow_view(policy, scope, v, would) := {
	"policy": policy, "scope": scope, "rule": v.rule, "severity": v.severity,
	"on_violation": v.on_violation, "reason": v.reason, "match": v.match, "would_status": would,
}

test_shadow_hits_never_decide if {
	r := _decide({"cards": _shadow}, {})
	r.status == "allowed"
	r.triggered_policy == null
	r.severity == null
	r.reason == null
	r.risk_score == 0
	r.violations == []
	r.warnings == []
	r.shadow == [_shadow_view("cards", "tenant", _block, "blocked")]
	"cards" in r.policies_evaluated
}

test_no_shadow_key_without_shadow_hits if {
	r := _decide({"cards": _enforce}, {})
	r.status == "blocked"
	not "shadow" in object.keys(r)
}

test_shadow_beside_enforced_hits if {
	r := _decide({"pii": _enforce, "cards": _shadow}, {})
	r.status == "allowed"
	r.triggered_policy == "pii"
	r.risk_score == 0.21
	[v.policy | some v in r.violations] == ["pii"]
	r.shadow == [_shadow_view("cards", "tenant", _block, "blocked")]
}

# A shadow agent-scoped copy does not override: the tenant-wide copy keeps
# deciding for the agent, and the agent copy's hits are reported in shadow.
test_shadow_agent_copy_does_not_override if {
	r := _decide({"pii": _enforce}, {"pii": _shadow})
	r.status == "allowed"
	[[v.policy, v.scope] | some v in r.violations] == [["pii", "tenant"]]
	r.shadow == [_shadow_view("pii", "agent", _block, "blocked")]
	r.policies_evaluated == ["pii", "pii", "FinancialSafetyPolicy", "DataExfiltrationPolicy"]
}

# An enforcing agent-scoped copy overrides the tenant-wide copy, shadow or
# not: the tenant-wide shadow copy is not evaluated for this agent.
test_enforcing_agent_copy_overrides_a_shadow_tenant_copy if {
	r := _decide({"pii": _shadow}, {"pii": _enforce})
	r.status == "blocked"
	[[v.policy, v.scope] | some v in r.violations] == [["pii", "agent"]]
	not "shadow" in object.keys(r)
	r.policies_evaluated == ["pii", "FinancialSafetyPolicy", "DataExfiltrationPolicy"]
}

# Both copies in shadow: both are evaluated, both report, nothing decides.
test_both_copies_shadow if {
	r := _decide({"pii": _shadow}, {"pii": _shadow})
	r.status == "allowed"
	r.violations == []
	r.shadow == [_shadow_view("pii", "agent", _block, "blocked"), _shadow_view("pii", "tenant", _warn, "allowed")]
}

# Other agents are untouched by billing-bot's shadow copy.
test_shadow_agent_copy_is_the_agents_own if {
	r := decision.result with input as object.union(_input, {"agent_id": "support-bot"})
		with data.gatehouse.tenants as _tenants("enforcement", {"pii": _enforce}, {"pii": _shadow})
		with decision._fire as _mock_fire
	not "shadow" in object.keys(r)
	[v.policy | some v in r.violations] == ["pii"]
}

# A tenant in shadow mode: status allowed, shadow_status from the enforcing
# policies only, and the shadow policies' hits listed.
test_tenant_shadow_mode_and_shadow_policies if {
	r := decision.result with input as _input
		with data.gatehouse.tenants as _tenants("shadow", {"pii": _enforce, "cards": _shadow}, {})
		with decision._fire as _mock_fire
	r.status == "allowed"
	r.shadow_status == "allowed"
	r.shadow == [_shadow_view("cards", "tenant", _block, "blocked")]
}

# Data without a mode (an older bundle) enforces.
test_data_without_mode_enforces if {
	r := _decide({"cards": object.remove(_enforce, ["mode"])}, {})
	r.status == "blocked"
}
