package policydiff

import (
	"encoding/json"
	"testing"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

func rule(match string, sev pdp.Severity, out pdp.Outcome) pdp.Rule {
	return pdp.Rule{Match: match, Severity: sev, OnViolation: out, Confidence: 0.85}
}

func TestCompare(t *testing.T) {
	email := rule("email", pdp.SeverityMedium, pdp.OutcomeWarn)
	ssn := rule(`\d{3}-\d{2}-\d{4}`, pdp.SeverityHigh, pdp.OutcomeRequireApproval)
	card := rule("card", pdp.SeverityLow, pdp.OutcomeWarn)
	from := pdp.Policy{Name: "pii", Description: "PII", StepTypes: []string{"ACTION"}, WhitelistedDomains: []string{"a.com", "b.com"},
		Rules: []pdp.Rule{email, ssn, card}, Enabled: true, Version: 1}
	tighter := ssn
	tighter.Severity, tighter.OnViolation, tighter.Reason = pdp.SeverityCritical, pdp.OutcomeBlock, "SSN {match}"
	phone := rule("phone", pdp.SeverityHigh, pdp.OutcomeBlock)
	to := pdp.Policy{Name: "pii", Description: "PII, tightened", StepTypes: []string{"ACTION", "OUTPUT"}, WhitelistedDomains: []string{"b.com"},
		Rules: []pdp.Rule{tighter, email, phone}, Enabled: false, Version: 7}

	got := Compare(from, to)
	want := Diff{
		Metadata: []FieldChange{{"description", "PII", "PII, tightened"}, {"enabled", true, false}},
		Lists: []ListChange{
			{Field: "step_types", Added: []string{"OUTPUT"}, Removed: []string{}},
			{Field: "whitelisted_domains", Added: []string{}, Removed: []string{"a.com"}},
		},
		Rules: Rules{
			Added:   []IndexedRule{{2, phone}},
			Removed: []IndexedRule{{2, card}},
			Changed: []RuleChange{{FromIndex: 1, ToIndex: 0, Match: ssn.Match, Fields: []FieldChange{
				{"severity", "high", "critical"}, {"on_violation", "require_approval", "block"}, {"reason", "", "SSN {match}"}}}},
			Moved: []RuleMove{{FromIndex: 0, ToIndex: 1, Match: "email"}},
		},
	}
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Errorf("diff:\n got %s\nwant %s", g, w)
	}

	if d := Compare(from, from); !d.Identical {
		t.Errorf("a policy compared with itself: %+v", d)
	}
	// Versions and timestamps are not content.
	other := from
	other.Version = 9
	if d := Compare(from, other); !d.Identical {
		t.Errorf("versions differ only: %+v", d)
	}
	// Two rules with one pattern: the one at the same index pairs first.
	dup := pdp.Policy{Rules: []pdp.Rule{email, email}}
	dup2 := pdp.Policy{Rules: []pdp.Rule{email, rule("email", pdp.SeverityCritical, pdp.OutcomeBlock)}}
	d := Compare(dup, dup2)
	if len(d.Rules.Changed) != 1 || d.Rules.Changed[0].FromIndex != 1 || d.Rules.Changed[0].ToIndex != 1 || len(d.Rules.Moved) != 0 {
		t.Errorf("duplicate patterns: %+v", d.Rules)
	}
}
