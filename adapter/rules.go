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
//	"kind":       how it is evaluated (decision.rego's _fire, indexed on
//	              it): "regex", or "alts" for a pure alternation of ASCII
//	              literals (literalAlternatives), found with indexof on
//	              ASCII texts (foundTemplate's semantics); "_context"
//	              appended when it has context_requires
//	"alts":       the folded alternatives ("alts" kinds only)
//	"pattern":    the translated RE2 pattern (emittedPattern; an
//	              untranslatable one does not compile, so evaluating it
//	              fails the decision)
//	"context", "context_pre": context_requires translated and its
//	              pre-check literals ([alwaysGuard], which every action
//	              text contains, without), "_context" kinds only
//	"reason_parts": the reason split at each "{match}" in it, which the
//	              library joins with the match (concat(m, parts), the
//	              template's "{match}"s replaced, as strings.ReplaceAll
//	              and OPA's replace do): of "Policy '<name>' violated:
//	              {match}" when the rule has none (PolicyModule
//	              concatenates the same text; a valid name holds no
//	              "{match}"), of the rule's template, or of its fixed
//	              text, which is its only part. Split here, once per
//	              revision, because OPA's replace builds a
//	              strings.Replacer (some 3 KB) on every call, fixed text
//	              or not, and every hit called it
//	"violation":  the violation's constant fields: policy, scope, rule,
//	              severity, on_violation, confidence
//	"key":        [0 - outcome rank, 0 - severity rank, scope rank,
//	              policy, rule], the hit's sort key (hitTerm)
//	"patch":      the patch's constant fields: status, risk_score,
//	              triggered_policy, severity, and "warnings": [] unless
//	              the rule warns
//
// The library builds the hit hitTerm builds from these: the same tuple,
// the same violation and the same patch (TestDataDecidesAsModules in
// pdp/engine checks it against the generated modules).

// The rules' pre-checks are data of the policy, beside its rules
// (RuleIndex): "by_literal", each pre-check literal (Literals of a match
// pattern) → the indices of the rules whose pre-check it is part of; the
// rules without a pre-check are listed under alwaysGuard, which every
// action text begins with. Without rule hints the library evaluates the
// rules of a candidate policy whose pre-check holds (one of its literals
// occurs in the folded action text), each once: one pass over the
// policy's literals instead of a test per rule.

// RuleIndex returns p's "by_literal" (see above).
func RuleIndex(p *pdp.Policy) map[string]any {
	idx := map[string][]any{}
	for i, r := range p.Rules {
		lits, ok := Literals(r.Match)
		if !ok {
			lits = []string{alwaysGuard}
		}
		for _, l := range lits {
			idx[l] = append(idx[l], i)
		}
	}
	byLiteral := make(map[string]any, len(idx))
	for l, is := range idx {
		byLiteral[l] = is
	}
	return byLiteral
}

// RuleKinds are the rule kinds decision.rego's _fire evaluates (see
// above): a rule of any other kind would never fire, so a bundle whose
// data holds one is refused for its tenant (bundles/loaded.CheckRules).
var RuleKinds = []string{"regex", "alts", "regex_context", "alts_context"}

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
	pattern := emittedPattern(r.Match)
	reason := r.Reason
	if reason == "" {
		reason = "Policy '" + p.Name + "' violated: {match}"
		if strings.Contains(p.Name, "{match}") {
			// Not a valid name (Validate refuses it): the reason could
			// not be told from the template, so the rule fails closed.
			pattern = untranslatable
		}
	}
	d := map[string]any{"pattern": pattern, "reason_parts": toAny(strings.Split(reason, "{match}"))}
	kind := "regex"
	if alts, ok := literalAlternatives(r.Match); ok {
		folded := make([]any, len(alts))
		for j, a := range alts {
			folded[j] = Fold(a)
		}
		kind, d["alts"] = "alts", folded
	}
	if r.ContextRequires != "" {
		kind += "_context"
		d["context"] = emittedPattern(r.ContextRequires)
		d["context_pre"] = []any{alwaysGuard}
		if lits, ok := Literals(r.ContextRequires); ok {
			d["context_pre"] = toAny(lits)
		}
	}
	d["kind"] = kind
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
