package adapter

import (
	"encoding/json"
	"strings"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// Policy as data: the tenant data document carries every enabled policy's
// rules (data.gatehouse.tenants[t].tenant[name].rules and
// .agents[agent][name].rules), and one generic evaluation in the library
// (rego/gatehouse/rules.rego) runs them. A rule's data holds everything
// the rule PolicyModule generates encodes, so a tenant needs no module of
// its own: the engine compiles the library once for every tenant, and a
// tenant's revision costs its data document. User text (patterns,
// literals, names, reasons) is only ever a JSON string in this document.
//
// One rule, as RuleData renders rule i of policy p:
//
//	"pre":        [literals]  the match pattern's pre-check (Literals),
//	                          absent when it has none
//	"alts":       [folded]    for a pure alternation of ASCII literals
//	                          (literalAlternatives): the folded
//	                          alternatives of foundTemplate's indexof path
//	"pattern":    the translated RE2 pattern (emittedPattern; an
//	              untranslatable one does not compile, so evaluating it
//	              fails the decision)
//	"context":    context_requires translated, absent without one;
//	"context_pre": its pre-check literals, absent when it has none
//	"reason_prefix"   "Policy '<name>' violated: " (no reason: prefix+match)
//	"reason_template" a reason holding {match} (every {match} replaced)
//	"reason"          a fixed reason
//	                  (exactly one of the three)
//	"violation":  the violation's constant fields: policy, scope, rule,
//	              severity, on_violation, confidence
//	"key":        [0 - outcome rank, 0 - severity rank, scope rank,
//	              policy, rule], the hit's sort key (hitTerm)
//	"patch":      the patch's constant fields: status, risk_score,
//	              triggered_policy, severity, and "warnings": [] unless
//	              the rule warns
//
// The library builds the hit hitTerm builds from these: the same tuple,
// the same violation and the same patch (TestRulesDataMatchModules and
// the engine's differential tests check it).

// PolicyRules returns the data of every rule of p, in rule order.
func PolicyRules(p *pdp.Policy) []any {
	out := make([]any, len(p.Rules))
	for i := range p.Rules {
		out[i] = RuleData(p, i)
	}
	return out
}

// RuleData returns the data of rule i of p (see above).
func RuleData(p *pdp.Policy, i int) map[string]any {
	r := p.Rules[i]
	d := map[string]any{"pattern": emittedPattern(r.Match)}
	if lits, ok := Literals(r.Match); ok {
		d["pre"] = toAny(lits)
	}
	if alts, ok := literalAlternatives(r.Match); ok {
		folded := make([]any, len(alts))
		for j, a := range alts {
			folded[j] = Fold(a)
		}
		d["alts"] = folded
	}
	if r.ContextRequires != "" {
		d["context"] = emittedPattern(r.ContextRequires)
		if lits, ok := Literals(r.ContextRequires); ok {
			d["context_pre"] = toAny(lits)
		}
	}
	switch {
	case r.Reason == "":
		d["reason_prefix"] = "Policy '" + p.Name + "' violated: "
	case strings.Contains(r.Reason, "{match}"):
		d["reason_template"] = r.Reason
	default:
		d["reason"] = r.Reason
	}
	scope := 1
	if p.Scope() == pdp.ScopeAgent {
		scope = 0
	}
	confidence := json.Number(floatNumber(r.Confidence))
	d["violation"] = map[string]any{
		"policy":       p.Name,
		"scope":        string(p.Scope()),
		"rule":         i,
		"severity":     string(r.Severity),
		"on_violation": string(r.OnViolation),
		"confidence":   confidence,
	}
	d["key"] = []any{-r.OnViolation.Rank(), -r.Severity.Rank(), scope, p.Name, i}
	patch := map[string]any{
		"status":           string(outcomeStatus(r.OnViolation)),
		"risk_score":       json.Number(RiskScore(r.Severity, r.Confidence)),
		"triggered_policy": p.Name,
		"severity":         string(r.Severity),
	}
	if r.OnViolation != pdp.OutcomeWarn {
		patch["warnings"] = []any{}
	}
	d["patch"] = patch
	return d
}

// Untranslatable is the pattern a rule's data (and its generated module)
// holds in place of a pattern Translate refuses: it does not compile, so
// evaluating the rule fails the decision.
const Untranslatable = untranslatable
