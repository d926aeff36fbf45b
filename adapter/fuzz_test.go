package adapter_test

import (
	"testing"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// FuzzPolicyModule proves that no valid policy can change the structure of
// its module (STYLE habit 5): whatever the name, agent id, patterns and
// reason, the module has the policy's package, no imports, only hits and
// _r<i>_(match|context|found) rules (one hits rule per policy rule),
// refers to no data but the action text and its folded form, re-parses to
// itself, and compiles with the library. The seed corpus runs in plain
// go test.
func FuzzPolicyModule(f *testing.F) {
	f.Add("pii_protection", "", "(email|phone)", "(external|public)", "", uint8(2), uint8(0))
	f.Add("pii_protection", "billing-bot", "(email|phone|ssn|passport|routing)", "", "PII blocked for billing-bot: {match}", uint8(0), uint8(0))
	f.Add("default", "a.b:c@d", `"} else := true {`, "", hostileText, uint8(0), uint8(2))
	f.Add("import", "..", "import data\\.x", "package evil", "{match}{match}\n}", uint8(1), uint8(1))
	f.Add("x-y", ".", "`{3}\n(#|\")", `\d{3}-\d{2}`, "\n# METADATA\n# labels: {policy: evil}\n", uint8(3), uint8(0))
	f.Add("violations", "_r0_match", `_r0_match|violations|data\.gatehouse`, "", "Policy 'violations' violated: {match}", uint8(7), uint8(3))
	f.Add("hits", "reason", `hits|reason|v\b`, "", "{match} hits v reason", uint8(5), uint8(1))
	f.Add("package", "input", `input\.x|data\.y`, `"\}\}`, `"}}]) ; data.gatehouse.decision`, uint8(4), uint8(0))
	f.Add("_r1_context", "@@", `</script><b>&amp;\x{2028}`, "\u2028", "<b>&amp;</b> \u2029 \u202e {match}", uint8(5), uint8(2))
	f.Add("with", ":", `straße|ǅ|σς|\x{212A}elvin`, "ſ", "ünïcödé ☃ 𝔘 {match}", uint8(6), uint8(1))
	f.Add("some", "every", `(?-i:ABC)|\bq\b`, "(?s).", "\\\"\\u0000 `raw` ${x} %s {{match}}", uint8(2), uint8(0))
	f.Add("controls", "", "a\x10b\x7f|\ufeff\U000e0001", "\a\v", "\x10\a\v\x7f\ufeff\U000e0001\U0001F600\u00ad {match}", uint8(3), uint8(1))
	f.Add("a", "a", "(?=x)", "", "", uint8(0), uint8(0)) // invalid: skipped

	f.Fuzz(func(t *testing.T, name, agent, match, context, reason string, severity, extraRules uint8) {
		severities := []pdp.Severity{pdp.SeverityCritical, pdp.SeverityHigh, pdp.SeverityMedium, pdp.SeverityLow}
		outcomes := []pdp.Outcome{"", pdp.OutcomeBlock, pdp.OutcomeRequireApproval, pdp.OutcomeWarn}
		rule := pdp.Rule{
			Match:           match,
			ContextRequires: context,
			Reason:          reason,
			Severity:        severities[severity%4],
			OnViolation:     outcomes[severity/4%4],
			Confidence:      float64(severity) / 255,
		}
		p := pdp.Policy{Name: name, AgentID: agent, Rules: []pdp.Rule{rule}}
		// More rules, with match and context swapped, so indexes and
		// helper names beyond _r0_ are exercised too.
		for i := range int(extraRules % 4) {
			r := rule
			if i%2 == 0 && context != "" {
				r.Match, r.ContextRequires = context, match
			}
			p.Rules = append(p.Rules, r)
		}
		if err := adapter.Validate(&p); err != nil {
			t.Skip(err)
		}
		const tenant = "t.1:@x"
		m, err := adapter.PolicyModule(tenant, &p)
		if err != nil {
			t.Fatalf("PolicyModule of a valid policy: %v", err)
		}
		want := adapter.PolicyPackage(tenant, p.AgentID, p.Name)
		if !m.Package.Equal(want) || !m.Parsed.Package.Path.Equal(want) {
			t.Fatalf("package %v (parsed %v), want %v", m.Package, m.Parsed.Package.Path, want)
		}
		checkModuleShape(t, m, &p)
		compileWithLibrary(t, m)
	})
}
