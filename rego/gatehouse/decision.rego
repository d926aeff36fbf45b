# METADATA
# title: Decision
# description: |
#   The single decision query of Gatehouse, data.gatehouse.decision.result,
#   for input {tenant_id, agent_id, action, params, step_type}. It merges the
#   scopes (docs/api.md §A4), evaluates the tenant's policies' rules (held as
#   data, one generic evaluation: _fire) and the built-ins, and composes the
#   policy_result of docs/api.md §A7.
#
#   Data (only enabled policies appear):
#     data.gatehouse.tenants[t] = {"mode": "enforcement"|"shadow",
#       "tenant": {name: {"step_types": {"ACTION": true, ...},
#                         "whitelisted_domains": [...],
#                         "guard": {literal: "", ...},
#                         "mode": "enforce"|"shadow",
#                         "rules": [rule, ...],
#                         "by_literal": {literal: [rule index, ...]}}},
#       "agents": {agent_id: {name: {...same...}}},
#       "views": {"default": {STEP: view}, "agents": {agent_id: {STEP: view}},
#                 "builtins_only": view}}     (optional, see _view;
#                                              STEP: an upper-case step type)
#     view = {"agent": {name: policy}, "tenant": {name: policy}   (enforcing,
#               without rules)
#             "shadow": {"agent": {name: policy}, "tenant": {...}} (shadow mode)
#             "evaluated": [names], "allowed": the result when nothing fires
#               (no hit, shadow hits included),
#             "no_whitelists": true (optional: none of its policies has
#               whitelisted domains; see _applying)}
#     rule = {"kind", "pattern", "alts", "context", "context_pre", "reason_parts",
#             "violation", "key", "patch"}: policy as data, see _fire and
#             adapter/rules.go
#   Hints (optional; only Gatehouse's engine sets them, per evaluation):
#     data.gatehouse.hints = {"text", "folded", "ascii",
#       "candidates": {"agent": [names], "tenant": [names]},
#       "rules": {"agent": {name: [rule indices]}, "tenant": {...}},
#       "builtins": {name: true},
#       "view": the view _view finds (see there),
#       "financial": {"keyword", "amount_key"}}  (builtins/financial_safety.rego)
#
#   The result is undefined (callers fail closed) for a tenant the data does
#   not hold or an input without a string action.
package gatehouse.decision

import data.gatehouse.builtins.data_exfiltration
import data.gatehouse.builtins.financial_safety
import data.gatehouse.text

_tenant := data.gatehouse.tenants[input.tenant_id]

default _step := "ACTION"

_step := upper(input.step_type) if {
	is_string(input.step_type)
	input.step_type != ""
}

# --- the view: what applies to this agent and step type -------------------
#
# A view is everything about the tenant's policies that is the same for
# every action of one scope and step type: the effective agent-scoped and
# tenant-wide policies (name → {whitelisted_domains, guard, ...}), split
# into those that enforce and those in shadow mode, the list of evaluated
# policies and the finished result when nothing fires. The
# adapter computes the views once per revision into the tenant's data
# (data.gatehouse.tenants[t].views: "agents" for agents with their own
# policies, "default" for every other agent, "builtins_only" for a step
# type no policy lists); a stock OPA reads the same document from the
# bundle. Data without views (hand-written, or mocked in tests) gets the
# same view computed here, and _computed_view is the definition the
# adapter's precomputation is tested against.
#
# Gatehouse's engine hands over the view these branches find as
# data.gatehouse.hints.view: looked up in Go in the same tenant data the
# evaluation reads, the same way (pdp/engine/hints.go), which spares the
# lookups below; without the hint (stock OPA, the Data API, opa test) they
# find the same view.
_view := v if {
	v := data.gatehouse.hints.view
} else := v if {
	# View keys are upper-case step types, so a step type given in upper
	# case (as Gatehouse's engine gives it) names its view as _step would.
	v := _scope_views[input.step_type]
} else := v if {
	v := _scope_views[_step]
} else := _tenant.views.builtins_only if {
	_tenant.views
} else := _computed_view

# The views of input.agent_id's scope: its own when it has policies of its
# own, else the default ones (a null, absent or unknown agent has none).
_scope_views := s if {
	s := _tenant.views.agents[input.agent_id]
} else := _tenant.views["default"]

_computed_view := {
	"agent": {name: p | some name, p in _agent_policies; not _is_shadow(p)},
	"tenant": {name: p | some name, p in _tenant_policies; not _is_shadow(p)},
	"shadow": {
		"agent": {name: p | some name, p in _agent_policies; _is_shadow(p)},
		"tenant": {name: p | some name, p in _tenant_policies; _is_shadow(p)},
	},
	"evaluated": _policies_evaluated,
	"allowed": _with_mode(_allowed_result(_policies_evaluated)),
} if {
	_tenant
	not _tenant.views
}

# The enabled agent-scoped policies of input.agent_id; a null, absent or
# unknown agent has none.
default _agent_scope := {}

_agent_scope := _tenant.agents[input.agent_id]

# Enabled agent-scoped policies that apply to this step type. (Written as
# comprehensions so the step and the scope are looked up once, not once
# per policy.)
_agent_policies := {name: p |
	step := _step
	some name, p in _agent_scope
	p.step_types[step]
}

# A policy in shadow mode (issue 16) is evaluated like any other, but its
# hits go to the result's "shadow" list and never change the status, the
# trigger, the severity, the reason, the risk score, the violations or the
# warnings. Data without a mode (an older bundle) enforces.
_is_shadow(p) if p.mode == "shadow"

# The names an agent-scoped copy overrides for its agent: those of its
# enabled copies that enforce. A shadow agent-scoped copy overrides
# nothing: the tenant-wide copy keeps deciding (or shadowing, if it is a
# shadow copy itself) beside it, so trying a stricter copy in shadow never
# removes the protection the tenant-wide copy gives meanwhile. The
# adapter's views apply the same rule (adapter/views.go).
_agent_overrides := {name |
	some name, p in _agent_scope
	not _is_shadow(p)
}

# Enabled tenant-wide policies not overridden by an enabled, enforcing
# agent-scoped policy of the same name (disabled policies are not in the
# data, so they override nothing), that apply to this step type.
_tenant_policies := {name: p |
	step := _step
	overrides := _agent_overrides
	some name, p in _tenant.tenant
	not overrides[name]
	p.step_types[step]
}

# The built-ins as Novyx names them in decisions (docs/api.md §A5); the policy
# list and CRUD call them FinancialSafety and DataExfiltration.
_builtin_names := ["FinancialSafetyPolicy", "DataExfiltrationPolicy"]

_policies_evaluated := array.concat(
	array.concat(sort(object.keys(_agent_policies)), sort(object.keys(_tenant_policies))),
	_builtin_names,
)

# --- candidates: the policies whose rules could fire ----------------------
#
# A policy's guard (always present in the data) holds the pre-check
# literals of all its rules: when the folded text contains none, no rule
# can fire and the policy is skipped with one call instead of one per rule.
# Replacing every literal with "" changes the text exactly when one occurs.
# A policy with a rule that has no pre-check gets the guard
# {"{\"action\":": ""}, which every action text contains.
#
# Gatehouse's engine evaluates this query with hints
# (data.gatehouse.hints, set only by the engine's own evaluation, never
# read from input): the candidates it found with one
# multi-pattern pass over the folded text, a subset of the view's policies
# that contains every policy that can fire (tested). Without hints (a stock
# OPA, the Data API, opa test) the guards decide; the result is the same.
_candidates := c if {
	c := data.gatehouse.hints.candidates
} else := {
	"agent": (_guarded(_view.agent) | _guarded(object.get(_view, ["shadow", "agent"], {}))),
	"tenant": (_guarded(_view.tenant) | _guarded(object.get(_view, ["shadow", "tenant"], {}))),
}

_guarded(policies) := {name |
	folded := text.folded
	some name, p in policies
	strings.replace_n(p.guard, folded) != folded
}

# The built-ins to evaluate: each unless the engine's hints say none of
# its rules' anchors occur in the text.
_builtins := b if {
	b := data.gatehouse.hints.builtins
} else := {"FinancialSafetyPolicy": true, "DataExfiltrationPolicy": true}

# --- hits ------------------------------------------------------------------
#
# A policy's rules are data (policy as data, adapter/rules.go): each
# enabled policy's entry in the tenant's data holds its rules, and _fire
# evaluates one. A hit is ranked and composed where it is found: _fire
# yields [0 - outcome rank, 0 - severity rank, scope rank, policy, rule,
# violation, patch] (see _ranked), its parts that do not depend on the
# action constants of the rule's data. Sorted, hits come strongest first;
# the patch is what the hit alone makes of the result.
#
# Which rules run: with the engine's rule hints (data.gatehouse.hints.rules,
# policy name → the indices of its rules that could fire, per scope) those
# rules, without their pre-checks (the hint's condition is theirs); with
# its candidates only (data.gatehouse.hints.candidates), the rules of a
# candidate policy whose pre-checks hold (_prechecked); without hints, the
# same behind the policies' guards (_candidates). The result is the same.

# The rules that run, per scope: policy name → the indices of its rules
# (an array or a set) that could fire. One rule, so that a decision pays
# for the choice between hinted and unhinted once, not in every body of
# _hits and _shadow_hits. A candidate policy's name that is not one of the
# scope's policies has no entry (its _prechecked is undefined), as the
# bodies below would skip it anyway.
_rules := r if {
	r := data.gatehouse.hints.rules
} else := {
	"agent": {name: _prechecked(_agent_scope[name]) | some name in _candidates.agent},
	"tenant": {name: _prechecked(_tenant.tenant[name]) | some name in _candidates.tenant},
}

# The view's policies (by scope, and in shadow mode by scope) that apply
# to this action: all of them when the view says none has whitelisted
# domains (the adapter's "no_whitelists"), else those _whitelisted does not
# skip (a view without the flag, as _computed_view and hand-written data
# have, is filtered). One rule, so that a decision with hits asks once,
# not once per hit.
_applying := _view if {
	_view.no_whitelists == true
} else := {
	"agent": _unskipped(object.get(_view, "agent", {})),
	"tenant": _unskipped(object.get(_view, "tenant", {})),
	"shadow": {
		"agent": _unskipped(object.get(_view, ["shadow", "agent"], {})),
		"tenant": _unskipped(object.get(_view, ["shadow", "tenant"], {})),
	},
}

_unskipped(policies) := {name: p |
	some name, p in policies
	not _whitelisted(p)
}

# A condition that only asks whether a value is there (a policy of
# _applying) or true (a flag) is written as a unification, `_ = x` or
# `x = true`, not as the bare term x: OPA evaluates a bare term by
# unifying it with a variable it names and allocates for it (about three
# allocations each time), a unification with a constant or the wildcard
# costs none, and both are one expression (the same trace events). The
# values unified with `_` are objects, never false, so the meaning is the
# bare term's.
_hits contains h if {
	some name, rules in _rules.agent
	_ = _applying.agent[name]
	some i in rules
	r := _agent_scope[name].rules[i]
	h := _fire(r.kind, r)
}

_hits contains h if {
	some name, rules in _rules.tenant
	_ = _applying.tenant[name]
	some i in rules
	r := _tenant.tenant[name].rules[i]
	h := _fire(r.kind, r)
}

# The built-ins yield their hits ranked and composed, like the generated
# rules.
_hits contains h if {
	_builtins.FinancialSafetyPolicy = true
	h := financial_safety.hit
}

_hits contains h if {
	_builtins.DataExfiltrationPolicy = true
	some h in data_exfiltration.hits
}

# The hits of shadow policies, found the same way (the candidates and the
# hints cover them too); reported, never enforced. A view without shadow
# policies costs an empty iteration (each body begins with it).
_shadow_hits contains h if {
	some name, _ in _applying.shadow.agent
	rules := _rules.agent[name]
	some i in rules
	r := _agent_scope[name].rules[i]
	h := _fire(r.kind, r)
}

_shadow_hits contains h if {
	some name, _ in _applying.shadow.tenant
	rules := _rules.tenant[name]
	some i in rules
	r := _tenant.tenant[name].rules[i]
	h := _fire(r.kind, r)
}

# The indices of the rules of policy (its data) whose pre-check holds:
# one of its literals occurs in the folded action text, each rule once
# (adapter.RuleIndex: a rule without a pre-check is listed under the
# literal every action text begins with, {"action":).
_prechecked(policy) := {i |
	f := text.folded
	some lit, rules in policy.by_literal
	contains(f, lit)
	some i in rules
}

# The hit of rule r (its data, adapter/rules.go) when it fires, by r.kind:
# its pattern matches (m, the first match) and its context_requires, if
# any, matches too. Undefined when it does not fire; with strict built-in
# errors, a pattern that does not compile fails the decision. The kinds
# are bodies of one function, which OPA indexes on kind, so a rule costs
# one call: "regex", "alts" (a pure alternation of ASCII literals,
# _alternative), each with "_context" after it when it has
# context_requires: then, once the match is found, the context's
# pre-check (r.context_pre, see _any) and its regex, written out in the
# body (a function of their own would cost a call per hit).
#
# Every body builds the hit the same way, written out in each (a call to
# a shared function would cost OPA some ten trace events per hit): the
# reason is the rule's reason with each {match} replaced by m (the
# policy's default, "Policy '<name>' violated: {match}" (a valid name
# holds no "{match}"), a template, or a fixed text, which holds no
# {match}), written as its parts between the {match}s joined with m
# (concat(m, parts) is replace(reason, "{match}", m), without the
# strings.Replacer that replace builds on every call); the violation is
# the rule's with the match and the reason;
# the hit is the rule's key, the violation and the rule's patch completed
# with the reason, the violation and (unless the patch says none) the
# warning.
_fire(kind, r) := array.concat(r.key, [v, object.union({"reason": reason, "violations": [v], "warnings": [v]}, r.patch)]) if {
	kind == "regex"
	m := regex.find_n(r.pattern, text.text, 1)[0]
	reason := concat(m, r.reason_parts)
	v := object.union(r.violation, {"match": m, "reason": reason})
}

_fire(kind, r) := array.concat(r.key, [v, object.union({"reason": reason, "violations": [v], "warnings": [v]}, r.patch)]) if {
	kind == "alts"
	m := _alternative(r)
	reason := concat(m, r.reason_parts)
	v := object.union(r.violation, {"match": m, "reason": reason})
}

_fire(kind, r) := array.concat(r.key, [v, object.union({"reason": reason, "violations": [v], "warnings": [v]}, r.patch)]) if {
	kind == "regex_context"
	m := regex.find_n(r.pattern, text.text, 1)[0]
	_any(r.context_pre)
	regex.match(r.context, text.text)
	reason := concat(m, r.reason_parts)
	v := object.union(r.violation, {"match": m, "reason": reason})
}

_fire(kind, r) := array.concat(r.key, [v, object.union({"reason": reason, "violations": [v], "warnings": [v]}, r.patch)]) if {
	kind == "alts_context"
	m := _alternative(r)
	_any(r.context_pre)
	regex.match(r.context, text.text)
	reason := concat(m, r.reason_parts)
	v := object.union(r.violation, {"match": m, "reason": reason})
}

# A pre-check: the folded action text contains one of lits, literals
# every match of a pattern contains. A function exits on its first
# success.
_any(lits) if {
	f := text.folded
	some lit in lits
	contains(f, lit)
}

# The first match of a pure alternation of ASCII literals (r.alts,
# folded). On an ASCII text it is found without the regex: for ASCII text
# and literals, folded containment is exactly Python's IGNORECASE
# matching, indexof gives byte = rune positions, and the least [position,
# alternative] is RE2's leftmost-first choice. Other texts take the regex.
#
# Cheap for OPA: contains() turns an absent alternative away in one
# expression, the position is computed in the comprehension's head only
# for those present, and the length only for the one that wins ([position,
# index] is unique, so the literal never decides the minimum).
_alternative(r) := substring(text.text, x[0], count(x[2])) if {
	text.ascii = true # (a unification, see _hits)
	f := text.folded
	x := min([[indexof(f, lit), k, lit] |
		some k, lit in r.alts
		contains(f, lit)
	])
} else := ms[0] if {
	ms := regex.find_n(r.pattern, text.text, 1)
}

# A policy is skipped only when the action text names at least one
# destination, every destination is a recognised hostname (text.targets,
# text.hostnames: IP literals, single-label hosts, localhost, non-ASCII or
# full-width spellings and ideographic dots are not), and every one is a
# whitelisted domain or a subdomain of one. Anything else fails closed: the
# policy applies.
_whitelisted(p) if {
	p.whitelisted_domains != []
	count(text.targets) > 0
	count(text.unrecognised) == 0
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

_status_of_outcome := {"block": "blocked", "require_approval": "pending_review", "warn": "allowed"}

# The hit of violation v (as a rule or a built-in yields it: rule,
# severity, on_violation, confidence, match, reason) of policy in scope.
# Hits sort strongest first: outcome, then severity, then scope agent >
# tenant > builtin, then policy name, then rule order. The patch holds the
# status v alone gives, its risk score (severity weight × confidence,
# rounded to two decimals; a decision's risk_score is the largest of its
# hits', since rounding is monotonic) and the trigger's fields. The
# adapter writes the same terms into each rule's data (adapter/rules.go,
# what _fire completes) and each generated module's rule (hitTerm), with
# everything but the violation, the match and the reason as constants, and
# the built-ins' rules hold them too; all are tested against this
# definition.
_ranked(v, policy, scope) := [
	0 - _outcome_rank[v.on_violation],
	0 - _severity_rank[v.severity],
	_scope_rank[scope],
	policy,
	v.rule,
	h,
	{
		"status": _status_of_outcome[v.on_violation],
		"risk_score": round((_severity_weight[v.severity] * v.confidence) * 100) / 100,
		"triggered_policy": policy,
		"severity": v.severity,
		"reason": v.reason,
		"violations": [h],
		"warnings": [h | v.on_violation == "warn"],
	},
] if {
	h := object.union(v, {"policy": policy, "scope": scope})
}

# Hits strongest first; the first is the trigger, and its outcome is the
# strongest, so it also gives the status.
_ranked_hits := sort(_hits)

# Shadow hits ranked like violations, each with the status it alone
# would give were its policy enforcing.
_shadow := [{
	"policy": v.policy,
	"scope": v.scope,
	"rule": v.rule,
	"severity": v.severity,
	"on_violation": v.on_violation,
	"reason": v.reason,
	"match": v.match,
	"would_status": x[6].status,
} |
	some x in sort(_shadow_hits)
	v := x[5]
]

# r with the shadow hits, when a shadow policy fired.
_with_shadow(r) := object.union(r, {"shadow": _shadow}) if {
	_nshadow > 0
} else := r

_nhits := count(_hits)

_nshadow := count(_shadow_hits)

# The result when nothing fires, before the tenant's mode applies.
_allowed_result(evaluated) := {
	"status": "allowed",
	"risk_score": 0,
	"policies_evaluated": evaluated,
	"triggered_policy": null,
	"severity": null,
	"reason": null,
	"violations": [],
	"warnings": [],
}

# Shadow mode: everything is reported, but the status is always allowed;
# shadow_status says what it would have been. A tenant whose data names
# no mode enforces.
_with_mode(r) := r if {
	not _shadow_mode
} else := object.union(r, {"status": "allowed", "shadow_status": r.status})

_shadow_mode if _tenant.mode == "shadow"

# The result of a decision whose view has no shadow policy, for a tenant
# that enforces, by the number of enforced hits n (OPA's rule index
# matches n == k, so a decision enters the body for its count and the
# n > 4 one, which fails at once): none,
# the view's precomputed result (the tenant's mode already applied);
# otherwise the view's no-hit result with the trigger's patch, and, when
# more than one hit fired, every hit's violations and warnings and the
# largest risk score. A patch's warnings are its hit's own violation when
# the hit warns, else none, so the warnings are the patches' warnings in
# rank order (or, iterating, the violations of the hits whose outcome rank
# is 1: warn). Up to four hits (most decisions where more than one rule
# fires) are composed without iterating.
_composed(n) := _view.allowed if n == 0

_composed(n) := object.union(_view.allowed, x[6]) if {
	n == 1
	some x in _hits
}

_composed(n) := object.union_n([_view.allowed, a[6], {
	"risk_score": max([a[6].risk_score, b[6].risk_score]),
	"violations": [a[5], b[5]],
	"warnings": array.concat(a[6].warnings, b[6].warnings),
}]) if {
	n == 2
	[a, b] := sort(_hits)
}

_composed(n) := object.union_n([_view.allowed, a[6], {
	"risk_score": max([a[6].risk_score, b[6].risk_score, c[6].risk_score]),
	"violations": [a[5], b[5], c[5]],
	"warnings": array.concat(array.concat(a[6].warnings, b[6].warnings), c[6].warnings),
}]) if {
	n == 3
	[a, b, c] := sort(_hits)
}

_composed(n) := object.union_n([_view.allowed, a[6], {
	"risk_score": max([a[6].risk_score, b[6].risk_score, c[6].risk_score, d[6].risk_score]),
	"violations": [a[5], b[5], c[5], d[5]],
	"warnings": array.concat(array.concat(a[6].warnings, b[6].warnings), array.concat(c[6].warnings, d[6].warnings)),
}]) if {
	n == 4
	[a, b, c, d] := sort(_hits)
}

_composed(n) := object.union_n([_view.allowed, _ranked_hits[0][6], {
	"risk_score": max([x[6].risk_score | some x in _hits]),
	"violations": [x[5] | some x in _ranked_hits],
	"warnings": [x[5] | some x in _ranked_hits; x[0] == -1],
}]) if {
	n > 4
}

# The result when the engine's hints say no rule of the view's policies
# can fire (so there are no shadow hits either): with no built-in to run,
# the view's precomputed no-hit result (the tenant's mode already
# applied); with only FinancialSafety, for a tenant that enforces, that
# result patched with its hit, if any (_composed's one-hit result), the
# commonest decision with a hit. Whether the tenant enforces is read from
# the view ("enforcing": true, which the adapter writes into every view of
# a tenant that enforces), so this path never evaluates the tenant's
# document. Undefined otherwise — a shadow tenant, or a view without the
# flag (_computed_view, hand-written data) — and result's next branches
# decide, to the same result.
_builtins_result := _view.allowed if {
	data.gatehouse.hints.builtins == {}
} else := object.union(_view.allowed, h[6]) if {
	data.gatehouse.hints.builtins == {"FinancialSafetyPolicy": true}
	_view.enforcing == true
	h := financial_safety.hit
}

# Something fired: the view's no-hit result composed with the hits.
_fired_result := _composed(_nhits) if _nhits > 0

# The result is built by the first of these that applies:
#  - Gatehouse's engine's hints say that no rule of the view's policies
#    (shadow ones included) can fire, and no built-in or only
#    FinancialSafety: _builtins_result, without looking for other hits.
#    (The hints never leave out a rule that could fire; without hints, a
#    stock OPA takes the next branches to the same result.)
#  - A view with no shadow policy (both of its shadow lists empty, as the
#    adapter writes them and _computed_view computes them) of a tenant
#    that enforces has no shadow hits and no mode to apply: _composed.
#  - Every other case is _result's.
# (The view is defined only for a tenant the data holds.)

# METADATA
# description: The policy_result of docs/api.md §A7, less action_id and timing.
# entrypoint: true
result := r if {
	is_string(input.action)
	data.gatehouse.hints.rules == {"agent": {}, "tenant": {}}
	r := _builtins_result
} else := r if {
	is_string(input.action)
	_view.shadow == {"agent": {}, "tenant": {}}
	_tenant.mode == "enforcement"
	r := _composed(count(_hits))
} else := r if {
	is_string(input.action)
	_tenant
	r := _result
}

# Nothing fired, shadow policies included: the view's precomputed result.
# Only shadow hits: the same result with the shadow list (the tenant's mode
# already applied to it). Otherwise the strongest enforced hit decides,
# the tenant's mode and the shadow hits applied to it.
_result := _view.allowed if {
	_nhits == 0
	_nshadow == 0
} else := object.union(_view.allowed, {"shadow": _shadow}) if {
	_nhits == 0
} else := _fired_result if {
	_nshadow == 0
	not _shadow_mode
} else := _with_shadow(_with_mode(_fired_result))
