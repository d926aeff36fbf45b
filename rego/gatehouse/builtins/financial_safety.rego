# METADATA
# title: FinancialSafetyPolicy
# description: |
#   Policy to prevent unauthorized financial operations (docs/api.md §A5). An
#   action is financial when its action text (name or params) contains a
#   money word; its amount is the largest number under the keys amount,
#   value, total or sum anywhere in params: JSON numbers, or strings parsed
#   permissively (sign, currency sign, exponent, `_`, `,`, `'` and space
#   thousands separators, any Unicode decimal digits, digit strings of any
#   length). A financial action with no amount, or with an amount key whose
#   value cannot be parsed, needs approval: it is never allowed unseen.
#   Thresholds come from data.gatehouse.config.financial_safety. At most one
#   of the three rules fires.
#
#   No built-in here can raise an error on any input (to_number is given
#   only canonical strings of bounded magnitude), so the policy decides the
#   same with and without strict built-in errors.
package gatehouse.builtins.financial_safety

import data.gatehouse.builtins.digits
import data.gatehouse.text

# METADATA
# description: The built-in's hits (at most one).
violations contains _violation if _keyword

# A money word must occur (folded, so containment is sound for the
# case-insensitive regex) before the regex runs on the whole action text.
# One contains() per word allocates nothing; a replace_n guard would build
# a replacer and copy the text on every decision.
_money if contains(text.folded, "transfer")

_money if contains(text.folded, "wire")

_money if contains(text.folded, "payment")

_money if contains(text.folded, "payout")

_money if contains(text.folded, "refund")

_money if contains(text.folded, "withdraw")

_money if contains(text.folded, "charge")

_money if contains(text.folded, "invoice")

_money if contains(text.folded, "purchase")

_keyword := regex.find_n(`(?i)(transfer|wire|payment|payout|refund|withdraw|charge|invoice|purchase)`, text.text, 1)[0] if _money

_settings := object.union({"hard_limit": 100000, "approval_threshold": 10000}, _configured)

default _configured := {}

_configured := data.gatehouse.config.financial_safety

_amount_keys := {"amount", "value", "total", "sum"}

# Every scalar under an amount key, at any depth. Objects and arrays are
# containers: walk reaches the amounts inside them. walk allocates a path
# per node, so it runs only when the folded text holds a quoted amount key
# (a key k with lower(k) an amount key folds to it: sound).
_values contains v if {
	_amount_key_pre
	walk(object.get(input, "params", {}), [path, v])
	count(path) > 0
	key := path[count(path) - 1]
	is_string(key)
	lower(key) in _amount_keys
	not is_object(v)
	not is_array(v)
}

_amount_key_pre if contains(text.folded, `"amount":`)

_amount_key_pre if contains(text.folded, `"value":`)

_amount_key_pre if contains(text.folded, `"total":`)

_amount_key_pre if contains(text.folded, `"sum":`)

_parsed := [_parse(v) | some v in _values]

_numbers := [p.n | some p in _parsed; p.ok]

# No amount at all, or one that does not parse: approval.
_unknown if count(_numbers) == 0

_unknown if {
	some p in _parsed
	not p.ok
}

_amount := max(_numbers)

_needs_approval if _amount >= _settings.approval_threshold

_needs_approval if _unknown

# The largest amount as the action wrote it (for the reason).
_amount_text := [p.text | some p in _parsed; p.ok; p.n == _amount][0]

_parse(v) := {"ok": true, "n": v, "text": sprintf("%v", [v])} if {
	is_number(v)
} else := {"ok": true, "n": n, "text": trim_space(v)} if {
	is_string(v)
	n := _string_number(v)
} else := {"ok": false}

# sign, integer digits (with separators), fraction digits, exponent. Every
# digit class is Unicode (\p{Nd}); currency signs may lead or trail.
_number_re := `^\s*\p{Sc}?\s*([+-]?)\s*\p{Sc}?\s*(\p{Nd}+(?:[,_' \x{a0}\x{2009}\x{202f}]\p{Nd}+)*|)(?:\.(\p{Nd}*))?(?:[eE]([+-]?)(\p{Nd}+))?\s*\p{Sc}?\s*$`

_separators := {",": "", "_": "", "'": "", " ": "", "\u00a0": "", "\u2009": "", "\u202f": ""}

# Numbers beyond ±10^300 compare as ±10^300; below 10^-300 as 0. Both are
# far outside any threshold, and to_number never sees a value it cannot
# hold.
_cap := 1e300

_string_number(s) := n if {
	[m] := regex.find_all_string_submatch_n(_number_re, s, 1)
	int := trim_left(_ascii(strings.replace_n(_separators, m[2])), "0")
	frac := _ascii(m[3])
	concat("", [m[2], m[3]]) != ""
	regex.match(`^[0-9]*$`, concat("", [int, frac]))
	n := _scaled(m[1], int, frac, _exponent(m[4], m[5]))
}

# Non-ASCII digits become ASCII ones; a digit the table lacks (a newer
# Unicode in the regex engine) stays and fails the ^[0-9]*$ check above.
_ascii(s) := s if {
	regex.match(`^[\x00-\x7f]*$`, s)
} else := strings.replace_n(digits.ascii, s)

# The exponent as a number, bounded: beyond six digits it only says "huge"
# or "tiny".
_exponent(sign, ds) := to_number(_or_zero(d)) * _sign[sign] if {
	d := trim_left(_ascii(ds), "0")
	regex.match(`^[0-9]{0,6}$`, d)
}

_exponent(sign, ds) := 10000000 * _sign[sign] if {
	d := trim_left(_ascii(ds), "0")
	regex.match(`^[0-9]{7,}$`, d)
}

_sign := {"-": -1, "+": 1, "": 1}

_minus(sign) := "-" if sign == "-"

_minus(sign) := "" if sign != "-"

# The decimal magnitude (the value is below 10^magnitude) decides whether
# to_number can take the canonical string.
_scaled(sign, int, frac, e) := 0 if {
	int == ""
	trim_left(frac, "0") == ""
} else := _cap * _sign[sign] if {
	_magnitude(int, frac, e) > 300
} else := 0 if {
	_magnitude(int, frac, e) < -300
} else := to_number(concat("", [_minus(sign), _or_zero(int), ".", _or_zero(frac), "e", format_int(e, 10)]))

_magnitude(int, _, e) := count(int) + e if int != ""

_magnitude(int, frac, e) := (e - count(frac)) + count(trim_left(frac, "0")) if int == ""

_or_zero(s) := s if s != ""

_or_zero(s) := "0" if s == ""

# METADATA
# labels:
#   policy: FinancialSafetyPolicy
#   rules: "0: hard limit, 1: approval threshold or unknown amount, 2: detected"
_violation := {
	"rule": 0,
	"severity": "critical",
	"on_violation": "block",
	"confidence": 1,
	"match": _keyword,
	"reason": concat("", ["Financial operation exceeds hard limit: ", _amount_text]),
} if {
	_amount >= _settings.hard_limit
} else := {
	"rule": 1,
	"severity": "high",
	"on_violation": "require_approval",
	"confidence": 1,
	"match": _keyword,
	"reason": "High-value financial operation requires approval",
} if {
	_needs_approval
} else := {
	"rule": 2,
	"severity": "low",
	"on_violation": "warn",
	"confidence": 0.85,
	"match": _keyword,
	"reason": concat("", ["Financial operation detected: ", _keyword]),
}
