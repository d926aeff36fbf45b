# METADATA
# title: DataExfiltrationPolicy
# description: |
#   Policy to prevent data exfiltration attempts (docs/api.md §A5): secret
#   material anywhere in the action text blocks; a bulk export of sensitive
#   data needs approval. Secrets are never echoed: the match of a secret
#   hit is redacted (the PEM header, a token's first four characters, or the
#   name of the credential key).
package gatehouse.builtins.data_exfiltration

import data.gatehouse.text

# METADATA
# description: The built-in's violations, as its rules find them.
violations contains object.remove(h[5], ["policy", "scope"]) if some h in hits

# Each rule yields its hit ranked and composed as the generated rules
# yield theirs: [0 - outcome rank, 0 - severity rank, scope rank, policy,
# rule, violation, patch], data.gatehouse.decision._ranked's tuple with
# every part that does not depend on the action written as a constant
# (decision_test.rego checks each rule's hit against _ranked). Rules 0-4
# block at critical severity with confidence 0.95: _blocked builds theirs
# (with array.concat, so that OPA copies it once: see
# financial_safety._approval_of).
_blocked(v) := array.concat([-3, -4, 2, "DataExfiltrationPolicy"], [v.rule, v, {
	"status": "blocked",
	"risk_score": 0.95,
	"triggered_policy": "DataExfiltrationPolicy",
	"severity": "critical",
	"reason": v.reason,
	"violations": [v],
	"warnings": [],
}])

# Case-sensitive detectors, each behind a cheap containment pre-check of a
# literal every match contains; unrolled, because iterating a table of them
# costs more than the checks themselves.
_redact(s, keep) := s if count(s) <= keep

_redact(s, keep) := concat("", [substring(s, 0, keep), "****"]) if count(s) > keep

_secret(i, kind, m, keep) := {
	"policy": "DataExfiltrationPolicy",
	"scope": "builtin",
	"rule": i,
	"severity": "critical",
	"on_violation": "block",
	"confidence": 0.95,
	"match": _redact(m, keep),
	"reason": concat("", ["Potential data exfiltration: ", kind]),
}

# METADATA
# labels:
#   policy: DataExfiltrationPolicy
#   rule: 0
#   severity: critical
hits contains _blocked(_secret(0, "private key", m, 100)) if {
	contains(text.text, "PRIVATE KEY-----")
	m := regex.find_n(`-----BEGIN [A-Z ]*PRIVATE KEY-----`, text.text, 1)[0]
}

# METADATA
# labels:
#   policy: DataExfiltrationPolicy
#   rule: 1
#   severity: critical
hits contains _blocked(_secret(1, "AWS access key", m, 4)) if {
	contains(text.text, "AKIA")
	m := regex.find_n(`AKIA[0-9A-Z]{16}`, text.text, 1)[0]
}

# METADATA
# labels:
#   policy: DataExfiltrationPolicy
#   rule: 2
#   severity: critical
hits contains _blocked(_secret(2, "GitHub token", m, 4)) if {
	contains(text.text, "gh")
	m := regex.find_n(`gh[pousr]_[A-Za-z0-9]{36}`, text.text, 1)[0]
}

# METADATA
# labels:
#   policy: DataExfiltrationPolicy
#   rule: 3
#   severity: critical
hits contains _blocked(_secret(3, "Slack token", m, 4)) if {
	contains(text.text, "xox")
	m := regex.find_n(`xox[abprs]-[A-Za-z0-9-]{10,}`, text.text, 1)[0]
}

_credential_re := `(?i)(api[_-]?key|secret[_-]?key|client[_-]?secret|password)"?\s*[:=]\s*"?[^\s"]{8,}`

# Every match of _credential_re starts with one of these (folded)
# literals, or contains "secret" (client_secret): "api" and "key" alone,
# as in keyboard or monkey, are not enough.
_credential_pre if {
	f := text.folded
	some w in {"password", "secret", "apikey", "api_key", "api-key"}
	contains(f, w)
}

# METADATA
# labels:
#   policy: DataExfiltrationPolicy
#   rule: 4
#   severity: critical
hits contains _blocked({
	"policy": "DataExfiltrationPolicy",
	"scope": "builtin",
	"rule": 4,
	"severity": "critical",
	"on_violation": "block",
	"confidence": 0.95,
	"match": m[1],
	"reason": "Potential data exfiltration: credential",
}) if {
	_credential_pre
	m := regex.find_all_string_submatch_n(_credential_re, text.text, 1)[0]
}

_sensitive_re := `(?i)(ssn|social.security|credit.card|card.number|passport|customer.(list|data|records)|credentials|passwords)`

# Every match of _sensitive_re contains one of these (folded) literals.
_sensitive_pre if {
	f := text.folded
	some w in {"ssn", "social", "card", "passport", "customer", "credentials", "passwords"}
	contains(f, w)
}

# METADATA
# labels:
#   policy: DataExfiltrationPolicy
#   rule: 5
#   severity: high
hits contains [-2, -3, 2, "DataExfiltrationPolicy", 5, v, {
	"status": "pending_review",
	"risk_score": 0.68,
	"triggered_policy": "DataExfiltrationPolicy",
	"severity": "high",
	"reason": v.reason,
	"violations": [v],
	"warnings": [],
}] if {
	regex.match(`(?i)(export|upload|dump|backup|sync)`, input.action)
	_sensitive_pre
	m := regex.find_n(_sensitive_re, text.text, 1)[0]
	v := {
		"policy": "DataExfiltrationPolicy",
		"scope": "builtin",
		"rule": 5,
		"severity": "high",
		"on_violation": "require_approval",
		"confidence": 0.85,
		"match": m,
		"reason": concat("", ["Sensitive data export requires approval: ", m]),
	}
}

# Sending secrets out: a send/export/upload verb, then, within a few words,
# the secrets or credentials it moves (`send … secret`, `export …
# credential`, `upload … password`). Word boundaries keep names such as
# password_reset or sender out; the match names the verb and the noun only,
# never what lies between (which may be the secret itself).
_sending_re := `(?i)\b(send|sent|export|upload)(?:s|ed|ing)?\b[^\n]{0,80}?\b(secret|credential|password)s?\b`

# The nouns first (rarer than the verbs); contains() allocates nothing.
# Each pre-check is one rule with the folded text bound once, stopping at
# the first literal found.
_sending_pre if {
	_secret_noun
	_sending_verb
}

_secret_noun if {
	f := text.folded
	some w in {"secret", "password", "credential"}
	contains(f, w)
}

_sending_verb if {
	f := text.folded
	some w in {"send", "sent", "export", "upload"}
	contains(f, w)
}

# METADATA
# labels:
#   policy: DataExfiltrationPolicy
#   rule: 6
#   severity: critical
hits contains [-3, -4, 2, "DataExfiltrationPolicy", 6, v, {
	"status": "blocked",
	"risk_score": 0.9,
	"triggered_policy": "DataExfiltrationPolicy",
	"severity": "critical",
	"reason": "Potential data exfiltration: sending secrets",
	"violations": [v],
	"warnings": [],
}] if {
	_sending_pre
	m := regex.find_all_string_submatch_n(_sending_re, text.text, 1)[0]
	v := {
		"policy": "DataExfiltrationPolicy",
		"scope": "builtin",
		"rule": 6,
		"severity": "critical",
		"on_violation": "block",
		"confidence": 0.9,
		"match": concat(" … ", [m[1], m[2]]),
		"reason": "Potential data exfiltration: sending secrets",
	}
}
