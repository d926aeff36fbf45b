# METADATA
# title: FinancialSafety tests
# description: CONTRACT A5 — financial actions, amounts and thresholds.
package gatehouse.builtins.financial_safety_test

import data.gatehouse.builtins.financial_safety

_check(action, params) := vs if {
	vs := financial_safety.violations with input as {"action": action, "params": params}
}

# The one violation an action yields, as [on_violation, reason].
_outcome(action, params) := [v.on_violation, v.reason] if {
	[v] := [v | some v in _check(action, params)]
}

_warn(keyword) := ["warn", concat("", ["Financial operation detected: ", keyword])]

_approval := ["require_approval", "High-value financial operation requires approval"]

_block(amount) := ["block", concat("", ["Financial operation exceeds hard limit: ", amount])]

# Every money word, anywhere in the action name and in any case; the match
# is the word as written.
_keyword_cases := {
	"transfer": {"action": "bank_transfer", "match": "transfer"},
	"wire": {"action": "wire_funds", "match": "wire"},
	"payment": {"action": "stripe.create_payment", "match": "payment"},
	"payout": {"action": "payout", "match": "payout"},
	"refund": {"action": "issueRefund", "match": "Refund"},
	"withdraw": {"action": "WITHDRAW_CASH", "match": "WITHDRAW"},
	"charge": {"action": "charge_card", "match": "charge"},
	"invoice": {"action": "billing.invoice.send", "match": "invoice"},
	"purchase": {"action": "purchase_order", "match": "purchase"},
}

test_every_keyword_is_financial[name] if {
	some name, c in _keyword_cases
	_check(c.action, {}) == {{
		"rule": 2,
		"severity": "low",
		"on_violation": "warn",
		"confidence": 0.85,
		"match": c.match,
		"reason": concat("", ["Financial operation detected: ", c.match]),
	}}
}

test_non_financial_actions_yield_nothing if {
	every action in ["send_email", "get_balance", "github.create_issue"] {
		_check(action, {"amount": 500000, "note": "wire transfer refund"}) == set()
	}
}

test_missing_params_is_a_low_warning if {
	financial_safety.violations == {{
		"rule": 2,
		"severity": "low",
		"on_violation": "warn",
		"confidence": 0.85,
		"match": "payout",
		"reason": "Financial operation detected: payout",
	}} with input as {"action": "payout"}
}

_amount_cases := {
	"top-level amount": {"amount": 20000},
	"value": {"value": 20000},
	"total, nested": {"order": {"total": 20000}},
	"sum, deep": {"a": {"b": {"c": {"sum": 20000}}}},
	"inside an array": {"items": [{"value": 1}, {"value": 20000}]},
}

test_amount_keys_at_any_depth[name] if {
	some name, params in _amount_cases
	_outcome("wire_funds", params) == _approval
}

test_other_keys_are_not_amounts if {
	_outcome("wire_funds", {"price": 500000, "count": 200000, "amounts": 300000, "id": 150000}) == _warn("wire")
}

_string_cases := {
	"thousands separators and decimals": {"amount": "15,000.00", "want": _approval},
	"plain digits": {"amount": "150000", "want": _block("150000")},
	"surrounding spaces": {"amount": " 20000 ", "want": _approval},
	"negative": {"amount": "-30000", "want": _warn("payment")},
	"not a number": {"amount": "lots", "want": _warn("payment")},
	"misplaced separator": {"amount": "1,50000", "want": _warn("payment")},
	"currency sign": {"amount": "$20000", "want": _warn("payment")},
}

test_numeric_strings[name] if {
	some name, c in _string_cases
	_outcome("payment", {"amount": c.amount}) == c.want
}

test_non_numbers_are_ignored if {
	_outcome("payment", {"amount": true, "value": null, "total": {"x": 1}, "sum": [20000]}) == _warn("payment")
}

test_largest_amount_wins if {
	_outcome("wire", {"amount": 50, "fee": {"value": 120000}, "total": "15,000", "items": [{"sum": -200000}]}) == _block("120000")
}

# Each threshold is inclusive (≥).
_boundary_cases := {
	"just under the approval threshold": {"amount": 9999.99, "want": _warn("transfer")},
	"at the approval threshold": {"amount": 10000, "want": _approval},
	"just under the hard limit": {"amount": 99999.99, "want": _approval},
	"at the hard limit": {"amount": 100000, "want": _block("100000")},
	"above the hard limit": {"amount": 2500000, "want": _block("2500000")},
	"zero": {"amount": 0, "want": _warn("transfer")},
}

test_default_thresholds[name] if {
	some name, c in _boundary_cases
	_outcome("transfer", {"amount": c.amount}) == c.want
}

test_exactly_one_rule_fires_per_action if {
	every amount in [0, 9999, 10000, 99999, 100000, 1000000] {
		count(_check("refund", {"amount": amount})) == 1
	}
}

test_violation_fields_per_rule if {
	_check("wire", {"amount": 100000}) == {{
		"rule": 0,
		"severity": "critical",
		"on_violation": "block",
		"confidence": 1,
		"match": "wire",
		"reason": "Financial operation exceeds hard limit: 100000",
	}}
	_check("wire", {"amount": 10000}) == {{
		"rule": 1,
		"severity": "high",
		"on_violation": "require_approval",
		"confidence": 1,
		"match": "wire",
		"reason": "High-value financial operation requires approval",
	}}
}

_configured_cases := {
	"under the configured approval threshold": {"amount": 99, "want": _warn("charge")},
	"at the configured approval threshold": {"amount": 100, "want": _approval},
	"at the configured hard limit": {"amount": 500, "want": _block("500")},
}

test_thresholds_come_from_data[name] if {
	some name, c in _configured_cases
	outcome := _outcome("charge", {"amount": c.amount}) with data.gatehouse.config.financial_safety as {"hard_limit": 500, "approval_threshold": 100}
	outcome == c.want
}

test_partial_configuration_keeps_other_default if {
	settings := {"approval_threshold": 50}
	_outcome("charge", {"amount": 50}) == _approval with data.gatehouse.config.financial_safety as settings
	_outcome("charge", {"amount": 99999}) == _approval with data.gatehouse.config.financial_safety as settings
	_outcome("charge", {"amount": 100000}) == _block("100000") with data.gatehouse.config.financial_safety as settings
}
