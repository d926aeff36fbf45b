package client_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse-pdp/gatehouse/client"
)

func newClient(t *testing.T) *client.Client {
	t.Helper()
	c, err := client.New(baseURL, apiKey)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewRejectsBadSettings(t *testing.T) {
	for _, tc := range []struct{ url, key string }{
		{"", "nram_x"}, {"ftp://h", "nram_x"}, {"http://", "nram_x"}, {"http://127.0.0.1:1", ""},
	} {
		if _, err := client.New(tc.url, tc.key); err == nil {
			t.Errorf("New(%q, %q): no error", tc.url, tc.key)
		}
	}
}

func TestErrorsCarryTheirCode(t *testing.T) {
	ctx := t.Context()
	bad, err := client.New(baseURL, "nram_not_a_key")
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.ListPolicies(ctx, "")
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized || apiErr.Code != client.CodeUnauthorized || apiErr.Message == "" {
		t.Fatalf("bad key: %#v", err)
	}
	if !errors.Is(err, &client.Error{Status: http.StatusUnauthorized}) || errors.Is(err, &client.Error{Code: client.CodeNotFound}) {
		t.Error("Error.Is does not match by code and status")
	}

	c := newClient(t)
	// Validation: the message names the field.
	_, err = c.PutPolicy(ctx, client.Policy{Name: "bad", Rules: []client.Rule{{Match: `(?=x)`, Severity: "high"}}})
	if !errors.As(err, &apiErr) || apiErr.Code != client.CodeInvalidPolicy || apiErr.Status != http.StatusBadRequest {
		t.Fatalf("look-ahead: %v", err)
	}
	// Extra fields are kept.
	_, err = c.Dashboard(ctx, client.DashboardOptions{Window: "1y"})
	if !errors.As(err, &apiErr) || apiErr.Code != client.CodeInvalidDashboardParam || apiErr.Fields["params"] == nil {
		t.Fatalf("dashboard window: %#v", err)
	}
	// Built-ins cannot be deleted.
	_, err = c.DeletePolicy(ctx, "FinancialSafety", "")
	if !errors.Is(err, &client.Error{Code: client.CodeCannotDeleteBuiltin}) {
		t.Fatalf("delete built-in: %v", err)
	}
}

func TestContextIsHonoured(t *testing.T) {
	c := newClient(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := c.SubmitAction(ctx, client.Action{Action: "x"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
	var apiErr *client.Error
	if errors.As(err, &apiErr) {
		t.Fatal("a transport failure must not look like an answer")
	}
}

func TestConnectorActionsAndListings(t *testing.T) {
	ctx := t.Context()
	c := newClient(t)
	res, err := c.SubmitConnectorAction(ctx, "github", "repos/create", map[string]any{"name": "demo"}, "ci-bot", "")
	if err != nil {
		t.Fatal(err)
	}
	if res.Action != "github.repos.create" || res.AgentID == nil || *res.AgentID != "ci-bot" || res.Status != client.StatusAllowed {
		t.Fatalf("connector action: %+v", res)
	}
	rec, err := c.GetAction(ctx, res.ActionID)
	if err != nil || rec.ActionID != res.ActionID || rec.CreatedAt.IsZero() {
		t.Fatalf("GetAction: %+v, %v", rec, err)
	}
	ex, err := c.ExplainAction(ctx, res.ActionID)
	if err != nil || ex.Connector == nil || *ex.Connector != "github" || ex.Operation != "repos.create" || len(ex.AuditTrail) == 0 {
		t.Fatalf("ExplainAction: %+v, %v", ex, err)
	}
	l, err := c.ListActions(ctx, client.ListActionsOptions{Status: client.StatusAllowed, Limit: 1})
	if err != nil || len(l.Actions) != 1 || l.Total < 1 {
		t.Fatalf("ListActions: %+v, %v", l, err)
	}
	_, err = c.GetAction(ctx, "act_missing")
	if !errors.Is(err, &client.Error{Code: client.CodeActionNotFound}) {
		t.Fatalf("missing action: %v", err)
	}
	v, err := c.VerifyAudit(ctx)
	if err != nil || !v.Valid || v.Entries == 0 {
		t.Fatalf("VerifyAudit: %+v, %v", v, err)
	}
	p, err := c.ListAudit(ctx, client.AuditOptions{Limit: 2})
	if err != nil || len(p.Entries) == 0 || p.Limit != 2 {
		t.Fatalf("ListAudit: %+v, %v", p, err)
	}
	// Newest first, with Novyx's names beside the chain's.
	if e := p.Entries[0]; e.Operation != e.Event || !strings.HasPrefix(e.ContentHash, "sha256:") || int(e.SequenceNumber) != p.Total {
		t.Errorf("newest entry %+v of %d", e, p.Total)
	}
	var out strings.Builder
	if n, err := c.ExportAudit(ctx, client.AuditExportOptions{Format: "jsonl"}, &out); err != nil || n == 0 || strings.Count(out.String(), "\n") != p.Total {
		t.Errorf("ExportAudit: %d bytes, %d lines for %d entries, %v", n, strings.Count(out.String(), "\n"), p.Total, err)
	}
	u, err := c.GetUsage(ctx)
	if err != nil || u.Tier == "" || !u.Allows("draft_policies") || u.Allows("no_such_feature") {
		t.Errorf("GetUsage: %+v, %v", u, err)
	}
}
