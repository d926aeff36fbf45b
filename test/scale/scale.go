// Package scale generates the benchmark worlds of Gatehouse: the seed (S)
// and synthetic tenants with tenant-wide policies, agent-scoped overrides
// and a corpus of actions with about 500 bytes of params (M, L). Engine
// benchmarks and the load tool share it, so they measure the same data.
package scale

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// Scale is a generated benchmark world: tenants with tenant-wide policies,
// some agents with agent-scoped overrides, and a corpus of actions.
type Scale struct {
	Name    string
	Tenants []pdp.TenantPolicies
	Actions []pdp.Action
}

// S is the contract's seed; M and L are the engine issue's scales:
// M 100 tenants × 10 agents, L 1000 tenants × 20 agents, each with 5
// tenant-wide policies of 3 rules and 2 overrides for 20% of agents.
func S() *Scale { return Seed() }

// M returns scale M.
func M() *Scale { return Generate("M", 100, 10, 5, 3, 0.2, 2) }

// L returns scale L.
func L() *Scale { return Generate("L", 1000, 20, 5, 3, 0.2, 2) }

// Word lists for generated rules: nine rules in ten are alternations of
// literal words, as the issue describes real policies, one in ten a full
// regex (SSN, e-mail, card number, a two-part phrase).
var ruleWords = [][]string{
	{"email", "phone", "address"},
	{"ssn", "passport", "routing"},
	{"password", "secret", "token"},
	{"salary", "payroll", "bonus"},
	{"diagnosis", "prescription", "patient"},
	{"lawsuit", "subpoena", "settlement"},
	{"merger", "acquisition", "layoff"},
	{"exploit", "malware", "ransomware"},
	{"delete", "truncate", "drop"},
	{"confidential", "internal only", "restricted"},
}

var ruleRegexes = []string{
	`(?:^|\W)\d{3}-\d{2}-\d{4}(?:\W|\Z)`,
	`[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}`,
	`\d{4}[ -]?\d{4}[ -]?\d{4}`,
	`(external|public)\s+(channel|share)`,
}

var severities = []pdp.Severity{pdp.SeverityCritical, pdp.SeverityHigh, pdp.SeverityMedium, pdp.SeverityLow}

// genPolicy returns a policy of nRules rules drawn from the word lists.
func genPolicy(r *rand.Rand, name, agent string, nRules int) pdp.Policy {
	p := pdp.Policy{Name: name, AgentID: agent, StepTypes: []string{"ACTION"}, Enabled: true, Version: 1}
	for i := range nRules {
		var match string
		if r.IntN(10) == 0 { // one rule in ten is a full regex
			match = ruleRegexes[r.IntN(len(ruleRegexes))]
		} else {
			words := ruleWords[r.IntN(len(ruleWords))]
			match = "(" + strings.Join(words, "|") + ")"
		}
		sev := severities[r.IntN(len(severities))]
		rule := pdp.Rule{Match: match, Severity: sev, OnViolation: sev.DefaultOutcome(), Confidence: 0.85,
			Reason: fmt.Sprintf("%s rule %d: {match}", name, i)}
		if r.IntN(4) == 0 {
			rule.ContextRequires = "(external|public|customer)"
		}
		p.Rules = append(p.Rules, rule)
	}
	return p
}

// Generate builds tenants × agents with policies per tenant of rules each;
// overrideShare of the agents get overrides agent-scoped policies reusing
// tenant-wide names. The same arguments give the same world.
func Generate(name string, tenants, agents, policies, rules int, overrideShare float64, overrides int) *Scale {
	r := rand.New(rand.NewPCG(1, uint64(tenants)))
	s := &Scale{Name: name}
	for t := range tenants {
		tid := fmt.Sprintf("tenant-%04d", t)
		tp := pdp.TenantPolicies{TenantID: tid, Revision: 1, Mode: pdp.ModeEnforcement}
		for p := range policies {
			tp.Policies = append(tp.Policies, genPolicy(r, fmt.Sprintf("policy_%d", p), "", rules))
		}
		for a := range agents {
			agent := fmt.Sprintf("agent-%02d", a)
			if float64(a) < overrideShare*float64(agents) {
				for o := range overrides {
					tp.Policies = append(tp.Policies, genPolicy(r, fmt.Sprintf("policy_%d", o), agent, rules))
				}
			}
			s.Actions = append(s.Actions, Action(r, tid, agent))
		}
		s.Tenants = append(s.Tenants, tp)
	}
	return s
}

// Seed is the contract's seed: pii_protection tenant-wide (warn) and its
// billing-bot override (block), with the built-ins, in tenant "acme".
func Seed() *Scale {
	r := rand.New(rand.NewPCG(7, 7))
	s := &Scale{Name: "S", Tenants: []pdp.TenantPolicies{{TenantID: "acme", Revision: 1, Mode: pdp.ModeEnforcement, Policies: SeedPolicies()}}}
	for _, agent := range []string{"billing-bot", "support-bot", ""} {
		for range 4 {
			s.Actions = append(s.Actions, Action(r, "acme", agent))
		}
	}
	return s
}

// SeedPolicies returns the seed's two policies, normalized.
func SeedPolicies() []pdp.Policy {
	return []pdp.Policy{
		{Name: "pii_protection", Description: "Warn on PII patterns", StepTypes: []string{"ACTION"}, Enabled: true, Version: 1,
			Rules: []pdp.Rule{{Match: "(email|phone)", ContextRequires: "(external|public)", Severity: pdp.SeverityMedium, OnViolation: pdp.OutcomeWarn, Confidence: 0.85}}},
		{Name: "pii_protection", AgentID: "billing-bot", Description: "Block PII outright for billing-bot", StepTypes: []string{"ACTION"}, Enabled: true, Version: 1,
			Rules: []pdp.Rule{{Match: "(email|phone|ssn|passport|routing)", Severity: pdp.SeverityCritical, OnViolation: pdp.OutcomeBlock, Reason: "PII blocked for billing-bot: {match}", Confidence: 0.85}}},
	}
}

var sentences = []string{
	"Please summarise the quarterly report for the team and post it in the channel.",
	"Customer asked about the status of ticket 4821; reply with the tracking link.",
	"Schedule a follow-up meeting next Tuesday with the design group.",
	"The deployment finished successfully, all health checks are green.",
	"Draft a friendly reminder about the offsite agenda and travel details.",
	"Contact the customer by email at alice@example.com regarding the refund.",
	"Share the public roadmap with the external partner channel.",
}

// Action returns an action with params of about 500 bytes of JSON.
func Action(r *rand.Rand, tenant, agent string) pdp.Action {
	ops := []string{"slack.send_message", "github.create_issue", "linear.update_ticket", "http.post", "pagerduty.trigger"}
	params := map[string]any{
		"channel":  fmt.Sprintf("#team-%d", r.IntN(100)),
		"thread":   json.Number(fmt.Sprint(r.IntN(1_000_000))),
		"priority": []any{"p1", "p2", "p3"}[r.IntN(3)],
		"metadata": map[string]any{"source": "agent", "retry": json.Number("0"), "labels": []any{"ops", "weekly"}},
	}
	var text strings.Builder
	for text.Len() < 340 {
		text.WriteString(sentences[r.IntN(len(sentences))])
		text.WriteString(" ")
	}
	params["text"] = strings.TrimSpace(text.String())
	return pdp.Action{TenantID: tenant, AgentID: agent, Name: ops[r.IntN(len(ops))], Params: params, StepType: "ACTION"}
}
