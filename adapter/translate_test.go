package adapter_test

import (
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/pdp"
	gatehouserego "github.com/gatehouse-pdp/gatehouse/rego"
)

var update = flag.Bool("update", false, "rewrite golden files")

// The two policies of the seed walkthrough (seed-agent-scoped-policies.txt),
// verbatim as the curl examples send them.
const (
	seedTenantPolicy = `{
  "name": "pii_protection",
  "description": "Warn on PII patterns",
  "rules": [{
    "match": "(email|phone)",
    "context_requires": "(external|public)",
    "severity": "medium",
    "on_violation": "warn"
  }]
}`
	seedAgentPolicy = `{
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
)

// hostileText is written to look like Rego, YAML and HTML from every angle:
// if any of it were pasted into the module instead of carried as a string
// term, the golden file (and the structural checks) would show it.
const hostileText = "\"} else := true {\n# METADATA\n# labels: {policy: evil}\nimport data\npackage evil\n" +
	"`raw` \\\" {match}{match} {match} {{match}} </script><b>&amp;&lt; " +
	"ünïcödé ☃ 𝔘 ſ K σς \u2028\u2029 \u202e"

// goldenCases are the policies whose translations are pinned under
// testdata/golden. Each is validated first, as the registry would.
func goldenCases(t *testing.T) []struct {
	name   string
	tenant string
	policy pdp.Policy
} {
	t.Helper()
	rule := func(match, severity string) pdp.Rule {
		return pdp.Rule{Match: match, Severity: pdp.Severity(severity), Confidence: pdp.DefaultConfidence}
	}
	withReason := func(r pdp.Rule, reason string) pdp.Rule { r.Reason = reason; return r }
	withContext := func(r pdp.Rule, ctx string) pdp.Rule { r.ContextRequires = ctx; return r }

	return []struct {
		name   string
		tenant string
		policy pdp.Policy
	}{
		{"seed_tenant", "t1", decodePolicy(t, seedTenantPolicy)},
		{"seed_agent", "t1", decodePolicy(t, seedAgentPolicy)},
		{"context_requires", "t1", pdp.Policy{Name: "export_guard", Rules: []pdp.Rule{
			withReason(withContext(rule(`(ssn|passport|routing)`, "high"), `(upload|export)\.`), "Export of {match} needs approval"),
			withContext(rule(`api[_-]?key`, "critical"), `\d{3}-\d{2}`),
		}}},
		{"reason_without_match", "t1", pdp.Policy{Name: "no_secrets", Rules: []pdp.Rule{
			withReason(rule(`secret`, "LOW"), "Secrets must not leave the tenant"),
		}}},
		{"no_reason", "t1", pdp.Policy{Name: "plain", Rules: []pdp.Rule{
			rule(`(delete|drop)_table`, "medium"),
		}}},
		{"no_precheck", "t1", pdp.Policy{Name: "digits", Rules: []pdp.Rule{
			withReason(rule(`\d{3}-\d{2}`, "high"), "SSN-like number {match}"),
			withContext(rule(`[0-9a-f]{16}`, "low"), `.`),
		}}},
		{"many_rules", "t1", pdp.Policy{Name: "many", Rules: []pdp.Rule{
			{Match: `straße|ǅ|kelvin`, Severity: "critical", OnViolation: "warn", Confidence: 0},
			{Match: `AKIA[0-9A-Z]{16}`, Severity: "high", OnViolation: "block", Confidence: 1},
			{Match: `(?:^|\W)pass(word)?(?:\W|\Z)`, Severity: "low", OnViolation: "require_approval", Confidence: 0.5},
			{Match: `\d{3}-\d{2}|bıtcoin|rm\s+-rf`, Severity: "low", OnViolation: "warn", Confidence: 0.5},
		}}},
		{"hostile_default", "..", pdp.Policy{Name: "default", AgentID: "a.b:c@d", Rules: []pdp.Rule{
			withReason(rule(regexpQuote(hostileText), "critical"), hostileText),
			withContext(rule(`"\}|\{match\}|`+"`", "high"), `package evil|import data|# METADATA`),
		}}},
		{"hostile_import", ".", pdp.Policy{Name: "import", AgentID: "..", Rules: []pdp.Rule{
			withReason(rule(`import data\.|package\s+evil`, "medium"), "{match}"),
		}}},
		{"hostile_dash", "tenant:a@b.c", pdp.Policy{Name: "x-y", AgentID: ".", Rules: []pdp.Rule{
			withReason(rule("`{3}\n(#|\")", "low"), "\n}\n{match}\n"),
		}}},
		{"control_characters", "t1", pdp.Policy{Name: "controls", Rules: []pdp.Rule{
			withReason(rule("a\x10b\x7f\ufeff|\a\v\U000e0001x", "low"), "\a\v\x10\x7f\ufeff\U000e0001\U0001F600 \u00ad {match}"),
		}}},
		{"hostile_rule_names", "t1", pdp.Policy{Name: "violations", AgentID: "_r0_match", Rules: []pdp.Rule{
			withReason(rule(`_r0_match|violations|data\.gatehouse`, "low"), `Policy 'violations' violated: {match}`),
		}}},
	}
}

// regexpQuote quotes s for a pattern, keeping newlines and quotes as they
// are so the pattern itself stays hostile.
func regexpQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\.+*?()|[]{}^$`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func decodePolicy(t *testing.T, doc string) pdp.Policy {
	t.Helper()
	d, err := adapter.Decode([]byte(doc), adapter.FormatJSON)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	p, err := d.Policy()
	if err != nil {
		t.Fatalf("policy: %v", err)
	}
	return p
}

func TestPolicyModuleGolden(t *testing.T) {
	for _, tc := range goldenCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.policy
			if err := adapter.Validate(&p); err != nil {
				t.Fatalf("test policy is invalid: %v", err)
			}
			m, err := adapter.PolicyModule(tc.tenant, &p)
			if err != nil {
				t.Fatalf("PolicyModule: %v", err)
			}
			file := filepath.Join("testdata", "golden", tc.name+".rego")
			if *update {
				if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, []byte(m.Text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run go test ./adapter -run Golden -update)", err)
			}
			if m.Text != string(want) {
				t.Errorf("module text differs from %s (run with -update to accept):\n--- got\n%s\n--- want\n%s", file, m.Text, want)
			}

			again, err := adapter.PolicyModule(tc.tenant, &p)
			if err != nil || again.Text != m.Text {
				t.Errorf("translation is not deterministic (err %v)", err)
			}
			if want := adapter.PolicyPackage(tc.tenant, p.AgentID, p.Name); !m.Package.Equal(want) || !m.Parsed.Package.Path.Equal(want) {
				t.Errorf("package = %v, parsed %v, want %v", m.Package, m.Parsed.Package.Path, want)
			}
			if want := adapter.PolicyPath(tc.tenant, p.AgentID, p.Name); m.Path != want {
				t.Errorf("path = %q, want %q", m.Path, want)
			}
			checkModuleShape(t, m, &p)
			compileWithLibrary(t, m)
		})
	}
}

// checkModuleShape checks what no policy text may change: the package, no
// imports, only hits and _r<i>_(match|context|found) rules, exactly one
// hits rule per policy rule, each labelled, yielding the hit
// decision._ranked would build (checkHit), and no data reference but the
// action text and its folded form. The text must re-parse to Parsed.
func checkModuleShape(t testing.TB, m *adapter.Module, p *pdp.Policy) {
	t.Helper()
	mod := m.Parsed
	if len(mod.Imports) != 0 {
		t.Errorf("module has imports: %v", mod.Imports)
	}
	hits := 0
	helpers := map[string]int{}
	found := map[string]int{}
	for _, r := range mod.Rules {
		ref := r.Head.Ref()
		name := ref.String()
		switch {
		case name == "hits":
			hits++
			if r.Head.Key == nil || r.Head.Value != nil {
				t.Errorf("hits is not a partial set rule: %v", r.Head)
			}
			checkLabels(t, r, p)
		case helperName(name):
			helpers[name]++
			if r.Head.Value == nil || !r.Head.Value.Equal(ast.BooleanTerm(true)) {
				t.Errorf("helper %s is not a boolean rule: %v", name, r.Head)
			}
		case foundName(name):
			// The literal-alternation finder: exactly one else (the regex).
			found[name]++
			if r.Else == nil || r.Else.Else != nil {
				t.Errorf("finder %s must have exactly one else", name)
			}
		default:
			t.Errorf("unexpected rule head %q", name)
		}
		if len(r.Head.Args) != 0 || r.Default || (r.Else != nil && !foundName(name)) {
			t.Errorf("rule %s: unexpected function, else or default", name)
		}
	}
	if hits != len(p.Rules) {
		t.Errorf("%d hits rules for %d policy rules", hits, len(p.Rules))
	}
	// One helper (of one body, trying each literal) for exactly the
	// patterns that have a pre-check of two or more literals (a single
	// literal is checked inline in the hits rule).
	wantHelpers := map[string]int{}
	for i, r := range p.Rules {
		if lits, ok := adapter.Literals(r.Match); ok && len(lits) > 1 {
			wantHelpers[fmt.Sprintf("_r%d_match", i)] = 1
		}
		if lits, ok := adapter.Literals(r.ContextRequires); ok && r.ContextRequires != "" && len(lits) > 1 {
			wantHelpers[fmt.Sprintf("_r%d_context", i)] = 1
		}
	}
	if !maps.Equal(helpers, wantHelpers) {
		t.Errorf("pre-check rules %v, want %v", helpers, wantHelpers)
	}
	for name, n := range found {
		if n != 1 {
			t.Errorf("finder %s defined %d times", name, n)
		}
	}
	textRef, foldedRef := ast.MustParseRef("data.gatehouse.text.text"), ast.MustParseRef("data.gatehouse.text.folded")
	asciiRef := ast.MustParseRef("data.gatehouse.text.ascii")
	for _, r := range mod.Rules {
		ast.WalkRefs(r, func(ref ast.Ref) bool {
			if ref.HasPrefix(ast.DefaultRootRef) && !ref.Equal(textRef) && !ref.Equal(foldedRef) && !ref.Equal(asciiRef) {
				t.Errorf("unexpected data reference %v", ref)
			}
			if ref.HasPrefix(ast.InputRootRef) {
				t.Errorf("unexpected input reference %v", ref)
			}
			return false
		})
	}
	// User text survives the round trip through the module source intact.
	strs := map[string]bool{}
	ast.WalkTerms(mod, func(x *ast.Term) bool {
		if s, ok := x.Value.(ast.String); ok {
			strs[string(s)] = true
		}
		return false
	})
	for i, r := range p.Rules {
		want := []string{mustTranslate(t, r.Match)}
		if r.ContextRequires != "" {
			want = append(want, mustTranslate(t, r.ContextRequires))
		}
		if r.Reason != "" {
			want = append(want, r.Reason)
		}
		for _, w := range want {
			if !strs[w] {
				t.Errorf("rules[%d]: string %q is not in the module", i, w)
			}
		}
	}
	reparsed, err := ast.ParseModuleWithOpts(m.Path, m.Text, ast.ParserOptions{ProcessAnnotation: true, RegoVersion: ast.RegoV1})
	if err != nil {
		t.Fatalf("module text does not parse: %v", err)
	}
	if !reparsed.Equal(mod) {
		t.Errorf("module text re-parses to a different module:\n%s", m.Text)
	}
}

var foundPattern = regexp.MustCompile(`^_r[0-9]+_found$`)

func foundName(name string) bool { return foundPattern.MatchString(name) }

func helperName(name string) bool {
	rest, ok := strings.CutPrefix(name, "_r")
	if !ok {
		return false
	}
	digits := len(rest) - len(strings.TrimLeft(rest, "0123456789"))
	if digits == 0 {
		return false
	}
	switch rest[digits:] {
	case "_match", "_context":
		return true
	}
	return false
}

// checkLabels checks the # METADATA labels of a hits rule against the
// policy rule its head names, and the head's constants against the rule.
func checkLabels(t testing.TB, r *ast.Rule, p *pdp.Policy) {
	t.Helper()
	if len(r.Annotations) != 1 {
		t.Errorf("hits rule has %d annotations, want 1", len(r.Annotations))
		return
	}
	hit, ok := r.Head.Key.Value.(*ast.Array)
	if !ok || hit.Len() != 7 {
		t.Errorf("hits key is not a 7-tuple: %v", r.Head.Key)
		return
	}
	idx, ok := hit.Elem(4).Value.(ast.Number).Int()
	if !ok || idx < 0 || idx >= len(p.Rules) {
		t.Errorf("hits rule index %v out of range", hit.Elem(4))
		return
	}
	pr := p.Rules[idx]
	want := map[string]string{
		"policy": p.Name, "scope": string(p.Scope()), "severity": string(pr.Severity),
		"on_violation": string(pr.OnViolation),
	}
	lm := r.Annotations[0].Labels
	for k, v := range want {
		if lm[k] != v {
			t.Errorf("label %s = %v, want %q", k, lm[k], v)
		}
	}
	if len(lm) != len(want)+1 {
		t.Errorf("labels = %v, want exactly %v and rule", lm, want)
	}
	scope := 1
	if p.Scope() == pdp.ScopeAgent {
		scope = 0
	}
	key := ast.NewArray(ast.IntNumberTerm(-pr.OnViolation.Rank()), ast.IntNumberTerm(-pr.Severity.Rank()),
		ast.IntNumberTerm(scope), ast.StringTerm(p.Name), ast.IntNumberTerm(idx))
	if got := hit.Slice(0, 5); got.Compare(key) != 0 {
		t.Errorf("hit key %v, want %v", got, key)
	}
}

// compileWithLibrary compiles m together with the Rego library.
func compileWithLibrary(t testing.TB, m *adapter.Module) *ast.Compiler {
	t.Helper()
	lib, err := gatehouserego.Parsed()
	if err != nil {
		t.Fatalf("library: %v", err)
	}
	mods := make(map[string]*ast.Module, len(lib)+1)
	for k, v := range lib {
		mods[k] = v
	}
	if _, dup := mods[m.Path]; dup {
		t.Fatalf("module path %s collides with the library", m.Path)
	}
	mods[m.Path] = m.Parsed
	c := ast.NewCompiler()
	if c.Compile(mods); c.Failed() {
		t.Fatalf("compile with library: %v\n%s", c.Errors, m.Text)
	}
	return c
}

func TestPolicyPathStaysInItsDirectory(t *testing.T) {
	ids := []string{
		"t1", ".", "..", "...", "a..b", "..a", "a.", "/", "a/b", "../x", "x/..", "./.",
		"%2e%2e", "%2E", "a:b", "a@b", "a:b@c.d", "billing-bot", `\..\`, "?", "#", " ", "ü",
		"a%2Fb", "..%2F..", "\x00", "~",
	}
	seen := map[string]string{}
	for _, tenant := range ids {
		for _, agent := range append([]string{""}, ids...) {
			for _, name := range []string{"pii_protection", "x-y", "default"} {
				p := adapter.PolicyPath(tenant, agent, name)
				if !strings.HasPrefix(p, "gatehouse/policies/") || !strings.HasSuffix(p, ".rego") {
					t.Errorf("PolicyPath(%q, %q, %q) = %q: not under gatehouse/policies/", tenant, agent, name, p)
				}
				segs := strings.Split(p, "/")
				want := 5
				if agent != "" {
					want = 6
				}
				if len(segs) != want {
					t.Errorf("PolicyPath(%q, %q, %q) = %q: %d segments, want %d", tenant, agent, name, p, len(segs), want)
				}
				for _, s := range segs {
					if s == "." || s == ".." || s == "" || strings.ContainsAny(s, "\\\x00") {
						t.Errorf("PolicyPath(%q, %q, %q) = %q: segment %q", tenant, agent, name, p, s)
					}
				}
				if strings.Contains("/"+p+"/", "/../") || strings.Contains("/"+p+"/", "/./") || path.Clean(p) != p {
					t.Errorf("PolicyPath(%q, %q, %q) = %q is not clean", tenant, agent, name, p)
				}
				key := tenant + "\x01" + agent + "\x01" + name
				if prev, ok := seen[p]; ok && prev != key {
					t.Errorf("PolicyPath collision: %q for %q and %q", p, prev, key)
				}
				seen[p] = key
			}
		}
	}
}

func mustTranslate(t testing.TB, pattern string) string {
	t.Helper()
	re2, err := adapter.Translate(pattern)
	if err != nil {
		t.Fatalf("Translate(%q): %v", pattern, err)
	}
	return re2
}

// TestHitsMatchRanked: every generated hits rule, and every rule's data
// through the library's _fire, yields exactly the hit
// data.gatehouse.decision._ranked builds from its violation (the ranks,
// the status, the risk score and the patch), for every severity and
// outcome, both scopes and confidences that round every way.
func TestHitsMatchRanked(t *testing.T) {
	confidences := []float64{0, 0.005, 0.01, 0.02, 0.125, 0.333, 0.5, 0.6, 0.666, 0.7, 0.777, 0.85, 0.9, 0.95, 0.999, 1}
	r := rand.New(rand.NewPCG(17, 17))
	for range 20 {
		confidences = append(confidences, float64(r.IntN(1001))/1000)
	}
	severities := []pdp.Severity{pdp.SeverityCritical, pdp.SeverityHigh, pdp.SeverityMedium, pdp.SeverityLow}
	outcomes := []pdp.Outcome{pdp.OutcomeBlock, pdp.OutcomeRequireApproval, pdp.OutcomeWarn}
	reasons := []string{"", "fixed reason", "found {match} here"}
	var rules []pdp.Rule
	for _, sev := range severities {
		for _, o := range outcomes {
			for range 3 {
				n := len(rules)
				rules = append(rules, pdp.Rule{Match: "(zeta|omega)", Severity: sev, OnViolation: o,
					Confidence: confidences[n%len(confidences)], Reason: reasons[n%len(reasons)]})
			}
		}
	}
	for _, c := range confidences {
		n := len(rules)
		rules = append(rules, pdp.Rule{Match: `z\w+a`, Severity: severities[n%4], OnViolation: outcomes[n%3], Confidence: c})
	}
	for i := 0; i < len(rules); i += 5 {
		for _, agent := range []string{"", "bot-1"} {
			p := pdp.Policy{Name: fmt.Sprintf("ranked_%d", i), AgentID: agent, Rules: rules[i:min(i+5, len(rules))]}
			if err := adapter.Validate(&p); err != nil {
				t.Fatal(err)
			}
			m, err := adapter.PolicyModule("t1", &p)
			if err != nil {
				t.Fatal(err)
			}
			query := fmt.Sprintf(`x := [[h, data.gatehouse.decision._ranked(object.remove(h[5], ["policy", "scope"]), %q, %q)] | some h in %s]`,
				p.Name, p.Scope(), m.Package.Append(ast.StringTerm("hits")))
			pq := prepare(t, m, query)
			rs, err := pq.Eval(t.Context(), rego.EvalInput(map[string]any{"action": "zeta", "params": map[string]any{}}))
			if err != nil {
				t.Fatal(err)
			}
			pairs := rs[0].Bindings["x"].([]any)
			if len(pairs) != len(p.Rules) {
				t.Fatalf("%d hits for %d rules", len(pairs), len(p.Rules))
			}
			for _, pair := range pairs {
				got, want := pair.([]any)[0], pair.([]any)[1]
				if !reflect.DeepEqual(got, want) {
					t.Errorf("generated hit differs from _ranked:\ngot  %v\nwant %v", got, want)
				}
			}
			// The same rules as data (policy as data): the library's
			// generic evaluation yields the same hits.
			rulesData, err := ast.InterfaceToValue(adapter.PolicyRules(&p))
			if err != nil {
				t.Fatal(err)
			}
			query = fmt.Sprintf(`x := [[h, data.gatehouse.decision._ranked(object.remove(h[5], ["policy", "scope"]), %q, %q)] | some r in %v; h := data.gatehouse.decision._fire(r.kind, r)]`,
				p.Name, p.Scope(), rulesData)
			rs, err = prepare(t, m, query).Eval(t.Context(), rego.EvalInput(map[string]any{"action": "zeta", "params": map[string]any{}}))
			if err != nil {
				t.Fatal(err)
			}
			dataPairs := rs[0].Bindings["x"].([]any)
			if len(dataPairs) != len(p.Rules) {
				t.Fatalf("%d hits from the rules' data for %d rules", len(dataPairs), len(p.Rules))
			}
			for i, pair := range dataPairs {
				got, want := pair.([]any)[0], pair.([]any)[1]
				if !reflect.DeepEqual(got, want) {
					t.Errorf("hit of the rules' data differs from _ranked:\ngot  %v\nwant %v", got, want)
				}
				if !slices.ContainsFunc(pairs, func(q any) bool { return reflect.DeepEqual(q.([]any)[0], got) }) {
					t.Errorf("rule %d: hit of the rules' data is not the generated module's: %v", i, got)
				}
			}
		}
	}
}

// TestRiskScore pins a few risk scores (docs/api.md §A7: severity weight ×
// confidence, rounded to two decimals).
func TestRiskScore(t *testing.T) {
	for _, c := range []struct {
		sev  pdp.Severity
		conf float64
		want string
	}{
		{pdp.SeverityCritical, 1, "1"}, {pdp.SeverityHigh, 0.85, "0.68"}, {pdp.SeverityMedium, 0.85, "0.43"},
		{pdp.SeverityLow, 0.85, "0.21"}, {pdp.SeverityCritical, 0.666, "0.67"}, {pdp.SeverityHigh, 0.777, "0.62"},
		{pdp.SeverityLow, 0, "0"},
	} {
		if got := adapter.RiskScore(c.sev, c.conf); got.Compare(ast.Number(c.want)) != 0 {
			t.Errorf("RiskScore(%s, %v) = %v, want %s", c.sev, c.conf, got, c.want)
		}
	}
}
