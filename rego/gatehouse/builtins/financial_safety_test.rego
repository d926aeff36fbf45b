# METADATA
# title: FinancialSafety tests
# description: docs/api.md §A5 — financial actions, amounts and thresholds.
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
	_check(c.action, {"amount": 5}) == {{
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
		_check(action, {"amount": 500000, "note": "see the attached report"}) == set()
	}
}

# Money words count in params (keys and values) too; the match is the
# first one in the action text, the action name coming first.
test_keywords_in_params[name] if {
	some name, c in {
		"in a value": {"params": {"note": "wire 5 to bob", "amount": 5}, "match": "wire"},
		"in a key": {"params": {"refund_amount": 1, "amount": 5}, "match": "refund"},
		"upper case": {"params": {"memo": "PAYMENT due", "amount": 5}, "match": "PAYMENT"},
	}
	_outcome("send_email", c.params) == _warn(c.match)
}

test_keyword_in_name_comes_first if {
	[v] := [v | some v in _check("refund", {"note": "charge", "amount": 5})]
	v.match == "refund"
}

# A financial action with no amount is held for approval, never allowed
# (Novyx's own example holds it).
test_missing_amount_needs_approval[name] if {
	some name, inp in {
		"no params": {"action": "payout"},
		"empty params": {"action": "payout", "params": {}},
		"no amount key": {"action": "payout", "params": {"to": "bob", "price": 5}},
		"amount object without a number": {"action": "payout", "params": {"amount": {"currency": "USD"}}},
		"keyword in params only": {"action": "send_email", "params": {"body": "please wire the money"}},
	}
	[v] := [v | some v in financial_safety.violations] with input as inp
	[v.on_violation, v.reason, v.severity] == array.concat(_approval, ["high"])
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
	_outcome("wire_funds", {"price": 500000, "count": 200000, "amounts": 300000, "id": 150000}) == _approval
}

_string_cases := {
	"thousands separators and decimals": {"amount": "15,000.00", "want": _approval},
	"plain digits": {"amount": "150000", "want": _block("150000")},
	"surrounding spaces": {"amount": " 20000 ", "want": _approval},
	"negative": {"amount": "-30000", "want": _warn("payment")},
	"not a number": {"amount": "lots", "want": _approval},
	"empty string": {"amount": "", "want": _approval},
	"only a sign": {"amount": "-", "want": _approval},
	"two dots": {"amount": "1.500.000", "want": _approval},
	"hexadecimal": {"amount": "0x20000", "want": _approval},
	"misplaced separator": {"amount": "1,50000", "want": _block("1,50000")},
	"currency sign": {"amount": "$20000", "want": _approval},
	"trailing currency sign": {"amount": "150000 €", "want": _block("150000 €")},
	"plus sign": {"amount": "+150000", "want": _block("+150000")},
	"exponent": {"amount": "1.5e5", "want": _block("1.5e5")},
	"upper-case exponent with sign": {"amount": "15E+3", "want": _approval},
	"negative exponent": {"amount": "150000e-2", "want": _warn("payment")},
	"underscore separators": {"amount": "1_50000", "want": _block("1_50000")},
	"apostrophe separators": {"amount": "1'500'000", "want": _block("1'500'000")},
	"space separators": {"amount": "150 000", "want": _block("150 000")},
	"leading zeros": {"amount": "000150000", "want": _block("000150000")},
	"fraction only": {"amount": ".5", "want": _warn("payment")},
	"full-width digits": {"amount": "１５００００", "want": _block("１５００００")},
	"Arabic-Indic digits": {"amount": "١٥٠٠٠٠", "want": _block("١٥٠٠٠٠")},
	"Devanagari digits with a separator": {"amount": "२०,०००", "want": _approval},
	"mixed scripts": {"amount": "1５0000", "want": _block("1５0000")},
	"309 digits": {"amount": concat("", ["1", concat("", array.slice(_zeros, 0, 308))]), "want": _block(concat("", ["1", concat("", array.slice(_zeros, 0, 308))]))},
	"huge exponent": {"amount": "1e99999999999", "want": _block("1e99999999999")},
	"tiny exponent": {"amount": "1e-99999999999", "want": _warn("payment")},
	"long fraction of zeros": {"amount": concat("", ["0.", concat("", _zeros), "1"]), "want": _warn("payment")},
	"long mantissa scaled down": {"amount": concat("", ["2", concat("", _zeros), "e-396"]), "want": _approval},
}

_zeros := ["0" | some _ in numbers.range(1, 400)]

test_numeric_strings[name] if {
	some name, c in _string_cases
	_outcome("payment", {"amount": c.amount}) == c.want
}

test_non_numbers_need_approval[name] if {
	some name, v in {"boolean": true, "null": null}
	_outcome("payment", {"amount": 5, "value": v}) == _approval
}

test_containers_are_searched if {
	_outcome("payment", {"total": {"x": 1}, "sum": [20000], "amount": {"value": 5}}) == _warn("payment")
}

# An amount over the hard limit blocks even when another cannot be parsed.
test_block_beats_unknown if {
	_outcome("payment", {"amount": "lots", "total": 200000}) == _block("200000")
}

test_json_numbers_beyond_float_range if {
	_outcome("payment", {"amount": 1e400}) == _block("1e400")
	_outcome("payment", {"amount": -1e400}) == _warn("payment")
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
