# METADATA
# title: Action text
# description: |
#   The text every rule is matched against (CONTRACT A3): the compact JSON of
#   {"action": <name>, "params": <params>} with object keys sorted, no HTML
#   escaping and non-ASCII characters left as they are; plus its case-folded
#   form, used by literal pre-checks that skip regexes which cannot match, and
#   the hostnames found in it, used by whitelisted_domains.
package gatehouse.text

# METADATA
# description: The action text that rules' regexes run on.
text := _marshalled if {
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
folded := lower(upper(text))

# METADATA
# description: |
#   True when the action text is pure ASCII: then containment in folded is
#   exactly case-insensitive matching of ASCII literals, and byte offsets
#   are rune offsets, so generated rules may find a literal alternation's
#   match without a regex.
ascii if regex.match(`^[\x00-\x7f]*$`, text)

# METADATA
# description: |
#   Hostnames in the params part of the action text: hosts of URLs, domains
#   of e-mail addresses and bare domain names (labels joined by dots, ending
#   in a 2–63 letter label), lower-cased. The local part of an e-mail
#   address is not a hostname; IP addresses are not hostnames. The action
#   name is left out: connector names such as "http.get" name an operation,
#   not a destination, and would otherwise defeat every whitelist.
hostnames contains lower(m[3]) if {
	some m in regex.find_all_string_submatch_n(_hostname_re, _params_text, -1)
	m[3] != ""
}

# Keys are sorted, so the text is {"action":<name>,"params":<params>}; the
# name is a JSON string, in which an unescaped `,"params":` cannot occur.
_params_text := substring(text, indexof(text, `,"params":`), -1)

# Leftmost-first alternation: at each position a JSON escape (\n, \", \\,
# \u001f) or an e-mail local part (with its @) is consumed before a
# hostname can start there, so neither "nexample.com" (from "\nexample.com")
# nor "first.last" (from "first.last+tag@example.com") is taken for a host.
# Local parts are limited to common characters: a wider class could swallow
# a URL host (https://evil.com/@trusted.com), and a missed host would let a
# whitelist skip a policy.
_hostname_re := `(?i)(\\(?:u[0-9a-f]{4}|.))|([a-z0-9._%+-]+@)|((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63})`
