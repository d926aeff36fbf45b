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
# description: |
#   The built-in's hit (at most one), ranked and composed as the generated
#   rules yield theirs: [0 - outcome rank, 0 - severity rank, scope rank,
#   policy, rule, violation, patch], data.gatehouse.decision._ranked's
#   tuple with every part that does not depend on the action written as a
#   constant (decision_test.rego checks each rule's hit against _ranked).
#
#   Every branch of hit holds the money word (the engine's, or _decided
#   behind _keyword), so the rule needs no guard of its own: the
#   commonest hit, the approval the engine's facts decide, costs no second
#   look at the keyword.
hits contains hit

# METADATA
# description: The built-in's violations (at most one), as its rules find them.
violations contains object.remove(h[5], ["policy", "scope"]) if some h in hits

# Each money word that occurs in the folded text, as [position, word]
# (folded, so containment is sound for the case-insensitive regex). One
# comprehension with the text bound once: one contains() per word, which
# allocates nothing (a replace_n guard would build a replacer and copy the
# text on every decision), and an indexof only for the words present. No
# word is a prefix of another, so at most one starts at any position.
_money_at := {[indexof(f, w), w] |
	f := text.folded
	some w in {"transfer", "wire", "payment", "payout", "refund", "withdraw", "charge", "invoice", "purchase"}
	contains(f, w)
}

# The first money word in the action text, as written: the leftmost match
# of _keyword_re. In a pure-ASCII text the folded text is the text
# lower-cased, byte for byte, so the leftmost word found there is that
# match and no regex need run over the text; otherwise the regex finds it.
# Gatehouse's engine may hand it over, computed in Go (rego/anchors.go,
# FinancialFacts, checked against this module), as the hint
# data.gatehouse.hints.financial.keyword; without it (a stock OPA, the
# Data API) it is computed here.
_keyword := k if {
	k := data.gatehouse.hints.financial.keyword
	is_string(k)
} else := _keyword_at(min(_money_at))

_keyword_at(m) := substring(text.text, m[0], count(m[1])) if {
	text.ascii
} else := regex.find_n(_keyword_re, text.text, 1)[0]

_keyword_re := `(?i)(transfer|wire|payment|payout|refund|withdraw|charge|invoice|purchase)`

_settings := object.union({"hard_limit": 100000, "approval_threshold": 10000}, _configured)

default _configured := {}

_configured := data.gatehouse.config.financial_safety

# Every scalar under an amount key, at any depth. Objects and arrays are
# containers: walk reaches the amounts inside them. Every pair [k, v]
# that walk would report as [[..., k], v] is a member of the container it
# walks (walk without a path allocates nothing per node); an array's keys
# are numbers, so only objects' (and, in Rego tests, sets') count. Run
# only when the folded text holds a quoted amount key (a key k with
# lower(k) an amount key folds to it: sound); see _violation.
_values contains v if {
	walk(object.get(input, "params", {}), [_, node])
	some k, v in node
	is_string(k)
	lower(k) in {"amount", "value", "total", "sum"}
	not is_object(v)
	not is_array(v)
}

# Whether a quoted amount key occurs (true or false): the hint
# data.gatehouse.hints.financial.amount_key when the engine gives one.
_amount_key_pre := k if {
	k := data.gatehouse.hints.financial.amount_key
	is_boolean(k)
} else if {
	f := text.folded
	some k in {`"amount":`, `"value":`, `"total":`, `"sum":`}
	contains(f, k)
} else := false

# [number, value] for every amount that parses.
_parsed contains [n, v] if {
	some v in _values
	n := _number(v)
}

# No amount at all, or one that does not parse (each value yields at most
# one pair): approval.
_unknown if count(_parsed) < count(_values)

_unknown if count(_parsed) == 0

_amount := max(_parsed)[0]

_needs_approval if _amount >= _settings.approval_threshold

_needs_approval if _unknown

# The largest amount as the action wrote it (for the reason): of the
# values that parse to it, the first in the order of _values.
_amount_text := _text([v | some [n, v] in _parsed; n == _amount][0])

_text(v) := sprintf("%v", [v]) if is_number(v)

_text(v) := trim_space(v) if is_string(v)

_number(v) := v if {
	is_number(v)
} else := _string_number(v) if {
	is_string(v)
}

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
# description: |
#   The built-in's hit, undefined when it does not fire: hits' only member
#   (data.gatehouse.decision takes it from here, without iterating a set).
#   The engine's facts say no amount key occurs and name the money word:
#   the commonest hit, built from the facts alone (_decided decides the
#   same without the hints). _approval is undefined without a money word,
#   and so is _decided.
hit := _approval_of(k) if {
	data.gatehouse.hints.financial.amount_key == false
	k := data.gatehouse.hints.financial.keyword
	is_string(k)
} else := _decided if _keyword

# Without a quoted amount key in the text there is no amount: approval,
# before anything walks the params.

# METADATA
# labels:
#   policy: FinancialSafetyPolicy
#   rules: "0: hard limit, 1: approval threshold or unknown amount, 2: detected"
_decided := _approval if {
	_amount_key_pre == false
} else := array.concat([-3, -4, 2, "FinancialSafetyPolicy", 0], [v, {
	"status": "blocked",
	"risk_score": 1,
	"triggered_policy": "FinancialSafetyPolicy",
	"severity": "critical",
	"reason": v.reason,
	"violations": [v],
	"warnings": [],
}]) if {
	_amount >= _settings.hard_limit
	v := {
		"policy": "FinancialSafetyPolicy",
		"scope": "builtin",
		"rule": 0,
		"severity": "critical",
		"on_violation": "block",
		"confidence": 1,
		"match": _keyword,
		"reason": concat("", ["Financial operation exceeds hard limit: ", _amount_text]),
	}
} else := _approval if {
	_needs_approval
} else := array.concat([-1, -1, 2, "FinancialSafetyPolicy", 2], [v, {
	"status": "allowed",
	"risk_score": 0.21,
	"triggered_policy": "FinancialSafetyPolicy",
	"severity": "low",
	"reason": v.reason,
	"violations": [v],
	"warnings": [v],
}]) if {
	v := {
		"policy": "FinancialSafetyPolicy",
		"scope": "builtin",
		"rule": 2,
		"severity": "low",
		"on_violation": "warn",
		"confidence": 0.85,
		"match": _keyword,
		"reason": concat("", ["Financial operation detected: ", _keyword]),
	}
}

_approval := _approval_of(_keyword)

# The approval hit for money word k.
#
# The hits here are built by array.concat, not written as one literal
# tuple: OPA copies a function's or rule's value where it is computed but
# hands its first consumers the literal itself, with its variables, and
# each of them copies it again (the approval hit was copied three times
# in a decision that also ran custom rules, some 50 allocations a copy);
# a built-in function's result is a finished value that nobody copies.
_approval_of(k) := array.concat([-2, -3, 2, "FinancialSafetyPolicy", 1], [v, {
	"status": "pending_review",
	"risk_score": 0.8,
	"triggered_policy": "FinancialSafetyPolicy",
	"severity": "high",
	"reason": "High-value financial operation requires approval",
	"violations": [v],
	"warnings": [],
}]) if {
	v := {
		"policy": "FinancialSafetyPolicy",
		"scope": "builtin",
		"rule": 1,
		"severity": "high",
		"on_violation": "require_approval",
		"confidence": 1,
		"match": k,
		"reason": "High-value financial operation requires approval",
	}
}
