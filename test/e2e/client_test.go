package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/client"
)

// newGoClient returns the Go client package for s's key, its traffic
// checked against docs/openapi.yaml like every other request of the suite.
func newGoClient(t *testing.T, s *Server) *client.Client {
	t.Helper()
	c, err := client.New(s.URL, s.Key, client.WithHTTPClient(SpecClient(t)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestGoClientPolicyFlow drives the policy lifecycle through the Go
// client against the binary: upsert, agent scope, list, get, replace,
// Rego, soft delete, and the typed errors.
func TestGoClientPolicyFlow(t *testing.T) {
	s, _ := startDev(t, Options{})
	c := newGoClient(t, s)
	ctx := WithTB(t.Context(), t)

	doc := client.Policy{
		Name:        "pii",
		Description: "No personal data out",
		Rules:       []client.Rule{{Match: `ssn`, Severity: "critical", Reason: "SSN: {match}"}},
	}
	w, err := c.PutPolicy(ctx, doc)
	if err != nil || w.Action != "created" || w.Version != 1 || w.Scope != "tenant" || w.AgentID != nil {
		t.Fatalf("create: %+v, %v", w, err)
	}
	if w, err = c.PutPolicy(ctx, doc); err != nil || w.Action != "updated" || w.Version != 2 {
		t.Fatalf("upsert: %+v, %v", w, err)
	}
	agentDoc := doc
	agentDoc.AgentID = "billing-bot"
	agentDoc.Rules = []client.Rule{{Match: `ssn`, Severity: "low"}}
	if w, err = c.PutPolicy(ctx, agentDoc); err != nil || w.Scope != "agent" || w.AgentID == nil || *w.AgentID != "billing-bot" {
		t.Fatalf("agent-scoped: %+v, %v", w, err)
	}

	l, err := c.ListPolicies(ctx, "billing-bot")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	effective := map[string]bool{}
	for _, p := range l.Policies {
		names = append(names, p.Source+":"+p.Name+":"+p.Scope)
		if p.Effective != nil {
			effective[p.Scope] = *p.Effective
		}
	}
	if got := strings.Join(names, ","); got != "builtin:FinancialSafety:,builtin:DataExfiltration:,custom:pii:tenant,custom:pii:agent" {
		t.Errorf("list for billing-bot: %s", got)
	}
	if effective["tenant"] || !effective["agent"] {
		t.Errorf("effective flags %v: the agent's copy shadows the tenant's", effective)
	}

	d, err := c.GetPolicy(ctx, "pii", "")
	if err != nil || d.Scope != "tenant" || d.Version != 2 || len(d.Config.Rules) != 1 || d.Config.Rules[0].OnViolation != "block" || d.CreatedAt == nil {
		t.Fatalf("get: %+v, %v", d, err)
	}
	doc.Rules = append(doc.Rules, client.Rule{Match: `passport`, Severity: "high"})
	if w, err = c.ReplacePolicy(ctx, "pii", doc); err != nil || w.Version != 3 {
		t.Fatalf("replace: %+v, %v", w, err)
	}
	rego, err := c.PolicyRego(ctx, "pii", "")
	if err != nil || !strings.Contains(rego, "package ") {
		t.Fatalf("rego: %v\n%s", err, rego)
	}
	if w, err = c.DeletePolicy(ctx, "pii", "billing-bot"); err != nil || w.Action != "disabled" {
		t.Fatalf("delete: %+v, %v", w, err)
	}
	if d, err = c.GetPolicy(ctx, "pii", "billing-bot"); err != nil || d.Enabled {
		t.Fatalf("after delete: %+v, %v", d, err)
	}

	var apiErr *client.Error
	_, err = c.GetPolicy(ctx, "absent", "")
	if !errors.As(err, &apiErr) || apiErr.Status != 404 || apiErr.Code != client.CodePolicyNotFound {
		t.Errorf("missing policy: %v", err)
	}
	_, err = c.PutPolicy(ctx, client.Policy{Name: "bad name!", Rules: doc.Rules})
	if !errors.Is(err, &client.Error{Status: 400, Code: client.CodeInvalidPolicy}) {
		t.Errorf("invalid name: %v", err)
	}
	_, err = c.DeletePolicy(ctx, "DataExfiltration", "")
	if !errors.Is(err, &client.Error{Status: 403, Code: client.CodeCannotDeleteBuiltin}) {
		t.Errorf("delete built-in: %v", err)
	}
}

// TestGoClientActionFlow submits actions through the Go client and
// follows them: decisions, records, explanation, the approvals queue, a
// denial, the dashboard, an agent's violations and the audit chain.
func TestGoClientActionFlow(t *testing.T) {
	s, _ := startDev(t, Options{})
	c := newGoClient(t, s)
	ctx := WithTB(t.Context(), t)

	if _, err := c.PutPolicy(ctx, client.Policy{Name: "deploys", Rules: []client.Rule{
		{Match: `deploy.*prod`, Severity: "high", Reason: "Production deploy needs a human"},
		{Match: `rm -rf`, Severity: "critical"},
	}}); err != nil {
		t.Fatal(err)
	}

	allowed, err := c.SubmitAction(ctx, client.Action{Action: "send_message", Params: map[string]any{"text": "hi"}, AgentID: "ci-bot"})
	if err != nil || !allowed.Allowed() || allowed.PolicyResult.TriggeredPolicy != nil || allowed.TraceID == "" {
		t.Fatalf("allowed: %+v, %v", allowed, err)
	}
	blocked, err := c.SubmitAction(ctx, client.Action{Action: "shell", Params: map[string]any{"cmd": "rm -rf /"}, AgentID: "ci-bot"})
	if err != nil || blocked.Status != client.StatusBlocked || blocked.Allowed() || *blocked.PolicyResult.TriggeredPolicy != "deploys" {
		t.Fatalf("blocked: %+v, %v", blocked, err)
	}
	held, err := c.SubmitConnectorAction(ctx, "github", "deploy/prod", map[string]any{"ref": "main"}, "ci-bot", "action")
	if err != nil || held.Status != client.StatusPendingReview || held.Action != "github.deploy.prod" {
		t.Fatalf("held: %+v, %v", held, err)
	}

	q, err := c.ListApprovals(ctx, client.ListApprovalsOptions{})
	if err != nil || q.Total != 1 || q.Approvals[0].ApprovalID != held.ActionID {
		t.Fatalf("approvals queue: %+v, %v", q, err)
	}
	// Alice decides with her own key: the approver is its owner.
	ak, err := c.CreateKey(ctx, client.NewKey{Name: "alice", Role: "admin"})
	if err != nil || ak.APIKey == "" || ak.Name != "alice" || len(ak.Scopes) != 7 {
		t.Fatalf("create alice's key: %+v, %v", ak, err)
	}
	alice, err := client.New(s.URL, ak.APIKey, client.WithHTTPClient(SpecClient(t)))
	if err != nil {
		t.Fatal(err)
	}
	dr, err := alice.Decide(ctx, held.ActionID, client.Decision{Decision: "deny", Reason: "freeze", ApproverID: "Alice A."})
	if err != nil || dr.Status != client.StatusDenied || dr.Decision != "deny" || dr.ApproverID != "alice" || dr.ApproverLabel == nil || *dr.ApproverLabel != "Alice A." {
		t.Fatalf("deny: %+v, %v", dr, err)
	}
	keys, err := c.ListKeys(ctx)
	if err != nil || len(keys) != 2 {
		t.Fatalf("keys: %+v, %v", keys, err)
	}
	rk, err := alice.RotateKey(ctx, client.RotateOptions{})
	if err != nil || rk.RotatedKeyID != ak.KeyID || rk.APIKey == "" {
		t.Fatalf("rotate: %+v, %v", rk, err)
	}
	if err := c.RevokeKey(ctx, rk.KeyID); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rec, err := c.WaitForDecision(wctx, held.ActionID, 50*time.Millisecond)
	if err != nil || rec.Status != client.StatusDenied || rec.ApproverID == nil || *rec.ApproverID != "alice" || rec.DecidedAt == nil {
		t.Fatalf("after deny: %+v, %v", rec, err)
	}
	_, err = c.Decide(ctx, held.ActionID, client.Decision{Decision: "approve"})
	if !errors.Is(err, &client.Error{Status: 409, Code: client.CodeApprovalAlreadyDecided}) {
		t.Errorf("second decision: %v", err)
	}

	ex, err := c.ExplainAction(ctx, held.ActionID)
	if err != nil || ex.Approval == nil || ex.Approval.Status != client.StatusDenied || len(ex.AuditTrail) < 2 || ex.Summary == "" {
		t.Fatalf("explain: %+v, %v", ex, err)
	}
	list, err := c.ListActions(ctx, client.ListActionsOptions{Limit: 10})
	if err != nil || list.Total != 3 || list.Actions[0].ActionID != held.ActionID {
		t.Fatalf("list: %+v, %v", list, err)
	}
	dash, err := c.Dashboard(ctx, client.DashboardOptions{Window: "24h"})
	if err != nil || dash.Totals.Evaluations != 3 || dash.Totals.Blocked != 1 || dash.Totals.Denied != 1 || dash.Bucket != "hour" || len(dash.TimeSeries) == 0 {
		t.Fatalf("dashboard: %+v, %v", dash, err)
	}
	vs, err := c.AgentViolations(ctx, "ci-bot", client.ViolationsOptions{})
	if err != nil || vs.Total != 2 {
		t.Fatalf("violations: %+v, %v", vs, err)
	}
	v, err := c.VerifyAudit(ctx)
	if err != nil || !v.Valid || v.FirstBadSequence != nil {
		t.Fatalf("verify: %+v, %v", v, err)
	}
	page, err := c.ListAudit(ctx, client.AuditOptions{EventType: "action_blocked"})
	if err != nil || page.Total != 1 {
		t.Fatalf("audit action_blocked: %+v, %v", page, err)
	}
}
