package e2e

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Identities through the binary (README "Who may do what"): the issue's
// two security reproductions now fail to approve and to escape; keys are
// self-service, scoped, rotated with a grace period, revoked at once and
// isolated per tenant; and the documented Novyx approval flow ends in
// approved on a fresh tenant of every tier.

// TestNovyxApprovalFlow: the documented flow — the same key submits, then
// POST /v1/approvals/{id}/decision {"decision":"approve"} — on a fresh
// tenant of each tier (solo, whatever the tier), the server holding the
// early approval until 5 s after submission. The wait is measured once,
// for real: 4 to 6 s.
func TestNovyxApprovalFlow(t *testing.T) {
	t.Parallel()
	s := govServer(t, SQLiteStore(t), NewKey())
	admin := s.Client(govAdminToken)
	var wg sync.WaitGroup
	for _, tier := range []string{"free", "starter", "pro", "enterprise"} {
		wg.Go(func() {
			m := wantStatus(t, admin.Do(t, "POST", "/v1/admin/tenants", map[string]any{"name": "fresh-" + tier, "tier": tier}), 201)
			c := s.Client(m["api_key"].(string))
			wantField(t, wantStatus(t, admin.Do(t, "GET", "/v1/admin/tenants/"+m["tenant_id"].(string), nil), 200), "solo", "approval_mode")
			id := govHeld(t, c, "payer-bot")
			submitted := time.Now()
			d := wantStatus(t, govDecide(t, c, id, map[string]any{"decision": "approve"}), 200)
			waited := time.Since(submitted)
			wantField(t, d, "approved", "status")
			if tier == "free" && (waited < 4*time.Second || waited > 6*time.Second) {
				t.Errorf("%s: the held approval answered after %s, want 4-6 s", tier, waited)
			}
			wantField(t, wantStatus(t, c.Do(t, "GET", "/v1/actions/"+id, nil), 200), "approved", "status")
			// The query-string form without a decision is an approval too.
			id = govHeld(t, c, "payer-bot")
			wantField(t, wantStatus(t, c.Do(t, "POST", "/v1/approvals/"+id+"/decision", nil), 200), "approved", "status")
		})
	}
	wg.Wait()
	// --dev's default tenant starts in solo too (checked on the same
	// binary in TestDevDefaultSolo).
}

// TestDevDefaultSolo: the tenant --dev creates is in solo mode.
func TestDevDefaultSolo(t *testing.T) {
	t.Parallel()
	_, c := startDev(t, Options{})
	id := govHeld(t, c, "payer-bot")
	wantField(t, wantStatus(t, govDecide(t, c, id, map[string]any{"decision": "approve"}), 200), "approved", "status")
}

// TestReproductionApprovals: the first reproduction. With the very
// key that submitted, naming alice and bob with the right role once
// satisfied a two-approver, role-restricted, manager-required chain, and
// naming anyone else approved at once in team mode.
func TestReproductionApprovals(t *testing.T) {
	t.Parallel()
	s := govServer(t, SQLiteStore(t), NewKey())
	admin := s.Client(govAdminToken)
	c := s.Client(s.Key) // the default tenant's owner key, which also submits
	wantStatus(t, admin.Do(t, "PATCH", "/v1/admin/tenants/default", map[string]any{"approval_mode": "enterprise",
		"approval_settings": map[string]any{"min_approvals": 2, "allowed_roles": []string{"owner", "admin"}, "require_manager": true}}), 200)
	id := govHeld(t, c, "payer-bot")
	for _, who := range []string{"alice", "bob"} {
		d := wantStatus(t, govDecide(t, c, id, map[string]any{"decision": "approve", "approver_id": who, "approver_role": "owner", "is_manager": true}), 200)
		wantField(t, d, "pending_review", "status")
		wantField(t, d, 1, "approvals_received")
	}
	wantField(t, wantStatus(t, c.Do(t, "GET", "/v1/actions/"+id, nil), 200), "pending_review", "status")
	// A role or manager flag the key does not carry is refused, whatever
	// the body says, and the 403 no longer says what to send.
	member := govPerson(t, s, c, "mallory", "member", false)
	e := wantError(t, govDecide(t, member, id, map[string]any{"decision": "approve", "approver_role": "admin", "is_manager": true}), 403, "novyx_ram.v1.control.approver_not_eligible")
	wantContains(t, e["message"], "comes from the API key")

	tenantID, agent := govTenant(t, s, "starter") // team mode
	_ = tenantID
	id = govHeld(t, agent, "payer-bot")
	wantError(t, govDecide(t, agent, id, map[string]any{"decision": "approve", "approver_id": "someone-else"}), 409, "novyx_ram.v1.control.approval_too_early")
	wantField(t, wantStatus(t, agent.Do(t, "GET", "/v1/actions/"+id, nil), 200), "pending_review", "status")
}

// TestReproductionAgentEscape: the second reproduction. Dropping
// agent_id or sending step_type "thought" escaped a stricter agent-scoped
// override; an agent-bound key submits as its agent, with its step types.
func TestReproductionAgentEscape(t *testing.T) {
	t.Parallel()
	s := govServer(t, SQLiteStore(t), NewKey())
	_, owner := govTenant(t, s, "pro")
	wantStatus(t, owner.Do(t, "POST", "/v1/control/policies", warnPolicy("pii_protection", "email")), 201)
	override := blockPolicy("pii_protection", "email", "billing-bot")
	override["step_types"] = []string{"action", "thought"}
	wantStatus(t, owner.Do(t, "POST", "/v1/control/policies", override), 201)
	m := wantStatus(t, owner.Do(t, "POST", "/v1/keys", map[string]any{"name": "billing-bot", "agent_id": "billing-bot", "step_types": []string{"action"}}), 201)
	wantField(t, m, []string{"actions:submit", "policies:read"}, "scopes")
	bot := s.Client(m["api_key"].(string))
	send := map[string]any{"action": "slack.send_message", "params": map[string]any{"text": "email bob@example.com"}}

	// Without agent_id: the key's agent, so the override blocks.
	r := wantStatus(t, bot.Do(t, "POST", "/v1/actions", send), 200)
	wantField(t, r, "blocked", "status")
	wantField(t, r, "billing-bot", "agent_id")
	// Another agent, or a step type the key may not use: refused.
	for _, extra := range []map[string]any{{"agent_id": "support-bot"}, {"step_type": "thought"}, {"agent_id": "billing-bot", "step_type": "THOUGHT"}} {
		body := map[string]any{"action": send["action"], "params": send["params"]}
		for k, v := range extra {
			body[k] = v
		}
		wantError(t, bot.Do(t, "POST", "/v1/actions", body), 403, "novyx_ram.v1.control.agent_mismatch")
	}
	// The connector route too.
	wantError(t, bot.Do(t, "POST", "/v1/actions/slack/send_message", map[string]any{"text": "hi", "agent_id": "support-bot"}), 403, "novyx_ram.v1.control.agent_mismatch")
	// The agent's key cannot decide (no scope), and even with the scope
	// never decides its own agent's actions.
	held := govSubmit(t, bot, map[string]any{"action": "stripe.payment", "params": map[string]any{"amount": 50000}}, "pending_review")
	wantError(t, govDecide(t, bot, held, map[string]any{"decision": "approve"}), 403, "FORBIDDEN")
	m = wantStatus(t, owner.Do(t, "POST", "/v1/keys", map[string]any{"name": "billing-bot-2", "agent_id": "billing-bot",
		"scopes": []string{"actions:submit", "approvals:decide"}}), 201)
	deciding := s.Client(m["api_key"].(string))
	wantError(t, govDecide(t, deciding, held, map[string]any{"decision": "deny"}), 403, "novyx_ram.v1.control.approver_not_eligible")

	// require_agent_keys: the owner's unbound key no longer submits.
	tenantID := ""
	for _, tn := range asSlice(field(wantStatus(t, s.Client(govAdminToken).Do(t, "GET", "/v1/admin/tenants", nil), 200), "tenants")) {
		if field(tn, "name") == "gov-pro" {
			tenantID = field(tn, "tenant_id").(string)
		}
	}
	wantField(t, wantStatus(t, s.Client(govAdminToken).Do(t, "PATCH", "/v1/admin/tenants/"+tenantID, map[string]any{"require_agent_keys": true}), 200), true, "require_agent_keys")
	wantError(t, owner.Do(t, "POST", "/v1/actions", send), 403, "novyx_ram.v1.control.agent_mismatch")
	wantField(t, wantStatus(t, bot.Do(t, "POST", "/v1/actions", send), 200), "blocked", "status")
}

// TestKeysSelfService: create, use, list, scope refusals, rotate, revoke,
// the audit chain, and isolation between tenants.
func TestKeysSelfService(t *testing.T) {
	t.Parallel()
	s := govServer(t, SQLiteStore(t), NewKey())
	_, owner := govTenant(t, s, "pro")
	_, other := govTenant(t, s, "pro")

	m := wantStatus(t, owner.Do(t, "POST", "/v1/keys", map[string]any{"name": "reader", "role": "readonly"}), 201)
	wantField(t, m, []string{"policies:read", "audit:read", "dashboard:read"}, "scopes")
	readerID, readerSecret := m["key_id"].(string), m["api_key"].(string)
	reader := s.Client(readerSecret)
	wantStatus(t, reader.Do(t, "GET", "/v1/control/policies", nil), 200)
	e := wantError(t, reader.Do(t, "POST", "/v1/actions", map[string]any{"action": "db.read"}), 403, "FORBIDDEN")
	wantField(t, e, []string{"actions:submit"}, "required_scopes")
	wantError(t, reader.Do(t, "POST", "/v1/keys", map[string]any{"name": "x"}), 403, "FORBIDDEN")
	// A key never creates one with more rights than its own.
	m = wantStatus(t, owner.Do(t, "POST", "/v1/keys", map[string]any{"name": "ops", "role": "member", "scopes": []string{"keys:manage", "policies:read"}}), 201)
	ops := s.Client(m["api_key"].(string))
	wantError(t, ops.Do(t, "POST", "/v1/keys", map[string]any{"name": "x", "role": "admin"}), 403, "FORBIDDEN")
	wantError(t, ops.Do(t, "POST", "/v1/keys", map[string]any{"name": "x", "scopes": []string{"policies:write"}}), 403, "FORBIDDEN")
	wantError(t, owner.Do(t, "POST", "/v1/keys", map[string]any{"name": "x", "scopes": []string{"everything"}}), 400, "VALIDATION_ERROR")

	// The list shows no secrets or hashes.
	list := wantStatus(t, owner.Do(t, "GET", "/v1/keys", nil), 200)
	wantField(t, list, 3, "total")
	if raw := mustJSON(list); strings.Contains(raw, readerSecret) || strings.Contains(raw, "hash") {
		t.Errorf("the key list shows secrets: %s", raw)
	}

	// Rotation: both secrets work during the grace period; with 0 the old
	// one stops at once.
	r := wantStatus(t, reader.Do(t, "POST", "/v1/keys/rotate", map[string]any{"grace_period_seconds": 3600}), 200)
	wantField(t, r, readerID, "rotated_key_id")
	wantField(t, r, "reader", "name")
	rotated := s.Client(r["api_key"].(string))
	wantStatus(t, reader.Do(t, "GET", "/v1/control/policies", nil), 200)
	wantStatus(t, rotated.Do(t, "GET", "/v1/control/policies", nil), 200)
	r = wantStatus(t, rotated.Do(t, "POST", "/v1/keys/rotate", map[string]any{"grace_period_seconds": 0}), 200)
	wantError(t, rotated.Do(t, "GET", "/v1/control/policies", nil), 401, "UNAUTHORIZED")
	latest := s.Client(r["api_key"].(string))
	wantStatus(t, latest.Do(t, "GET", "/v1/control/policies", nil), 200)

	// Another tenant can neither see nor revoke the key.
	wantError(t, other.Do(t, "DELETE", "/v1/keys/"+r["key_id"].(string), nil), 404, "NOT_FOUND")
	wantField(t, wantStatus(t, other.Do(t, "GET", "/v1/keys", nil), 200), 1, "total")
	wantStatus(t, latest.Do(t, "GET", "/v1/control/policies", nil), 200)
	// Revocation is immediate.
	wantStatus(t, owner.Do(t, "DELETE", "/v1/keys/"+r["key_id"].(string), nil), 200)
	wantError(t, latest.Do(t, "GET", "/v1/control/policies", nil), 401, "UNAUTHORIZED")

	// Every key operation is on the chain.
	var events []string
	for _, x := range asSlice(field(wantStatus(t, owner.Do(t, "GET", "/v1/audit?limit=100", nil), 200), "entries")) {
		if ev := field(x, "event").(string); strings.HasPrefix(ev, "key_") {
			events = append(events, ev)
		}
	}
	slices.Reverse(events) // the listing is newest first
	if strings.Join(events, ",") != "key_created,key_created,key_rotated,key_rotated,key_revoked" {
		t.Errorf("key events on the chain: %v", events)
	}
	wantField(t, wantStatus(t, owner.Do(t, "GET", "/v1/audit/verify", nil), 200), true, "valid")
}

// TestAgentKeyQueriesAsItsAgent: the Data API and dry runs, which decide
// without recording, bind an agent-bound key to its agent too.
func TestAgentKeyQueriesAsItsAgent(t *testing.T) {
	t.Parallel()
	s := govServer(t, SQLiteStore(t), NewKey())
	tenantID, owner := govTenant(t, s, "pro")
	wantStatus(t, owner.Do(t, "POST", "/v1/control/policies", blockPolicy("no_email", "email", "billing-bot")), 201)
	m := wantStatus(t, owner.Do(t, "POST", "/v1/keys", map[string]any{"name": "billing-bot", "agent_id": "billing-bot"}), 201)
	bot := s.Client(m["api_key"].(string))
	input := map[string]any{"action": "slack.send_message", "params": map[string]any{"text": "email me"}}
	r := wantStatus(t, bot.Do(t, "POST", "/v1/data/gatehouse/decision/result", map[string]any{"input": input}), 200)
	wantField(t, r, "blocked", "result", "status")
	wantError(t, bot.Do(t, "POST", "/v1/data/gatehouse/decision/result", map[string]any{"input": map[string]any{
		"action": "slack.send_message", "params": map[string]any{"text": "email me"}, "agent_id": "support-bot"}}), 403, "novyx_ram.v1.control.agent_mismatch")
	wantError(t, bot.Do(t, "POST", "/v1/control/dry-run", map[string]any{"action": "slack.send_message", "agent_id": "support-bot"}), 403, "novyx_ram.v1.control.agent_mismatch")
	_ = tenantID
}
