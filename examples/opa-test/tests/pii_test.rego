# Tests of the acme tenant's policies, run with `opa test` against the
# bundle `gatehouse bundle build` (or GET /v1/bundles/acme.tar.gz) exports.
package pii_test

import data.gatehouse.decision

_slack(agent) := {
	"tenant_id": "acme",
	"agent_id": agent,
	"action": "slack.send_message",
	"params": {"channel": "#external", "text": "Customer email: alice@example.com"},
	"step_type": "ACTION",
}

test_billing_bot_is_blocked if {
	r := decision.result with input as _slack("billing-bot")
	r.status == "blocked"
	r.triggered_policy == "pii_protection"
	r.reason == "PII blocked for billing-bot: email"
}

test_other_agents_are_warned if {
	some agent in ["support-bot", null]
	r := decision.result with input as _slack(agent)
	r.status == "allowed"
	[w.policy | some w in r.warnings] == ["pii_protection"]
}

test_internal_channel_is_quiet if {
	r := decision.result with input as object.union(_slack("support-bot"), {"params": {"channel": "#team", "text": "my email is a@b.c"}})
	r.status == "allowed"
	r.violations == []
}

# The built-ins travel in the bundle, with the thresholds it was built with.
test_financial_thresholds if {
	decision.result.status == "allowed" with input as object.union(_slack(null), {"action": "payments.transfer", "params": {"amount": 9999}})
	decision.result.status == "pending_review" with input as object.union(_slack(null), {"action": "payments.transfer", "params": {"amount": 10000}})
	decision.result.status == "blocked" with input as object.union(_slack(null), {"action": "payments.transfer", "params": {"amount": 100000}})
}
