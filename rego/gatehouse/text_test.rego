# METADATA
# title: Action text tests
# description: docs/api.md §A3 — the text rules run on, its folded form, and the
#   hostnames whitelisted_domains compares.
package gatehouse.text_test

import data.gatehouse.text

# Each case: the input and the exact action text (raw strings show the
# JSON as it is, backslashes and all).
_text_cases := {
	"keys sorted at every depth": {
		"input": {"action": "a", "params": {"b": 1, "a": {"z": 1, "y": 2}}},
		"want": `{"action":"a","params":{"a":{"y":2,"z":1},"b":1}}`,
	},
	"compact, arrays kept in order": {
		"input": {"action": "a", "params": {"list": [3, "two", null, true, {"k": 1}]}},
		"want": `{"action":"a","params":{"list":[3,"two",null,true,{"k":1}]}}`,
	},
	"missing params is an empty object": {
		"input": {"action": "ping"},
		"want": `{"action":"ping","params":{}}`,
	},
	"script tag not HTML-escaped": {
		"input": {"action": "a", "params": {"s": "<script>alert(1)</script>"}},
		"want": `{"action":"a","params":{"s":"<script>alert(1)</script>"}}`,
	},
	"ampersand and greater-than not escaped": {
		"input": {"action": "a", "params": {"s": "a & b > c"}},
		"want": `{"action":"a","params":{"s":"a & b > c"}}`,
	},
	"U+2028 and U+2029 kept as characters": {
		"input": {"action": "a", "params": {"s": "x\u2028y\u2029z"}},
		"want": "{\"action\":\"a\",\"params\":{\"s\":\"x\u2028y\u2029z\"}}",
	},
	"literal backslash-u003c stays escaped": {
		"input": {"action": "a", "params": {"s": `\u003c`}},
		"want": `{"action":"a","params":{"s":"\\u003c"}}`,
	},
	"backslash before a real < is kept": {
		"input": {"action": "a", "params": {"s": `\<`}},
		"want": `{"action":"a","params":{"s":"\\<"}}`,
	},
	"non-ASCII left as it is": {
		"input": {"action": "a", "params": {"s": "café 東京 🚀 ſ"}},
		"want": `{"action":"a","params":{"s":"café 東京 🚀 ſ"}}`,
	},
	"quotes and control characters escaped as JSON": {
		"input": {"action": "a", "params": {"s": "say \"hi\"\n\t"}},
		"want": `{"action":"a","params":{"s":"say \"hi\"\n\t"}}`,
	},
}

test_action_text[name] if {
	some name, c in _text_cases
	text.text == c.want with input as c.input
}

test_keys_are_part_of_the_text if {
	t := text.text with input as {"action": "update_contact", "params": {"email": 1}}
	contains(t, `"email":1`)
	regex.match(`(?i)EMAIL`, t)
}

test_action_name_is_part_of_the_text if {
	t := text.text with input as {"action": "wire_funds"}
	regex.match(`"action":"wire_funds"`, t)
}

# The folded text is a sound pre-check: wherever a case-insensitive regex
# finds a literal, the folded text contains the literal's folded form (as
# adapter.Fold computes it for the generated pre-checks).
_fold_cases := {
	"long s matches s": {"s": "ſſn", "literal": "SSN", "folded": "ssn"},
	"Kelvin sign matches k": {"s": "api_\u212aey", "literal": "API_KEY", "folded": "api_key"},
	"Greek final sigma matches sigma": {"s": "ΟΔΟΣ", "literal": "οδος", "folded": "οδοσ"},
	"capital sigma matches final sigma": {"s": "ΣΣ", "literal": "σς", "folded": "σσ"},
	"micro sign matches mu": {"s": "5µg", "literal": "μg", "folded": "μg"},
	"ASCII upper case": {"s": "PASSPORT", "literal": "passport", "folded": "passport"},
}

test_folding_agrees_with_case_insensitive_regex[name] if {
	some name, c in _fold_cases
	inp := {"action": "a", "params": {"s": c.s}}
	regex.match(concat("", ["(?i)", c.literal]), text.text) with input as inp
	contains(text.folded, c.folded) with input as inp
}

test_folded_is_lower_case_text if {
	text.folded == `{"action":"send","params":{"to":"k s σ"}}` with input as {"action": "SEND", "params": {"TO": "\u212a ſ ς"}}
}

_host_cases := {
	"URL host with port and path": {"s": "https://api.example.com:8443/v1?q=1", "want": {"api.example.com"}},
	"e-mail domain": {"s": "write to jane@corp.example.org", "want": {"corp.example.org"}},
	"dotted e-mail local part": {"s": "first.last@example.com", "want": {"example.com"}},
	"local part with plus tag": {"s": "first.last+billing@example.com", "want": {"example.com"}},
	"local part with digits": {"s": "jane.doe1@example.com", "want": {"example.com"}},
	"bare domain": {"s": "see example.co.uk for details", "want": {"example.co.uk"}},
	"several hosts": {"s": "a.example.com, b.example.org", "want": {"a.example.com", "b.example.org"}},
	"IPv4 URL excluded": {"s": "http://10.0.0.1:8080/x", "want": set()},
	"bare IPv4 excluded": {"s": "ping 192.168.1.1", "want": set()},
	"upper case lowered": {"s": "HTTPS://API.EXAMPLE.COM/X", "want": {"api.example.com"}},
	"no hostname": {"s": "hello world", "want": set()},
	"JSON escape not glued to a host": {"s": "line\nexample.com\tfoo.org", "want": {"example.com", "foo.org"}},
	"userinfo is not the host": {"s": "https://evil.com@trusted.com/", "want": {"trusted.com"}},
	"@ in a path does not hide the host": {"s": "https://evil.com/@trusted.com", "want": {"evil.com", "trusted.com"}},
}

test_hostnames[name] if {
	some name, c in _host_cases
	text.hostnames == c.want with input as {"action": "send", "params": {"s": c.s}}
}

test_hostnames_in_keys if {
	text.hostnames == {"example.com"} with input as {"action": "send", "params": {"example.com": true}}
}

# Every destination is a target, as written; only plain ASCII names with an
# alphabetic last label are recognised hostnames.
_target_cases := {
	"URL host": {"s": "https://api.example.com:8443/v1", "targets": {"api.example.com"}, "unrecognised": set()},
	"IPv4 URL": {"s": "http://10.0.0.1:8080/x", "targets": {"10.0.0.1"}, "unrecognised": {"10.0.0.1"}},
	"bare IPv4": {"s": "ping 192.168.1.1", "targets": {"192.168.1.1"}, "unrecognised": {"192.168.1.1"}},
	"IPv6 URL": {"s": "http://[::1]:80/", "targets": {"[::1]"}, "unrecognised": {"[::1]"}},
	"localhost": {"s": "LocalHost:5432", "targets": {"LocalHost"}, "unrecognised": {"LocalHost"}},
	"single label URL": {"s": "http://intranet/x", "targets": {"intranet"}, "unrecognised": {"intranet"}},
	"full-width": {"s": "ｅｖｉｌ.com", "targets": {"ｅｖｉｌ.com"}, "unrecognised": {"ｅｖｉｌ.com"}},
	"ideographic dot": {"s": "evil。com", "targets": {"evil。com"}, "unrecognised": {"evil。com"}},
	"userinfo and port": {"s": "ftp://u:p@files.example.org:21/", "targets": {"files.example.org"}, "unrecognised": set()},
	"e-mail": {"s": "a.b+c@Example.COM.", "targets": {"Example.COM"}, "unrecognised": set()},
	"decimal number is not a target": {"s": "pi is 3.14 and v1.2", "targets": set(), "unrecognised": set()},
}

test_targets[name] if {
	some name, c in _target_cases
	inp := {"action": "http.get", "params": {"s": c.s}}
	text.targets == c.targets with input as inp
	text.unrecognised == c.unrecognised with input as inp
}
