# METADATA
# title: Action text
# description: |
#   The text every rule is matched against (docs/api.md §A3): the compact JSON of
#   {"action": <name>, "params": <params>} with object keys sorted, no HTML
#   escaping and non-ASCII characters left as they are; plus its case-folded
#   form, used by literal pre-checks that skip regexes which cannot match, and
#   the destinations named in it, used by whitelisted_domains.
package gatehouse.text

# METADATA
# description: |
#   The action text that rules' regexes run on.
#   Gatehouse's engine computes it in Go (byte for byte the same, fuzzed)
#   and hands it over as a hint, data.gatehouse.hints.text, in its own
#   evaluation; without hints (a stock OPA, the Data API) it is computed
#   here.
text := t if {
	t := data.gatehouse.hints.text
} else := _marshalled if {
	not contains(_marshalled, `\u`)
} else := strings.replace_n(_unescape, _marshalled)

_marshalled := json.marshal({"action": input.action, "params": object.get(input, "params", {})})

# Go's encoding/json (behind json.marshal) escapes <, >, & and U+2028/9. The
# replacer scans left to right and consumes "\\" as a unit, so an escaped
# backslash followed by "u003c" (a params string that literally contains
# \u003c) is left alone: only real escapes are undone.
_unescape := {
	`\\`: `\\`,
	`\u003c`: "<",
	`\u003e`: ">",
	`\u0026`: "&",
	`\u2028`: "\u2028",
	`\u2029`: "\u2029",
}

# METADATA
# description: |
#   The action text case-folded: upper-cased, then lower-cased. Per rune,
#   lower(upper(r)) is the same for every member of r's simple case-folding
#   orbit (the equivalence RE2's (?i) uses; ſ, S and s all become s, the
#   Kelvin sign and K become k), so a case-insensitive literal can match the
#   text only if its folded form is contained in this string: containment
#   is a sound pre-check. A test checks the invariant over all of Unicode.
folded := f if {
	f := data.gatehouse.hints.folded
} else := lower(upper(text))

# METADATA
# description: |
#   True when the action text is pure ASCII: then containment in folded is
#   exactly case-insensitive matching of ASCII literals, and byte offsets
#   are rune offsets, so a rule may find a literal alternation's
#   match without a regex.
ascii if data.gatehouse.hints.ascii

ascii if {
	not data.gatehouse.hints
	regex.match(`^[\x00-\x7f]*$`, text)
}

# METADATA
# description: |
#   The destinations named in the params part of the action text, as
#   written: URL hosts (after any userinfo, without the port), e-mail
#   domains, bare dotted names (in any script, with any of the dots IDNA
#   maps to "."), IPv4 literals, bracketed IPv6 literals and localhost.
#   whitelisted_domains skips a policy only when every one of them is a
#   recognised hostname (see hostnames) and whitelisted, so anything
#   unusual here makes the policy apply: it fails closed. The action name is
#   left out: connector names such as "http.get" name an operation, not a
#   destination, and would otherwise defeat every whitelist.
targets contains t if {
	some m in regex.find_all_string_submatch_n(_target_re, _params_text, -1)
	m[1] == ""
	t := _target(m)
}

# METADATA
# description: |
#   The targets that are recognised hostnames, lower-cased: ASCII letters,
#   digits and '-' only (RFC 1123 labels), at least two labels, a last label
#   of 2-63 letters (so no IPv4 form, which WHATWG parses as an address,
#   and no single-label host such as localhost), at most 253 characters.
#   Such a name is its own IDNA/WHATWG normalisation up to ASCII case;
#   anything else (full-width or other non-ASCII letters, ideographic dots,
#   percent escapes, a trailing dot, underscores) is a spelling a URL parser
#   may turn into another host, so it is not recognised.
hostnames contains lower(t) if {
	some t in targets
	_recognised(t)
}

# METADATA
# description: Targets that are not recognised hostnames.
unrecognised contains t if {
	some t in targets
	not _recognised(t)
}

# Deliberately without (?i): RE2 folds the Kelvin sign into k and ſ into s.
_recognised(t) if {
	count(t) <= 253
	regex.match(`^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$`, t)
}

# Keys are sorted, so the text is {"action":<name>,"params":<params>}; the
# name is a JSON string, in which an unescaped `,"params":` cannot occur.
_params_text := substring(text, indexof(text, `,"params":`), -1)

# One leftmost-first alternation; at each position the first alternative
# that matches wins:
#   1 a JSON escape (\n, \", \\, \u001f), consumed so that "\nexample.com"
#     does not yield "nexample.com";
#   2, 3 a URL's scheme and authority (up to /, ?, #, a quote, a backslash
#     or white space, as WHATWG ends it);
#   4, 5 an e-mail address: local part, then the domain up to a delimiter
#     (consumed whole, so "first.last" is not a host and "a@evil.com@x"
#     yields evil.com);
#   6 a bare dotted name whose last label has a letter, in any script;
#   7 an IPv4 literal; 8 a bracketed IPv6 literal; 9 localhost.
# Label characters include marks, format characters and dashes of any
# script, so a soft hyphen or a Unicode dash cannot split a name into
# nothing.
_target_re := concat("", [
	`(\\(?:u[0-9a-fA-F]{4}|.))`,
	`|([A-Za-z][A-Za-z0-9+.-]*://)([^/?#\s"\\]*)`,
	`|([\p{L}\p{N}\p{M}._%+-]+)@([^\s"\\/?#@,;:<>()\[\]]*)`,
	`|((?:[\p{L}\p{N}\p{M}\p{Cf}\p{Pd}_]+[.\x{3002}\x{ff0e}\x{ff61}])+[\p{L}\p{N}\p{M}\p{Cf}\p{Pd}_]*\p{L}[\p{L}\p{N}\p{M}\p{Cf}\p{Pd}_]*)`,
	`|(\p{N}{1,3}(?:[.\x{3002}\x{ff0e}\x{ff61}]\p{N}{1,3}){3})`,
	`|(\[[0-9A-Fa-f:.]*\])`,
	`|((?i:localhost))`,
])

# The host of a URL authority: after the last @ (userinfo), less a :port.
_target(m) := regex.replace(_last(split(m[3], "@")), `:[0-9]*$`, "") if m[2] != ""

# An e-mail domain, less the sentence's full stop.
_target(m) := trim_right(m[5], ".") if {
	m[2] == ""
	m[4] != ""
}

_target(m) := concat("", array.slice(m, 6, 10)) if {
	m[2] == ""
	m[4] == ""
}

_last(a) := a[count(a) - 1]
