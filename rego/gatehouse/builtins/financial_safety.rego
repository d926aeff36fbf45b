# METADATA
# title: FinancialSafety
# description: |
#   Policy to prevent unauthorized financial operations (CONTRACT A5). An
#   action is financial when its name matches a money word; its amount is the
#   largest number under the keys amount, value, total or sum anywhere in
#   params (numbers, or strings such as "15000", "-3.5" or "15,000.00").
#   Thresholds come from data.gatehouse.config.financial_safety.
package gatehouse.builtins.financial_safety

_settings := object.union({"hard_limit": 100000, "approval_threshold": 10000}, _configured)

default _configured := {}

_configured := data.gatehouse.config.financial_safety

_keyword := regex.find_n(`(?i)(transfer|wire|payment|payout|refund|withdraw|charge|invoice|purchase)`, input.action, 1)[0]

_amount_keys := {"amount", "value", "total", "sum"}

_amounts contains n if {
	_keyword
	walk(object.get(input, "params", {}), [path, v])
	count(path) > 0
	key := path[count(path) - 1]
	is_string(key)
	lower(key) in _amount_keys
	n := _number(v)
}

_number(v) := v if is_number(v)

_number(v) := to_number(replace(trim_space(v), ",", "")) if {
	is_string(v)
	regex.match(`^\s*-?(?:[0-9]+|[0-9]{1,3}(?:,[0-9]{3})+)(?:\.[0-9]+)?\s*$`, v)
}

_amount := max(_amounts) if count(_amounts) > 0

# METADATA
# labels:
#   policy: FinancialSafety
#   rule: 0
#   severity: critical
violations contains {
	"rule": 0,
	"severity": "critical",
	"on_violation": "block",
	"confidence": 1,
	"match": _keyword,
	"reason": sprintf("Financial operation exceeds hard limit: %v", [_amount]),
} if {
	_amount >= _settings.hard_limit
}

# METADATA
# labels:
#   policy: FinancialSafety
#   rule: 1
#   severity: high
violations contains {
	"rule": 1,
	"severity": "high",
	"on_violation": "require_approval",
	"confidence": 1,
	"match": _keyword,
	"reason": "High-value financial operation requires approval",
} if {
	_amount >= _settings.approval_threshold
	_amount < _settings.hard_limit
}

# METADATA
# labels:
#   policy: FinancialSafety
#   rule: 2
#   severity: low
violations contains {
	"rule": 2,
	"severity": "low",
	"on_violation": "warn",
	"confidence": 0.85,
	"match": _keyword,
	"reason": concat("", ["Financial operation detected: ", _keyword]),
} if {
	_keyword
	not _over_threshold
}

_over_threshold if _amount >= _settings.approval_threshold
