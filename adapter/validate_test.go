package adapter

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// baseDocument is a minimal valid document; each case edits a copy.
func baseDocument() Document {
	return Document{
		Name:  new("policy_1"),
		Rules: []RuleDocument{{Match: new("transfer"), Severity: new("low")}},
	}
}

// basePolicy is baseDocument's policy.
func basePolicy() pdp.Policy {
	return pdp.Policy{
		Name:               "policy_1",
		StepTypes:          []string{"ACTION"},
		WhitelistedDomains: []string{},
		Rules: []pdp.Rule{{
			Match: "transfer", Severity: pdp.SeverityLow, OnViolation: pdp.OutcomeWarn,
			Confidence: pdp.DefaultConfidence,
		}},
		Enabled: true,
	}
}

func repeatList(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func rulesOf(n int) []RuleDocument {
	out := make([]RuleDocument, n)
	for i := range out {
		out[i] = RuleDocument{Match: new(fmt.Sprintf("r%d", i)), Severity: new("low")}
	}
	return out
}

// distinctDomains returns n different valid hostnames.
func distinctDomains(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("h%d.example.com", i)
	}
	return out
}

func TestDocumentPolicyNormalizes(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Document)
		want func(*pdp.Policy)
	}{
		{"defaults", func(*Document) {}, func(*pdp.Policy) {}},
		{"step types upper-cased and deduplicated in first-seen order",
			func(d *Document) { d.StepTypes = []string{"thought", "ACTION", "Thought", "policy_check", "action"} },
			func(p *pdp.Policy) { p.StepTypes = []string{"THOUGHT", "ACTION", "POLICY_CHECK"} }},
		{"all six step types",
			func(d *Document) {
				d.StepTypes = []string{"thought", "action", "observation", "output", "error", "policy_check"}
			},
			func(p *pdp.Policy) { p.StepTypes = pdp.StepTypes }},
		{"domains lower-cased and deduplicated",
			func(d *Document) {
				d.WhitelistedDomains = []string{"Example.COM", "api.example.com", "example.com", "xn--bcher-kva.example"}
			},
			func(p *pdp.Policy) {
				p.WhitelistedDomains = []string{"example.com", "api.example.com", "xn--bcher-kva.example"}
			}},
		{"empty domain list", func(d *Document) { d.WhitelistedDomains = []string{} }, func(*pdp.Policy) {}},
		{"severity lower-cased, critical blocks",
			func(d *Document) { d.Rules[0].Severity = new("CRITICAL") },
			func(p *pdp.Policy) {
				p.Rules[0].Severity, p.Rules[0].OnViolation = pdp.SeverityCritical, pdp.OutcomeBlock
			}},
		{"high requires approval",
			func(d *Document) { d.Rules[0].Severity = new("High") },
			func(p *pdp.Policy) {
				p.Rules[0].Severity, p.Rules[0].OnViolation = pdp.SeverityHigh, pdp.OutcomeRequireApproval
			}},
		{"medium warns",
			func(d *Document) { d.Rules[0].Severity = new("medium") },
			func(p *pdp.Policy) { p.Rules[0].Severity, p.Rules[0].OnViolation = pdp.SeverityMedium, pdp.OutcomeWarn }},
		{"explicit on_violation wins and is lower-cased",
			func(d *Document) { d.Rules[0].Severity, d.Rules[0].OnViolation = new("critical"), new("WARN") },
			func(p *pdp.Policy) {
				p.Rules[0].Severity, p.Rules[0].OnViolation = pdp.SeverityCritical, pdp.OutcomeWarn
			}},
		{"require_approval any case",
			func(d *Document) { d.Rules[0].OnViolation = new("Require_Approval") },
			func(p *pdp.Policy) { p.Rules[0].OnViolation = pdp.OutcomeRequireApproval }},
		{"confidence 0", func(d *Document) { d.Rules[0].Confidence = new(0.0) },
			func(p *pdp.Policy) { p.Rules[0].Confidence = 0 }},
		{"confidence 1", func(d *Document) { d.Rules[0].Confidence = new(1.0) },
			func(p *pdp.Policy) { p.Rules[0].Confidence = 1 }},
		{"enabled false", func(d *Document) { d.Enabled = new(false) }, func(p *pdp.Policy) { p.Enabled = false }},
		{"enabled true", func(d *Document) { d.Enabled = new(true) }, func(*pdp.Policy) {}},
		{"empty agent_id is tenant-wide", func(d *Document) { d.AgentID = new("") }, func(*pdp.Policy) {}},
		{"agent_id every allowed character",
			func(d *Document) { d.AgentID = new("Bot_1.prod:eu@acme-co") },
			func(p *pdp.Policy) { p.AgentID = "Bot_1.prod:eu@acme-co" }},
		{"reason and context_requires kept",
			func(d *Document) {
				d.Rules[0].Reason, d.Rules[0].ContextRequires = new("Saw {match}"), new("(wire|ach)")
			},
			func(p *pdp.Policy) { p.Rules[0].Reason, p.Rules[0].ContextRequires = "Saw {match}", "(wire|ach)" }},
		{"context_requires may match the empty string",
			func(d *Document) { d.Rules[0].ContextRequires = new("x*") },
			func(p *pdp.Policy) { p.Rules[0].ContextRequires = "x*" }},
		{"names that only look reserved",
			func(d *Document) { d.Name = new("FinancialSafetyPolicyPolicy") },
			func(p *pdp.Policy) { p.Name = "FinancialSafetyPolicyPolicy" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := baseDocument()
			tt.edit(&d)
			got, err := d.Policy()
			if err != nil {
				t.Fatalf("Policy: %v", err)
			}
			want := basePolicy()
			tt.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Policy() =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

// TestDocumentPolicyBounds puts every bound at its limit (accepted) and one
// past it (rejected).
func TestDocumentPolicyBounds(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Document)
		want string // "" when accepted
	}{
		{"name 64", func(d *Document) { d.Name = new(strings.Repeat("n", 64)) }, ""},
		{"name 65", func(d *Document) { d.Name = new(strings.Repeat("n", 65)) },
			"name: must be 1-64 characters of letters, digits, '_' or '-'"},
		{"description 1024 runes", func(d *Document) { d.Description = new(strings.Repeat("é", 1024)) }, ""},
		{"description 1025 runes", func(d *Document) { d.Description = new(strings.Repeat("é", 1025)) },
			"description: must be at most 1024 characters"},
		{"agent_id 200", func(d *Document) { d.AgentID = new(strings.Repeat("é", 200)) }, ""},
		{"agent_id 201", func(d *Document) { d.AgentID = new(strings.Repeat("a", 201)) },
			"agent_id: must be 1-200 printable characters (letters, digits, spaces, punctuation such as '/' — no control characters)"},
		{"step_types 6", func(d *Document) { d.StepTypes = repeatList("action", 6) }, ""},
		{"step_types 7", func(d *Document) { d.StepTypes = repeatList("action", 7) },
			"step_types: must have at most 6 entries"},
		{"whitelisted_domains 100", func(d *Document) { d.WhitelistedDomains = distinctDomains(100) }, ""},
		{"whitelisted_domains 101", func(d *Document) { d.WhitelistedDomains = distinctDomains(101) },
			"whitelisted_domains: must have at most 100 entries"},
		{"hostname label 63", func(d *Document) { d.WhitelistedDomains = []string{strings.Repeat("a", 63) + ".com"} }, ""},
		{"hostname label 64", func(d *Document) { d.WhitelistedDomains = []string{strings.Repeat("a", 64) + ".com"} },
			"whitelisted_domains[0]: must be a hostname such as example.com (no scheme, port, path or wildcard)"},
		{"hostname 253", func(d *Document) { d.WhitelistedDomains = []string{hostnameOfLength(253)} }, ""},
		{"hostname 254", func(d *Document) { d.WhitelistedDomains = []string{hostnameOfLength(254)} },
			"whitelisted_domains[0]: must be a hostname such as example.com (no scheme, port, path or wildcard)"},
		{"rules 100", func(d *Document) { d.Rules = rulesOf(100) }, ""},
		{"rules 101", func(d *Document) { d.Rules = rulesOf(101) }, "rules: must have at most 100 rules"},
		{"match 1024", func(d *Document) { d.Rules[0].Match = new("[" + strings.Repeat("ж", 1022) + "]") }, ""},
		{"match 1025", func(d *Document) { d.Rules[0].Match = new(strings.Repeat("ж", 1025)) },
			"rules[0].match: must be at most 1024 characters"},
		{"reason 512", func(d *Document) { d.Rules[0].Reason = new(strings.Repeat("r", 512)) }, ""},
		{"reason 513", func(d *Document) { d.Rules[0].Reason = new(strings.Repeat("r", 513)) },
			"rules[0].reason: must be at most 512 characters"},
		{"context_requires 1024", func(d *Document) { d.Rules[0].ContextRequires = new("[" + strings.Repeat("c", 1022) + "]") }, ""},
		{"context_requires 1025", func(d *Document) { d.Rules[0].ContextRequires = new(strings.Repeat("c", 1025)) },
			"rules[0].context_requires: must be at most 1024 characters"},
		{"confidence 0", func(d *Document) { d.Rules[0].Confidence = new(0.0) }, ""},
		{"confidence 1", func(d *Document) { d.Rules[0].Confidence = new(1.0) }, ""},
		{"confidence below 0", func(d *Document) { d.Rules[0].Confidence = new(-0.01) },
			"rules[0].confidence: must be a number from 0.0 to 1.0"},
		{"confidence above 1", func(d *Document) { d.Rules[0].Confidence = new(1.01) },
			"rules[0].confidence: must be a number from 0.0 to 1.0"},
		{"confidence NaN", func(d *Document) { d.Rules[0].Confidence = new(math.NaN()) },
			"rules[0].confidence: must be a number from 0.0 to 1.0"},
		{"confidence +Inf", func(d *Document) { d.Rules[0].Confidence = new(math.Inf(1)) },
			"rules[0].confidence: must be a number from 0.0 to 1.0"},
		{"confidence -Inf", func(d *Document) { d.Rules[0].Confidence = new(math.Inf(-1)) },
			"rules[0].confidence: must be a number from 0.0 to 1.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := baseDocument()
			tt.edit(&d)
			_, err := d.Policy()
			var want []string
			if tt.want != "" {
				want = []string{tt.want}
			}
			if got := problemsOf(t, err); !slices.Equal(got, want) {
				t.Errorf("Policy() problems = %q, want %q", got, want)
			}
		})
	}
}

// hostnameOfLength builds a valid hostname of exactly n characters.
func hostnameOfLength(n int) string {
	var labels []string
	for n > 0 {
		l := min(63, n)
		if n-l == 1 { // a lone dot would be left: shorten this label
			l--
		}
		labels = append(labels, strings.Repeat("a", l))
		n -= l + 1
	}
	h := strings.Join(labels, ".")
	return h
}

func TestHostnameOfLength(t *testing.T) {
	for _, n := range []int{253, 254} {
		if h := hostnameOfLength(n); len(h) != n || !strings.Contains(h, ".") {
			t.Errorf("hostnameOfLength(%d) has length %d: %q", n, len(h), h)
		}
	}
}

func TestDocumentPolicyErrors(t *testing.T) {
	const badHost = "must be a hostname such as example.com (no scheme, port, path or wildcard)"
	tests := []struct {
		name string
		edit func(*Document)
		want []string
	}{
		// name
		{"name missing", func(d *Document) { d.Name = nil }, []string{"name: is required"}},
		{"name empty", func(d *Document) { d.Name = new("") }, []string{"name: is required"}},
		{"name with space", func(d *Document) { d.Name = new("pii protection") },
			[]string{"name: must be 1-64 characters of letters, digits, '_' or '-'"}},
		{"name non-ASCII", func(d *Document) { d.Name = new("naïve") },
			[]string{"name: must be 1-64 characters of letters, digits, '_' or '-'"}},
		{"reserved FinancialSafety", func(d *Document) { d.Name = new("FinancialSafety") },
			[]string{`name: "FinancialSafety" is a reserved name of a built-in policy`}},
		{"reserved lower-case with suffix", func(d *Document) { d.Name = new("financialsafetypolicy") },
			[]string{`name: "financialsafetypolicy" is a reserved name of a built-in policy`}},
		{"reserved upper-case", func(d *Document) { d.Name = new("DATAEXFILTRATION") },
			[]string{`name: "DATAEXFILTRATION" is a reserved name of a built-in policy`}},
		{"reserved with suffix", func(d *Document) { d.Name = new("DataExfiltrationPolicy") },
			[]string{`name: "DataExfiltrationPolicy" is a reserved name of a built-in policy`}},

		// agent_id
		{"agent_id with a tab", func(d *Document) { d.AgentID = new("billing\tbot") },
			[]string{"agent_id: must be 1-200 printable characters (letters, digits, spaces, punctuation such as '/' — no control characters)"}},
		{"agent_id with a line separator", func(d *Document) { d.AgentID = new("a\u2028b") },
			[]string{"agent_id: must be 1-200 printable characters (letters, digits, spaces, punctuation such as '/' — no control characters)"}},

		// step_types
		{"step_types empty", func(d *Document) { d.StepTypes = []string{} },
			[]string{`step_types: must not be empty (leave it out for the default ["ACTION"])`}},
		{"step type unknown", func(d *Document) { d.StepTypes = []string{"action", "act", ""} }, []string{
			"step_types[1]: must be one of thought, action, observation, output, error, policy_check",
			"step_types[2]: must be one of thought, action, observation, output, error, policy_check"}},
		{"step type with a Unicode look-alike", func(d *Document) { d.StepTypes = []string{"obſervation"} },
			[]string{"step_types[0]: must be one of thought, action, observation, output, error, policy_check"}},

		// whitelisted_domains
		{"domain with scheme", func(d *Document) { d.WhitelistedDomains = []string{"https://example.com"} },
			[]string{"whitelisted_domains[0]: " + badHost}},
		{"domain problems", func(d *Document) {
			d.WhitelistedDomains = []string{"ok.com", "example.com:443", "example.com/path", "*.example.com",
				"localhost", "-a.com", "a-.com", "a..com", ".example.com", "example.com.", "exa mple.com", "",
				"bücher.example", "a_b.com"}
		}, []string{
			"whitelisted_domains[1]: " + badHost, "whitelisted_domains[2]: " + badHost,
			"whitelisted_domains[3]: " + badHost, "whitelisted_domains[4]: " + badHost,
			"whitelisted_domains[5]: " + badHost, "whitelisted_domains[6]: " + badHost,
			"whitelisted_domains[7]: " + badHost, "whitelisted_domains[8]: " + badHost,
			"whitelisted_domains[9]: " + badHost, "whitelisted_domains[10]: " + badHost,
			"whitelisted_domains[11]: " + badHost, "whitelisted_domains[12]: " + badHost,
			"whitelisted_domains[13]: " + badHost,
		}},

		// rules
		{"rules missing", func(d *Document) { d.Rules = nil }, []string{"rules: is required"}},
		{"rules empty", func(d *Document) { d.Rules = []RuleDocument{} }, []string{"rules: must contain at least one rule"}},
		{"rule empty", func(d *Document) { d.Rules = append(d.Rules, RuleDocument{}) },
			[]string{"rules[1].match: is required", "rules[1].severity: is required"}},
		{"match empty", func(d *Document) { d.Rules[0].Match = new("") }, []string{"rules[0].match: is required"}},
		{"match Python-only", func(d *Document) { d.Rules = append(d.Rules, RuleDocument{Match: new("a(?=b)"), Severity: new("low")}) },
			[]string{"rules[1].match: look-ahead (?=...) is not supported"}},
		{"match invalid", func(d *Document) { d.Rules[0].Match = new("(abc") },
			[]string{"rules[0].match: invalid regex: missing closing )"}},
		{"match a*", func(d *Document) { d.Rules[0].Match = new("a*") },
			[]string{"rules[0].match: matches the empty string; a rule must match at least one character"}},
		{"match (x|)", func(d *Document) { d.Rules[0].Match = new("(x|)") },
			[]string{"rules[0].match: matches the empty string; a rule must match at least one character"}},
		{"match \\A|x", func(d *Document) { d.Rules[0].Match = new(`\A|x`) },
			[]string{"rules[0].match: matches the empty string; a rule must match at least one character"}},
		{"severity missing", func(d *Document) { d.Rules[0].Severity = nil }, []string{"rules[0].severity: is required"}},
		{"severity unknown", func(d *Document) { d.Rules[0].Severity = new("severe") },
			[]string{"rules[0].severity: must be one of critical, high, medium, low"}},
		{"severity padded", func(d *Document) { d.Rules[0].Severity = new(" low") },
			[]string{"rules[0].severity: must be one of critical, high, medium, low"}},
		{"on_violation unknown", func(d *Document) { d.Rules[0].OnViolation = new("deny") },
			[]string{"rules[0].on_violation: must be one of block, require_approval, warn"}},
		{"context_requires Python-only", func(d *Document) { d.Rules[0].ContextRequires = new(`(?<=x)y`) },
			[]string{"rules[0].context_requires: look-behind (?<=...) is not supported"}},
		{"context_requires invalid", func(d *Document) { d.Rules[0].ContextRequires = new(`[a-`) },
			[]string{"rules[0].context_requires: unterminated character set at position 0"}},
		{"context_requires invalid for RE2", func(d *Document) { d.Rules[0].ContextRequires = new(`a{1001}`) },
			[]string{"rules[0].context_requires: invalid regex: invalid repeat count: `{1001}`"}},

		// NUL bytes in every string field.
		{"NUL everywhere", func(d *Document) {
			d.Name, d.Description, d.AgentID = new("a\x00"), new("a\x00"), new("a\x00")
			d.StepTypes, d.WhitelistedDomains = []string{"action\x00"}, []string{"a.com\x00"}
			d.Rules[0] = RuleDocument{Match: new("a\x00"), Severity: new("low\x00"), OnViolation: new("warn\x00"),
				Reason: new("a\x00"), ContextRequires: new("a\x00")}
		}, []string{
			"name: must not contain NUL bytes", "description: must not contain NUL bytes",
			"agent_id: must not contain NUL bytes", "step_types[0]: must not contain NUL bytes",
			"whitelisted_domains[0]: must not contain NUL bytes", "rules[0].match: must not contain NUL bytes",
			"rules[0].severity: must not contain NUL bytes", "rules[0].on_violation: must not contain NUL bytes",
			"rules[0].reason: must not contain NUL bytes", "rules[0].context_requires: must not contain NUL bytes",
		}},
		// Decode rejects invalid UTF-8 in JSON and YAML; a Document built in
		// Go can still hold it.
		{"invalid UTF-8 everywhere", func(d *Document) {
			d.Name, d.Description, d.AgentID = new("a\xff"), new("a\xff"), new("a\xff")
			d.StepTypes, d.WhitelistedDomains = []string{"\xff"}, []string{"\xff.com"}
			d.Rules[0] = RuleDocument{Match: new("\xff"), Severity: new("\xff"), OnViolation: new("\xff"),
				Reason: new("\xff"), ContextRequires: new("\xff")}
		}, []string{
			"name: must be valid UTF-8", "description: must be valid UTF-8",
			"agent_id: must be valid UTF-8", "step_types[0]: must be valid UTF-8",
			"whitelisted_domains[0]: must be valid UTF-8", "rules[0].match: must be valid UTF-8",
			"rules[0].severity: must be valid UTF-8", "rules[0].on_violation: must be valid UTF-8",
			"rules[0].reason: must be valid UTF-8", "rules[0].context_requires: must be valid UTF-8",
		}},

		{"every problem at once", func(d *Document) {
			d.Name = new("FinancialSafety")
			d.StepTypes = []string{"nope"}
			d.Rules = append(d.Rules, RuleDocument{Match: new(`\1`), Severity: new("x"), Confidence: new(2.0)})
		}, []string{
			`name: "FinancialSafety" is a reserved name of a built-in policy`,
			"step_types[0]: must be one of thought, action, observation, output, error, policy_check",
			`rules[1].match: back-reference \1 is not supported`,
			"rules[1].severity: must be one of critical, high, medium, low",
			"rules[1].confidence: must be a number from 0.0 to 1.0",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := baseDocument()
			tt.edit(&d)
			p, err := d.Policy()
			if err == nil {
				t.Fatalf("Policy() = %+v, want an error", p)
			}
			if got := problemsOf(t, err); !slices.Equal(got, tt.want) {
				t.Errorf("Policy() problems =\n%q\nwant\n%q", got, tt.want)
			}
			if !reflect.DeepEqual(p, pdp.Policy{}) {
				t.Errorf("Policy() returned a policy with its error: %+v", p)
			}
		})
	}
}

func TestDocumentPolicyErrorsAreFieldErrors(t *testing.T) {
	d := baseDocument()
	d.Rules[0].Severity = new("nope")
	_, err := d.Policy()
	var ve *pdp.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("errors.As(%v, *pdp.ValidationError) = false", err)
	}
	if ve.Field != "rules[0].severity" {
		t.Errorf("Field = %q, want rules[0].severity", ve.Field)
	}
}

func TestValidateIsIdempotent(t *testing.T) {
	docs := map[string]Document{
		"base": baseDocument(),
		"everything": {
			Name: new("Everything-1"), Description: new("d"), AgentID: new("bot"),
			StepTypes:          []string{"output", "ACTION", "action"},
			WhitelistedDomains: []string{"A.example.com", "a.example.com"},
			Rules: []RuleDocument{
				{Match: new("x"), Severity: new("HIGH")},
				{Match: new("y"), Severity: new("critical"), OnViolation: new("Warn"), Reason: new("r {match}"),
					ContextRequires: new("z"), Confidence: new(0.0)},
			},
			Enabled: new(false),
		},
	}
	for name, d := range docs {
		t.Run(name, func(t *testing.T) {
			p, err := d.Policy()
			if err != nil {
				t.Fatalf("Policy: %v", err)
			}
			q := clonePolicy(p)
			if err := Validate(&q); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if !reflect.DeepEqual(p, q) {
				t.Errorf("Validate changed the policy:\n%+v\n%+v", p, q)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Run("normalizes a policy loaded from elsewhere", func(t *testing.T) {
		p := pdp.Policy{
			Name: "n", StepTypes: nil, WhitelistedDomains: nil,
			Rules: []pdp.Rule{{Match: "x", Severity: "HIGH"}}, Version: 3,
		}
		if err := Validate(&p); err != nil {
			t.Fatalf("Validate: %v", err)
		}
		want := pdp.Policy{
			Name: "n", StepTypes: []string{"ACTION"}, WhitelistedDomains: []string{},
			Rules:   []pdp.Rule{{Match: "x", Severity: pdp.SeverityHigh, OnViolation: pdp.OutcomeRequireApproval}},
			Version: 3,
		}
		if !reflect.DeepEqual(p, want) {
			t.Errorf("Validate() =\n%+v\nwant\n%+v", p, want)
		}
	})
	t.Run("leaves the policy untouched on error", func(t *testing.T) {
		p := pdp.Policy{Name: "n", StepTypes: []string{"action"}, Rules: []pdp.Rule{{Match: "x", Severity: "nope"}}}
		before := clonePolicy(p)
		if err := Validate(&p); err == nil {
			t.Fatal("Validate accepted a bad severity")
		}
		if !reflect.DeepEqual(p, before) {
			t.Errorf("Validate changed the policy on error: %+v", p)
		}
	})
	t.Run("does not write through the caller's slices", func(t *testing.T) {
		steps := []string{"action"}
		p := pdp.Policy{Name: "n", StepTypes: steps, Rules: []pdp.Rule{{Match: "x", Severity: "LOW"}}}
		rules := p.Rules
		if err := Validate(&p); err != nil {
			t.Fatalf("Validate: %v", err)
		}
		if steps[0] != "action" || rules[0].Severity != "LOW" {
			t.Errorf("Validate modified the caller's slices: %q %+v", steps, rules)
		}
	})
}

func TestIsReservedName(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"FinancialSafety", true},
		{"financialsafety", true},
		{"FINANCIALSAFETY", true},
		{"FinancialSafetyPolicy", true},
		{"financialsafetypolicy", true},
		{"DataExfiltration", true},
		{"DATAEXFILTRATION", true},
		{"dataExfiltrationPOLICY", true},
		{"FinancialSafetyPolicyPolicy", false},
		{"Financial_Safety", false},
		{"FinancialSafety2", false},
		{"Policy", false},
		{"", false},
		{"pii_protection", false},
		{"Financialſafety", false}, // long s: only ASCII case counts
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsReservedName(tt.name); got != tt.want {
				t.Errorf("IsReservedName(%q) = %v, want %v", tt.name, got, tt.want)
			}
		})
	}
}
