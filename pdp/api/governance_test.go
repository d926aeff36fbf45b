package api_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// clock is the API's injected clock: approval modes' waiting times are
// tested by moving it, never by sleeping.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().UTC().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Sleep moves the clock instead of waiting: how the API holds an early
// solo-mode approval in these tests.
func (c *clock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.Advance(d)
	return nil
}

func govEnv(t *testing.T) (*env, *clock) {
	c := newClock()
	return newEnv(t, func(o *envOption) { o.now, o.sleep = c.Now, c.Sleep }), c
}

func (e *env) admin(method, path string, body any) response {
	e.t.Helper()
	return e.do(request{method: method, path: path, key: adminToken, body: body})
}

// tenantWith creates a tenant of tier, in the strongest approval mode the
// tier allows, through the admin API and returns its ID and key.
func (e *env) tenantWith(tier store.Tier) (string, string) {
	e.t.Helper()
	m := expect(e.t, e.admin("POST", "/v1/admin/tenants", map[string]any{"name": "gov-" + string(tier), "tier": tier,
		"approval_mode": registry.DefaultApprovalMode(tier)}), http.StatusCreated, nil)
	return m["tenant_id"].(string), m["api_key"].(string)
}

// secondKey adds a key to the tenant: another person of the same tenant.
func (e *env) secondKey(tenantID string) (keyID, key string) {
	e.t.Helper()
	m := expect(e.t, e.admin("POST", "/v1/admin/tenants/"+tenantID+"/keys", nil), http.StatusCreated, nil)
	return m["key_id"].(string), m["api_key"].(string)
}

// person creates a key of the tenant for a named person through POST
// /v1/keys, with creator's rights, and returns its ID and secret.
func (e *env) person(creator, name, role string, manager bool) (keyID, key string) {
	e.t.Helper()
	m := expect(e.t, e.post("/v1/keys", creator, map[string]any{"name": name, "role": role, "is_manager": manager}), http.StatusCreated,
		map[string]any{"name": name, "role": role})
	return m["key_id"].(string), m["api_key"].(string)
}

// submit posts an action and returns its ID after checking its status.
func (e *env) submit(key string, body any, status pdp.Status) string {
	e.t.Helper()
	m := expect(e.t, e.post("/v1/actions", key, body), http.StatusOK, map[string]any{"status": status})
	return m["action_id"].(string)
}

// held submits an action FinancialSafety holds for approval.
func (e *env) held(key, agent string) string {
	e.t.Helper()
	return e.submit(key, map[string]any{"action": "stripe.payment", "params": map[string]any{"amount": 50000}, "agent_id": agent}, pdp.StatusPendingReview)
}

func (e *env) decide(key, id string, body any) response {
	e.t.Helper()
	return e.post("/v1/approvals/"+id+"/decision", key, body)
}

func TestApprovalPollingPattern(t *testing.T) {
	e, clk := govEnv(t)
	_, agentKey := e.tenantWith(store.TierPro) // team mode
	_, humanKey := e.person(agentKey, "alice", "admin", false)

	id := e.held(agentKey, "payer-bot")
	list := expect(t, e.get("/v1/approvals", humanKey), http.StatusOK, map[string]any{"total": 1})
	items := list["approvals"].([]any)
	item := items[0].(map[string]any)
	for k, want := range map[string]any{
		"approval_id": id, "action_id": id, "action": "stripe.payment", "connector": "stripe", "agent_id": "payer-bot",
		"status": "pending_review", "triggered_policy": "FinancialSafetyPolicy", "risk_score": 0.8,
	} {
		if item[k] != want {
			t.Errorf("approval %s = %v, want %v", k, item[k], want)
		}
	}
	if s, _ := item["submitted_at"].(string); !rfc3339Z.MatchString(s) {
		t.Errorf("submitted_at %v", item["submitted_at"])
	}
	// The agent polls its action while it is held.
	expect(t, e.get("/v1/actions/"+id, agentKey), http.StatusOK, map[string]any{"status": "pending_review", "approver_id": nil, "decided_at": nil})

	clk.Advance(time.Second)
	// approver_id is a display label: the approver is the key's owner.
	got := expect(t, e.decide(humanKey, id, map[string]any{"decision": "approved", "reason": "expected invoice", "approver_id": "Alice A."}), http.StatusOK, map[string]any{
		"approval_id": id, "decision": "approve", "reason": "expected invoice", "status": "approved", "approver_id": "alice",
		"approver_label": "Alice A.", "approver_role": "admin",
		"decided_at": clk.Now().Format("2006-01-02T15:04:05.000000Z"),
	})
	if _, ok := got["approvals_received"]; ok {
		t.Errorf("approvals_received outside enterprise mode: %v", got)
	}
	decided := expect(t, e.get("/v1/actions/"+id, agentKey), http.StatusOK, map[string]any{
		"status": "approved", "reason": "expected invoice", "approver_id": "alice", "message": "Action approved",
		"decided_at": clk.Now().Format("2006-01-02T15:04:05.000000Z"),
	})
	if by := decided["decided_by"]; field(by, "approver_id") != "alice" || field(by, "approver_role") != "admin" || field(by, "approver_label") != "Alice A." {
		t.Errorf("decided_by %v", by)
	}
	queue := expect(t, e.get("/v1/approvals?status_filter=approved", humanKey), http.StatusOK, nil)["approvals"].([]any)
	if by := field(queue[0], "decided_by"); field(by, "approver_id") != "alice" || field(by, "approver_role") != "admin" {
		t.Errorf("the queue's decided_by %v", by)
	}
	expect(t, e.get("/v1/approvals", humanKey), http.StatusOK, map[string]any{"total": 0, "approvals": []any{}})
	expect(t, e.get("/v1/approvals?status_filter=approved", humanKey), http.StatusOK, map[string]any{"total": 1})
	expect(t, e.get("/v1/approvals?status=all", humanKey), http.StatusOK, map[string]any{"total": 1})

	ex := expect(t, e.get("/v1/actions/"+id+"/explain", agentKey), http.StatusOK, map[string]any{
		"approval": map[string]any{
			"approval_id": id, "status": "approved", "mode": "team", "approver_id": "alice", "reason": "expected invoice",
			"decided_at": clk.Now().Format("2006-01-02T15:04:05.000000Z"), "votes": []any{}, "destructive": false,
		},
	})
	trail := ex["audit_trail"].([]any)
	if len(trail) != 2 || field(trail[0], "event") != "action_pending_review" || field(trail[1], "event") != "action_approved" {
		t.Fatalf("audit_trail %v", trail)
	}
	for _, k := range []string{"sequence_number", "timestamp", "event", "entry_hash", "metadata"} {
		if _, ok := trail[1].(map[string]any)[k]; !ok {
			t.Errorf("trail entry lacks %s: %v", k, trail[1])
		}
	}
	meta := field(trail[1], "metadata").(map[string]any)
	for k, want := range map[string]any{"action_id": id, "status": "approved", "approver_id": "alice", "decision": "approve", "mode": "team", "reason": "expected invoice"} {
		if meta[k] != want {
			t.Errorf("decision metadata %s = %v, want %v", k, meta[k], want)
		}
	}
	if s := ex["summary"].(string); !strings.Contains(s, "It was approved by 'alice'.") {
		t.Errorf("summary %q", s)
	}
}

// field walks a decoded JSON object by keys.
func field(v any, keys ...string) any {
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}

func TestSoloMode(t *testing.T) {
	e, clk := govEnv(t)
	_, key := e.tenantWith(store.TierFree) // solo: the free tier's only mode

	// An approval that arrives early is held until 5 s after submission,
	// then applied: the documented flow (the submitting key approves).
	id := e.held(key, "payer-bot")
	submitted := clk.Now()
	expect(t, e.decide(key, id, map[string]any{"decision": "approve"}), http.StatusOK, map[string]any{
		"status": "approved", "decided_at": submitted.Add(5 * time.Second).Format("2006-01-02T15:04:05.000000Z"),
	})
	expectErrorCode(t, e.decide(key, id, `{"decision":"approve"}`), http.StatusConflict, pdp.CodeApprovalAlreadyDecided)
	// A deny applies at once.
	id = e.held(key, "payer-bot")
	submitted = clk.Now()
	expect(t, e.decide(key, id, `{"decision":"deny","reason":"not now"}`), http.StatusOK, map[string]any{
		"status": "denied", "decision": "deny", "decided_at": submitted.Format("2006-01-02T15:04:05.000000Z"),
	})

	// A destructive action: approving needs the typed confirmation, which
	// is asked for before the wait (fix first, then wait, then succeed).
	destructive := map[string]any{"action": "ledger.remove_payment", "params": map[string]any{"amount": 20000}}
	id = e.submit(key, destructive, pdp.StatusPendingReview)
	expectError(t, e.decide(key, id, `{"decision":"approve"}`), http.StatusBadRequest, pdp.CodeConfirmationRequired,
		`Action 'ledger.remove_payment' is destructive: approving it in solo mode needs confirmation "ROLLBACK"`, map[string]any{"confirmation": "ROLLBACK"})
	expectErrorCode(t, e.decide(key, id, `{"decision":"approve","confirmation":"rollback"}`), http.StatusBadRequest, pdp.CodeConfirmationRequired)
	expect(t, e.decide(key, id, `{"decision":"approve","confirmation":"ROLLBACK"}`), http.StatusOK, map[string]any{"status": "approved"})
	ex := expect(t, e.get("/v1/actions/"+id+"/explain", key), http.StatusOK, nil)
	if field(ex, "approval", "destructive") != true || field(ex, "approval", "mode") != "solo" {
		t.Errorf("approval %v", ex["approval"])
	}

	// Denying a destructive action needs no confirmation.
	id = e.submit(key, destructive, pdp.StatusPendingReview)
	expect(t, e.decide(key, id, `{"decision":"reject"}`), http.StatusOK, map[string]any{"status": "denied"})
}

func TestTeamMode(t *testing.T) {
	e, clk := govEnv(t)
	tenantID, agentKey := e.tenantWith(store.TierStarter) // team
	humanKeyID, humanKey := e.secondKey(tenantID)

	id := e.held(agentKey, "payer-bot")
	// The submitting key approving its own action waits, whatever
	// approver_id it names (the reproduction: naming anyone else
	// used to approve at once).
	r := e.decide(agentKey, id, `{"decision":"approve"}`)
	expectError(t, r, http.StatusConflict, pdp.CodeApprovalTooEarly,
		"In team mode the submitter of an action may approve it only 10m0s after submission; another approver may approve now. Retry in 600 s",
		map[string]any{"retry_after_seconds": 600, "not_before": clk.Now().Add(10 * time.Minute).Format("2006-01-02T15:04:05.000000Z")})
	expectErrorCode(t, e.decide(agentKey, id, `{"decision":"approve","approver_id":"bob"}`), http.StatusConflict, pdp.CodeApprovalTooEarly)
	clk.Advance(9*time.Minute + 59*time.Second)
	expectErrorCode(t, e.decide(agentKey, id, `{"decision":"approve"}`), http.StatusConflict, pdp.CodeApprovalTooEarly, "Retry in 1 s")
	clk.Advance(time.Second)
	expect(t, e.decide(agentKey, id, `{"decision":"approve"}`), http.StatusOK, map[string]any{"status": "approved"})

	// The submitter denies at once.
	id = e.held(agentKey, "payer-bot")
	expect(t, e.decide(agentKey, id, `{"decision":"deny"}`), http.StatusOK, map[string]any{"status": "denied"})

	// Anyone else decides at once; the approver is the key's owner (an
	// unnamed key's ID), and a named approver_id is its label only.
	id = e.held(agentKey, "payer-bot")
	expect(t, e.decide(humanKey, id, `{"decision":"approve","approver_id":"payer-bot"}`), http.StatusOK,
		map[string]any{"status": "approved", "approver_id": humanKeyID, "approver_label": "payer-bot"})
	expect(t, e.get("/v1/actions/"+id, agentKey), http.StatusOK, map[string]any{"approver_id": humanKeyID})
}

func TestEnterpriseMode(t *testing.T) {
	e, _ := govEnv(t)
	tenantID, key := e.tenantWith(store.TierEnterprise)
	expect(t, e.admin("GET", "/v1/admin/tenants/"+tenantID, nil), http.StatusOK, map[string]any{
		"approval_mode": "enterprise", "approval_settings": map[string]any{"min_approvals": 2},
	})
	_, alice := e.person(key, "alice", "admin", true)
	_, bob := e.person(key, "bob", "member", false)

	id := e.held(key, "payer-bot")
	// The reproduction: the submitting key naming two approvers is
	// one identity, one vote; the repeat answers the current state.
	expect(t, e.decide(key, id, `{"decision":"approve","approver_id":"alice","approver_role":"owner","is_manager":true}`), http.StatusOK, map[string]any{
		"status": "pending_review", "approvals_received": 1, "min_approvals": 2, "decided_at": nil,
	})
	expect(t, e.decide(key, id, `{"decision":"approve","approver_id":"bob","approver_role":"owner","is_manager":true}`), http.StatusOK, map[string]any{
		"status": "pending_review", "approvals_received": 1, "min_approvals": 2, "decided_at": nil,
	})
	// A changed vote is refused: votes are immutable.
	expectErrorCode(t, e.decide(key, id, `{"decision":"deny"}`), http.StatusConflict, pdp.CodeApprovalAlreadyDecided, "already voted")
	q := expect(t, e.get("/v1/approvals", key), http.StatusOK, map[string]any{"total": 1})
	if votes := field(q["approvals"].([]any)[0], "votes").([]any); len(votes) != 1 || field(votes[0], "approver_role") != "owner" {
		t.Errorf("the queue's votes %v", votes)
	}
	expect(t, e.decide(alice, id, `{"decision":"approve"}`), http.StatusOK, map[string]any{
		"status": "approved", "approvals_received": 2, "min_approvals": 2, "approver_id": "alice", "approver_role": "admin",
	})
	expectErrorCode(t, e.decide(bob, id, `{"decision":"approve"}`), http.StatusConflict, pdp.CodeApprovalAlreadyDecided, "already approved by 'alice'")
	ex := expect(t, e.get("/v1/actions/"+id+"/explain", key), http.StatusOK, nil)
	if votes := field(ex, "approval", "votes").([]any); len(votes) != 2 || field(votes[1], "approver_id") != "alice" {
		t.Errorf("votes %v", votes)
	}
	if got := field(ex, "approval", "approvals_received"); got != 2.0 {
		t.Errorf("approvals_received %v", got)
	}
	events := []string{}
	for _, x := range ex["audit_trail"].([]any) {
		events = append(events, field(x, "event").(string))
	}
	if strings.Join(events, ",") != "action_pending_review,approval_vote,approval_vote,action_approved" {
		t.Errorf("trail events %v", events)
	}

	// Roles and managers come from the keys: who counts.
	_, carol := e.person(key, "carol", "admin", false)
	_, dave := e.person(key, "dave", "admin", true)
	expect(t, e.admin("PATCH", "/v1/admin/tenants/"+tenantID, `{"approval_settings":{"min_approvals":3,"allowed_roles":["admin","owner"],"require_manager":true}}`), http.StatusOK, nil)
	id = e.held(key, "payer-bot")
	expectErrorCode(t, e.decide(carol, id, `{"decision":"approve"}`), http.StatusForbidden, pdp.CodeApproverNotEligible, "require_manager")
	expectErrorCode(t, e.decide(bob, id, `{"decision":"approve","is_manager":true}`), http.StatusForbidden, pdp.CodeApproverNotEligible, "is_manager comes from the API key")
	expectErrorCode(t, e.decide(alice, id, `{"decision":"approve","approver_role":"owner"}`), http.StatusForbidden, pdp.CodeApproverNotEligible, "approver_role comes from the API key")
	// An ineligible deny does not finalize anything.
	expectErrorCode(t, e.decide(carol, id, `{"decision":"deny"}`), http.StatusForbidden, pdp.CodeApproverNotEligible)
	// Query-string fields work too; consistent claims are accepted.
	expect(t, e.post("/v1/approvals/"+id+"/decision?decision=approve&approver_id=Alice&approver_role=Admin&is_manager=true", alice, nil), http.StatusOK,
		map[string]any{"status": "pending_review", "approvals_received": 1, "min_approvals": 3})
	// Any eligible deny finalizes.
	expect(t, e.decide(dave, id, `{"decision":"deny","reason":"no"}`), http.StatusOK,
		map[string]any{"status": "denied", "approvals_received": 1, "min_approvals": 3})

	// Settings are validated against what the modes understand.
	for body, msg := range map[string]string{
		`{"approval_settings":{"min_approvals":0}}`:      "approval_settings.min_approvals: must be an integer from 1 to 100",
		`{"approval_settings":{"allowed_roles":"boss"}}`: "approval_settings.allowed_roles: must be an array of strings",
		`{"approval_settings":{"quorum":2}}`:             "approval_settings.quorum: unknown setting",
	} {
		expectErrorCode(t, e.admin("PATCH", "/v1/admin/tenants/"+tenantID, body), http.StatusBadRequest, pdp.CodeValidation, msg)
	}
	// Modes are limited by tier.
	proID, _ := e.tenantWith(store.TierPro)
	expectErrorCode(t, e.admin("PATCH", "/v1/admin/tenants/"+proID, `{"approval_mode":"enterprise"}`), http.StatusBadRequest, pdp.CodeValidation, "tier pro allows solo, team")
	expect(t, e.admin("PATCH", "/v1/admin/tenants/"+proID, `{"approval_mode":"solo"}`), http.StatusOK, map[string]any{"approval_mode": "solo"})
}

// TestModeChangeAppliesAtOnce: the mode in force when a decision is made
// counts, not the one at submission.
func TestModeChangeAppliesAtOnce(t *testing.T) {
	e, clk := govEnv(t)
	tenantID, key := e.tenantWith(store.TierEnterprise)
	id := e.held(key, "payer-bot")
	submitted := clk.Now()
	expect(t, e.admin("PATCH", "/v1/admin/tenants/"+tenantID, `{"approval_mode":"solo"}`), http.StatusOK, nil)
	// Solo's delay, not enterprise's second approver: held 5 s, then applied.
	expect(t, e.decide(key, id, `{"decision":"approve"}`), http.StatusOK, map[string]any{
		"status": "approved", "decided_at": submitted.Add(5 * time.Second).Format("2006-01-02T15:04:05.000000Z")})
}

func TestDecisionErrors(t *testing.T) {
	e, _ := govEnv(t)
	_, key := e.tenantWith(store.TierPro)
	_, otherKey := e.tenantWith(store.TierPro)
	id := e.held(key, "payer-bot")
	allowed := e.submit(key, `{"action":"github.create_issue"}`, pdp.StatusAllowed)
	blocked := e.submit(key, `{"action":"bank.wire","params":{"amount":150000}}`, pdp.StatusBlocked)

	for _, tc := range []struct {
		name   string
		path   string
		body   any
		status int
		code   string
		msg    string
	}{
		// Without a decision it is an approval: the submitter's, which team mode makes wait.
		{"no decision", id, `{}`, 409, pdp.CodeApprovalTooEarly, "may approve it only"},
		{"no body", id, nil, 409, pdp.CodeApprovalTooEarly, "may approve it only"},
		{"unknown decision", id, `{"decision":"maybe"}`, 400, pdp.CodeInvalidDecision, "decision 'maybe' is not one of approve, approved, deny, denied, reject, rejected"},
		{"decision not a string", id, `{"decision":true}`, 400, pdp.CodeInvalidDecision, "decision 'true' is not one of"},
		{"invalid decision before a missing approval", "act_000000000000000000000000", `{"decision":"yes"}`, 400, pdp.CodeInvalidDecision, "decision 'yes' is not one"},
		{"malformed body", id, `{"decision":`, 400, pdp.CodeValidation, "invalid JSON"},
		{"body not an object", id, `["approve"]`, 400, pdp.CodeValidation, "the request body must be a JSON object"},
		{"is_manager not a boolean", id, `{"decision":"approve","is_manager":"maybe"}`, 400, pdp.CodeValidation, "is_manager: must be true or false"},
		{"reason not a string", id, `{"decision":"approve","reason":7}`, 400, pdp.CodeValidation, "reason: must be a string"},
		{"reason too long", id, fmt.Sprintf(`{"decision":"approve","reason":%q}`, strings.Repeat("r", 1025)), 400, pdp.CodeValidation, "reason: must be at most 1024 characters"},
		{"approver_id with a control character", id, `{"decision":"approve","approver_id":"a\u0000b"}`, 400, pdp.CodeValidation, "approver_id: must be valid UTF-8 without control characters"},
		{"unknown approval", "act_000000000000000000000000", `{"decision":"approve"}`, 404, pdp.CodeApprovalNotFound, "Approval 'act_000000000000000000000000' not found"},
		{"an allowed action is no approval", allowed, `{"decision":"approve"}`, 404, pdp.CodeApprovalNotFound, "not found"},
		{"a blocked action is no approval", blocked, `{"decision":"approve"}`, 404, pdp.CodeApprovalNotFound, "not found"},
		{"id too long", strings.Repeat("x", 100), `{"decision":"approve"}`, 404, pdp.CodeApprovalNotFound, "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectErrorCode(t, e.decide(key, tc.path, tc.body), tc.status, tc.code, tc.msg)
		})
	}
	t.Run("another tenant's approval", func(t *testing.T) {
		expectErrorCode(t, e.decide(otherKey, id, `{"decision":"approve"}`), 404, pdp.CodeApprovalNotFound, "not found")
		expect(t, e.get("/v1/approvals", otherKey), http.StatusOK, map[string]any{"total": 0})
	})
	t.Run("the body wins over the query", func(t *testing.T) {
		id := e.held(key, "payer-bot")
		expect(t, e.post("/v1/approvals/"+id+"/decision?decision=approve&reason=q&approver_id=bob", key, `{"decision":"deny","reason":"body"}`), http.StatusOK,
			map[string]any{"decision": "deny", "status": "denied", "reason": "body", "approver_label": "bob"})
	})
	t.Run("decisions are immutable", func(t *testing.T) {
		_, alice := e.person(key, "alice", "admin", false)
		expect(t, e.decide(alice, id, `{"decision":"approve","approver_id":"Alice"}`), http.StatusOK, map[string]any{"status": "approved"})
		for _, body := range []string{`{"decision":"approve","approver_id":"alice"}`, `{"decision":"deny","approver_id":"bob"}`} {
			r := e.decide(alice, id, body)
			got := expectErrorCode(t, r, http.StatusConflict, pdp.CodeApprovalAlreadyDecided, "already approved by 'alice'; decisions are immutable")
			if got["approval_status"] != "approved" || got["approval_id"] != id {
				t.Errorf("extra fields %v", got)
			}
		}
		expect(t, e.get("/v1/actions/"+id, key), http.StatusOK, map[string]any{"status": "approved", "approver_id": "alice"})
	})
	t.Run("confidential keeps the reason out of the chain", func(t *testing.T) {
		id := e.held(key, "payer-bot")
		expect(t, e.decide(key, id, `{"decision":"deny","reason":"salary data","confidential":true,"approver_id":"hr"}`), http.StatusOK, map[string]any{"reason": "salary data"})
		expect(t, e.get("/v1/actions/"+id, key), http.StatusOK, map[string]any{"reason": "salary data"})
		trail := expect(t, e.get("/v1/actions/"+id+"/explain", key), http.StatusOK, nil)["audit_trail"].([]any)
		meta := field(trail[len(trail)-1], "metadata").(map[string]any)
		if _, ok := meta["reason"]; ok || meta["confidential"] != true {
			t.Errorf("confidential decision's metadata %v", meta)
		}
	})
	t.Run("listing filters", func(t *testing.T) {
		for q, msg := range map[string]string{
			"?limit=0":   "limit: must be an integer from 1 to 500",
			"?offset=-1": "offset: must be an integer from 0 to",
		} {
			expectErrorCode(t, e.get("/v1/approvals"+q, key), http.StatusBadRequest, pdp.CodeValidation, msg)
		}
		// A status no approval has matches none.
		for _, q := range []string{"?status_filter=maybe", "?status=blocked"} {
			expect(t, e.get("/v1/approvals"+q, key), http.StatusOK, map[string]any{"approvals": []any{}, "total": 0})
		}
		// status_filter wins over status; two denied so far (the body-wins
		// and confidential cases), one approved.
		expect(t, e.get("/v1/approvals?status_filter=denied&status=approved", key), http.StatusOK, map[string]any{"total": 2})
	})
}

// TestConcurrentDecisions: many approvers decide one approval at once;
// exactly one wins and the chain holds exactly one decision.
func TestConcurrentDecisions(t *testing.T) {
	e, _ := govEnv(t)
	_, key := e.tenantWith(store.TierPro)
	id := e.held(key, "payer-bot")
	const n = 24
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			decision := []string{"approve", "deny"}[i%2]
			codes[i] = e.decide(key, id, fmt.Sprintf(`{"decision":%q,"approver_id":"approver-%d"}`, decision, i)).code
		})
	}
	wg.Wait()
	won := 0
	for _, c := range codes {
		switch c {
		case http.StatusOK:
			won++
		case http.StatusConflict:
		default:
			t.Errorf("decision answered %d", c)
		}
	}
	if won != 1 {
		t.Fatalf("%d decisions won, want exactly 1 (%v)", won, codes)
	}
	trail := expect(t, e.get("/v1/actions/"+id+"/explain", key), http.StatusOK, nil)["audit_trail"].([]any)
	if len(trail) != 2 {
		t.Errorf("trail has %d entries, want the evaluation and one decision", len(trail))
	}
	expect(t, e.get("/v1/audit/verify", key), http.StatusOK, map[string]any{"valid": true})
}

// TestAuditChain: every policy write, evaluation and decision is an entry;
// the listing is verifiable by a client from its own output; filters and
// bounds; a tampered entry is found.
func TestAuditChain(t *testing.T) {
	e, clk := govEnv(t)
	tenantID, key := e.tenantWith(store.TierPro)
	start := clk.Now()
	expect(t, e.post("/v1/control/policies", key, seedTenantWide), http.StatusCreated, nil)
	expect(t, e.post("/v1/control/policies", key, seedBillingBot), http.StatusCreated, nil)
	clk.Advance(time.Minute)
	expect(t, e.do(request{method: "DELETE", path: "/v1/control/policies/pii_protection?agent_id=billing-bot", key: key}), http.StatusOK, nil)
	e.submit(key, seedAction, pdp.StatusAllowed) // the override is gone: a warning
	e.submit(key, `{"action":"bank.wire","params":{"amount":150000,"memo":"<b>&"},"agent_id":"b-bot"}`, pdp.StatusBlocked)
	clk.Advance(time.Minute)
	id := e.held(key, "payer-bot")
	_, human := e.secondKey(tenantID)
	expect(t, e.decide(human, id, `{"decision":"approve","approver_id":"ünïcødé \u2028 <ok>"}`), http.StatusOK, nil)

	want := []string{"policy_created", "policy_created", "policy_disabled", "action_executed", "action_blocked", "action_pending_review", "key_created", "action_approved"}
	got := expect(t, e.get("/v1/audit", key), http.StatusOK, map[string]any{"total": len(want), "limit": 50, "offset": 0})
	entries := got["entries"].([]any)
	if len(entries) != len(want) {
		t.Fatalf("%d entries, want %d: %s", len(entries), len(want), mustJSON(entries))
	}
	slices.Reverse(entries) // newest first
	for i, x := range entries {
		if ev := field(x, "event"); ev != want[i] {
			t.Errorf("entry %d event %v, want %s", i+1, ev, want[i])
		}
		if op := field(x, "operation"); op != want[i] {
			t.Errorf("entry %d operation %v, want %s", i+1, op, want[i])
		}
		if seq := field(x, "sequence_number"); seq != float64(i+1) {
			t.Errorf("entry %d sequence_number %v", i+1, seq)
		}
	}
	if field(entries[2], "agent_id") != "billing-bot" || field(entries[2], "artifact_id") != "pii_protection" || field(entries[7], "artifact_id") != id {
		t.Errorf("agent_id/artifact_id: %s", mustJSON(entries))
	}
	if m := field(entries[2], "metadata").(map[string]any); m["policy_name"] != "pii_protection" || m["agent_id"] != "billing-bot" || m["scope"] != "agent" || m["enabled"] != false {
		t.Errorf("policy_disabled metadata %v", m)
	}

	// A client recomputes every hash from the listing alone (README,
	// "Verifying the audit chain"): decode with numbers as written, and
	// hash prev_hash || {"event","metadata","sequence_number","timestamp"}.
	raw := e.get("/v1/audit", key).body
	var page struct {
		Entries []struct {
			SequenceNumber int64           `json:"sequence_number"`
			Timestamp      string          `json:"timestamp"`
			Event          string          `json:"event"`
			Metadata       json.RawMessage `json:"metadata"`
			PrevHash       string          `json:"prev_hash"`
			EntryHash      string          `json:"entry_hash"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(raw, &page); err != nil {
		t.Fatal(err)
	}
	prev := strings.Repeat("0", 64)
	slices.Reverse(page.Entries)
	for _, x := range page.Entries {
		ev, _ := json.Marshal(x.Event)
		canonical := `{"event":` + string(ev) + `,"metadata":` + string(x.Metadata) + `,"sequence_number":` + strconv.FormatInt(x.SequenceNumber, 10) + `,"timestamp":"` + x.Timestamp + `"}`
		sum := sha256.Sum256([]byte(x.PrevHash + canonical))
		if x.PrevHash != prev || x.EntryHash != "sha256:"+hex.EncodeToString(sum[:]) {
			t.Errorf("entry %d does not verify from the API's output: %s", x.SequenceNumber, canonical)
		}
		prev = x.EntryHash
	}

	for q, n := range map[string]int{
		"?event_type=policy_created":                               2,
		"?event_type=nothing_such":                                 0,
		"?limit=2&offset=6":                                        2,
		"?event_type=policy_created,%20action_approved":            3,
		"?limit=&offset=&since=&until=&event_type=":                8,
		"?since=2000-01-02":                                        8,
		"?until=2000-01-02T10:00":                                  0,
		"?since=" + start.Add(30*time.Second).Format(time.RFC3339): 6,
		"?until=" + start.Add(30*time.Second).Format(time.RFC3339): 2,
		"?since=" + start.Add(30*time.Second).Format(time.RFC3339) + "&until=" + start.Add(90*time.Second).Format(time.RFC3339): 3,
	} {
		got := expect(t, e.get("/v1/audit"+q, key), http.StatusOK, nil)
		if len(got["entries"].([]any)) != n {
			t.Errorf("GET /v1/audit%s: %d entries, want %d", q, len(got["entries"].([]any)), n)
		}
	}
	for q, msg := range map[string]string{
		"?limit=0":                    "limit: must be an integer from 1 to 1000",
		"?limit=1001":                 "limit: must be an integer from 1 to 1000",
		"?offset=x":                   "offset: must be an integer",
		"?since=yesterday":            `since: must be an RFC 3339 timestamp such as 2025-06-01T00:00:00Z, a naive ISO time (UTC) or a date such as 2025-06-01 (got "yesterday")`,
		"?until=2025-13-01T00:00:00Z": "until: must be an RFC 3339 timestamp",
		"?event_type=" + "a%20b":      "event_type: each event must be 1-64 letters",
		"?since=2025-06-02T00:00:00Z&until=2025-06-01T00:00:00Z": "until: must be after since",
	} {
		expectErrorCode(t, e.get("/v1/audit"+q, key), http.StatusBadRequest, pdp.CodeValidation, msg)
	}

	v := expect(t, e.get("/v1/audit/verify", key), http.StatusOK, map[string]any{"valid": true, "entries": len(want), "first_bad_sequence": nil, "last_verified_sequence": len(want)})
	if s, _ := v["timestamp"].(string); !rfc3339Z.MatchString(s) {
		t.Errorf("timestamp %v", v["timestamp"])
	}
	// Another tenant's chain is its own.
	_, other := e.tenantWith(store.TierFree)
	expect(t, e.get("/v1/audit", other), http.StatusOK, map[string]any{"total": 0})
	expect(t, e.get("/v1/audit/verify", other), http.StatusOK, map[string]any{"valid": true, "entries": 0})

	// Someone with the file edits entry 4's metadata.
	db, err := sql.Open("sqlite", e.path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE audit_log SET metadata = replace(metadata, '"allowed"', '"blocked"') WHERE tenant_id = ? AND seq = 4`, tenantID); err != nil {
		t.Fatal(err)
	}
	expect(t, e.get("/v1/audit/verify", key), http.StatusOK, map[string]any{"valid": false, "entries": len(want), "first_bad_sequence": 4, "last_verified_sequence": 3})
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestDashboard: the numbers of a known mix of actions, zero-filled
// series, the tier gate and every parameter error.
func TestDashboard(t *testing.T) {
	e, clk := govEnv(t)
	_, key := e.tenantWith(store.TierStarter)
	expect(t, e.post("/v1/control/policies", key, `{"name":"no_secrets","rules":[{"match":"topsecret","severity":"critical"}]}`), http.StatusCreated, nil)
	expect(t, e.post("/v1/control/policies", key, `{"name":"deploys","rules":[{"match":"deploy","severity":"high"}]}`), http.StatusCreated, nil)
	expect(t, e.post("/v1/control/policies", key, `{"name":"emails","rules":[{"match":"email","severity":"medium"}]}`), http.StatusCreated, nil)
	clk.Advance(-3 * 24 * time.Hour) // three days ago
	old := e.submit(key, `{"action":"ci.deploy","agent_id":"ci-bot"}`, pdp.StatusPendingReview)
	clk.Advance(3 * 24 * time.Hour)
	for range 3 {
		e.submit(key, `{"action":"github.create_issue","agent_id":"ci-bot"}`, pdp.StatusAllowed)
	}
	e.submit(key, `{"action":"slack.send","params":{"text":"email me"},"agent_id":"ci-bot"}`, pdp.StatusAllowed) // a warning
	e.submit(key, `{"action":"http.post","params":{"body":"topsecret"},"agent_id":"leaky-bot"}`, pdp.StatusBlocked)
	e.submit(key, `{"action":"http.post","params":{"body":"topsecret"}}`, pdp.StatusBlocked)
	pending := e.submit(key, `{"action":"ci.deploy","agent_id":"ci-bot"}`, pdp.StatusPendingReview)
	denied := e.submit(key, `{"action":"ci.deploy","agent_id":"ci-bot"}`, pdp.StatusPendingReview)
	expect(t, e.decide(key, old, `{"decision":"approve","approver_id":"alice"}`), http.StatusOK, nil)
	expect(t, e.decide(key, denied, `{"decision":"deny","approver_id":"alice"}`), http.StatusOK, nil)
	_ = pending
	clk.Advance(time.Second)

	d := expect(t, e.get("/v1/control/dashboard", key), http.StatusOK, map[string]any{
		"window": "7d", "bucket": "day", "backend": "sqlite",
		"totals": map[string]any{"evaluations": 9, "executed": 5, "blocked": 2, "pending_review": 1, "approved": 1, "denied": 1},
		"violations_by_policy": []any{
			map[string]any{"policy": "deploys", "count": 3, "severity_breakdown": map[string]any{"critical": 0, "high": 3, "medium": 0, "low": 0}},
			map[string]any{"policy": "no_secrets", "count": 2, "severity_breakdown": map[string]any{"critical": 2, "high": 0, "medium": 0, "low": 0}},
			map[string]any{"policy": "emails", "count": 1, "severity_breakdown": map[string]any{"critical": 0, "high": 0, "medium": 1, "low": 0}},
		},
		"violations_by_agent": []any{
			map[string]any{"agent_id": "ci-bot", "count": 4},
			map[string]any{"agent_id": "leaky-bot", "count": 1},
		},
	})
	series := d["time_series"].([]any)
	if len(series) != 8 {
		t.Fatalf("7d by day: %d buckets, want 8 (the partial first and last days included)", len(series))
	}
	var sum, zero int
	for _, b := range series {
		n := int(field(b, "evaluations").(float64))
		sum += n
		if n == 0 {
			zero++
		}
		for _, k := range []string{"bucket", "executed", "blocked", "pending_review", "approved", "denied"} {
			if _, ok := b.(map[string]any)[k]; !ok {
				t.Errorf("bucket lacks %s: %v", k, b)
			}
		}
	}
	if sum != 9 || zero < 5 {
		t.Errorf("series sums to %d with %d empty buckets: %s", sum, zero, mustJSON(series))
	}
	if b := field(series[0], "bucket").(string); !strings.HasSuffix(b, "T00:00:00Z") {
		t.Errorf("day bucket %q", b)
	}
	h := expect(t, e.get("/v1/control/dashboard?window=24h", key), http.StatusOK, map[string]any{
		"window": "24h", "bucket": "hour", "totals": map[string]any{"evaluations": 8, "executed": 4, "blocked": 2, "pending_review": 1, "approved": 0, "denied": 1},
	})
	if n := len(h["time_series"].([]any)); n != 24 && n != 25 {
		t.Errorf("24h by hour: %d buckets", n)
	}
	if d := expect(t, e.get("/v1/control/dashboard?window=30d&bucket=hour", key), http.StatusOK, map[string]any{"bucket": "hour"}); field(d, "totals", "evaluations") != 9.0 || len(d["time_series"].([]any)) != 721 {
		t.Errorf("30d by hour: %v evaluations, %d buckets", field(d, "totals", "evaluations"), len(d["time_series"].([]any)))
	}

	for q, msg := range map[string]string{
		"?window=1y":             `window: must be one of 24h, 7d, 30d (got "1y")`,
		"?bucket=minute":         `bucket: must be hour or day (got "minute")`,
		"?window=2d&bucket=week": `window: must be one of 24h, 7d, 30d (got "2d"); bucket: must be hour or day (got "week")`,
	} {
		expectErrorCode(t, e.get("/v1/control/dashboard"+q, key), http.StatusBadRequest, pdp.CodeInvalidDashboardParam, msg)
	}

	// An agent's violations, newest first.
	v := expect(t, e.get("/v1/control/agents/ci-bot/violations", key), http.StatusOK, map[string]any{"agent_id": "ci-bot", "total": 4, "returned": 4, "backend": "sqlite"})
	vs := v["violations"].([]any)
	// An approved action was executed: its event says so, its status says how.
	wantEvents := []string{"action_denied", "action_pending_review", "action_executed", "action_executed"}
	if field(vs[3], "status") != "approved" {
		t.Errorf("approved violation: %v", vs[3])
	}
	expect(t, e.get("/v1/control/agents/ci-bot/violations?limit=1", key), http.StatusOK, map[string]any{"total": 4, "returned": 1})
	for i, x := range vs {
		if field(x, "event") != wantEvents[i] {
			t.Errorf("violation %d event %v, want %s", i, field(x, "event"), wantEvents[i])
		}
		for _, k := range []string{"action_id", "action", "timestamp", "triggered_policy", "severity", "reason", "risk_score", "violation_count", "audit_chain_index", "audit_hash"} {
			if _, ok := x.(map[string]any)[k]; !ok {
				t.Errorf("violation lacks %s", k)
			}
		}
	}
	if field(vs[0], "action_id") != denied || field(vs[3], "action_id") != old {
		t.Errorf("order %s", mustJSON(vs))
	}
	if idx, _ := field(vs[0], "audit_chain_index").(float64); idx < 1 || !strings.HasPrefix(field(vs[0], "audit_hash").(string), "sha256:") {
		t.Errorf("audit link %v %v", field(vs[0], "audit_chain_index"), field(vs[0], "audit_hash"))
	}
	since := clk.Now().Add(-24 * time.Hour).Format(time.RFC3339)
	expect(t, e.get("/v1/control/agents/ci-bot/violations?since="+since, key), http.StatusOK, map[string]any{"total": 3})
	expect(t, e.get("/v1/control/agents/ci-bot/violations?until="+since, key), http.StatusOK, map[string]any{"total": 1})
	expect(t, e.get("/v1/control/agents/ci-bot/violations?limit=1", key), http.StatusOK, map[string]any{"total": 4})
	expect(t, e.get("/v1/control/agents/nobody/violations", key), http.StatusOK, map[string]any{"total": 0, "violations": []any{}})
	for q, msg := range map[string]string{
		"?since=last-week":  `since: must be an RFC 3339 timestamp`,
		"?until=1700000000": `until: must be an RFC 3339 timestamp`,
		"?limit=501":        "limit: must be an integer from 1 to 500",
		"?since=2025-06-02T00:00:00Z&until=2025-06-01T00:00:00Z": "until: must be after since",
	} {
		got := expectErrorCode(t, e.get("/v1/control/agents/ci-bot/violations"+q, key), http.StatusBadRequest, pdp.CodeInvalidViolationsParam, msg)
		if got["params"] == nil {
			t.Errorf("no params in %v", got)
		}
	}
	expectErrorCode(t, e.get("/v1/control/agents/bad%09agent/violations", key), http.StatusBadRequest, pdp.CodeInvalidViolationsParam, "agent_id:")
	// Spaces and slashes are an agent_id's own, percent-encoded in the path.
	expect(t, e.get("/v1/control/agents/ops%20bot%2Feu/violations", key), http.StatusOK, map[string]any{"agent_id": "ops bot/eu", "total": 0})

	// The tier gate comes first.
	_, free := e.tenantWith(store.TierFree)
	for _, p := range []string{"/v1/control/dashboard", "/v1/control/dashboard?window=bad", "/v1/control/agents/ci-bot/violations?since=bad"} {
		expectError(t, e.get(p, free), http.StatusForbidden, pdp.CodeFeatureRequired, "Feature 'governance_dashboard' requires Starter tier or higher",
			map[string]any{"feature": "governance_dashboard", "required_tier": "starter", "current_tier": "free"})
	}
}
