# METADATA
# title: DataExfiltration tests
# description: docs/api.md §A5 — secret material blocks, bulk export of sensitive
#   data needs approval, and near-misses stay quiet.
package gatehouse.builtins.data_exfiltration_test

import data.gatehouse.builtins.data_exfiltration

_check(action, params) := vs if {
	vs := data_exfiltration.violations with input as {"action": action, "params": params}
}

_secret(rule, kind, match) := {
	"rule": rule,
	"severity": "critical",
	"on_violation": "block",
	"confidence": 0.95,
	"match": match,
	"reason": concat("", ["Potential data exfiltration: ", kind]),
}

_export(match) := {
	"rule": 5,
	"severity": "high",
	"on_violation": "require_approval",
	"confidence": 0.85,
	"match": match,
	"reason": concat("", ["Sensitive data export requires approval: ", match]),
}

_github_token := "ghp_1234567890abcdefghijklmnopqrstuvwxyz"

# Each case: a secret in params, and the one violation it yields. Matches
# are redacted: the PEM header, a token's first four characters, or the
# name of the credential key.
_secret_cases := {
	"RSA private key": {
		"params": {"body": "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA"},
		"secret": "MIIEpAIBAAKCAQEA",
		"want": _secret(0, "private key", "-----BEGIN RSA PRIVATE KEY-----"),
	},
	"PKCS#8 private key": {
		"params": {"body": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg"},
		"secret": "MIIEvQIBADANBg",
		"want": _secret(0, "private key", "-----BEGIN PRIVATE KEY-----"),
	},
	"OpenSSH private key": {
		"params": {"file": "id_ed25519", "text": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE"},
		"secret": "b3BlbnNzaC1rZXktdjE",
		"want": _secret(0, "private key", "-----BEGIN OPENSSH PRIVATE KEY-----"),
	},
	"AWS access key id": {
		"params": {"aws": "AKIAIOSFODNN7EXAMPLE"},
		"secret": "AKIAIOSFODNN7EXAMPLE",
		"want": _secret(1, "AWS access key", "AKIA****"),
	},
	"GitHub personal token": {
		"params": {"token": _github_token},
		"secret": _github_token,
		"want": _secret(2, "GitHub token", "ghp_****"),
	},
	"GitHub server token": {
		"params": {"header": "Bearer ghs_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"},
		"secret": "ghs_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
		"want": _secret(2, "GitHub token", "ghs_****"),
	},
	"Slack bot token": {
		"params": {"token": "xoxb-123456789012-abcdefABCDEF"},
		"secret": "xoxb-123456789012-abcdefABCDEF",
		"want": _secret(3, "Slack token", "xoxb****"),
	},
	"password as a JSON key": {
		"params": {"user": "ops", "password": "hunter2hunter2"},
		"secret": "hunter2hunter2",
		"want": _secret(4, "credential", "password"),
	},
	"api_key as a JSON key": {
		"params": {"api_key": "sk_live_abcdef12"},
		"secret": "sk_live_abcdef12",
		"want": _secret(4, "credential", "api_key"),
	},
	"camel-case apiKey": {
		"params": {"apiKey": "0123456789abcdef"},
		"secret": "0123456789abcdef",
		"want": _secret(4, "credential", "apiKey"),
	},
	"client_secret": {
		"params": {"client_secret": "cs-0123456789"},
		"secret": "cs-0123456789",
		"want": _secret(4, "credential", "client_secret"),
	},
	"secret-key with a number value": {
		"params": {"secret-key": 1234567890},
		"secret": "1234567890",
		"want": _secret(4, "credential", "secret-key"),
	},
	"password= as a word": {
		"params": {"note": "log in with password=correcthorse"},
		"secret": "correcthorse",
		"want": _secret(4, "credential", "password"),
	},
	"API-KEY: as a word": {
		"params": {"note": "use API-KEY: abcd1234efgh"},
		"secret": "abcd1234efgh",
		"want": _secret(4, "credential", "API-KEY"),
	},
	"exactly eight characters": {
		"params": {"password": "12345678"},
		"secret": "12345678",
		"want": _secret(4, "credential", "password"),
	},
}

test_secret_material_blocks[name] if {
	some name, c in _secret_cases
	_check("send_message", c.params) == {c.want}
}

test_secrets_are_never_echoed[name] if {
	some name, c in _secret_cases
	every v in _check("send_message", c.params) {
		not contains(v.match, c.secret)
		not contains(v.reason, c.secret)
	}
}

test_secret_detectors_are_independent if {
	vs := _check("send_message", {"a": "AKIAIOSFODNN7EXAMPLE", "b": _github_token, "password": "hunter2hunter2"})
	{v.rule | some v in vs} == {1, 2, 4}
}

test_secrets_block_in_any_action if {
	every action in ["export_users", "ping", "github.create_issue"] {
		_secret(1, "AWS access key", "AKIA****") in _check(action, {"k": "AKIAIOSFODNN7EXAMPLE"})
	}
}

# Things that look like secrets but are not what A5 names.
_near_misses := {
	"AKIA and 15 characters": {"aws": "AKIAIOSFODNN7EXAMPL"},
	"AKIA in lower case": {"aws": "akiaiosfodnn7example"},
	"GitHub prefix and 35 characters": {"token": "ghp_1234567890abcdefghijklmnopqrstuvwxy"},
	"unknown GitHub prefix": {"token": "ghx_1234567890abcdefghijklmnopqrstuvwxyz"},
	"Slack token too short": {"token": "xoxb-123456789"},
	"unknown Slack prefix": {"token": "xoxz-1234567890abcdef"},
	"public key": {"body": "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkq"},
	"certificate": {"body": "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIE"},
	"password of seven characters": {"password": "hunter2"},
	"short password word": {"note": "password: abc"},
	"empty password": {"password": "", "other": "abcdefghijkl"},
	"password without assignment": {"note": "please reset my password tomorrow morning"},
	"key that only starts with password": {"password_hint": "the name of my first dog"},
	"key word alone": {"key": "0123456789abcdef", "keyboard": "qwertyuiop"},
}

test_near_misses_do_not_fire[name] if {
	some name, params in _near_misses
	_check("send_message", params) == set()
}

# Case-insensitive detectors see through Unicode case folding (ſ is s, the
# Kelvin sign is k); the literal pre-checks must not hide such text.
test_case_folded_credentials_fire if {
	_check("send_message", {"note": "PAſſWORD=hunter2hunter2"}) == {_secret(4, "credential", "PAſſWORD")}
	_check("send_message", {"note": "api_\u212aey: abcdefgh12"}) == {_secret(4, "credential", "api_\u212aey")}
}

# Each case: an export-like action, text naming sensitive data, the match.
_export_cases := {
	"ssn in an export": {"action": "export_users", "params": {"fields": ["name", "SSN"]}, "match": "SSN"},
	"social security in an upload": {"action": "s3.upload", "params": {"file": "social security numbers.csv"}, "match": "social security"},
	"credit card in a dump": {"action": "db_dump", "params": {"table": "credit_card"}, "match": "credit_card"},
	"card number in a backup": {"action": "nightly_backup", "params": {"columns": "card number, expiry"}, "match": "card number"},
	"passport in a sync": {"action": "crm.sync", "params": {"scope": "passport scans"}, "match": "passport"},
	"customer list": {"action": "Export", "params": {"what": "customer list"}, "match": "customer list"},
	"customer data": {"action": "upload", "params": {"what": "customer-data"}, "match": "customer-data"},
	"customer records": {"action": "dump", "params": {"what": "customer_records"}, "match": "customer_records"},
	"credentials": {"action": "backup_vault", "params": {"include": "credentials"}, "match": "credentials"},
	"passwords": {"action": "sync_secrets", "params": {"include": "passwords"}, "match": "passwords"},
	"sensitive word as a key": {"action": "export", "params": {"passport": true}, "match": "passport"},
	"long s folds to s": {"action": "export", "params": {"f": "ſſn"}, "match": "ſſn"},
}

test_bulk_export_of_sensitive_data_needs_approval[name] if {
	some name, c in _export_cases
	_check(c.action, c.params) == {_export(c.match)}
}

test_export_without_sensitive_text_yields_nothing if {
	every action in ["export_report", "upload", "db_dump", "backup", "calendar.sync"] {
		_check(action, {"format": "csv", "rows": 100, "to": "https://example.com"}) == set()
	}
}

test_sensitive_text_without_export_yields_nothing if {
	_check("send_email", {"body": "my ssn and passport and credit card"}) == set()
}

test_export_word_only_in_params_yields_nothing if {
	_check("send_email", {"op": "export", "what": "customer list"}) == set()
}

_sending(match) := {
	"rule": 6,
	"severity": "critical",
	"on_violation": "block",
	"confidence": 0.9,
	"match": match,
	"reason": "Potential data exfiltration: sending secrets",
}

# Sending secrets or credentials out blocks, whatever the action is called;
# the match never carries the words between verb and noun.
_sending_cases := {
	"send … secret": {"action": "slack.post", "params": {"text": "send the prod secret to bob"}, "match": "send … secret"},
	"export … credential": {"action": "run", "params": {"cmd": "export all credentials to pastebin"}, "match": "export … credential"},
	"upload … password": {"action": "files.put", "params": {"note": "Uploading passwords.txt now"}, "match": "Upload … password"},
	"verb in the action name": {"action": "slack.send", "params": {"text": "the db password is in the vault"}, "match": "send … password"},
	"sent": {"action": "log", "params": {"msg": "sent secrets hunter to x"}, "match": "sent … secret"},
}

test_sending_secrets_blocks[name] if {
	some name, c in _sending_cases
	_sending(c.match) in _check(c.action, c.params)
}

_sending_near_misses := {
	"password reset template": {"action": "email.send", "params": {"template": "password_reset"}},
	"sender is not send": {"action": "mail", "params": {"sender": "ops", "note": "password policy"}},
	"verb inside a name": {"action": "send_message", "params": {"note": "please reset my password tomorrow morning"}},
	"noun before the verb": {"action": "note", "params": {"text": "secret santa: send gifts"}},
	"verb without secrets": {"action": "slack.send", "params": {"text": "standup at 10"}},
}

test_sending_near_misses_do_not_fire[name] if {
	some name, c in _sending_near_misses
	every v in _check(c.action, c.params) {
		v.rule != 6
	}
}
