package parity

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
)

// richPolicies exercise every feature a decision depends on: both scopes
// and shadowing, whitelisted_domains, step_types, context_requires,
// reasons with {match}, on_violation defaults, confidence, and Unicode and
// HTML characters in patterns.
func richPolicies() []map[string]any {
	rule := func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	return []map[string]any{
		{"name": "pii_protection", "description": "Warn on PII patterns", "rules": []any{
			rule("match", "(email|phone)", "context_requires", "(external|public)", "severity", "medium", "on_violation", "warn"),
		}},
		{"name": "pii_protection", "agent_id": "billing-bot", "description": "Block PII outright for billing-bot", "rules": []any{
			rule("match", "(email|phone|ssn|passport|routing)", "severity", "critical", "on_violation", "block",
				"reason", "PII blocked for billing-bot: {match}"),
		}},
		{"name": "html_guard", "description": "Markup & entities <b>", "rules": []any{
			rule("match", "<script[^>]*>", "severity", "high", "reason", "Script tag {match} in «{match}»"),
			rule("match", "&(amp|lt|gt);", "severity", "low", "confidence", 0.5),
		}},
		{"name": "unicode_words", "rules": []any{
			rule("match", "(straße|café|ſtop|naïve)", "severity", "medium", "reason", "Unicode word: {match}"),
			rule("match", "日本|🎉", "severity", "low", "on_violation", "require_approval", "confidence", 0.33),
		}},
		{"name": "outbound_http", "whitelisted_domains": []any{"example.com", "ops.example.org"}, "rules": []any{
			rule("match", "https?://", "severity", "high", "on_violation", "warn", "reason", "Outbound call via {match}"),
		}},
		{"name": "step_scoped", "step_types": []any{"thought", "OUTPUT"}, "rules": []any{
			rule("match", "(secret plan|internal only)", "severity", "critical", "reason", "Leaking {match}"),
		}},
		{"name": "deploy_guard", "step_types": []any{"ACTION", "POLICY_CHECK"}, "rules": []any{
			rule("match", "prod(uction)?", "context_requires", "(delete|drop|truncate)", "severity", "critical", "confidence", 0.6),
			rule("match", "staging", "severity", "medium"),
		}},
		{"name": "deploy_guard", "agent_id": "ops-bot", "rules": []any{
			rule("match", "prod(uction)?", "severity", "high", "on_violation", "warn", "reason", "ops-bot touches {match}"),
		}},
		{"name": "refund_watch", "agent_id": "billing-bot", "step_types": []any{"ACTION", "OUTPUT"}, "rules": []any{
			rule("match", "refund", "severity", "high", "reason", "Refund by billing-bot: {match}"),
		}},
		{"name": "refund_watch", "agent_id": "ops-bot", "rules": []any{
			rule("match", "refund", "severity", "critical"),
		}},
		// Per-policy shadow mode (issue 16): a tenant-wide shadow policy; a
		// shadow agent-scoped copy, which overrides nothing (the
		// tenant-wide pii_protection keeps deciding for support-bot); a
		// tenant-wide shadow copy that billing-bot's enforcing copy
		// overrides and that ops-bot (its copy disabled) sees.
		{"name": "card_watch", "mode": "shadow", "rules": []any{
			rule("match", `\d{4}`, "severity", "critical", "reason", "Four digits: {match}"),
		}},
		{"name": "pii_protection", "agent_id": "support-bot", "mode": "shadow", "rules": []any{
			rule("match", "(email|phone)", "severity", "high", "reason", "support-bot PII: {match}"),
		}},
		{"name": "refund_watch", "mode": "shadow", "rules": []any{
			rule("match", "refund", "severity", "medium", "on_violation", "block"),
		}},
		{"name": "legacy", "rules": []any{
			rule("match", "note", "severity", "critical"),
		}},
		// Python re semantics (issue 10): Unicode \d and \s, i ~ ı.
		{"name": "python_re", "rules": []any{
			rule("match", `\d{3}-\d{2}-\d{4}`, "severity", "high", "on_violation", "warn", "reason", "SSN-like {match}"),
			rule("match", `rm\s+-rf`, "severity", "critical", "reason", "Destructive {match}"),
			rule("match", "bitcoin", "severity", "medium", "reason", "Crypto {match}"),
		}},
	}
}

// action is one generated action.
type action struct {
	Agent  string // "" for none
	Name   string
	Params map[string]any
	Step   string // canonical, upper case
	Lower  bool   // send step_type in lower case to /v1/actions
}

// SentStep is the step_type as /v1/actions receives it.
func (a action) SentStep() string {
	if a.Lower {
		return strings.ToLower(a.Step)
	}
	return a.Step
}

// input is the decision input of a, with tenant as input.tenant_id.
func (a action) input(_ string, tenant string) map[string]any {
	var agent any
	if a.Agent != "" {
		agent = a.Agent
	}
	return map[string]any{"tenant_id": tenant, "agent_id": agent, "action": a.Name, "params": a.Params, "step_type": a.Step}
}

var (
	agents = []string{"billing-bot", "ops-bot", "support-bot", "research-agent", "", ""}
	steps  = []string{"ACTION", "ACTION", "ACTION", "ACTION", "THOUGHT", "OUTPUT", "OBSERVATION", "ERROR", "POLICY_CHECK"}
	names  = []string{
		"transfer", "wire.send", "payments.create_payment", "stripe.refund", "invoice.create", "purchase",
		"chargeback.review", "bank.withdraw", "slack.send_message", "github.merge_pr", "http.get", "email.send",
		"data.export", "db.dump", "s3.upload", "backup.run", "crm.sync", "db.delete_rows", "notes.write",
		"straße.export", "café.transfer", "<script>.run", "deploy.production", "ſync.job",
	}
	texts = []string{
		"Customer email: alice@example.com", "call my phone please", "SSN 123-45-6789", "passport scan attached",
		"routing number 021000021", "<script>alert(1)</script>", "<SCRIPT src=x>", "Tom &amp; Jerry", "a &lt; b",
		"Tom & Jerry", "café crème", "Straße", "STRASSE", "ſtop", "naïve", "ß", "é", "ſ", "日本語", "emoji 🎉",
		"zero\u200bwidth", "external", "public channel", "production", "prod db", "drop table users",
		"delete everything", "truncate logs", "staging", "secret plan", "internal only", "refund requested",
		"https://api.example.com/x", "https://evil.test/upload", "http://ops.example.org/deploy",
		"ops@example.com", "x@evil.test", "see example.com", "AKIAABCDEFGHIJKLMNOP", "AKIAabcdefghijklmnop",
		"ghp_" + strings.Repeat("a1B2", 9), "xoxb-1234567890-abcdef", "-----BEGIN RSA PRIVATE KEY-----",
		"-----BEGIN PRIVATE KEY-----", "password: hunter2hunter2", "password=short", "api_key=sk_live_abcdefgh",
		"client_secret: 0123456789", "customer data", "customer records", "credit card 4111", "card number",
		"credentials", "backup of passwords", "social security", "routine note", `literal \u003cscript\u003e`,
		"quote \" and backslash \\", "tab\tnewline\n", "", "   ",
		// Issue 10: whitelist hosts (outbound_http whitelists example.com),
		// secrets being sent out, money words in params.
		"http://10.0.0.1/admin", "http://localhost:8080/", "http://[::1]/", "http://intranet/",
		"https://ｅｖｉｌ.com/", "evil。com", "https://example.com@evil.test/", "169.254.169.254",
		"https://EXAMPLE.com./x", "mail me at Jane@Example.COM.", "send the prod secret", "export credentials now",
		"upload passwords.txt", "email.send password_reset", "please wire it", "refund this invoice",
		// Python re semantics: Unicode digits and spaces, dotless/dotted i.
		"SSN ١٢٣-٤٥-٦٧٨٩", "SSN １２３-４５-６７８９", "rm\u00a0-rf /", "rm\u3000-rf", "rm\u200b-rf", "rm -rf /tmp",
		"bıtcoın", "BİTCOİN", "Bitcoin",
	}
	amounts = []any{
		json.Number("0"), json.Number("9999"), json.Number("9999.99"), json.Number("10000"), json.Number("10000.5"),
		json.Number("99999"), json.Number("100000"), json.Number("100001"), json.Number("250000"), json.Number("-5"),
		json.Number("1e5"), "10000", "100000", "99999.99", "abc", "", json.Number("12.5"),
		// Issue 10: permissive amounts, Unicode digits, huge and unparseable
		// values, non-numbers.
		"+150000", "1.5e5", "1_50000", "15,000.00", "１５００００", "١٥٠٠٠", "२०,०००", "$20000", "150000 €",
		"1'500'000", "1e99999999999", "1e-99999999999", "1" + strings.Repeat("0", 320), json.Number("1e400"),
		json.Number("-1e400"), "0x20000", "1.500.000", true, nil,
	}
	amountKeys = []string{"amount", "value", "total", "sum"}
	textKeys   = []string{"text", "note", "channel", "url", "to", "email", "body", "é-key", "<b>", "password", "api_key"}
)

// randomAction draws one action: a random agent (scoped, unscoped or
// none), step type, name, and params mixing trigger words, Unicode, HTML,
// secrets and amounts around both thresholds, nested and in arrays.
func randomAction(r *rand.Rand) action {
	a := action{
		Agent:  pick(r, agents),
		Name:   pick(r, names),
		Step:   pick(r, steps),
		Lower:  r.IntN(4) == 0,
		Params: map[string]any{},
	}
	for range r.IntN(4) + 1 {
		switch r.IntN(6) {
		case 0, 1:
			a.Params[pick(r, amountKeys)] = amounts[r.IntN(len(amounts))]
		case 2, 3:
			a.Params[pick(r, textKeys)] = pick(r, texts) + sep(r) + pick(r, texts)
		case 4:
			a.Params["meta"] = map[string]any{
				pick(r, amountKeys): amounts[r.IntN(len(amounts))],
				pick(r, textKeys):   pick(r, texts),
			}
		case 5:
			a.Params["items"] = []any{pick(r, texts), map[string]any{pick(r, amountKeys): amounts[r.IntN(len(amounts))]}, json.Number("3")}
		}
	}
	return a
}

func sep(r *rand.Rand) string { return pick(r, []string{" ", " and ", "; ", "", "\n"}) }

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }
