package adapter

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// problemsOf lists the "field: reason" messages of a validation error, in
// order; it fails the test if err is not one.
func problemsOf(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var ves pdp.ValidationErrors
	if errors.As(err, &ves) {
		out := make([]string, len(ves))
		for i, e := range ves {
			out[i] = e.Error()
		}
		return out
	}
	var ve *pdp.ValidationError
	if errors.As(err, &ve) {
		return []string{ve.Error()}
	}
	t.Fatalf("error %v (%T) is not a validation error", err, err)
	return nil
}

// The two policies of the seed walkthrough (seed-agent-scoped-policies.txt).
const (
	seedTenantJSON = `{
  "name": "pii_protection",
  "description": "Warn on PII patterns",
  "rules": [{
    "match": "(email|phone)",
    "context_requires": "(external|public)",
    "severity": "medium",
    "on_violation": "warn"
  }]
}`
	seedTenantYAML = `name: pii_protection
description: Warn on PII patterns
rules:
  - match: "(email|phone)"
    context_requires: "(external|public)"
    severity: medium
    on_violation: warn
`
	seedAgentJSON = `{
  "name": "pii_protection",
  "description": "Block PII outright for billing-bot",
  "agent_id": "billing-bot",
  "rules": [{
    "match": "(email|phone|ssn|passport|routing)",
    "severity": "critical",
    "on_violation": "block",
    "reason": "PII blocked for billing-bot: {match}"
  }]
}`
	seedAgentYAML = `name: pii_protection
description: Block PII outright for billing-bot
agent_id: billing-bot
rules:
  - match: (email|phone|ssn|passport|routing)
    severity: critical
    on_violation: block
    reason: "PII blocked for billing-bot: {match}"
`
)

var (
	seedTenantPolicy = pdp.Policy{
		Name:               "pii_protection",
		Description:        "Warn on PII patterns",
		StepTypes:          []string{"ACTION"},
		WhitelistedDomains: []string{},
		Rules: []pdp.Rule{{
			Match:           "(email|phone)",
			ContextRequires: "(external|public)",
			Severity:        pdp.SeverityMedium,
			OnViolation:     pdp.OutcomeWarn,
			Confidence:      pdp.DefaultConfidence,
		}},
		Enabled: true,
	}
	seedAgentPolicy = pdp.Policy{
		Name:               "pii_protection",
		Description:        "Block PII outright for billing-bot",
		AgentID:            "billing-bot",
		StepTypes:          []string{"ACTION"},
		WhitelistedDomains: []string{},
		Rules: []pdp.Rule{{
			Match:       "(email|phone|ssn|passport|routing)",
			Severity:    pdp.SeverityCritical,
			OnViolation: pdp.OutcomeBlock,
			Reason:      "PII blocked for billing-bot: {match}",
			Confidence:  pdp.DefaultConfidence,
		}},
		Enabled: true,
	}
)

func TestFormatFromContentType(t *testing.T) {
	tests := []struct {
		ct   string
		want Format
	}{
		{"application/yaml", FormatYAML},
		{"application/x-yaml", FormatYAML},
		{"text/yaml", FormatYAML},
		{"text/x-yaml", FormatYAML},
		{"Application/YAML; charset=utf-8", FormatYAML},
		{" text/yaml ;", FormatYAML},
		{"application/json", FormatJSON},
		{"application/json; charset=utf-8", FormatJSON},
		{"text/plain", FormatJSON},
		{"", FormatJSON},
		{"garbage;;;", FormatJSON},
	}
	for _, tt := range tests {
		t.Run(tt.ct, func(t *testing.T) {
			if got := FormatFromContentType(tt.ct); got != tt.want {
				t.Errorf("FormatFromContentType(%q) = %v, want %v", tt.ct, got, tt.want)
			}
		})
	}
}

func TestDecodeSeedPolicies(t *testing.T) {
	tests := []struct {
		name   string
		doc    string
		format Format
		want   pdp.Policy
	}{
		{"tenant JSON", seedTenantJSON, FormatJSON, seedTenantPolicy},
		{"tenant YAML", seedTenantYAML, FormatYAML, seedTenantPolicy},
		{"agent JSON", seedAgentJSON, FormatJSON, seedAgentPolicy},
		{"agent YAML", seedAgentYAML, FormatYAML, seedAgentPolicy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Decode([]byte(tt.doc), tt.format)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			p, err := d.Policy()
			if err != nil {
				t.Fatalf("Policy: %v", err)
			}
			if !reflect.DeepEqual(p, tt.want) {
				t.Errorf("Policy() =\n%+v\nwant\n%+v", p, tt.want)
			}
		})
	}
}

func TestDecodeEveryField(t *testing.T) {
	const js = `{"name":"n","description":"d","agent_id":"a","step_types":["action","thought"],
		"whitelisted_domains":["example.com"],"enabled":false,
		"rules":[{"match":"m","severity":"low","on_violation":"warn","reason":"r","context_requires":"c","confidence":0.5}]}`
	// YAML 1.1 (sigs.k8s.io/yaml): a bare n is the boolean false, so quote it.
	const ym = `
name: "n"
description: d
agent_id: a
step_types: [action, thought]
whitelisted_domains:
  - example.com
enabled: false
rules:
  - {match: m, severity: low, on_violation: warn, reason: r, context_requires: c, confidence: 0.5}
`
	want := &Document{
		Name: new("n"), Description: new("d"), AgentID: new("a"),
		StepTypes: []string{"action", "thought"}, WhitelistedDomains: []string{"example.com"},
		Enabled: new(false),
		Rules: []RuleDocument{{
			Match: new("m"), Severity: new("low"), OnViolation: new("warn"),
			Reason: new("r"), ContextRequires: new("c"), Confidence: new(0.5),
		}},
	}
	for _, tt := range []struct {
		name   string
		doc    string
		format Format
	}{{"JSON", js, FormatJSON}, {"YAML", ym, FormatYAML}} {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Decode([]byte(tt.doc), tt.format)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(d, want) {
				t.Errorf("Decode() =\n%+v\nwant\n%+v", d, want)
			}
		})
	}
}

func TestDecodeNullIsAbsent(t *testing.T) {
	d, err := Decode([]byte(`{"name":"n","description":null,"agent_id":null,"step_types":null,
		"whitelisted_domains":null,"enabled":null,"rules":[{"match":"m","severity":"low",
		"on_violation":null,"reason":null,"context_requires":null,"confidence":null}]}`), FormatJSON)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	want := &Document{Name: new("n"), Rules: []RuleDocument{{Match: new("m"), Severity: new("low")}}}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("Decode() = %+v, want %+v", d, want)
	}
}

func TestDecodeKeepsEmptyListsApartFromAbsent(t *testing.T) {
	d, err := Decode([]byte(`{"step_types":[],"whitelisted_domains":[],"rules":[]}`), FormatJSON)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if d.StepTypes == nil || d.WhitelistedDomains == nil || d.Rules == nil {
		t.Errorf("empty lists decoded as nil: %+v", d)
	}
	d, err = Decode([]byte(`{}`), FormatJSON)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if d.StepTypes != nil || d.WhitelistedDomains != nil || d.Rules != nil {
		t.Errorf("absent lists decoded as non-nil: %+v", d)
	}
}

func TestDecodeUTF8(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string
	}{
		{"valid pair", `{"description":"\ud83d\ude00 é"}`, nil},
		{"escaped backslash before u", `{"description":"\\ud800"}`, nil},
		{"invalid byte", "{\"description\":\"a\xffb\"}", []string{"description: must be valid UTF-8"}},
		{"lone high surrogate", `{"description":"\ud800"}`, []string{"description: must be valid UTF-8"}},
		{"high surrogate then text", `{"description":"\ud800abcdef"}`, []string{"description: must be valid UTF-8"}},
		{"lone low surrogate", `{"description":"\udc00"}`, []string{"description: must be valid UTF-8"}},
		{"reversed pair", `{"description":"\ude00\ud83d"}`, []string{"description: must be valid UTF-8"}},
		{"in a rule", `{"rules":[{"reason":"\udfff"}]}`, []string{"rules[0].reason: must be valid UTF-8"}},
		{"in a list", "{\"step_types\":[\"action\",\"\xc3\"]}", []string{"step_types[1]: must be valid UTF-8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.doc), FormatJSON)
			if got := problemsOf(t, err); !slices.Equal(got, tt.want) {
				t.Errorf("Decode() problems = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name   string
		doc    string
		format Format
		want   []string
	}{
		// Unknown and repeated fields.
		{"unknown top-level field", `{"name":"x","nmae":"y"}`, FormatJSON, []string{`unknown field "nmae" (policies are strict: a misspelt field would silently weaken the policy)`}},
		{"unknown rule field", `{"rules":[{"match":"a"},{"match":"b","sevrity":"low"}]}`, FormatJSON,
			[]string{`rules[1]: unknown field "sevrity" (policies are strict: a misspelt field would silently weaken the policy)`}},
		{"field names are case-sensitive", `{"Name":"x"}`, FormatJSON, []string{`unknown field "Name" (policies are strict: a misspelt field would silently weaken the policy)`}},
		{"long unknown field is shortened", `{"` + strings.Repeat("x", 70) + `":1}`, FormatJSON,
			[]string{`unknown field "` + strings.Repeat("x", 64) + `…" (policies are strict: a misspelt field would silently weaken the policy)`}},
		{"duplicate top-level field", `{"name":"a","name":"b"}`, FormatJSON, []string{`duplicate field "name"`}},
		{"duplicate rule field", `{"rules":[{"severity":"critical","severity":"low"}]}`, FormatJSON,
			[]string{`rules[0]: duplicate field "severity"`}},
		{"escaped duplicate", `{"name":"a","n\u0061me":"b"}`, FormatJSON, []string{`duplicate field "name"`}},

		// Wrong JSON types.
		{"name number", `{"name":1}`, FormatJSON, []string{"name: must be a string"}},
		{"description bool", `{"description":true}`, FormatJSON, []string{"description: must be a string"}},
		{"agent_id object", `{"agent_id":{}}`, FormatJSON, []string{"agent_id: must be a string"}},
		{"step_types string", `{"step_types":"action"}`, FormatJSON, []string{"step_types: must be an array"}},
		{"step_types element", `{"step_types":["action",1,null]}`, FormatJSON,
			[]string{"step_types[1]: must be a string", "step_types[2]: must be a string"}},
		{"whitelisted_domains object", `{"whitelisted_domains":{"a":1}}`, FormatJSON,
			[]string{"whitelisted_domains: must be an array"}},
		{"whitelisted_domains element", `{"whitelisted_domains":[["a.com"]]}`, FormatJSON,
			[]string{"whitelisted_domains[0]: must be a string"}},
		{"rules object", `{"rules":{"match":"a"}}`, FormatJSON, []string{"rules: must be an array"}},
		{"rule not an object", `{"rules":["a",null,[]]}`, FormatJSON,
			[]string{"rules[0]: must be an object", "rules[1]: must be an object", "rules[2]: must be an object"}},
		{"severity number", `{"rules":[{"severity":3}]}`, FormatJSON, []string{"rules[0].severity: must be a string"}},
		{"match array", `{"rules":[{"match":["a"]}]}`, FormatJSON, []string{"rules[0].match: must be a string"}},
		{"confidence string", `{"rules":[{"confidence":"0.9"}]}`, FormatJSON, []string{"rules[0].confidence: must be a number"}},
		{"confidence bool", `{"rules":[{"confidence":true}]}`, FormatJSON, []string{"rules[0].confidence: must be a number"}},
		{"enabled string", `{"enabled":"true"}`, FormatJSON, []string{"enabled: must be a boolean"}},
		{"enabled number", `{"enabled":1}`, FormatJSON, []string{"enabled: must be a boolean"}},
		{"every problem at once", `{"name":1,"x":2,"rules":[{"severity":3,"y":4},5]}`, FormatJSON, []string{
			"name: must be a string", `unknown field "x" (policies are strict: a misspelt field would silently weaken the policy)`, "rules[0].severity: must be a string",
			`rules[0]: unknown field "y" (policies are strict: a misspelt field would silently weaken the policy)`, "rules[1]: must be an object"}},

		// The document as a whole.
		{"null document", `null`, FormatJSON, []string{"the policy document must be an object"}},
		{"array document", `[{"name":"x"}]`, FormatJSON, []string{"the policy document must be an object"}},
		{"string document", `"x"`, FormatJSON, []string{"the policy document must be an object"}},
		{"empty", ``, FormatJSON, []string{"the policy document is empty"}},
		{"whitespace", " \n\t", FormatJSON, []string{"the policy document is empty"}},
		{"truncated", `{"name":`, FormatJSON, []string{"invalid JSON: unexpected end of input"}},
		{"syntax error", `{"name" "x"}`, FormatJSON, []string{"invalid JSON at byte 9: invalid character '\"' after object key"}},
		{"second document", `{} {}`, FormatJSON, []string{"unexpected data after the policy document"}},
		{"trailing garbage", `{}x`, FormatJSON, []string{"unexpected data after the policy document"}},
		{"trailing bracket", `{}]`, FormatJSON, []string{"unexpected data after the policy document"}},

		// YAML: same schema, same messages.
		{"YAML unknown field", "name: x\nrules:\n  - match: a\n    sevrity: low\n", FormatYAML,
			[]string{`rules[0]: unknown field "sevrity" (policies are strict: a misspelt field would silently weaken the policy)`}},
		{"YAML wrong type", "name: [x]\nrules:\n  - severity: 3\n", FormatYAML,
			[]string{"name: must be a string", "rules[0].severity: must be a string"}},
		{"YAML number name", "name: 2024\n", FormatYAML, []string{"name: must be a string"}},
		{"YAML 1.1 boolean name", "name: no\n", FormatYAML, []string{"name: must be a string"}},
		{"YAML duplicate key", "name: a\nname: b\n", FormatYAML,
			[]string{`invalid YAML: unmarshal errors: line 2: key "name" already set in map`}},
		{"YAML second document", "name: a\n---\nname: b\n", FormatYAML,
			[]string{"unexpected data after the policy document: only one YAML document is allowed"}},
		{"YAML empty second document", "name: a\n---\n", FormatYAML,
			[]string{"unexpected data after the policy document: only one YAML document is allowed"}},
		{"YAML garbage after end marker", "name: a\n...\nrules: [\n", FormatYAML,
			[]string{"invalid YAML: line 2: did not find expected <document start>"}},
		{"YAML list", "- name: a\n", FormatYAML, []string{"the policy document must be an object"}},
		{"YAML scalar", "hello\n", FormatYAML, []string{"the policy document must be an object"}},
		{"YAML empty", "", FormatYAML, []string{"the policy document is empty"}},
		{"YAML comment only", "# nothing\n", FormatYAML, []string{"the policy document is empty"}},
		{"YAML syntax error", "name: [a\n", FormatYAML,
			[]string{"invalid YAML: line 1: did not find expected ',' or ']'"}},
		{"YAML invalid UTF-8", "name: \xff\n", FormatYAML, []string{"invalid YAML: invalid leading UTF-8 octet"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Decode([]byte(tt.doc), tt.format)
			if err == nil {
				t.Fatalf("Decode() = %+v, want an error", d)
			}
			if d != nil {
				t.Errorf("Decode() returned a document with its error")
			}
			if got := problemsOf(t, err); !slices.Equal(got, tt.want) {
				t.Errorf("Decode() problems =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestDecodeFieldOfProblems(t *testing.T) {
	_, err := Decode([]byte(`{"rules":[{"sevrity":"low"}]}`), FormatJSON)
	var ve *pdp.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("errors.As(%v, *pdp.ValidationError) = false", err)
	}
	if ve.Field != "rules[0]" || ve.Reason != `unknown field "sevrity" (policies are strict: a misspelt field would silently weaken the policy)` {
		t.Errorf("got Field %q Reason %q", ve.Field, ve.Reason)
	}
}

func TestDecodeConfidenceOutOfFloatRange(t *testing.T) {
	d, err := Decode([]byte(`{"rules":[{"confidence":1e400}]}`), FormatJSON)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if c := d.Rules[0].Confidence; c == nil || !math.IsInf(*c, 1) {
		t.Fatalf("confidence = %v, want +Inf", c)
	}
	_, err = d.Policy()
	if got := problemsOf(t, err); !slices.Contains(got, "rules[0].confidence: must be a number from 0.0 to 1.0") {
		t.Errorf("Policy() problems = %q", got)
	}
}

// The schema Decode accepts is written twice: as json tags (for encoding)
// and as the field tables (for decoding). This keeps the two in step.
func TestDecodeSchemaMatchesTags(t *testing.T) {
	tagNames := func(v any) []string {
		var names []string
		for f := range reflect.TypeOf(v).Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			names = append(names, name)
		}
		slices.Sort(names)
		return names
	}
	keys := func(m map[string]fieldSetter) []string {
		out := make([]string, 0, len(m))
		for k := range m {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	if got, want := keys(documentFields(&Document{})), tagNames(Document{}); !slices.Equal(got, want) {
		t.Errorf("documentFields keys %q, json tags %q", got, want)
	}
	if got, want := keys(ruleFields(&RuleDocument{})), tagNames(RuleDocument{}); !slices.Equal(got, want) {
		t.Errorf("ruleFields keys %q, json tags %q", got, want)
	}
}

func TestDocumentJSONRoundTrip(t *testing.T) {
	for _, d := range []*Document{
		{},
		{StepTypes: []string{}, WhitelistedDomains: []string{}, Rules: []RuleDocument{}},
		{Name: new("n"), Enabled: new(false), Rules: []RuleDocument{{Confidence: new(0.0)}}},
	} {
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(b, FormatJSON)
		if err != nil {
			t.Fatalf("Decode(%s): %v", b, err)
		}
		if !reflect.DeepEqual(got, d) {
			t.Errorf("round trip of %s = %+v, want %+v", b, got, d)
		}
	}
}

// FuzzDecodePolicy checks that no input panics, that every error is a
// validation error, and that whatever Document.Policy accepts passes
// Validate unchanged.
func FuzzDecodePolicy(f *testing.F) {
	for _, s := range []string{seedTenantJSON, seedAgentJSON, `{"rules":[{"match":"(?=x)","severity":"HIGH"}]}`, `{}`, `[]`} {
		f.Add([]byte(s), false)
	}
	for _, s := range []string{seedTenantYAML, seedAgentYAML, "name: a\n---\n"} {
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, yaml bool) {
		format := FormatJSON
		if yaml {
			format = FormatYAML
		}
		d, err := Decode(data, format)
		if err != nil {
			problemsOf(t, err)
			return
		}
		p, err := d.Policy()
		if err != nil {
			problemsOf(t, err)
			return
		}
		q := clonePolicy(p)
		if err := Validate(&q); err != nil {
			t.Fatalf("Validate rejected the output of Policy: %v", err)
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("Validate changed the output of Policy:\n%+v\n%+v", p, q)
		}
	})
}

func clonePolicy(p pdp.Policy) pdp.Policy {
	p.StepTypes = slices.Clone(p.StepTypes)
	p.WhitelistedDomains = slices.Clone(p.WhitelistedDomains)
	p.Rules = slices.Clone(p.Rules)
	return p
}
