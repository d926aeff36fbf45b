# METADATA
# title: Decision tests
# description: |
#   docs/api.md §A3 (step_types, whitelisted_domains), A4 (scopes) and A7
#   (status, triggered_policy, risk_score, policies_evaluated, violations,
#   warnings, shadow mode) for data.gatehouse.decision.result.
#
#   The policies' rules are mocked: a case names the violations each policy
#   yields ("mods": {"tenant": {name: {"violations": ...}}, "agents": ...}),
#   _data_for derives the tenant's data from it, every policy enabled for
#   ACTION with no whitelist unless the test says otherwise, and _result
#   gives each policy one rule per violation, firing with its hit.
package gatehouse.decision_test

import data.gatehouse.builtins.data_exfiltration
import data.gatehouse.builtins.financial_safety
import data.gatehouse.decision

_input := {"tenant_id": "acme", "action": "send_email", "params": {"to": "ops"}}

_for_agent(agent) := object.union(_input, {"agent_id": agent})

_always := {`{"action":`: ""}

_policy := {"step_types": {"ACTION": true}, "whitelisted_domains": [], "guard": _always}

# Violations as a generated module yields them.
_v(rule, severity, on_violation, confidence) := {
	"rule": rule,
	"severity": severity,
	"on_violation": on_violation,
	"confidence": confidence,
	"match": "ssn",
	"reason": sprintf("rule %d: %s %s", [rule, severity, on_violation]),
}

_block := _v(0, "critical", "block", 0.85)

_approve := _v(0, "high", "require_approval", 0.85)

_warn := _v(0, "low", "warn", 0.85)

_data_for(mods) := {"acme": {
	"mode": "enforcement",
	"tenant": {name: _policy | some name, _ in object.get(mods, "tenant", {})},
	"agents": {agent: {name: _policy | some name, _ in ps} | some agent, ps in object.get(mods, "agents", {})},
}}

_result(inp, tenants, policies) := r if {
	r := decision.result with input as inp
		with data.gatehouse.tenants as _with_rules(tenants, policies)
		with decision._fire as _mock_fire
}

# The mocked policies' rules as the tenant's data carries them (policy as
# data): one rule per violation, each firing with the hit decision._ranked
# builds for it (adapter and engine tests check that a real rule's data
# fires with exactly that hit), by way of the mocked _fire. A policy the
# data does not hold gets no rules, as it gets no data.
_with_rules(tenants, policies) := {t: object.union(doc, {
	"tenant": {name: _rules(p, object.get(policies, [t, "tenant", name, "violations"], set()), name, "tenant") |
		some name, p in object.get(doc, "tenant", {})
	},
	"agents": {agent: {name: _rules(p, object.get(policies, [t, "agents", agent, name, "violations"], set()), name, "agent") |
		some name, p in ps
	} |
		some agent, ps in object.get(doc, "agents", {})
	},
}) |
	some t, doc in tenants
}

_rules(p, violations, name, scope) := object.union(p, {"rules": rules, "by_literal": {`{"action":`: [i | some i, _ in rules]}}) if {
	rules := [{"kind": "mock", "hit": decision._ranked(v, name, scope)} | some v in violations]
}

_mock_fire(_, r) := r.hit

_decide(inp, mods) := _result(inp, _data_for(mods), {"acme": mods})

_order(r) := [[v.policy, v.scope, v.rule] | some v in r.violations]

default _fired(_, _) := false

_fired(r, name) if {
	some v in r.violations
	v.policy == name
}

# --- the result document -----------------------------------------------

test_result_when_nothing_fires if {
	r := _decide(_input, {"tenant": {"pii": {"violations": set()}}})
	r == {
		"status": "allowed",
		"risk_score": 0,
		"policies_evaluated": ["pii", "FinancialSafetyPolicy", "DataExfiltrationPolicy"],
		"triggered_policy": null,
		"severity": null,
		"reason": null,
		"violations": [],
		"warnings": [],
	}
}

test_result_when_a_policy_blocks if {
	r := _decide(_input, {"tenant": {"pii": {"violations": {_block}}}})
	r == {
		"status": "blocked",
		"risk_score": 0.85,
		"policies_evaluated": ["pii", "FinancialSafetyPolicy", "DataExfiltrationPolicy"],
		"triggered_policy": "pii",
		"severity": "critical",
		"reason": "rule 0: critical block",
		"violations": [object.union(_block, {"policy": "pii", "scope": "tenant"})],
		"warnings": [],
	}
}

test_violations_carry_exactly_the_contract_fields if {
	inp := object.union(_for_agent("billing-bot"), {"action": "wire_funds", "params": {"amount": 20000}})
	r := _decide(inp, {"agents": {"billing-bot": {"pii": {"violations": {_warn}}}}, "tenant": {"audit": {"violations": {_approve}}}})
	{v.scope | some v in r.violations} == {"agent", "tenant", "builtin"}
	count(r.violations) == 3
	every v in r.violations {
		object.keys(v) == {"policy", "scope", "rule", "severity", "on_violation", "reason", "match", "confidence"}
	}
}

test_builtin_hits_join_the_decision if {
	inp := object.union(_input, {"action": "wire_funds", "params": {"amount": 20000}})
	r := _decide(inp, {})
	r.status == "pending_review"
	r.triggered_policy == "FinancialSafetyPolicy"
	r.severity == "high"
	r.reason == "High-value financial operation requires approval"
	r.risk_score == 0.8
	r.violations == [{
		"policy": "FinancialSafetyPolicy",
		"scope": "builtin",
		"rule": 1,
		"severity": "high",
		"on_violation": "require_approval",
		"confidence": 1,
		"match": "wire",
		"reason": "High-value financial operation requires approval",
	}]
}

test_tenant_without_policies_gets_builtins_only if {
	r := _result(_input, {"acme": {"mode": "enforcement"}}, {})
	r.status == "allowed"
	r.policies_evaluated == ["FinancialSafetyPolicy", "DataExfiltrationPolicy"]
}

test_unknown_tenant_is_undefined if {
	mods := {"tenant": {"pii": {"violations": {_block}}}}
	not _decide(object.union(_input, {"tenant_id": "nobody"}), mods)
	not _decide(object.remove(_input, ["tenant_id"]), mods)
}

_not_strings := {"number": 42, "null": null, "array": ["send_email"], "object": {"name": "send_email"}}

test_non_string_action_is_undefined[name] if {
	some name, action in _not_strings
	not _decide(object.union(_input, {"action": action}), {})
}

test_missing_action_is_undefined if {
	not _decide(object.remove(_input, ["action"]), {})
}

# --- step_types (A3) ---------------------------------------------------

_step_cases := {
	"absent step_type is ACTION": {"input": {}, "step_types": ["ACTION"], "fires": true},
	"empty step_type is ACTION": {"input": {"step_type": ""}, "step_types": ["ACTION"], "fires": true},
	"null step_type is ACTION": {"input": {"step_type": null}, "step_types": ["ACTION"], "fires": true},
	"lower-case step_type": {"input": {"step_type": "output"}, "step_types": ["OUTPUT"], "fires": true},
	"mixed-case step_type": {"input": {"step_type": "Policy_Check"}, "step_types": ["POLICY_CHECK"], "fires": true},
	"one of several": {"input": {"step_type": "thought"}, "step_types": ["ACTION", "THOUGHT"], "fires": true},
	"step_type not listed": {"input": {"step_type": "thought"}, "step_types": ["ACTION"], "fires": false},
	"default ACTION not listed": {"input": {}, "step_types": ["OUTPUT", "ERROR"], "fires": false},
}

test_step_types[name] if {
	some name, c in _step_cases
	tenants := {"acme": {"mode": "enforcement", "tenant": {"pii": {"step_types": {s: true | some s in c.step_types}, "whitelisted_domains": [], "guard": _always}}}}
	r := _result(object.union(_input, c.input), tenants, {"acme": {"tenant": {"pii": {"violations": {_block}}}}})
	_fired(r, "pii") == c.fires

	# A skipped policy is not evaluated at all.
	evaluated := "pii" in r.policies_evaluated
	evaluated == c.fires
}

test_builtins_run_for_every_step_type if {
	inp := object.union(_input, {"action": "wire_funds", "params": {"amount": 5}, "step_type": "thought"})
	r := _decide(inp, {})
	_fired(r, "FinancialSafetyPolicy")
}

# --- whitelisted_domains (A3) ------------------------------------------

_whitelist_cases := {
	"every host whitelisted: skipped": {"params": {"url": "https://example.com/a", "cc": "ops@example.com"}, "fires": false},
	"subdomain covered: skipped": {"params": {"url": "https://api.eu.example.com/x"}, "fires": false},
	"hosts under two whitelisted domains: skipped": {"params": {"a": "https://example.com", "b": "https://partner.io"}, "fires": false},
	"upper-case host covered: skipped": {"params": {"url": "HTTPS://API.EXAMPLE.COM/"}, "fires": false},
	"one host outside: not skipped": {"params": {"a": "https://example.com", "b": "https://evil.io"}, "fires": true},
	"look-alike suffix is not a subdomain": {"params": {"url": "https://notexample.com"}, "fires": true},
	"whitelisted name inside another domain": {"params": {"url": "https://example.com.evil.io"}, "fires": true},
	"no hostname: not skipped": {"params": {"to": "ops", "ip": "http://10.0.0.1/"}, "fires": true},
	"e-mail domain covered: skipped": {"params": {"to": "Jane.Doe+x@mail.example.com."}, "fires": false},
	# The attacker list (issue 10): naming a whitelisted domain anywhere
	# must not skip the policy for a destination that is not one.
	"IPv4 URL beside a whitelisted name": {"params": {"url": "http://10.0.0.1/x", "note": "example.com"}, "fires": true},
	"bare IPv4 beside a whitelisted name": {"params": {"host": "169.254.169.254", "note": "example.com"}, "fires": true},
	"decimal IPv4 URL": {"params": {"url": "http://2130706433/", "note": "example.com"}, "fires": true},
	"hexadecimal IPv4 URL": {"params": {"url": "http://0x7f.1/", "note": "example.com"}, "fires": true},
	"localhost URL": {"params": {"url": "http://localhost:8080/admin", "note": "example.com"}, "fires": true},
	"bare localhost": {"params": {"host": "localhost", "note": "example.com"}, "fires": true},
	"IPv6 loopback URL": {"params": {"url": "http://[::1]/", "note": "example.com"}, "fires": true},
	"bare IPv6 loopback": {"params": {"host": "[::1]:22", "note": "example.com"}, "fires": true},
	"single-label host": {"params": {"url": "http://intranet/", "note": "example.com"}, "fires": true},
	"full-width host": {"params": {"url": "https://ｅｖｉｌ.com/", "note": "example.com"}, "fires": true},
	"bare full-width host": {"params": {"host": "ｅｖｉｌ.com", "note": "example.com"}, "fires": true},
	"full-width spelling of the whitelisted name": {"params": {"url": "https://ｅｘａｍｐｌｅ.com/"}, "fires": true},
	"ideographic full stop": {"params": {"host": "evil。com", "note": "example.com"}, "fires": true},
	"full-width full stop": {"params": {"url": "https://evil．com", "note": "example.com"}, "fires": true},
	"halfwidth ideographic full stop": {"params": {"host": "evil｡com", "note": "example.com"}, "fires": true},
	"Cyrillic look-alike": {"params": {"url": "https://ехаmple.com/"}, "fires": true},
	"Kelvin sign": {"params": {"url": "https://example.\u212aom/"}, "fires": true},
	"soft hyphen inside a name": {"params": {"host": "ev\u00adil.com", "note": "example.com"}, "fires": true},
	"percent-encoded dot": {"params": {"url": "https://evil%2ecom/", "note": "example.com"}, "fires": true},
	"trailing dot URL host": {"params": {"url": "https://example.com./"}, "fires": true},
	"underscore in a name": {"params": {"url": "https://ev_il.example.com/"}, "fires": true},
	"userinfo hides the host": {"params": {"url": "https://example.com@evil.io/"}, "fires": true},
	"backslash ends the authority": {"params": {"url": "https://evil.io\\@example.com/"}, "fires": true},
	"two at signs in an address": {"params": {"to": "a@evil.io@example.com"}, "fires": true},
	"e-mail at an IP literal": {"params": {"to": "root@[127.0.0.1]", "note": "example.com"}, "fires": true},
	"empty e-mail domain": {"params": {"to": "root@", "note": "example.com"}, "fires": true},
	"port with a second colon": {"params": {"url": "https://example.com:80:81/"}, "fires": true},
}

_whitelisting(domains) := {"acme": {
	"mode": "enforcement",
	"tenant": {"pii": {"step_types": {"ACTION": true}, "whitelisted_domains": domains, "guard": _always}},
	"agents": {"billing-bot": {"refunds": {"step_types": {"ACTION": true}, "whitelisted_domains": domains, "guard": _always}}},
}}

_whitelist_mods := {"acme": {
	"tenant": {"pii": {"violations": {_block}}},
	"agents": {"billing-bot": {"refunds": {"violations": {_warn}}}},
}}

test_whitelisted_domains[name] if {
	some name, c in _whitelist_cases
	inp := object.union(_input, {"params": c.params})
	r := _result(inp, _whitelisting(["example.com", "partner.io"]), _whitelist_mods)
	_fired(r, "pii") == c.fires

	# A whitelisted policy is still part of the effective set.
	"pii" in r.policies_evaluated
}

test_whitelisted_domains_apply_to_agent_policies if {
	covered := object.union(_for_agent("billing-bot"), {"params": {"url": "https://example.com"}})
	not _fired(_result(covered, _whitelisting(["example.com"]), _whitelist_mods), "refunds")
	outside := object.union(_for_agent("billing-bot"), {"params": {"url": "https://evil.io"}})
	_fired(_result(outside, _whitelisting(["example.com"]), _whitelist_mods), "refunds")
}

test_empty_whitelist_never_skips if {
	inp := object.union(_input, {"params": {"url": "https://example.com"}})
	_fired(_result(inp, _whitelisting([]), _whitelist_mods), "pii")
}

test_whitelist_never_affects_builtins if {
	inp := object.union(_input, {
		"action": "wire_funds",
		"params": {"amount": 20000, "url": "https://example.com", "key": "AKIAIOSFODNN7EXAMPLE"},
	})
	r := _result(inp, _whitelisting(["example.com"]), _whitelist_mods)
	not _fired(r, "pii")
	_fired(r, "FinancialSafetyPolicy")
	_fired(r, "DataExfiltrationPolicy")
}

# --- scopes (A4) ---------------------------------------------------------

_scoped := {
	"tenant": {
		"pii": {"violations": {_warn}},
		"audit": {"violations": set()},
	},
	"agents": {
		"billing-bot": {
			"pii": {"violations": {_block}},
			"refunds": {"violations": {_approve}},
		},
		"support-bot": {"faq": {"violations": set()}},
	},
}

test_agent_policy_shadows_tenant_policy_of_same_name if {
	r := _decide(_for_agent("billing-bot"), _scoped)
	_order(r) == [["pii", "agent", 0], ["refunds", "agent", 0]]
	r.policies_evaluated == ["pii", "refunds", "audit", "FinancialSafetyPolicy", "DataExfiltrationPolicy"]
}

test_other_agents_see_tenant_policies if {
	r := _decide(_for_agent("support-bot"), _scoped)
	_order(r) == [["pii", "tenant", 0]]
	r.policies_evaluated == ["faq", "audit", "pii", "FinancialSafetyPolicy", "DataExfiltrationPolicy"]
}

_no_agent := {
	"absent": object.remove(_input, ["agent_id"]),
	"null": object.union(_input, {"agent_id": null}),
	"empty": object.union(_input, {"agent_id": ""}),
	"agent without policies": _for_agent("new-bot"),
}

test_without_agent_scope_only_tenant_policies_apply[name] if {
	some name, inp in _no_agent
	r := _decide(inp, _scoped)
	_order(r) == [["pii", "tenant", 0]]
	r.policies_evaluated == ["audit", "pii", "FinancialSafetyPolicy", "DataExfiltrationPolicy"]
}

test_agent_only_policy_applies_only_to_that_agent if {
	_fired(_decide(_for_agent("billing-bot"), _scoped), "refunds")
	every inp in [_input, _for_agent("support-bot"), _for_agent("new-bot")] {
		r := _decide(inp, _scoped)
		not _fired(r, "refunds")
		not "refunds" in r.policies_evaluated
	}
}

# DELETE ?agent_id=billing-bot leaves the policy out of the data; even if its
# module is still loaded, it neither fires nor shadows the tenant-wide one.
test_disabled_agent_policy_shadows_nothing if {
	tenants := {"acme": {
		"mode": "enforcement",
		"tenant": {"pii": _policy},
		"agents": {"billing-bot": {"refunds": _policy}},
	}}
	r := _result(_for_agent("billing-bot"), tenants, {"acme": _scoped})
	_order(r) == [["refunds", "agent", 0], ["pii", "tenant", 0]]
	r.policies_evaluated == ["refunds", "pii", "FinancialSafetyPolicy", "DataExfiltrationPolicy"]
}

# Shadowing is by name among the agent's enabled policies; the agent's copy
# being skipped for this step type does not bring the tenant-wide one back.
test_shadowing_does_not_depend_on_step_types if {
	tenants := {"acme": {
		"mode": "enforcement",
		"tenant": {"pii": _policy},
		"agents": {"billing-bot": {"pii": {"step_types": {"OUTPUT": true}, "whitelisted_domains": [], "guard": _always}}},
	}}
	r := _result(_for_agent("billing-bot"), tenants, {"acme": _scoped})
	r.violations == []
	r.policies_evaluated == ["FinancialSafetyPolicy", "DataExfiltrationPolicy"]
}

test_shadowed_policy_fires_again_for_other_step_types if {
	tenants := {"acme": {
		"mode": "enforcement",
		"tenant": {"pii": _policy},
		"agents": {"billing-bot": {"pii": {"step_types": {"OUTPUT": true}, "whitelisted_domains": [], "guard": _always}}},
	}}
	r := _result(object.union(_for_agent("billing-bot"), {"step_type": "output"}), tenants, {"acme": _scoped})
	_order(r) == [["pii", "agent", 0]]
}

# --- status, triggered_policy, risk_score (A7) ---------------------------

_status_cases := {
	"warn only: allowed": {"hits": {_warn}, "status": "allowed"},
	"approval alone": {"hits": {_approve}, "status": "pending_review"},
	"approval beats warn": {"hits": {_warn, _approve}, "status": "pending_review"},
	"block alone": {"hits": {_block}, "status": "blocked"},
	"block beats approval and warn": {"hits": {_warn, _approve, _block}, "status": "blocked"},
	"weak block beats strong approval": {"hits": {_v(1, "low", "block", 0.1), _v(2, "critical", "require_approval", 1)}, "status": "blocked"},
}

test_status_precedence[name] if {
	some name, c in _status_cases
	r := _decide(_input, {"tenant": {"pii": {"violations": c.hits}}})
	r.status == c.status
}

test_warn_hits_trigger_but_allow if {
	r := _decide(_input, {"tenant": {"pii": {"violations": {_warn}}}})
	r.status == "allowed"
	r.triggered_policy == "pii"
	r.severity == "low"
	r.reason == "rule 0: low warn"
}

# Each case: the mocked modules, optional params, and the violations in
# ranked order; the first is the trigger.
_order_cases := {
	"outcome before severity": {
		"mods": {"tenant": {
			"a": {"violations": {_v(0, "critical", "require_approval", 1)}},
			"b": {"violations": {_v(0, "low", "block", 1)}},
		}},
		"want": [["b", "tenant", 0], ["a", "tenant", 0]],
	},
	"severity within an outcome": {
		"mods": {"tenant": {
			"a": {"violations": {_v(0, "low", "warn", 1)}},
			"b": {"violations": {_v(0, "high", "warn", 1), _v(1, "medium", "warn", 1)}},
		}},
		"want": [["b", "tenant", 0], ["b", "tenant", 1], ["a", "tenant", 0]],
	},
	"agent before tenant": {
		"mods": {
			"agents": {"billing-bot": {"zeta": {"violations": {_block}}}},
			"tenant": {"alpha": {"violations": {_block}}},
		},
		"want": [["zeta", "agent", 0], ["alpha", "tenant", 0]],
	},
	"tenant before builtin": {
		"mods": {"tenant": {"zzz": {"violations": {_v(0, "critical", "block", 0.5)}}}},
		"params": {"key": "AKIAIOSFODNN7EXAMPLE"},
		"want": [["zzz", "tenant", 0], ["DataExfiltrationPolicy", "builtin", 1]],
	},
	"policy name": {
		"mods": {"tenant": {
			"beta": {"violations": {_v(0, "medium", "warn", 1)}},
			"alpha": {"violations": {_v(3, "medium", "warn", 1)}},
		}},
		"want": [["alpha", "tenant", 3], ["beta", "tenant", 0]],
	},
	"rule order, numerically": {
		"mods": {"tenant": {"pii": {"violations": {
			_v(10, "medium", "warn", 1),
			_v(2, "medium", "warn", 1),
			_v(9, "medium", "warn", 1),
		}}}},
		"want": [["pii", "tenant", 2], ["pii", "tenant", 9], ["pii", "tenant", 10]],
	},
	"severity before scope": {
		"mods": {
			"agents": {"billing-bot": {"a": {"violations": {_v(0, "low", "block", 1)}}}},
			"tenant": {"b": {"violations": {_v(0, "critical", "block", 1)}}},
		},
		"want": [["b", "tenant", 0], ["a", "agent", 0]],
	},
}

test_triggered_policy_order[name] if {
	some name, c in _order_cases
	inp := object.union(_for_agent("billing-bot"), {"params": object.get(c, "params", {})})
	r := _decide(inp, c.mods)
	_order(r) == c.want
	r.triggered_policy == c.want[0][0]
}

test_severity_and_reason_come_from_the_trigger if {
	r := _decide(_input, {"tenant": {
		"a": {"violations": {_v(4, "critical", "warn", 1)}},
		"b": {"violations": {_v(7, "medium", "require_approval", 0.6)}},
	}})
	r.triggered_policy == "b"
	r.severity == "medium"
	r.reason == "rule 7: medium require_approval"
}

_risk_cases := {
	"nothing fired": {"hits": set(), "want": 0},
	"critical at 1.0": {"hits": {_v(0, "critical", "block", 1)}, "want": 1},
	"high at 0.85": {"hits": {_v(0, "high", "require_approval", 0.85)}, "want": 0.68},
	"medium at 0.9": {"hits": {_v(0, "medium", "warn", 0.9)}, "want": 0.45},
	"low at 0.85 rounds down": {"hits": {_v(0, "low", "warn", 0.85)}, "want": 0.21},
	"two decimals, rounding up": {"hits": {_v(0, "critical", "block", 0.666)}, "want": 0.67},
	"two decimals, rounding down": {"hits": {_v(0, "high", "block", 0.777)}, "want": 0.62},
	"maximum over hits, not the trigger's": {"hits": {_v(0, "low", "block", 1), _v(1, "critical", "warn", 0.9)}, "want": 0.9},
	"maximum of several": {"hits": {_v(0, "medium", "warn", 0.9), _v(1, "high", "warn", 0.5)}, "want": 0.45},
}

test_risk_score[name] if {
	some name, c in _risk_cases
	r := _decide(_input, {"tenant": {"pii": {"violations": c.hits}}})
	r.risk_score == c.want
}

# The composition of n hits, unrolled (up to four) or iterating (five and
# more), is the one definition: every hit's violation in rank order, the
# warn hits' violations as warnings, the largest risk score, the trigger's
# status, severity and reason.
_composition_hits := [
	_v(0, "low", "warn", 1),
	_v(1, "critical", "block", 0.5),
	_v(2, "high", "require_approval", 0.9),
	_v(3, "medium", "warn", 0.7),
	_v(4, "low", "block", 0.3),
	_v(5, "critical", "warn", 1),
]

test_composition_by_number_of_hits[n] if {
	some n in numbers.range(1, count(_composition_hits))
	hits := {h | some h in array.slice(_composition_hits, 0, n)}
	r := _decide(_input, {"tenant": {"pii": {"violations": hits}}})
	ranked := sort([decision._ranked(v, "pii", "tenant") | some v in hits])
	count(r.violations) == n
	r.violations == [x[5] | some x in ranked]
	r.warnings == [x[5] | some x in ranked; x[5].on_violation == "warn"]
	r.risk_score == max([x[6].risk_score | some x in ranked])
	[r.status, r.triggered_policy, r.severity, r.reason] == [ranked[0][6].status, "pii", ranked[0][6].severity, ranked[0][6].reason]
}

# --- policies_evaluated, warnings (A7) -----------------------------------

test_policies_evaluated_in_effective_order if {
	r := _decide(_for_agent("billing-bot"), {
		"agents": {"billing-bot": {"zeta": {"violations": set()}, "alpha": {"violations": set()}}},
		"tenant": {"mid": {"violations": set()}, "beta": {"violations": set()}, "alpha": {"violations": set()}},
	})
	r.policies_evaluated == ["alpha", "zeta", "beta", "mid", "FinancialSafetyPolicy", "DataExfiltrationPolicy"]
}

test_warnings_are_the_warn_hits_in_ranked_order if {
	r := _decide(_input, {"tenant": {
		"a": {"violations": {_v(0, "low", "warn", 1), _block}},
		"b": {"violations": {_v(0, "high", "warn", 1), _approve}},
	}})
	[[v.policy, v.severity] | some v in r.warnings] == [["b", "high"], ["a", "low"]]
	r.warnings == [v | some v in r.violations; v.on_violation == "warn"]
	count(r.violations) == 4
}

# --- shadow mode (A7) ----------------------------------------------------

_shadow_cases := {
	"would block": {"hits": {_warn, _block}, "would_be": "blocked"},
	"would need approval": {"hits": {_approve}, "would_be": "pending_review"},
	"would allow with warnings": {"hits": {_warn}, "would_be": "allowed"},
	"nothing fired": {"hits": set(), "would_be": "allowed"},
}

test_shadow_mode[name] if {
	some name, c in _shadow_cases
	mods := {"tenant": {"pii": {"violations": c.hits}}}
	tenants := object.union(_data_for(mods), {"acme": {"mode": "shadow"}})
	r := _result(_input, tenants, {"acme": mods})
	r.status == "allowed"
	r.shadow_status == c.would_be

	# Everything else is reported as in enforcement mode.
	object.remove(r, ["status", "shadow_status"]) == object.remove(_decide(_input, mods), ["status"])
}

test_no_shadow_status_in_enforcement_mode if {
	mods := {"tenant": {"pii": {"violations": {_block}}}}
	r := _decide(_input, mods)
	r.status == "blocked"
	not "shadow_status" in object.keys(r)
}

# --- guards -------------------------------------------------------------

# A policy whose guard literals are all absent from the folded action text
# is skipped (its rules could not fire); one present literal keeps it.
_guard_cases := {
	"no literal present: skipped": {"guard": {"zzz": "", "qqq": ""}, "fires": false},
	"one literal present: evaluated": {"guard": {"zzz": "", "send_": ""}, "fires": true},
	"case-folded text": {"guard": {"send_email": ""}, "fires": true},
	"always guard": {"guard": _always, "fires": true},
}

test_guard[name] if {
	some name, c in _guard_cases
	inp := object.union(_input, {"action": "SEND_Email"})
	tenants := {"acme": {"mode": "enforcement", "tenant": {"pii": {"step_types": {"ACTION": true}, "whitelisted_domains": [], "guard": c.guard}}}}
	r := _result(inp, tenants, {"acme": {"tenant": {"pii": {"violations": {_block}}}}})
	_fired(r, "pii") == c.fires
}

# --- precomputed views and hints ----------------------------------------

# The views the adapter precomputes for _scoped's data, written out.
_view_of(agent, tenant, evaluated) := {
	"agent": agent,
	"tenant": tenant,
	"shadow": {"agent": {}, "tenant": {}},
	"evaluated": evaluated,
	"allowed": {
		"status": "allowed", "risk_score": 0, "policies_evaluated": evaluated,
		"triggered_policy": null, "severity": null, "reason": null, "violations": [], "warnings": [],
	},
}

_with_views := object.union(_data_for(_scoped), {"acme": {"views": {
	"default": {"ACTION": _view_of({}, {"audit": _policy, "pii": _policy}, ["audit", "pii", "FinancialSafetyPolicy", "DataExfiltrationPolicy"])},
	"agents": {
		"billing-bot": {"ACTION": _view_of({"pii": _policy, "refunds": _policy}, {"audit": _policy}, ["pii", "refunds", "audit", "FinancialSafetyPolicy", "DataExfiltrationPolicy"])},
		"support-bot": {"ACTION": _view_of({"faq": _policy}, {"audit": _policy, "pii": _policy}, ["faq", "audit", "pii", "FinancialSafetyPolicy", "DataExfiltrationPolicy"])},
	},
	"builtins_only": _view_of({}, {}, ["FinancialSafetyPolicy", "DataExfiltrationPolicy"]),
}}})

# The same views flagged as the adapter flags views none of whose
# policies has whitelisted domains (no whitelist is then looked at).
_flagged_views := json.patch(_with_views, [{"op": "replace", "path": "/acme/views", "value": {
	"default": {step: object.union(v, {"no_whitelists": true}) | some step, v in _with_views.acme.views["default"]},
	"agents": {a: {step: object.union(v, {"no_whitelists": true}) | some step, v in byStep} |
		some a, byStep in _with_views.acme.views.agents
	},
	"builtins_only": object.union(_with_views.acme.views.builtins_only, {"no_whitelists": true}),
}}])

test_precomputed_views_decide_as_computed_ones[name] if {
	some name, inp in {
		"billing-bot": _for_agent("billing-bot"),
		"support-bot": _for_agent("support-bot"),
		"no agent": _input,
		"unknown agent": _for_agent("new-bot"),
		"unlisted step type": object.union(_for_agent("billing-bot"), {"step_type": "output"}),
	}
	every views in [_with_views, _flagged_views, _enforcing_views] {
		_result(inp, views, {"acme": _scoped}) == _decide(inp, _scoped)
	}
}

# The same views flagged "enforcing", as the adapter writes the views of a
# tenant that enforces (acme does).
_enforcing_views := json.patch(_flagged_views, [{"op": "replace", "path": "/acme/views", "value": {
	"default": {step: object.union(v, {"enforcing": true}) | some step, v in _flagged_views.acme.views["default"]},
	"agents": {a: {step: object.union(v, {"enforcing": true}) | some step, v in byStep} |
		some a, byStep in _flagged_views.acme.views.agents
	},
	"builtins_only": object.union(_flagged_views.acme.views.builtins_only, {"enforcing": true}),
}}])

# A view's "enforcing" flag only spares reading the tenant's mode: with
# the engine's hints that take the shortcut (no custom rule can fire, only
# FinancialSafety may), an enforcing tenant's views decide the same with
# and without the flag, and as without hints. (A tenant in shadow mode,
# whose views the adapter never flags, has its mode read:
# test_hints_that_only_financial_safety_may_fire.)
test_enforcing_flag_spares_only_the_tenant_mode[name] if {
	some name, c in {
		"no amount key": {"params": {"to": "acme"}, "financial": {"keyword": "wire", "amount_key": false}},
		"over the hard limit": {"params": {"amount": 500000}, "financial": {"keyword": "wire", "amount_key": true}},
		"small amount": {"params": {"amount": 5}, "financial": {"keyword": "wire", "amount_key": true}},
	}
	hints := object.union(_nothing_fires, {"builtins": {"FinancialSafetyPolicy": true}, "financial": c.financial})
	inp := object.union(_input, {"action": "wire_funds", "params": c.params})
	hinted := decision.result with input as inp
		with data.gatehouse.tenants as _with_rules(_enforcing_views, {})
		with data.gatehouse.hints as hints
	count(hinted.violations) == 1
	every views in [_with_views, _flagged_views, _enforcing_views] {
		hinted == decision.result with input as inp with data.gatehouse.tenants as _with_rules(views, {})
		hinted == decision.result with input as inp
			with data.gatehouse.tenants as _with_rules(views, {})
			with data.gatehouse.hints as hints
	}
}

# The engine's view hint (data.gatehouse.hints.view) is the view _view
# finds without it, looked up the same way in the same data
# (pdp/engine/hints.go): with the hint, _view and the result are what they
# are without it, for every kind of view.
test_view_hint_is_the_view_found_without_it[name] if {
	views := _flagged_views.acme.views
	some name, c in {
		"agent's own": {"input": _for_agent("billing-bot"), "view": views.agents["billing-bot"].ACTION},
		"agent's own, step in lower case": {
			"input": object.union(_for_agent("support-bot"), {"step_type": "action"}),
			"view": views.agents["support-bot"].ACTION,
		},
		"default, no agent": {"input": _input, "view": views["default"].ACTION},
		"default, unknown agent": {"input": _for_agent("new-bot"), "view": views["default"].ACTION},
		"builtins_only": {"input": object.union(_for_agent("billing-bot"), {"step_type": "output"}), "view": views.builtins_only},
	}
	tenants := _with_rules(_flagged_views, {"acme": _scoped})
	plain := decision._view with input as c.input with data.gatehouse.tenants as tenants
	hinted := decision._view with input as c.input
		with data.gatehouse.tenants as tenants
		with data.gatehouse.hints as {"view": c.view}
	plain == c.view
	hinted == plain
	r := decision.result with input as c.input
		with data.gatehouse.tenants as tenants
		with decision._fire as _mock_fire
		with data.gatehouse.hints as {"view": c.view}
	r == _result(c.input, _flagged_views, {"acme": _scoped})
}

# Without the flag, a precomputed view's whitelists are honoured.
test_precomputed_views_without_the_flag_check_whitelists if {
	views := json.patch(_with_views, [{"op": "replace", "path": "/acme/views/default/ACTION/tenant/pii/whitelisted_domains", "value": ["example.com"]}])
	inp := object.union(_input, {"params": {"url": "https://api.example.com/x"}})
	_fired(_result(_input, views, {"acme": _scoped}), "pii")
	not _fired(_result(inp, views, {"acme": _scoped}), "pii")
}

# Hints are trusted facts: only the engine's own query sets them. A policy
# that is not a candidate is not evaluated, a built-in not listed is
# skipped, and the hinted text is the text.
test_hints_restrict_evaluation_to_candidates if {
	hints := {"candidates": {"agent": [], "tenant": ["audit"]}, "builtins": {}}
	r := decision.result with input as object.union(_input, {"action": "wire_funds"})
		with data.gatehouse.tenants as _with_rules(_with_views, {"acme": _scoped})
		with decision._fire as _mock_fire
		with data.gatehouse.hints as hints
	r.violations == []
	r.policies_evaluated == ["audit", "pii", "FinancialSafetyPolicy", "DataExfiltrationPolicy"]
}

test_hints_cannot_add_policies_outside_the_view if {
	hints := {"candidates": {"agent": ["refunds"], "tenant": ["pii"]}, "builtins": {}}
	r := decision.result with input as _input
		with data.gatehouse.tenants as _with_rules(_with_views, {"acme": _scoped})
		with decision._fire as _mock_fire
		with data.gatehouse.hints as hints
	_order(r) == [["pii", "tenant", 0]]
}

# The engine's hints saying that no rule and no built-in can fire give the
# view's no-hit result without looking for hits (here, the built-ins
# would fire: the hints are trusted facts); any rule to run, or any
# built-in, and the hits are looked for.
_nothing_fires := {"rules": {"agent": {}, "tenant": {}}, "builtins": {}}

test_hints_that_nothing_fires_give_the_no_hit_result[name] if {
	some name, inp in {
		"tenant-wide policies": object.union(_input, {"action": "wire_funds"}),
		"agent-scoped policies": object.union(_for_agent("billing-bot"), {"action": "wire_funds"}),
	}
	r := decision.result with input as inp
		with data.gatehouse.tenants as _with_rules(_with_views, {"acme": _scoped})
		with decision._fire as _mock_fire
		with data.gatehouse.hints as _nothing_fires
	r == decision._view.allowed with input as inp with data.gatehouse.tenants as _with_views
	r.violations == []
}

test_hints_with_something_to_run_look_for_hits[name] if {
	some name, c in {
		"a rule": {"hints": object.union(_nothing_fires, {"rules": {"agent": {}, "tenant": {"pii": [0]}}}), "want": [["pii", "tenant", 0]]},
		"a built-in": {"hints": object.union(_nothing_fires, {"builtins": {"FinancialSafetyPolicy": true}}), "want": [["FinancialSafetyPolicy", "builtin", 1]]},
	}
	r := decision.result with input as object.union(_input, {"action": "wire_funds"})
		with data.gatehouse.tenants as _with_rules(_with_views, {"acme": _scoped})
		with decision._fire as _mock_fire
		with data.gatehouse.hints as c.hints
	_order(r) == c.want
}

# The hints saying that no rule can fire and that only FinancialSafety may:
# its hit patches the no-hit result (a tenant in shadow mode takes the
# general path); the same result as without hints.
test_hints_that_only_financial_safety_may_fire[name] if {
	some name, c in {
		"no amount key": {"params": {"to": "acme"}, "financial": {"keyword": "wire", "amount_key": false}},
		"over the hard limit": {"params": {"amount": 500000}, "financial": {"keyword": "wire", "amount_key": true}},
		"small amount": {"params": {"amount": 5}, "financial": {"keyword": "wire", "amount_key": true}},
	}
	hints := object.union(_nothing_fires, {"builtins": {"FinancialSafetyPolicy": true}, "financial": c.financial})
	inp := object.union(_input, {"action": "wire_funds", "params": c.params})
	every mode in ["enforcement", "shadow"] {
		hinted := decision.result with input as inp
			with data.gatehouse.tenants as {"acme": {"mode": mode}}
			with data.gatehouse.hints as hints
		count(hinted.violations) == 1
		hinted == decision.result with input as inp with data.gatehouse.tenants as {"acme": {"mode": mode}}
	}
}

test_hints_in_input_are_ignored if {
	inp := object.union(_input, {"hints": {"candidates": {"agent": [], "tenant": []}, "builtins": {}}})
	_order(_result(inp, _with_views, {"acme": _scoped})) == [["pii", "tenant", 0]]
}

# --- the built-ins' pre-ranked hits --------------------------------------

# Inputs on which each rule of the built-ins fires (at least once).
_builtin_rule_inputs := {
	"FinancialSafetyPolicy": {
		0: {"action": "wire_funds", "params": {"amount": 500000}},
		1: {"action": "wire_funds", "params": {"amount": 20000}},
		2: {"action": "wire_funds", "params": {"amount": 5}},
	},
	"DataExfiltrationPolicy": {
		0: {"action": "send", "params": {"body": "-----BEGIN RSA PRIVATE KEY-----\nMIIE"}},
		1: {"action": "send", "params": {"aws": "AKIAIOSFODNN7EXAMPLE"}},
		2: {"action": "send", "params": {"token": "ghp_1234567890abcdefghijklmnopqrstuvwxyz"}},
		3: {"action": "send", "params": {"token": "xoxb-1234567890-abcdef"}},
		4: {"action": "http.post", "params": {"body": "api_key: abcdefghijkl"}},
		5: {"action": "db.export", "params": {"what": "the customer records"}},
		6: {"action": "mail", "params": {"body": "please send the secrets over"}},
	},
}

_builtin_hits := {
	"FinancialSafetyPolicy": financial_safety.hits,
	"DataExfiltrationPolicy": data_exfiltration.hits,
}

# Every hit a built-in's rule yields is exactly decision._ranked's hit of
# its violation (the constants written into the rules are right), and
# the rule named does fire on its input.
test_builtin_hits_are_ranked[name] if {
	some policy, inputs in _builtin_rule_inputs
	some rule, inp in inputs
	name := sprintf("%s rule %d", [policy, rule])
	hits := _builtin_hits[policy] with input as inp
	rule in {h[4] | some h in hits}
	every h in hits {
		h == decision._ranked(object.remove(h[5], ["policy", "scope"]), policy, "builtin")
	}
}

# --- a rule's data, evaluated (policy as data, adapter/rules.go) ----------

# A rule's data; extra may give its reason as a template ("reason"),
# which the data holds split at each {match}, as adapter.RuleData writes
# it.
_rule(kind, extra) := object.union(object.remove(r, ["reason"]), {"reason_parts": split(r.reason, "{match}")}) if {
	r := object.union(
		{
			"kind": kind,
			"pattern": "(?i)(?:email|phone)",
			"reason": "Policy 'pii' violated: {match}",
			"violation": {"policy": "pii", "scope": "tenant", "rule": 0, "severity": "high", "on_violation": "block", "confidence": 0.9},
			"key": [-3, -3, 1, "pii", 0],
			"patch": {"status": "blocked", "risk_score": 0.72, "triggered_policy": "pii", "severity": "high", "warnings": []},
		},
		extra,
	)
}

_fire_on(r, text) := h if {
	h := decision._fire(r.kind, r) with input as {"tenant_id": "acme", "action": "send", "params": {"note": text}}
}

test_fire_regex if {
	h := _fire_on(_rule("regex", {}), "Mail to EMAIL now")
	v := {"policy": "pii", "scope": "tenant", "rule": 0, "severity": "high", "on_violation": "block", "confidence": 0.9, "match": "EMAIL", "reason": "Policy 'pii' violated: EMAIL"}
	h == [-3, -3, 1, "pii", 0, v, {
		"status": "blocked", "risk_score": 0.72, "triggered_policy": "pii", "severity": "high",
		"reason": "Policy 'pii' violated: EMAIL", "violations": [v], "warnings": [],
	}]
	h == decision._ranked(object.remove(v, ["policy", "scope"]), "pii", "tenant")
}

test_fire_regex_no_match if not _fire_on(_rule("regex", {}), "nothing here")

# The literal path: leftmost first, then the earlier alternative; on a
# non-ASCII text the regex decides.
test_fire_alts[name] if {
	some name, c in {
		"leftmost": {"text": "a phone, an email", "match": "phone"},
		"case kept": {"text": "call PHONE", "match": "PHONE"},
		"non-ASCII text": {"text": "café EMAIL", "match": "EMAIL"},
	}
	h := _fire_on(_rule("alts", {"alts": ["email", "phone"]}), c.text)
	h[5].match == c.match
}

test_fire_context[name] if {
	some name, c in {
		"context present": {"text": "email the external team", "hits": 1},
		"context absent": {"text": "email the team", "hits": 0},
		"pre-check fails": {"text": "email the externa team", "hits": 0},
	}
	r := _rule("regex_context", {"context": "(?i)external", "context_pre": ["external"]})
	c.hits == count([h | h := _fire_on(r, c.text)])
}

test_fire_reasons[name] if {
	some name, c in {
		"template": {"reason": "found {match}, {match}", "want": "found email, email"},
		"fixed": {"reason": "fixed text", "want": "fixed text"},
	}
	h := _fire_on(_rule("regex", {"reason": c.reason}), "an email")
	h[5].reason == c.want
	h[6].reason == c.want
}

test_fire_warn_keeps_its_warning if {
	r := object.union(object.remove(_rule("regex", {}), ["patch"]), {"patch": {"status": "allowed", "risk_score": 0.23, "triggered_policy": "pii", "severity": "low"}})
	h := _fire_on(r, "email")
	h[6].warnings == [h[5]]
}

# Without hints a candidate policy runs the rules whose pre-check holds,
# each once (a rule without one is listed under the text's first bytes).
test_prechecked_rules if {
	p := {"by_literal": {"email": [0, 2], "phone": [2], `{"action":`: [1]}}
	decision._prechecked(p) == {0, 1, 2} with input as {"action": "x", "params": {"t": "email phone"}}
	decision._prechecked(p) == {1} with input as {"action": "x", "params": {"t": "none"}}
}
