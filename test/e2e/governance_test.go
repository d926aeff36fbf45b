package e2e

import (
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// docs/api.md §A8–A10 through the binary: approvals in every mode, the audit
// chain and its verification (API and CLI), the dashboard.
//
// Waiting times: solo mode's 5 s is waited for for real here (it is
// short); team mode's 10 minutes for the submitter is checked up to the
// refusal and its retry_after_seconds, and the decision after the wait is
// tested in pdp/api with an injected clock. The binary has no way to move
// its clock: a switch that makes approvals early is one an attacker would
// want, so none exists.

const govAdminToken = "e2e-admin-token-0123456789"

// govServer starts a server with the admin API and a bootstrap key (tenant
// "default", enterprise, enterprise mode), so it can be restarted on its
// store with the same key.
func govServer(t *testing.T, storeDSN, key string) *Server {
	t.Helper()
	return Start(t, binary(t), Options{Store: storeDSN, BootstrapKey: key, Args: []string{"--admin-token", govAdminToken}})
}

// govModes is the strongest approval mode of each tier, which these tests
// put their tenants in (new tenants start in solo).
var govModes = map[string]string{"free": "solo", "starter": "team", "pro": "team", "enterprise": "enterprise"}

// govTenant creates a tenant of tier, in the strongest approval mode the
// tier allows, through the admin API and returns its ID and a client with
// its key.
func govTenant(t *testing.T, s *Server, tier string) (string, *Client) {
	t.Helper()
	m := wantStatus(t, s.Client(govAdminToken).Do(t, "POST", "/v1/admin/tenants", map[string]any{"name": "gov-" + tier, "tier": tier, "approval_mode": govModes[tier]}), 201)
	return m["tenant_id"].(string), s.Client(m["api_key"].(string))
}

// govKey adds a key to the tenant (another person) and returns its ID and
// a client.
func govKey(t *testing.T, s *Server, tenantID string) (string, *Client) {
	t.Helper()
	m := wantStatus(t, s.Client(govAdminToken).Do(t, "POST", "/v1/admin/tenants/"+tenantID+"/keys", nil), 201)
	return m["key_id"].(string), s.Client(m["api_key"].(string))
}

// govSubmit posts an action, checks its status and returns its ID.
func govSubmit(t *testing.T, c *Client, body any, status string) string {
	t.Helper()
	r := wantStatus(t, c.Do(t, "POST", "/v1/actions", body), 200)
	wantField(t, r, status, "status")
	id, _ := r["action_id"].(string)
	return id
}

// govHeld submits a payment FinancialSafety holds for approval.
func govHeld(t *testing.T, c *Client, agent string) string {
	t.Helper()
	return govSubmit(t, c, map[string]any{"action": "stripe.payment", "params": map[string]any{"amount": 50000}, "agent_id": agent}, "pending_review")
}

func govDecide(t *testing.T, c *Client, id string, body any) *Response {
	t.Helper()
	return c.Do(t, "POST", "/v1/approvals/"+id+"/decision", body)
}

// TestApprovalPolling is the pattern agents use: submit, get
// pending_review, poll the action while a human decides, see approved.
func TestApprovalPolling(t *testing.T) {
	t.Parallel()
	s := govServer(t, SQLiteStore(t), NewKey())
	tenantID, agent := govTenant(t, s, "pro") // team mode
	humanKeyID, human := govKey(t, s, tenantID)

	r := wantStatus(t, agent.Do(t, "POST", "/v1/actions/stripe/payment", map[string]any{"amount": 25000, "agent_id": "payer-bot"}), 200)
	wantField(t, r, "pending_review", "status")
	id := r["action_id"].(string)
	wantField(t, r, "Action requires approval. Track with action_id: "+id, "message")

	q := wantStatus(t, human.Do(t, "GET", "/v1/approvals", nil), 200)
	wantField(t, q, 1, "total")
	item := field(q, "approvals", 0)
	hasKeys(t, item, "approval_id", "action_id", "action", "connector", "agent_id", "status", "triggered_policy", "submitted_at", "risk_score")
	wantField(t, item, id, "approval_id")
	wantField(t, item, id, "action_id")
	wantField(t, item, "stripe.payment", "action")
	wantField(t, item, "stripe", "connector")
	wantField(t, item, "payer-bot", "agent_id")
	wantField(t, item, "pending_review", "status")
	wantField(t, item, "FinancialSafetyPolicy", "triggered_policy")
	wantField(t, item, 0.8, "risk_score")
	wantTime(t, field(item, "submitted_at"), "submitted_at")

	// The agent polls; a human decides once the agent has seen it pending.
	polled := make(chan struct{})
	var pollOnce sync.Once
	seenPending := func() { pollOnce.Do(func() { close(polled) }) }
	defer seenPending() // never leave the decider waiting
	var decided sync.WaitGroup
	decided.Go(func() {
		<-polled
		d := wantStatus(t, govDecide(t, human, id, map[string]any{"decision": "approve", "reason": "invoice 42"}), 200)
		wantField(t, d, id, "approval_id")
		wantField(t, d, "approve", "decision")
		wantField(t, d, "invoice 42", "reason")
		wantField(t, d, "approved", "status")
		wantField(t, d, humanKeyID, "approver_id") // the default: the deciding key's ID
	})
	var got map[string]any
	if !eventually(30*time.Second, func() bool {
		got = wantStatus(t, agent.Do(t, "GET", "/v1/actions/"+id, nil), 200)
		if got["status"] == "pending_review" {
			seenPending()
			return false
		}
		return true
	}) {
		t.Fatalf("the action stayed pending_review: %s", mustJSON(got))
	}
	decided.Wait()
	wantField(t, got, "approved", "status")
	wantField(t, got, "invoice 42", "reason")
	wantField(t, got, humanKeyID, "approver_id")
	wantField(t, got, "Action approved", "message")
	wantTime(t, got["decided_at"], "decided_at")

	e := wantStatus(t, agent.Do(t, "GET", "/v1/actions/"+id+"/explain", nil), 200)
	wantField(t, e, "approved", "approval", "status")
	wantField(t, e, "team", "approval", "mode")
	wantField(t, e, humanKeyID, "approval", "approver_id")
	trail := asSlice(field(e, "audit_trail"))
	if len(trail) != 2 {
		t.Fatalf("audit_trail %s", mustJSON(trail))
	}
	for i, ev := range []string{"action_pending_review", "action_approved"} {
		hasKeys(t, trail[i], "sequence_number", "timestamp", "event", "entry_hash", "metadata")
		wantField(t, trail[i], ev, "event")
		wantField(t, trail[i], id, "metadata", "action_id")
		wantTime(t, field(trail[i], "timestamp"), "trail timestamp")
	}
	wantField(t, wantStatus(t, human.Do(t, "GET", "/v1/approvals", nil), 200), 0, "total")
	wantField(t, wantStatus(t, human.Do(t, "GET", "/v1/approvals?status_filter=approved", nil), 200), 1, "total")
	wantField(t, wantStatus(t, human.Do(t, "GET", "/v1/approvals?status=all", nil), 200), 1, "total")
}

// TestSoloMode: ROLLBACK first; an early approval held by the server
// (waited for for real, and measured, in TestNovyxApprovalFlow); a deny
// applied at once.
func TestSoloMode(t *testing.T) {
	t.Parallel()
	s := govServer(t, SQLiteStore(t), NewKey())
	_, c := govTenant(t, s, "free")
	wantField(t, wantStatus(t, c.Do(t, "GET", "/v1/control/policies", nil), 200), []string{"solo"}, "approval_modes")

	destructive := map[string]any{"action": "ledger.remove_payment", "params": map[string]any{"amount": 20000}}
	id := govSubmit(t, c, destructive, "pending_review")
	plain := govHeld(t, c, "payer-bot")

	// Fix what is wrong first (at once, unheld); then the server holds
	// the approval until the pause has passed.
	e := wantError(t, govDecide(t, c, id, map[string]any{"decision": "approve"}), 400, "novyx_ram.v1.control.confirmation_required")
	wantContains(t, e["message"], `"ROLLBACK"`)
	wantError(t, govDecide(t, c, id, map[string]any{"decision": "approve", "confirmation": "rollback"}), 400, "novyx_ram.v1.control.confirmation_required")
	wantError(t, govDecide(t, c, plain, "decision=deny"), 400, "VALIDATION_ERROR") // a form body is not JSON: use the query string
	// A deny applies at once, by the query string as well as the body.
	d := wantStatus(t, c.Do(t, "POST", "/v1/approvals/"+plain+"/decision?decision=rejected&reason=nope", nil), 200)
	wantField(t, d, "deny", "decision")
	wantField(t, d, "denied", "status")
	wantField(t, d, "nope", "reason")
	wantField(t, wantStatus(t, c.Do(t, "GET", "/v1/actions/"+plain, nil), 200), "denied", "status")
	d = wantStatus(t, govDecide(t, c, id, map[string]any{"decision": "approved", "confirmation": "ROLLBACK", "approver_id": "solo-admin"}), 200)
	wantField(t, d, "approved", "status")
	wantField(t, d, "solo-admin", "approver_label")
}

// TestTeamMode: another approver at once; the submitter is refused for 10
// minutes (the decision after them: pdp/api's TestTeamMode).
func TestTeamMode(t *testing.T) {
	t.Parallel()
	s := govServer(t, SQLiteStore(t), NewKey())
	tenantID, agent := govTenant(t, s, "starter")
	_, human := govKey(t, s, tenantID)

	id := govHeld(t, agent, "payer-bot")
	for _, tc := range []struct {
		c    *Client
		body map[string]any
	}{
		{agent, map[string]any{"decision": "approve"}},                         // the submitting key, no approver named
		{agent, map[string]any{"decision": "approve", "approver_id": "alice"}}, // naming someone else changes nothing
	} {
		r := govDecide(t, tc.c, id, tc.body)
		e := wantError(t, r, 409, "novyx_ram.v1.control.approval_too_early")
		if retry, _ := e["retry_after_seconds"].(float64); retry < 590 || retry > 600 {
			t.Errorf("retry_after_seconds %v, want about 600", e["retry_after_seconds"])
		}
		wantContains(t, e["message"], "another approver may approve now")
		wantTime(t, e["not_before"], "not_before")
	}
	d := wantStatus(t, govDecide(t, human, id, map[string]any{"decision": "deny", "approver_id": "alice", "reason": "wrong vendor"}), 200)
	wantField(t, d, "denied", "status")
	// The reproduction: the agent's own key naming another person
	// is still the submitter, and waits.
	id = govHeld(t, agent, "payer-bot")
	wantError(t, govDecide(t, agent, id, map[string]any{"decision": "approve", "approver_id": "bob"}), 409, "novyx_ram.v1.control.approval_too_early")
	// Its deny applies at once.
	wantField(t, wantStatus(t, govDecide(t, agent, id, map[string]any{"decision": "deny"}), 200), "denied", "status")
}

// govPerson creates a key for a named person through POST /v1/keys.
func govPerson(t *testing.T, s *Server, creator *Client, name, role string, manager bool) *Client {
	t.Helper()
	m := wantStatus(t, creator.Do(t, "POST", "/v1/keys", map[string]any{"name": name, "role": role, "is_manager": manager}), 201)
	return s.Client(m["api_key"].(string))
}

// TestEnterpriseMode: votes of distinct identities, min_approvals, roles
// and managers from the keys, and any eligible deny finalizing.
func TestEnterpriseMode(t *testing.T) {
	t.Parallel()
	s := govServer(t, SQLiteStore(t), NewKey())
	c := s.Client(s.Key) // tenant "default": enterprise tier, solo mode until moved
	admin := s.Client(govAdminToken)
	wantField(t, wantStatus(t, admin.Do(t, "GET", "/v1/admin/tenants/default", nil), 200), "solo", "approval_mode")
	wantStatus(t, admin.Do(t, "PATCH", "/v1/admin/tenants/default", map[string]any{"approval_mode": "enterprise", "approval_settings": map[string]any{"min_approvals": 2}}), 200)
	alice := govPerson(t, s, c, "alice", "admin", true)
	bob := govPerson(t, s, c, "bob", "member", false)

	id := govHeld(t, c, "payer-bot")
	d := wantStatus(t, govDecide(t, alice, id, map[string]any{"decision": "approve"}), 200)
	wantField(t, d, "pending_review", "status")
	wantField(t, d, 1, "approvals_received")
	wantField(t, d, 2, "min_approvals")
	wantField(t, d, "alice", "approver_id")
	wantField(t, d, "admin", "approver_role")
	// The same vote again: its state, 200; a changed vote: 409.
	wantField(t, wantStatus(t, govDecide(t, alice, id, map[string]any{"decision": "approve", "approver_id": "alice"}), 200), 1, "approvals_received")
	wantError(t, govDecide(t, alice, id, map[string]any{"decision": "deny"}), 409, "novyx_ram.v1.control.approval_already_decided")
	q := wantStatus(t, c.Do(t, "GET", "/v1/approvals", nil), 200)
	wantField(t, q, "alice", "approvals", 0, "votes", 0, "approver_id")
	wantField(t, q, "admin", "approvals", 0, "votes", 0, "approver_role")
	d = wantStatus(t, govDecide(t, bob, id, map[string]any{"decision": "approve", "approver_id": "Bob"}), 200)
	wantField(t, d, "approved", "status")
	wantField(t, d, 2, "approvals_received")
	wantError(t, govDecide(t, c, id, map[string]any{"decision": "deny"}), 409, "novyx_ram.v1.control.approval_already_decided")
	votes := asSlice(field(wantStatus(t, c.Do(t, "GET", "/v1/actions/"+id+"/explain", nil), 200), "approval", "votes"))
	if len(votes) != 2 {
		t.Errorf("votes %s", mustJSON(votes))
	}
	got := wantStatus(t, c.Do(t, "GET", "/v1/actions/"+id, nil), 200)
	wantField(t, got, "bob", "decided_by", "approver_id")
	wantField(t, got, "member", "decided_by", "approver_role")

	wantStatus(t, admin.Do(t, "PATCH", "/v1/admin/tenants/default", map[string]any{
		"approval_settings": map[string]any{"min_approvals": 3, "allowed_roles": []string{"admin"}, "require_manager": true},
	}), 200)
	wantError(t, admin.Do(t, "PATCH", "/v1/admin/tenants/default", map[string]any{"approval_settings": map[string]any{"min_approvals": -1}}), 400, "VALIDATION_ERROR")
	erin := govPerson(t, s, c, "erin", "admin", false)
	heidi := govPerson(t, s, c, "heidi", "admin", true)
	id = govHeld(t, c, "payer-bot")
	wantError(t, govDecide(t, erin, id, map[string]any{"decision": "approve"}), 403, "novyx_ram.v1.control.approver_not_eligible")
	wantError(t, govDecide(t, bob, id, map[string]any{"decision": "deny", "approver_role": "admin", "is_manager": true}), 403, "novyx_ram.v1.control.approver_not_eligible")
	d = wantStatus(t, govDecide(t, alice, id, map[string]any{"decision": "approve", "approver_role": "admin", "is_manager": true}), 200)
	wantField(t, d, "pending_review", "status")
	wantField(t, d, 3, "min_approvals")
	d = wantStatus(t, govDecide(t, heidi, id, map[string]any{"decision": "deny", "reason": "too big"}), 200)
	wantField(t, d, "denied", "status")
	got = wantStatus(t, c.Do(t, "GET", "/v1/actions/"+id, nil), 200)
	wantField(t, got, "denied", "status")
	wantField(t, got, "heidi", "approver_id")
	wantField(t, got, "too big", "reason")
}

// TestApprovalErrors: every error of A8 but the mode-specific ones above.
func TestApprovalErrors(t *testing.T) {
	t.Parallel()
	s := govServer(t, SQLiteStore(t), NewKey())
	_, c := govTenant(t, s, "pro")
	_, other := govTenant(t, s, "pro")
	id := govHeld(t, c, "payer-bot")
	allowed := govSubmit(t, c, map[string]any{"action": "github.create_issue"}, "allowed")

	for name, body := range map[string]any{
		"unknown": map[string]any{"decision": "maybe"}, "not a string": map[string]any{"decision": 1}, "empty": map[string]any{"decision": ""},
	} {
		t.Run("invalid decision: "+name, func(t *testing.T) {
			wantError(t, govDecide(t, c, id, body), 400, "novyx_ram.v1.control.invalid_decision")
		})
	}
	wantError(t, govDecide(t, c, id, map[string]any{"decision": "approve", "is_manager": "perhaps"}), 400, "VALIDATION_ERROR")
	for name, path := range map[string]string{
		"unknown id":              "act_000000000000000000000000",
		"another tenant's action": id,
		"an allowed action":       allowed,
	} {
		cl := c
		if name == "another tenant's action" {
			cl = other
		}
		t.Run("not found: "+name, func(t *testing.T) {
			e := wantError(t, govDecide(t, cl, path, map[string]any{"decision": "approve"}), 404, "novyx_ram.v1.control.approval_not_found")
			wantContains(t, e["message"], path)
		})
	}
	alice := govPerson(t, s, c, "alice", "member", false)
	wantStatus(t, govDecide(t, alice, id, map[string]any{"approver_id": "alice"}), 200) // no decision: approve
	for _, body := range []map[string]any{{"decision": "approve", "approver_id": "alice"}, {"decision": "deny", "approver_id": "bob"}} {
		e := wantError(t, govDecide(t, alice, id, body), 409, "novyx_ram.v1.control.approval_already_decided")
		wantField(t, e, "approved", "approval_status")
	}
	wantField(t, wantStatus(t, c.Do(t, "GET", "/v1/actions/"+id, nil), 200), "alice", "approver_id")
	wantField(t, wantStatus(t, c.Do(t, "GET", "/v1/approvals?status_filter=sometimes", nil), 200), 0, "total")
	wantField(t, wantStatus(t, c.Do(t, "GET", "/v1/approvals?status_filter=&status=&limit=&offset=", nil), 200), 0, "total")
	wantError(t, c.Do(t, "GET", "/v1/approvals?limit=0", nil), 400, "VALIDATION_ERROR")
}

// TestDashboardNumbers: totals, policies, agents and the series after a
// known mix; violations and their filters; the tier gate; bad params.
func TestDashboardNumbers(t *testing.T) {
	t.Parallel()
	s := govServer(t, SQLiteStore(t), NewKey())
	_, c := govTenant(t, s, "starter")
	_, free := govTenant(t, s, "free")
	for _, p := range []map[string]any{
		blockPolicy("no_secrets", "topsecret", ""),
		{"name": "deploys", "rules": []any{map[string]any{"match": "deploy", "severity": "high"}}},
		warnPolicy("emails", "email"),
	} {
		wantStatus(t, c.Do(t, "POST", "/v1/control/policies", p), 201)
	}
	start := time.Now().UTC()
	for range 3 {
		govSubmit(t, c, map[string]any{"action": "github.create_issue", "agent_id": "ci-bot"}, "allowed")
	}
	govSubmit(t, c, map[string]any{"action": "slack.send", "params": map[string]any{"text": "email me"}, "agent_id": "ci-bot"}, "allowed")
	govSubmit(t, c, map[string]any{"action": "http.post", "params": map[string]any{"body": "topsecret"}, "agent_id": "leaky-bot"}, "blocked")
	govSubmit(t, c, map[string]any{"action": "http.post", "params": map[string]any{"body": "topsecret"}}, "blocked")
	approved := govSubmit(t, c, map[string]any{"action": "ci.deploy", "agent_id": "ci-bot"}, "pending_review")
	govSubmit(t, c, map[string]any{"action": "ci.deploy", "agent_id": "ci-bot"}, "pending_review")
	denied := govSubmit(t, c, map[string]any{"action": "ci.deploy", "agent_id": "ci-bot"}, "pending_review")
	alice := govPerson(t, s, c, "alice", "member", false)
	wantStatus(t, govDecide(t, alice, approved, map[string]any{"decision": "approve"}), 200)
	wantStatus(t, govDecide(t, alice, denied, map[string]any{"decision": "deny"}), 200)
	byApprover := field(wantStatus(t, c.Do(t, "GET", "/v1/control/dashboard", nil), 200), "decisions_by_approver")
	if mustJSON(byApprover) != `[{"approved":1,"approver_id":"alice","denied":1}]` {
		t.Errorf("decisions_by_approver %s", mustJSON(byApprover))
	}

	for _, q := range []string{"", "?window=24h", "?window=7d&bucket=hour", "?window=30d"} {
		d := wantStatus(t, c.Do(t, "GET", "/v1/control/dashboard"+q, nil), 200)
		hasKeys(t, d, "window", "bucket", "backend", "totals", "violations_by_policy", "violations_by_agent", "time_series")
		wantField(t, d, "sqlite", "backend")
		wantField(t, d, map[string]any{"evaluations": 9, "executed": 5, "blocked": 2, "pending_review": 1, "approved": 1, "denied": 1}, "totals")
		wantField(t, d, []any{
			map[string]any{"policy": "deploys", "count": 3, "severity_breakdown": map[string]any{"critical": 0, "high": 3, "medium": 0, "low": 0}},
			map[string]any{"policy": "no_secrets", "count": 2, "severity_breakdown": map[string]any{"critical": 2, "high": 0, "medium": 0, "low": 0}},
			map[string]any{"policy": "emails", "count": 1, "severity_breakdown": map[string]any{"critical": 0, "high": 0, "medium": 1, "low": 0}},
		}, "violations_by_policy")
		wantField(t, d, []any{
			map[string]any{"agent_id": "ci-bot", "count": 4},
			map[string]any{"agent_id": "leaky-bot", "count": 1}, // the agentless one is in totals only
		}, "violations_by_agent")
		series := asSlice(d["time_series"])
		sum := 0.0
		for _, b := range series {
			sum += field(b, "evaluations").(float64)
		}
		wantBuckets := map[string][2]int{"": {8, 8}, "?window=24h": {24, 25}, "?window=7d&bucket=hour": {168, 169}, "?window=30d": {31, 31}}[q]
		if sum != 9 || len(series) < wantBuckets[0] || len(series) > wantBuckets[1] {
			t.Errorf("%s: %d buckets summing to %v", q, len(series), sum)
		}
	}
	wantField(t, wantStatus(t, c.Do(t, "GET", "/v1/control/dashboard", nil), 200), "7d", "window")
	wantField(t, wantStatus(t, c.Do(t, "GET", "/v1/control/dashboard?window=24h", nil), 200), "hour", "bucket")
	for _, q := range []string{"?window=1d", "?window=24H", "?bucket=week", "?window=30d&bucket=minute"} {
		wantError(t, c.Do(t, "GET", "/v1/control/dashboard"+q, nil), 400, "novyx_ram.v1.control.invalid_dashboard_param")
	}

	v := wantStatus(t, c.Do(t, "GET", "/v1/control/agents/ci-bot/violations", nil), 200)
	wantField(t, v, "ci-bot", "agent_id")
	wantField(t, v, 4, "total") // the warning and the three deploys
	all := asSlice(v["violations"])
	var events []string
	for _, x := range all {
		hasKeys(t, x, "action_id", "action", "timestamp", "event", "triggered_policy", "severity", "reason", "risk_score", "violation_count", "audit_chain_index", "audit_hash")
		events = append(events, field(x, "event").(string))
	}
	// Newest first, named by each action's status now.
	// An approved action was executed: its status says approved.
	if strings.Join(events, " ") != "action_denied action_pending_review action_executed action_executed" || field(all, 2, "status") != "approved" {
		t.Errorf("ci-bot's violations: %v", events)
	}
	wantField(t, all, denied, 0, "action_id")
	wantField(t, all, approved, 2, "action_id")
	now := time.Now().UTC().Add(time.Second)
	wantField(t, wantStatus(t, c.Do(t, "GET", "/v1/control/agents/ci-bot/violations?since="+now.Format(time.RFC3339), nil), 200), 0, "total")
	wantField(t, wantStatus(t, c.Do(t, "GET", "/v1/control/agents/ci-bot/violations?since="+start.Add(-time.Minute).Format(time.RFC3339)+"&until="+now.Format(time.RFC3339)+"&limit=1", nil), 200), len(all), "total")
	for _, q := range []string{"?since=yesterday", "?until=2025-02-30T00:00:00Z", "?limit=0"} {
		e := wantError(t, c.Do(t, "GET", "/v1/control/agents/ci-bot/violations"+q, nil), 400, "novyx_ram.v1.control.invalid_violations_param")
		wantContains(t, e["message"], strings.TrimPrefix(strings.SplitN(q, "=", 2)[0], "?")+":")
	}
	wantFeatureRequired(t, free.Do(t, "GET", "/v1/control/dashboard", nil), "governance_dashboard", "starter", "free")
	wantFeatureRequired(t, free.Do(t, "GET", "/v1/control/agents/ci-bot/violations", nil), "governance_dashboard", "starter", "free")
}

// TestAuditTamper: a chain edited on disk while the server is stopped is
// found by `gatehouse audit verify` (exit 1, naming the entry) and by GET
// /v1/audit/verify after a restart.
func TestAuditTamper(t *testing.T) {
	t.Parallel()
	storeDSN, key := SQLiteStore(t), NewKey()
	s := govServer(t, storeDSN, key)
	c := s.Client(key)
	wantStatus(t, s.Client(govAdminToken).Do(t, "PATCH", "/v1/admin/tenants/default", map[string]any{"approval_mode": "enterprise"}), 200)
	wantStatus(t, c.Do(t, "POST", "/v1/control/policies", warnPolicy("emails", "email")), 201)
	govSubmit(t, c, map[string]any{"action": "slack.send", "params": map[string]any{"text": "email"}}, "allowed")
	govSubmit(t, c, map[string]any{"action": "bank.wire", "params": map[string]any{"amount": 150000}}, "blocked")
	id := govHeld(t, c, "payer-bot")
	wantStatus(t, govDecide(t, c, id, map[string]any{"decision": "deny", "approver_id": "alice"}), 200)
	wantStatus(t, govDecide(t, c, id+"x", map[string]any{"decision": "deny"}), 404)

	// Tenant "default" is in enterprise mode: the deny is a vote that
	// decides, two entries.
	l := wantStatus(t, c.Do(t, "GET", "/v1/audit", nil), 200)
	wantField(t, l, 6, "total")
	var evs []string
	for _, e := range asSlice(l["entries"]) {
		evs = append(evs, field(e, "event").(string))
	}
	// Newest first, as Novyx lists it.
	if strings.Join(evs, " ") != "action_denied approval_vote action_pending_review action_blocked action_executed policy_created" {
		t.Errorf("events %v", evs)
	}
	newest := field(l, "entries", 0)
	wantField(t, newest, 6.0, "sequence_number")
	wantField(t, newest, "action_denied", "operation")
	wantField(t, newest, id, "artifact_id")
	wantField(t, field(l, "entries", 2), "payer-bot", "agent_id")
	wantField(t, field(l, "entries", 5), "emails", "artifact_id")
	wantField(t, field(l, "entries", 5), nil, "agent_id")
	if h, _ := field(newest, "content_hash").(string); !strings.HasPrefix(h, "sha256:") || h == field(newest, "entry_hash") {
		t.Errorf("content_hash %q", h)
	}
	wantField(t, wantStatus(t, c.Do(t, "GET", "/v1/audit?event_type=action_blocked", nil), 200), 1, "total")
	both := wantStatus(t, c.Do(t, "GET", "/v1/audit?event_type=action_blocked,%20action_executed&limit=", nil), 200)
	wantField(t, both, 2, "total")
	wantField(t, both, "action_blocked", "entries", 0, "event")
	wantField(t, both, "action_executed", "entries", 1, "event")
	// Dates and naive ISO times are UTC; empty parameters are not given.
	wantField(t, wantStatus(t, c.Do(t, "GET", "/v1/audit?since=2000-01-01&until=&offset=", nil), 200), 6, "total")
	wantField(t, wantStatus(t, c.Do(t, "GET", "/v1/audit?until=2000-01-01T00:00:00", nil), 200), 0, "total")
	wantError(t, c.Do(t, "GET", "/v1/audit?since=noon", nil), 400, "VALIDATION_ERROR")
	v := wantStatus(t, c.Do(t, "GET", "/v1/audit/verify", nil), 200)
	hasKeys(t, v, "valid", "entries", "first_bad_sequence", "timestamp")
	wantField(t, v, true, "valid")
	wantField(t, v, 6, "entries")
	wantField(t, v, nil, "first_bad_sequence")
	wantTime(t, v["timestamp"], "timestamp")

	s.Stop()
	res := Run(t, binary(t), nil, "audit", "verify", "--tenant", "default", "--store", storeDSN)
	if res.Code != 0 || !strings.Contains(res.Stdout, `"valid":true`) || !strings.Contains(res.Stdout, `"entries":6`) {
		t.Fatalf("verify before tampering: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}

	db, err := sql.Open("sqlite", strings.TrimPrefix(storeDSN, "sqlite://"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := db.Exec(`UPDATE audit_log SET metadata = replace(metadata, '"blocked"', '"allowed"') WHERE tenant_id = 'default' AND seq = 3`)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := r.RowsAffected(); n != 1 {
		t.Fatalf("tampered %d rows", n)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	res = Run(t, binary(t), nil, "audit", "verify", "--tenant", "default", "--store", storeDSN)
	if res.Code != 1 || !strings.Contains(res.Stdout, `"first_bad_sequence":3`) || !strings.Contains(res.Stderr, "broken at sequence 3") {
		t.Errorf("verify after tampering: exit %d (want 1)\nstdout %s\nstderr %s", res.Code, res.Stdout, res.Stderr)
	}
	if res := Run(t, binary(t), nil, "audit", "verify", "--store", storeDSN); res.Code != 2 {
		t.Errorf("verify without --tenant: exit %d, want 2", res.Code)
	}

	s = govServer(t, storeDSN, key)
	v = wantStatus(t, s.Client(key).Do(t, "GET", "/v1/audit/verify", nil), 200)
	wantField(t, v, false, "valid")
	wantField(t, v, 3, "first_bad_sequence")
	wantField(t, v, 6, "entries")
}

// TestGovernanceConcurrency: clients submit while others decide; every
// response is accounted for, the chain verifies and the numbers add up.
func TestGovernanceConcurrency(t *testing.T) {
	t.Parallel()
	storeDSN, key := SQLiteStore(t), NewKey()
	s := govServer(t, storeDSN, key)
	tenantID, agent := govTenant(t, s, "pro") // team: deciders are not the submitter
	_, human := govKey(t, s, tenantID)

	const submitters, perSubmitter, deciders = 8, 25, 4
	var (
		held                      = make(chan string, submitters*perSubmitter)
		nAllowed, nHeld, nBlocked atomic.Int64
		nApproved, nDenied, nLost atomic.Int64
		submitWG, decideWG        sync.WaitGroup
		bodies                    = []map[string]any{}
	)
	bodies = append(bodies,
		map[string]any{"action": "github.create_issue", "agent_id": "a"},
		map[string]any{"action": "stripe.payment", "params": map[string]any{"amount": 50000}, "agent_id": "b"},
		map[string]any{"action": "bank.wire", "params": map[string]any{"amount": 150000}, "agent_id": "c"},
	)
	for w := range submitters {
		submitWG.Go(func() {
			for i := range perSubmitter {
				r := agent.Do(t, "POST", "/v1/actions", bodies[(w+i)%len(bodies)])
				if r.Status != 200 {
					t.Errorf("submit: %d %s", r.Status, r.Body)
					continue
				}
				m := r.JSON(t)
				switch m["status"] {
				case "allowed":
					nAllowed.Add(1)
				case "blocked":
					nBlocked.Add(1)
				case "pending_review":
					nHeld.Add(1)
					held <- m["action_id"].(string)
				}
			}
		})
	}
	go func() { submitWG.Wait(); close(held) }()
	for d := range deciders {
		decideWG.Go(func() {
			i := 0
			for id := range held {
				i++
				decision := []string{"approve", "deny", "leave"}[(d+i)%3]
				if decision == "leave" {
					continue
				}
				// Two deciders race on each: exactly one wins.
				var race sync.WaitGroup
				codes := [2]int{}
				for k := range 2 {
					race.Go(func() {
						codes[k] = govDecide(t, human, id, map[string]any{"decision": decision, "approver_id": fmt.Sprintf("human-%d-%d", d, k)}).Status
					})
				}
				race.Wait()
				if !(codes[0] == 200 && codes[1] == 409 || codes[0] == 409 && codes[1] == 200) {
					t.Errorf("racing decisions on %s: %v", id, codes)
					nLost.Add(1)
					continue
				}
				if decision == "approve" {
					nApproved.Add(1)
				} else {
					nDenied.Add(1)
				}
			}
		})
	}
	decideWG.Wait()

	total := int64(submitters * perSubmitter)
	if got := nAllowed.Load() + nBlocked.Load() + nHeld.Load(); got != total {
		t.Fatalf("%d answered of %d", got, total)
	}
	decisions := nApproved.Load() + nDenied.Load()
	v := wantStatus(t, agent.Do(t, "GET", "/v1/audit/verify", nil), 200)
	wantField(t, v, true, "valid")
	wantField(t, v, total+decisions+1, "entries") // + the human's key_created
	d := wantStatus(t, agent.Do(t, "GET", "/v1/control/dashboard?window=24h", nil), 200)
	wantField(t, d, map[string]any{
		"evaluations": total, "executed": nAllowed.Load() + nApproved.Load(), "blocked": nBlocked.Load(),
		"pending_review": nHeld.Load() - decisions, "approved": nApproved.Load(), "denied": nDenied.Load(),
	}, "totals")
	wantField(t, wantStatus(t, agent.Do(t, "GET", "/v1/approvals", nil), 200), nHeld.Load()-decisions, "total")
	wantField(t, wantStatus(t, agent.Do(t, "GET", "/v1/approvals?status=all&limit=1", nil), 200), nHeld.Load(), "total")
	// Every entry is in the listing, numbered without gaps.
	seen := map[float64]bool{}
	for off := 0; ; off += 1000 {
		entries := asSlice(field(wantStatus(t, agent.Do(t, "GET", "/v1/audit?limit=1000&offset="+strconv.Itoa(off), nil), 200), "entries"))
		for _, e := range entries {
			seen[field(e, "sequence_number").(float64)] = true
		}
		if len(entries) < 1000 {
			break
		}
	}
	for i := 1; i <= int(total+decisions+1); i++ {
		if !seen[float64(i)] {
			t.Fatalf("sequence %d missing from GET /v1/audit (%d seen)", i, len(seen))
		}
	}

	s.Stop()
	res := Run(t, binary(t), nil, "audit", "verify", "--tenant", tenantID, "--store", storeDSN)
	if res.Code != 0 || !strings.Contains(res.Stdout, fmt.Sprintf(`"entries":%d`, total+decisions+1)) {
		t.Errorf("audit verify after the run: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
}
