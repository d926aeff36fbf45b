package bundles_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/bundles"
	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
)

// samplePolicies cover both scopes, shadowing, a disabled policy, step
// types, whitelists, {match} reasons, patterns with and without pre-check
// literals, and an agent id that needs path escaping.
var samplePolicies = []string{
	`{"name": "pii_protection", "description": "Warn on PII patterns",
	  "rules": [{"match": "(email|phone)", "context_requires": "(external|public)", "severity": "medium", "on_violation": "warn"}]}`,
	`{"name": "pii_protection", "agent_id": "billing-bot", "description": "Block PII outright for billing-bot",
	  "rules": [{"match": "(email|phone|ssn|passport|routing)", "severity": "critical", "on_violation": "block",
	             "reason": "PII blocked for billing-bot: {match}"}]}`,
	`{"name": "external_links", "whitelisted_domains": ["example.com"],
	  "rules": [{"match": "https?://[a-z0-9.-]+", "severity": "high"}]}`,
	`{"name": "thoughts", "step_types": ["thought", "action"],
	  "rules": [{"match": "password", "severity": "low", "reason": "password mentioned"}]}`,
	`{"name": "refunds", "agent_id": "support-bot",
	  "rules": [{"match": "refund", "severity": "high", "on_violation": "warn", "confidence": 0.5},
	            {"match": "\\d{3}-\\d{2}-\\d{4}", "severity": "medium", "reason": "SSN {match} in {match}"}]}`,
	`{"name": "disabled_one", "enabled": false, "rules": [{"match": ".", "severity": "critical"}]}`,
	`{"name": "pii_protection", "agent_id": "quiet-bot", "enabled": false,
	  "rules": [{"match": "email", "severity": "critical"}]}`,
	`{"name": "danger", "agent_id": "ops:team@x.io",
	  "rules": [{"match": "(rm -rf|drop table)", "severity": "critical", "reason": "destructive: {match}"}]}`,
}

func policy(t testing.TB, doc string) pdp.Policy {
	t.Helper()
	d, err := adapter.Decode([]byte(doc), adapter.FormatJSON)
	if err != nil {
		t.Fatalf("decode %s: %v", doc, err)
	}
	p, err := d.Policy()
	if err != nil {
		t.Fatalf("policy %s: %v", doc, err)
	}
	p.Version = 1
	return p
}

func sampleTenant(t testing.TB, id string, rev uint64, mode pdp.Mode) pdp.TenantPolicies {
	tp := pdp.TenantPolicies{TenantID: id, Revision: rev, Mode: mode}
	for _, doc := range samplePolicies {
		tp.Policies = append(tp.Policies, policy(t, doc))
	}
	return tp
}

// engineConfig is the engine's default configuration, whose ConfigData the
// bundles carry.
var engineConfig = engine.Config{}.Defaults()

type call struct {
	name   string
	params map[string]any
}

// sampleActions returns actions that exercise every sample policy and both
// built-ins, for each agent and step type.
func sampleActions(tenant string) []pdp.Action {
	calls := []call{
		{"slack.send_message", map[string]any{"channel": "#external", "text": "Customer email: alice@example.com"}},
		{"slack.send_message", map[string]any{"channel": "#internal", "text": "call my phone"}},
		{"http.get", map[string]any{"url": "https://api.example.com/v1"}},
		{"http.get", map[string]any{"url": "https://evil.example.net/x", "note": "public"}},
		{"payments.transfer", map[string]any{"amount": json.Number("50000"), "to": "acct"}},
		{"payments.transfer", map[string]any{"amount": json.Number("150000")}},
		{"billing.refund", map[string]any{"total": "20", "ssn": "123-45-6789"}},
		{"db.export", map[string]any{"table": "customer_records", "format": "csv"}},
		{"notes.write", map[string]any{"text": "password: hunter2hunter2"}},
		{"shell.exec", map[string]any{"cmd": "rm -rf /var/lib"}},
		{"noop", nil},
	}
	agents := []string{"", "billing-bot", "support-bot", "ops:team@x.io", "quiet-bot"}
	var out []pdp.Action
	for i, c := range calls {
		for j, agent := range agents {
			step := ""
			if (i+j)%3 == 0 {
				step = "thought"
			}
			out = append(out, pdp.Action{TenantID: tenant, AgentID: agent, Name: c.name, Params: c.params, StepType: step})
		}
	}
	return out
}

// engineDecisions decides every action with the embedded engine.
func engineDecisions(t testing.TB, tps []pdp.TenantPolicies, actions []pdp.Action) []*pdp.Decision {
	t.Helper()
	eng, err := engine.New(engine.Config{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range tps {
		eng.SetTenant(tp)
	}
	out := make([]*pdp.Decision, len(actions))
	for i, a := range actions {
		d, err := eng.Evaluate(context.Background(), a)
		if err != nil {
			t.Fatalf("engine: %+v: %v", a, err)
		}
		d.EvaluationTimeMS = 0
		out[i] = d
	}
	return out
}

// decisionFromResult converts a data.gatehouse.decision.result value as OPA
// returns it into a Decision.
func decisionFromResult(t testing.TB, v any) *pdp.Decision {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields() // the result has no field the API drops
	var d pdp.Decision
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("result %s: %v", raw, err)
	}
	return &d
}

func diffJSON(a, b any) string {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if bytes.Equal(ja, jb) {
		return ""
	}
	return fmt.Sprintf("\n got: %s\nwant: %s", ja, jb)
}

// preparedFromBundle prepares the decision query on a bundle read with
// OPA's own reader, as a stock OPA would load it.
func preparedFromBundle(t testing.TB, tarball []byte) rego.PreparedEvalQuery {
	t.Helper()
	b, err := bundle.NewReader(bytes.NewReader(tarball)).Read()
	if err != nil {
		t.Fatalf("bundle.NewReader: %v", err)
	}
	pq, err := rego.New(
		rego.Query(adapter.DecisionQuery),
		rego.ParsedBundle("gatehouse", &b),
	).PrepareForEval(context.Background())
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	return pq
}

func mustBuild(t testing.TB, tp pdp.TenantPolicies, opts ...bundles.Option) *bundles.Built {
	t.Helper()
	b, err := bundles.Build(tp, engineConfig.ConfigData(), opts...)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return b
}
