# METADATA
# title: FinancialSafety
# description: |
#   Policy to prevent unauthorized financial operations (CONTRACT A5). An
#   action is financial when its name matches a money word; its amount is the
#   largest number under the keys amount, value, total or sum anywhere in
#   params (numbers, or strings such as "15000", "-3.5" or "15,000.00").
#   Thresholds come from data.gatehouse.config.financial_safety. At most one
#   of the three rules fires.
package gatehouse.builtins.financial_safety

# METADATA
# description: The built-in's hits (at most one).
violations contains _violation if _keyword

_keyword := regex.find_n(`(?i)(transfer|wire|payment|payout|refund|withdraw|charge|invoice|purchase)`, input.action, 1)[0]

_settings := object.union({"hard_limit": 100000, "approval_threshold": 10000}, _configured)

default _configured := {}

_configured := data.gatehouse.config.financial_safety

_amount_keys := {"amount", "value", "total", "sum"}

_amounts contains n if {
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

default _amount := null

_amount := max(_amounts) if count(_amounts) > 0

# METADATA
# labels:
#   policy: FinancialSafety
#   rules: "0: hard limit, 1: approval threshold, 2: detected"
_violation := {
	"rule": 0,
	"severity": "critical",
	"on_violation": "block",
	"confidence": 1,
	"match": _keyword,
	"reason": sprintf("Financial operation exceeds hard limit: %v", [_amount]),
} if {
	is_number(_amount)
	_amount >= _settings.hard_limit
} else := {
	"rule": 1,
	"severity": "high",
	"on_violation": "require_approval",
	"confidence": 1,
	"match": _keyword,
	"reason": "High-value financial operation requires approval",
} if {
	is_number(_amount)
	_amount >= _settings.approval_threshold
} else := {
	"rule": 2,
	"severity": "low",
	"on_violation": "warn",
	"confidence": 0.85,
	"match": _keyword,
	"reason": concat("", ["Financial operation detected: ", _keyword]),
}
