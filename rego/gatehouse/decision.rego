# METADATA
# title: Decision
# description: |
#   The single decision query of Gatehouse, data.gatehouse.decision.result,
#   for input {tenant_id, agent_id, action, params, step_type}. It merges the
#   scopes (CONTRACT A4), runs the tenant's generated policies and the
#   built-ins, and composes the policy_result of CONTRACT A7.
#
#   Data (only enabled policies appear):
#     data.gatehouse.tenants[t] = {"mode": "enforcement"|"shadow",
#       "tenant": {name: {"step_types": [...], "whitelisted_domains": [...]}},
#       "agents": {agent_id: {name: {...same...}}}}
#   Generated modules:
#     data.gatehouse.policies[t].tenant[name].violations
#     data.gatehouse.policies[t].agents[agent_id][name].violations
#
#   The result is undefined (callers fail closed) for a tenant the data does
#   not hold or an input without a string action.
package gatehouse.decision

import data.gatehouse.builtins.data_exfiltration
import data.gatehouse.builtins.financial_safety
import data.gatehouse.text

_tenant := data.gatehouse.tenants[input.tenant_id]

default _agent := ""

_agent := input.agent_id if is_string(input.agent_id)

default _step := "ACTION"

_step := upper(input.step_type) if {
	is_string(input.step_type)
	input.step_type != ""
}

_agent_scope := object.get(object.get(_tenant, "agents", {}), _agent, {})

_tenant_scope := object.get(_tenant, "tenant", {})

# Enabled agent-scoped policies that apply to this step type.
_agent_policies[name] := p if {
	some name, p in _agent_scope
	_step in p.step_types
}

# Enabled tenant-wide policies not shadowed by an enabled agent-scoped
# policy of the same name (disabled policies are not in the data, so they
# shadow nothing), that apply to this step type.
_tenant_policies[name] := p if {
	some name, p in _tenant_scope
	not _agent_scope[name]
	_step in p.step_types
}

_builtin_names := ["FinancialSafety", "DataExfiltration"]

_hits contains object.union(v, {"policy": name, "scope": "agent"}) if {
	some name, p in _agent_policies
	some v in data.gatehouse.policies[input.tenant_id].agents[_agent][name].violations
	not _whitelisted(p)
}

_hits contains object.union(v, {"policy": name, "scope": "tenant"}) if {
	some name, p in _tenant_policies
	some v in data.gatehouse.policies[input.tenant_id].tenant[name].violations
	not _whitelisted(p)
}

_hits contains object.union(v, {"policy": "FinancialSafety", "scope": "builtin"}) if {
	some v in financial_safety.violations
}

_hits contains object.union(v, {"policy": "DataExfiltration", "scope": "builtin"}) if {
	some v in data_exfiltration.violations
}

# A policy is skipped when the action text names at least one hostname and
# every one is a whitelisted domain or a subdomain of one.
_whitelisted(p) if {
	count(p.whitelisted_domains) > 0
	count(text.hostnames) > 0
	every h in text.hostnames {
		_domain_covers(p.whitelisted_domains, h)
	}
}

_domain_covers(domains, h) if h in domains

_domain_covers(domains, h) if {
	some d in domains
	endswith(h, concat("", [".", d]))
}

_outcome_rank := {"block": 3, "require_approval": 2, "warn": 1}

_severity_rank := {"critical": 4, "high": 3, "medium": 2, "low": 1}

_severity_weight := {"critical": 1, "high": 0.8, "medium": 0.5, "low": 0.25}

_scope_rank := {"agent": 0, "tenant": 1, "builtin": 2}

# Hits strongest first: outcome, then severity, then scope agent > tenant >
# builtin, then policy name, then rule order. The first is the trigger.
_ranked := sort([[
	0 - _outcome_rank[h.on_violation],
	0 - _severity_rank[h.severity],
	_scope_rank[h.scope],
	h.policy,
	h.rule,
	h,
] |
	some h in _hits
])

_violations := [x[5] | some x in _ranked]

_would_be := "blocked" if {
	some h in _hits
	h.on_violation == "block"
} else := "pending_review" if {
	some h in _hits
	h.on_violation == "require_approval"
} else := "allowed"

_shadow if _tenant.mode == "shadow"

_status := "allowed" if _shadow

_status := _would_be if not _shadow

default _risk_score := 0

_risk_score := round(max(_risks) * 100) / 100 if count(_hits) > 0

_risks := [r |
	some h in _hits
	r := _severity_weight[h.severity] * h.confidence
]

_trigger := _violations[0]

default _triggered_policy := null

_triggered_policy := _trigger.policy

default _severity := null

_severity := _trigger.severity

default _reason := null

_reason := _trigger.reason

_policies_evaluated := array.concat(
	array.concat([n | some n, _ in _agent_policies], [n | some n, _ in _tenant_policies]),
	_builtin_names,
)

_base := {
	"status": _status,
	"risk_score": _risk_score,
	"policies_evaluated": _policies_evaluated,
	"triggered_policy": _triggered_policy,
	"severity": _severity,
	"reason": _reason,
	"violations": _violations,
	"warnings": [v | some v in _violations; v.on_violation == "warn"],
}

# METADATA
# description: The policy_result of CONTRACT A7, less action_id and timing.
# entrypoint: true
result := object.union(_base, {"shadow_status": _would_be}) if {
	is_string(input.action)
	_tenant
	_shadow
} else := _base if {
	is_string(input.action)
	_tenant
}
