package adapter_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"regexp"
	"regexp/syntax"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/pdp"
)

func TestLiterals(t *testing.T) {
	tests := []struct {
		pattern string
		want    []string // nil: no pre-check (ok is false)
		matches []string // texts the pattern matches; each must pass the pre-check
	}{
		{`(email|phone)`, []string{"email", "phone"}, []string{"E-Mail: EMAIL", "Phone"}},
		{`(external|public)`, []string{"external", "public"}, []string{"#External"}},
		// RE2 factors the common prefix: s(?:sn|ocial.security).
		{`(ssn|social.security)`, []string{"security", "sn"}, []string{"SSN", "social_security", "SOCIAL SECURITY"}},
		{`api[_-]?key`, []string{"api-key", "api_key", "apikey"}, []string{"API_KEY", "apiKey", "api-key"}},
		{`gh[pousr]_[A-Za-z0-9]{36}`, []string{"gho_", "ghp_", "ghr_", "ghs_", "ghu_"}, []string{"ghp_" + strings.Repeat("a", 36)}},
		{`AKIA[0-9A-Z]{16}`, []string{"akia"}, []string{"AKIAABCDEFGHIJKLMNOP"}},
		{`password\s*[:=]\s*\S{8,}`, []string{"password"}, []string{"Password = hunter2hunter2"}},
		{`(foo|bar)baz(qux|quux)`, []string{"barbazquux", "barbazqux", "foobazquux", "foobazqux"}, []string{"FOOBAZQUUX"}},
		{`[a-c]xyz`, []string{"axyz", "bxyz", "cxyz"}, []string{"Bxyz"}},
		{`(ab){2,3}`, []string{"abab"}, []string{"ABab"}},
		{`x{3}`, []string{"xxx"}, []string{"XxX"}},
		{`^foo\Z`, []string{"foo"}, []string{"FOO"}},
		{`(?:^|\W)secret(?:\W|\Z)`, []string{"secret"}, []string{"a Secret!"}},
		// Python's classes and folding: the set covers ı, İ, ſ, K and
		// Unicode spaces and digits.
		{`bitcoin`, []string{"bitcoin"}, []string{"bıtcoın", "BİTCOİN", "BITCOIN"}},
		{`rm\s+-rf`, []string{"-rf"}, []string{"rm\u00a0-rf", "RM\u3000\u2028-RF"}},
		{`ssn\D?\d{3}`, []string{"ssn"}, []string{"SSN ١٢٣", "ſſn：１２３"}},
		{`credit.card|card.number`, []string{"number", "redit"}, []string{"credit-card", "CARD NUMBER"}},
		// Non-ASCII literals are folded the way the text is.
		{`straße`, []string{"straße"}, []string{"STRAẞE", "ſtraße"}},
		{`ǅx`, []string{"ǆx"}, []string{"Ǆx", "ǅX", "ǆx"}},
		{`Kelvin`, []string{"kelvin"}, []string{"\u212Aelvin", "KELVIN"}},
		{`σς`, []string{"σσ"}, []string{"ΣΣ", "ςσ"}},
		{`ﬀ`, []string{"ﬀ"}, []string{"ﬀ"}},
		// No useful literal: too short, or none at all.
		{`\d+`, nil, nil},
		{`a*`, nil, nil},
		{`ab+c`, nil, nil}, // a, b, c: every literal shorter than two bytes
		{`a.b`, nil, nil},
		{`ſ`, nil, nil},
		{`İ`, nil, nil}, // folds to "i"
		{`\d{3}-\d{2}`, nil, nil},
		{`[0-9a-f]{32}`, nil, nil},
		{`(email|\d+)`, nil, nil}, // one branch needs no literal
		{`(a|b|c|d|e|f|g|h|i|j|k|l|m|n|o|p|q)zz`, []string{"zz"}, []string{"Qzz"}},
		{`(`, nil, nil}, // does not compile
	}
	for _, tc := range tests {
		t.Run(tc.pattern, func(t *testing.T) {
			got, ok := adapter.Literals(tc.pattern)
			if ok != (tc.want != nil) || ok && !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Literals(%q) = %q, %v; want %q", tc.pattern, got, ok, tc.want)
			}
			if tc.matches == nil {
				return
			}
			re, err := adapter.CompilePattern(tc.pattern)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tc.matches {
				m := re.FindString(s)
				if !re.MatchString(s) {
					t.Errorf("test text %q does not match", s)
				}
				if !containsAny(adapter.Fold(m), got) {
					t.Errorf("match %q of %q contains none of %q", m, s, got)
				}
			}
		})
	}
}

func containsAny(s string, lits []string) bool {
	for _, l := range lits {
		if strings.Contains(s, l) {
			return true
		}
	}
	return false
}

// TestFoldOrbits proves, for every rune, the lemma the pre-check rests on:
// two runes that RE2's (?i) treats as equal (same simple case-folding orbit)
// have the same Fold, and Fold is idempotent. With it, a case-insensitive
// match's folded text contains the folded literal it matched.
func TestFoldOrbits(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		f := adapter.Fold(string(r))
		if utf8.RuneCountInString(f) != 1 {
			t.Errorf("Fold(%U) = %q is not one rune", r, f)
		}
		if adapter.Fold(f) != f {
			t.Errorf("Fold is not idempotent on %U: %q then %q", r, f, adapter.Fold(f))
		}
		for x := unicode.SimpleFold(r); x != r; x = unicode.SimpleFold(x) {
			if g := adapter.Fold(string(x)); g != f {
				t.Errorf("Fold(%U) = %q but Fold(%U) = %q, same orbit", r, f, x, g)
			}
		}
	}
}

// equivalencePatterns are realistic and tricky patterns for the soundness
// proof: every one must be a valid rule pattern (some have no pre-check at
// all, which the proof reports).
var equivalencePatterns = []string{
	`(email|phone)`,
	`(external|public)`,
	`(email|phone|ssn|passport|routing)`,
	`(ssn|social.security)`,
	`(ssn|social.security|credit.card|card.number|passport|customer.(list|data|records)|credentials|passwords)`,
	`api[_-]?key`,
	`(api[_-]?key|secret[_-]?key|client[_-]?secret|password)\s*[:=]\s*\S{8,}`,
	`AKIA[0-9A-Z]{16}`,
	`gh[pousr]_[A-Za-z0-9]{36}`,
	`xox[abprs]-[A-Za-z0-9-]{10,}`,
	`-----BEGIN [A-Z ]*PRIVATE KEY-----`,
	`(transfer|wire|payment|payout|refund|withdraw|charge|invoice|purchase)`,
	`(delete|drop|destroy|remove|truncate|rollback|revoke)`,
	`(?:^|\W)secret(?:\W|\Z)`,
	`^\{"action":"export`,
	`"params":\{\}\}\Z`,
	`SECRET_token`,
	`Straße|STRASSE`,
	`straße`,
	`ſtop`,
	`ǅungla`,
	`σοφία`,
	`λόγος`,
	`kelvin\s+\d+`,
	`\u212aelvin`,
	`[ſk]ey`,
	`(ab){2,4}c`,
	`x{3,}y`,
	`colou?r`,
	`(foo|bar)baz(qux|quux)`,
	`[a-c][x-z]{2}q`,
	`(?:pass(word)?|pwd)[=:]`,
	`https?://[a-z0-9.-]+\.internal`,
	`[\w.+-]+@[\w-]+\.[\w.-]+`,
	`\d{3}-\d{2}-\d{4}`,
	`begin[\s\S]*end`,
	`^card|card\Z`,
	`ﬀ|ﬃ|ǆ`,
	`İstanbul`,
	`Ωhm|ohm`,
	`[[:alpha:]]+_id`,
	`a\.b\*c`,
	`a+?bb`,
	`café|naïve`,
	`[α-ω]+σ`,
	`rm\s+-rf`,
	`bitcoin`,
	`ssn\D{0,3}\d{3}`,
	`[\d٣]x\w+`,
	`\W+secret`,
	`[^\W\d_]{2}key`,
	`(a|b|c|d|e|f|g|h|i|j|k|l|m|n|o|p|q)zz`,
	`"text":"[^"]*\\n`,
	`\\u00[0-9a-f]{2}`,
}

// noiseRunes are inserted between and inside generated matches: JSON
// punctuation, whitespace, and runes whose folding is unusual.
var noiseRunes = []rune("{}[]\":,\\ \t\n_-./@#<>&'`0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" +
	"ßẞſKÅåσςΣǅǆǄİıﬀﬃéüΩω☃𝔘\u2028\u2029\u00a0θϑϴ" +
	"٣３𝟗\u3000\u200b\x1c\u0345ͅµμ")

// textGen generates texts for one pattern: strings drawn from the pattern's
// own language (so most match), then mutated by fold-equivalent
// substitutions, deletions and inserted noise, and wrapped in noise.
type textGen struct {
	rnd  *rand.Rand
	re   *syntax.Regexp
	lits []string // the pattern's literal runs, for near misses
}

func newTextGen(seed uint64, pattern string) *textGen {
	re2, err := adapter.Translate(pattern)
	if err != nil {
		panic(err)
	}
	re, err := syntax.Parse(re2, syntax.Perl)
	if err != nil {
		panic(err)
	}
	re = re.Simplify()
	g := &textGen{rnd: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)), re: re}
	var walk func(*syntax.Regexp)
	walk = func(r *syntax.Regexp) {
		if r.Op == syntax.OpLiteral {
			g.lits = append(g.lits, string(r.Rune))
		}
		for _, s := range r.Sub {
			walk(s)
		}
	}
	walk(re)
	return g
}

func (g *textGen) text() string {
	var b strings.Builder
	g.noise(&b, g.rnd.IntN(6))
	switch k := g.rnd.IntN(10); {
	case k < 6: // from the language, fold-equivalent variants
		g.gen(&b, g.re)
	case k < 8: // from the language, then mutated: often a near miss
		var m strings.Builder
		g.gen(&m, g.re)
		b.WriteString(g.mutate(m.String()))
	default: // the pattern's literal pieces among noise
		for range 1 + g.rnd.IntN(3) {
			if len(g.lits) > 0 {
				b.WriteString(g.mutate(g.lits[g.rnd.IntN(len(g.lits))]))
			}
			g.noise(&b, g.rnd.IntN(4))
		}
	}
	g.noise(&b, g.rnd.IntN(6))
	return b.String()
}

func (g *textGen) noise(b *strings.Builder, n int) {
	for range n {
		b.WriteRune(noiseRunes[g.rnd.IntN(len(noiseRunes))])
	}
}

// variant returns r or another rune of its case-folding orbit (s → S, ſ;
// k → K, U+212A; σ → Σ, ς; ǅ → Ǆ, ǆ).
func (g *textGen) variant(r rune) rune {
	for range g.rnd.IntN(4) {
		r = unicode.SimpleFold(r)
	}
	return r
}

func (g *textGen) mutate(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch k := g.rnd.IntN(20); {
		case k == 0: // drop
		case k == 1:
			b.WriteRune(r)
			g.noise(&b, 1)
		case k < 8:
			b.WriteRune(g.variant(r))
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// gen writes a random string of re's language (up to the empty-width
// assertions, which the regex itself then decides).
func (g *textGen) gen(b *strings.Builder, re *syntax.Regexp) {
	switch re.Op {
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			if re.Flags&syntax.FoldCase != 0 {
				r = g.variant(r)
			}
			b.WriteRune(r)
		}
	case syntax.OpCharClass:
		b.WriteRune(g.classRune(re.Rune))
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		r := noiseRunes[g.rnd.IntN(len(noiseRunes))]
		if r == '\n' && re.Op == syntax.OpAnyCharNotNL {
			r = '.'
		}
		b.WriteRune(r)
	case syntax.OpCapture:
		g.gen(b, re.Sub[0])
	case syntax.OpStar:
		g.repeat(b, re.Sub[0], 0, 3)
	case syntax.OpPlus:
		g.repeat(b, re.Sub[0], 1, 3)
	case syntax.OpQuest:
		g.repeat(b, re.Sub[0], 0, 1)
	case syntax.OpRepeat:
		hi := re.Max
		if hi < 0 {
			hi = re.Min + 2
		}
		g.repeat(b, re.Sub[0], re.Min, min(hi, re.Min+2))
	case syntax.OpConcat:
		for _, s := range re.Sub {
			g.gen(b, s)
		}
	case syntax.OpAlternate:
		g.gen(b, re.Sub[g.rnd.IntN(len(re.Sub))])
	}
}

func (g *textGen) repeat(b *strings.Builder, re *syntax.Regexp, lo, hi int) {
	for range lo + g.rnd.IntN(hi-lo+1) {
		g.gen(b, re)
	}
}

// classRune picks a rune of the class, preferring the start of each range
// (a random rune of \S would almost always be an unassigned code point).
func (g *textGen) classRune(ranges []rune) rune {
	for {
		i := 2 * g.rnd.IntN(len(ranges)/2)
		lo, hi := ranges[i], ranges[i+1]
		span := int(hi-lo) + 1
		if g.rnd.IntN(4) != 0 {
			span = min(span, 128)
		}
		if r := lo + rune(g.rnd.IntN(span)); utf8.ValidRune(r) {
			return r
		}
	}
}

// actionText builds the action text as docs/api.md §A3 defines it: compact JSON
// of {"action", "params"}, keys sorted, no HTML escaping, non-ASCII left as
// is (encoding/json still escapes U+2028 and U+2029, which are undone; an
// escaped backslash is consumed as a unit so "\\u2028" in the text stays).
func actionText(t testing.TB, action string, params map[string]any) string {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(map[string]any{"action": action, "params": params}); err != nil {
		t.Fatal(err)
	}
	return unescapeLineSeparators.Replace(strings.TrimSuffix(buf.String(), "\n"))
}

var unescapeLineSeparators = strings.NewReplacer(`\\`, `\\`, `\u2028`, "\u2028", `\u2029`, "\u2029")

// TestPrecheckEquivalence is the soundness proof of the literal pre-check:
// for thousands of generated texts per pattern, whenever the
// case-insensitive regex matches, the folded text (and the folded match
// itself) contains one of Literals(pattern). The pre-check therefore never
// skips a regex that would have matched, and a rule fires exactly as it
// would without it. The seed is fixed, so any failure reproduces.
func TestPrecheckEquivalence(t *testing.T) {
	perPattern := 5000
	if testing.Short() {
		perPattern = 500
	}
	var total, matched, skipped, withPrecheck, falsePass int
	for pi, pattern := range equivalencePatterns {
		p := pdp.Policy{Name: "p", Rules: []pdp.Rule{{Match: pattern, Severity: pdp.SeverityLow}}}
		if err := adapter.Validate(&p); err != nil {
			t.Fatalf("pattern %q is not a valid rule pattern: %v", pattern, err)
		}
		re, err := adapter.CompilePattern(pattern)
		if err != nil {
			t.Fatal(err)
		}
		lits, ok := adapter.Literals(pattern)
		if !ok {
			t.Logf("%-45q no pre-check", pattern)
			continue
		}
		g := newTextGen(uint64(pi)+1, pattern)
		var pm, ps int
		for i := range perPattern {
			text := g.text()
			// Check the raw text and the action text carrying it: the
			// JSON encoding escapes quotes and backslashes, which moves
			// matches around.
			for _, s := range []string{text, actionText(t, "x", map[string]any{"text": text})} {
				total++
				folded := adapter.Fold(s)
				pass := containsAny(folded, lits)
				m := re.FindStringIndex(s)
				switch {
				case m != nil && !pass:
					t.Fatalf("UNSOUND: pattern %q matches %q in text #%d %q, but its folded form %q contains none of %q",
						pattern, s[m[0]:m[1]], i, s, folded, lits)
				case m != nil && !containsAny(adapter.Fold(s[m[0]:m[1]]), lits):
					t.Fatalf("UNSOUND: match %q of pattern %q (text #%d %q) contains none of %q",
						s[m[0]:m[1]], pattern, i, s, lits)
				case m != nil:
					matched++
					pm++
				case !pass:
					skipped++
					ps++
				default:
					falsePass++
				}
			}
		}
		withPrecheck++
		t.Logf("%-45q literals %q: %d matched, %d regex runs skipped of %d texts", pattern, lits, pm, ps, 2*perPattern)
	}
	t.Logf("equivalence: %d patterns (%d with a pre-check) × %d texts (raw and as action text) = %d checks; "+
		"regex matched %d (pre-check passed every time), pre-check skipped the regex %d times (%.1f%% of non-matching texts), "+
		"passed without a match %d times",
		len(equivalencePatterns), withPrecheck, perPattern, total, matched, skipped,
		100*float64(skipped)/float64(max(1, skipped+falsePass)), falsePass)
	if matched < total/4 {
		t.Errorf("only %d of %d texts matched: the generator is too weak to prove anything", matched, total)
	}
}

// opaPatterns are the patterns run through real OPA.
var opaPatterns = []struct {
	match, context, reason string
}{
	{`(email|phone)`, `(external|public)`, ""},
	{`(email|phone|ssn|passport|routing)`, "", "PII blocked for billing-bot: {match}"},
	{`(ssn|social.security)`, "", "{match} and {match}"},
	{`api[_-]?key`, "", "no template"},
	{`\d{3}-\d{2}`, "", "number {match}"},
	{`straße|ǅungla|σοφία`, "", "{match}"},
	{`\u212aelvin|[ſk]ey`, `\d`, "{match}"},
	{`rm\s+-rf|b[i]tcoin`, `\w\s`, "{match}"},
	{`"text":"[^"]*\\n`, "", "escaped newline {match}"},
	{`<b>&amp;|\u2028`, "", "html {match}"},
	{`^\{"action":"x","params"`, "", "{match}"},
	{`SECRET_token|colou?r`, "", "{match}"},
	{"\u00ad\ufeff|\U000e0001x|\x7fy", "", "\a{match}\x10"}, // raw non-printables in the module source
}

// TestPrecheckEquivalenceOPA repeats the proof through real OPA: each
// pattern becomes a policy, is translated by PolicyModule, compiled with the
// Rego library and evaluated on generated texts; the rule must fire exactly
// when Go's regexp matches the action text, with the same {match} and
// reason. The same evaluation checks data.gatehouse.text.text and .folded
// against actionText and Fold.
func TestPrecheckEquivalenceOPA(t *testing.T) {
	perPattern := 300
	if testing.Short() {
		perPattern = 50
	}
	var evals, fired, skipped int
	for pi, tc := range opaPatterns {
		p := pdp.Policy{Name: fmt.Sprintf("p%d", pi), Rules: []pdp.Rule{{
			Match: tc.match, ContextRequires: tc.context, Reason: tc.reason,
			Severity: pdp.SeverityHigh, Confidence: pdp.DefaultConfidence,
		}}}
		if err := adapter.Validate(&p); err != nil {
			t.Fatalf("policy %d: %v", pi, err)
		}
		m, err := adapter.PolicyModule("t.1", &p)
		if err != nil {
			t.Fatal(err)
		}
		hits := m.Package.Append(ast.StringTerm("hits"))
		pq := prepare(t, m, fmt.Sprintf("v := [h[5] | some h in %s]; txt := data.gatehouse.text.text; f := data.gatehouse.text.folded", hits))

		re, err := adapter.CompilePattern(tc.match)
		if err != nil {
			t.Fatal(err)
		}
		var ctx *regexp.Regexp
		if tc.context != "" {
			ctx, err = adapter.CompilePattern(tc.context)
			if err != nil {
				t.Fatal(err)
			}
		}
		lits, hasPrecheck := adapter.Literals(tc.match)
		g := newTextGen(uint64(1000+pi), tc.match)
		for i := range perPattern {
			text := g.text()
			input := map[string]any{"action": "x", "params": map[string]any{"text": text}}
			if i%4 == 3 { // the text as the action name too
				input = map[string]any{"action": text, "params": map[string]any{"text": "x", "n": i}}
			}
			params := input["params"].(map[string]any)
			want := actionText(t, input["action"].(string), params)

			rs, err := pq.Eval(t.Context(), rego.EvalInput(input))
			if err != nil {
				t.Fatalf("eval: %v", err)
			}
			if len(rs) != 1 {
				t.Fatalf("pattern %q text %q: %d results", tc.match, text, len(rs))
			}
			evals++
			b := rs[0].Bindings
			if b["txt"] != want {
				t.Fatalf("data.gatehouse.text.text = %q, want %q", b["txt"], want)
			}
			if b["f"] != adapter.Fold(want) {
				t.Fatalf("data.gatehouse.text.folded = %q, want Fold = %q", b["f"], adapter.Fold(want))
			}
			got := b["v"].([]any)
			loc := re.FindStringIndex(want)
			fires := loc != nil && (ctx == nil || ctx.MatchString(want))
			if hasPrecheck && !containsAny(adapter.Fold(want), lits) {
				skipped++
			}
			if !fires {
				if len(got) != 0 {
					t.Fatalf("pattern %q: rule fired on %q, Go regexp says no: %v", tc.match, want, got)
				}
				continue
			}
			fired++
			if len(got) != 1 {
				t.Fatalf("pattern %q: %d violations on %q, want 1 (%v)", tc.match, len(got), want, got)
			}
			v := got[0].(map[string]any)
			match := want[loc[0]:loc[1]]
			reason := "Policy '" + p.Name + "' violated: " + match
			if tc.reason != "" {
				reason = strings.ReplaceAll(tc.reason, "{match}", match)
			}
			if v["match"] != match || v["reason"] != reason {
				t.Fatalf("pattern %q on %q: match %q reason %q, want %q and %q", tc.match, want, v["match"], v["reason"], match, reason)
			}
		}
	}
	t.Logf("OPA equivalence: %d patterns × %d texts = %d evaluations; %d fired as Go predicted, %d pre-check skips",
		len(opaPatterns), perPattern, evals, fired, skipped)
}

// prepare compiles m with the library and prepares query on it.
func prepare(t testing.TB, m *adapter.Module, query string) rego.PreparedEvalQuery {
	t.Helper()
	c := compileWithLibrary(t, m)
	pq, err := rego.New(rego.Compiler(c), rego.Query(query)).PrepareForEval(t.Context())
	if err != nil {
		t.Fatalf("prepare %s: %v", query, err)
	}
	return pq
}

// TestFoldMatchesRego checks adapter.Fold against the library's
// data.gatehouse.text.folded on random Unicode strings.
func TestFoldMatchesRego(t *testing.T) {
	p := pdp.Policy{Name: "fold", Rules: []pdp.Rule{{Match: "xx", Severity: pdp.SeverityLow}}}
	if err := adapter.Validate(&p); err != nil {
		t.Fatal(err)
	}
	m, err := adapter.PolicyModule("t", &p)
	if err != nil {
		t.Fatal(err)
	}
	pq := prepare(t, m, "txt := data.gatehouse.text.text; f := data.gatehouse.text.folded")
	rnd := rand.New(rand.NewPCG(7, 11))
	// Orbit members (every rune the fold table touches, and their orbits)
	// plus random code points from every plane.
	var special []rune // every rune of a case-folding orbit with 2+ members
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if unicode.SimpleFold(r) != r {
			special = append(special, r)
		}
	}
	n := 400
	if testing.Short() {
		n = 50
	}
	for range n {
		var b strings.Builder
		for range 1 + rnd.IntN(40) {
			var r rune
			switch rnd.IntN(4) {
			case 0:
				r = special[rnd.IntN(len(special))]
			case 1:
				r = rune(rnd.IntN(0x250))
			case 2:
				r = rune(rnd.IntN(0x10000))
			default:
				r = rune(rnd.IntN(unicode.MaxRune + 1))
			}
			if !utf8.ValidRune(r) {
				r = 'x'
			}
			b.WriteRune(r)
		}
		s := b.String()
		rs, err := pq.Eval(t.Context(), rego.EvalInput(map[string]any{"action": s}))
		if err != nil || len(rs) != 1 {
			t.Fatalf("eval %q: %v (%d results)", s, err, len(rs))
		}
		want := actionText(t, s, map[string]any{})
		if got := rs[0].Bindings["txt"]; got != want {
			t.Fatalf("text of %q = %q, want %q", s, got, want)
		}
		if got := rs[0].Bindings["f"]; got != adapter.Fold(want) {
			t.Fatalf("folded %q = %q, Fold = %q", want, got, adapter.Fold(want))
		}
	}
}

// TestPrecheckRandomPatterns extends the proof from the fixed list to
// random patterns built from the constructs the analysis distinguishes
// (literals, classes, empty-width assertions, case-sensitive groups,
// alternation, optional, plus, counted and star repeats) over the runes
// whose folding is unusual.
func TestPrecheckRandomPatterns(t *testing.T) {
	patterns, texts := 4000, 100
	if testing.Short() {
		patterns = 400
	}
	rnd := rand.New(rand.NewPCG(3, 5))
	withLits, checked := 0, 0
	for range patterns {
		p := randomPattern(rnd, 2+rnd.IntN(3))
		re, err := adapter.CompilePattern(p)
		if err != nil {
			continue
		}
		lits, ok := adapter.Literals(p)
		if !ok {
			continue
		}
		withLits++
		g := newTextGen(rnd.Uint64(), p)
		for range texts {
			s := g.text()
			m := re.FindStringIndex(s)
			if m == nil {
				continue
			}
			checked++
			if !containsAny(adapter.Fold(s[m[0]:m[1]]), lits) {
				t.Fatalf("UNSOUND: pattern %q, literals %q, text %q, match %q", p, lits, s, s[m[0]:m[1]])
			}
		}
	}
	t.Logf("random patterns: %d with a pre-check, %d matches checked", withLits, checked)
}

func randomPattern(r *rand.Rand, depth int) string {
	atoms := []string{
		"a", "b", "ab", "k", "s", "ſ", "K", "σ", "ς", "ß", "ǅ", "İ", "ı", "i", "Ω", "ω", "ﬀ", "x", "θ", "ϑ", "é", "É",
		`\.`, "[ab]", "[k-m]", "[ſs]", "[^a]", ".", `\d`, `\bq`, "^", "$", `\B`, "(?-i:A)", "(?-i:k)", "(?-i:ſ)",
		`\x{212A}`, "[İi]", `"`, `\\`, `\{`,
	}
	if depth <= 0 || r.IntN(3) == 0 {
		return atoms[r.IntN(len(atoms))]
	}
	sub := func() string { return randomPattern(r, depth-1) }
	switch r.IntN(7) {
	case 0, 1:
		var b strings.Builder
		for range 2 + r.IntN(3) {
			b.WriteString(sub())
		}
		return b.String()
	case 2:
		return "(?:" + sub() + "|" + sub() + ")"
	case 3:
		return "(?:" + sub() + ")?"
	case 4:
		return "(?:" + sub() + ")+"
	case 5:
		return fmt.Sprintf("(?:%s){%d}", sub(), 1+r.IntN(3))
	default:
		return "(?:" + sub() + ")*"
	}
}
