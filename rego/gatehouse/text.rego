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
text := strings.replace_n(_unescape, json.marshal({"action": input.action, "params": object.get(input, "params", {})}))

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
#   The action text case-folded: lower-cased, then every rune mapped to one
#   representative of its simple case-folding orbit (the orbits RE2's (?i)
#   uses). A case-insensitive literal matches the text only if its folded
#   form is contained in this string, so containment is a sound pre-check.
folded := strings.replace_n(fold_table, lower(text))

# METADATA
# description: |
#   Hostnames in the action text: hosts of URLs, domains of e-mail addresses
#   and bare domain names (labels joined by dots, ending in a 2–63 letter
#   label), lower-cased. The local part of an e-mail address is not a
#   hostname; IP addresses are not hostnames.
hostnames contains lower(m[1]) if {
	some m in regex.find_all_string_submatch_n(`(?i)((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63})([@]?)`, text, -1)
	m[2] == ""
}
