package adapter

import (
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// TestRuleDataReasonParts: a rule's "reason_parts", joined with a match
// (the library's concat(m, parts)), is its reason with every "{match}"
// replaced by the match, in Go (strings.ReplaceAll) and in OPA (replace,
// which the library called before), for the default reason, templates and
// fixed texts, matches that themselves hold "{match}" included.
func TestRuleDataReasonParts(t *testing.T) {
	reasons := []string{"", "fixed text", "found {match}", "{match}", "{match}{match}", "a {match} b {match} c", "{match", "{{match}}"}
	matches := []string{"email", "", "{match}", "x{", "\u00e9"}
	pq, err := rego.New(rego.Query(`concat(input.m, input.parts) == replace(input.reason, "{match}", input.m)`)).PrepareForEval(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, reason := range reasons {
		p := &pdp.Policy{Name: "pii", Rules: []pdp.Rule{{Match: "email", Severity: pdp.SeverityHigh, OnViolation: pdp.OutcomeBlock, Reason: reason, Confidence: 0.9}}}
		template := reason
		if template == "" {
			template = "Policy 'pii' violated: {match}"
		}
		parts := RuleData(p, 0)["reason_parts"].([]any)
		for _, m := range matches {
			strs := make([]string, len(parts))
			for i, x := range parts {
				strs[i] = x.(string)
			}
			if got, want := strings.Join(strs, m), strings.ReplaceAll(template, "{match}", m); got != want {
				t.Errorf("reason %q, match %q: parts join to %q, want %q", reason, m, got, want)
			}
			rs, err := pq.Eval(t.Context(), rego.EvalInput(map[string]any{"m": m, "parts": parts, "reason": template}))
			if err != nil {
				t.Fatal(err)
			}
			if !rs.Allowed() {
				t.Errorf("reason %q, match %q: OPA's concat of the parts differs from its replace", reason, m)
			}
		}
	}
}
