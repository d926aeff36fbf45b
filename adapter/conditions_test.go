package adapter

import (
	"encoding/json"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gatehouse-pdp/gatehouse/test/scale"
)

// describeCond renders a condition for test messages: classes as [..] with
// their first runes, "." for any character.
func describeCond(s chainSet) string {
	var alts []string
	for _, q := range s {
		var b strings.Builder
		for _, c := range q {
			switch {
			case c == nil:
				b.WriteString(".")
			case c.single >= 0:
				b.WriteRune(c.single)
			default:
				b.WriteString("[")
				for i := 0; i+1 < len(c.ranges) && i < 6; i += 2 {
					b.WriteRune(c.ranges[i])
					if c.ranges[i+1] != c.ranges[i] {
						b.WriteString("-")
						b.WriteRune(c.ranges[i+1])
					}
				}
				if len(c.ranges) > 6 {
					b.WriteString("…")
				}
				b.WriteString("]")
			}
		}
		alts = append(alts, b.String())
	}
	return strings.Join(alts, "|")
}

// condPatterns: the hint and scale patterns and more shapes (optional
// pieces, alternations of sequences, anchors, long literals, classes with
// case pairs, dots, counted repeats, context-like phrases).
var condPatterns = []string{
	`(?:^|\W)\d{3}-\d{2}-\d{4}(?:\W|\Z)`, `[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}`,
	`\d{4}[ -]?\d{4}[ -]?\d{4}`, `(external|public)\s+(channel|share)`, `internal only`,
	`straße|kelvin`, `sal+ary`, `x`, `[0-9a-f]{8}`, `café|naïve`, `delete\s+\w+`, `.`,
	`\d+`, `\d{2,5}`, `(\d\d|[a-k]{3})-\d`, `k\d{2}`, `ssn:?\s*\d{3}`, `[^a-z]{4}`,
	`(?:\d{3}|\w{2}@)x`, `a.b.c`, `\d{3}(?:-|\.)\d{3}`, `[ſs]\d`, `ı\d\d`, `\W\d\W`,
	`abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz\d`, `(a|b)*\d{3}`, `\d{3}(x|y)?\d`,
	`[\d\s]{6}`, `[٠-٩]{2}`, `\$\d+\.\d\d`, `\d{1,3}(?:,\d{3})+`, `(?:\d{3}-){2}\d{4}`,
}

// condTexts generates texts that stress the conditions: ASCII, Arabic-Indic
// and full-width digits, separators, '@' variants, case pairs (K, ı, ſ,
// İ), invalid UTF-8, and long runs.
func condText(r *rand.Rand) string {
	pieces := []string{
		"123", "45", "6789", "-", " ", ".", "@", "＠", "﹫", "١٢٣", "٤٥٦٧", "１２３４", "۱۲", "߁߂",
		"K", "k", "\u212a", "ı", "İ", "ſ", "S", "ß", "ẞ", "a", "Z", "café", "NAÏVE", "straße", "KELVIN",
		"\xff", "\xc3", "\n", "\t", "\u00a0", "\u3000", "_", "%", "+", ",", "$", "x", "y", "ext", "public",
		"external  channel", "share", "delete", "ssn", "SSN: ", "abcdef", "0a1b2c3d", "😀", "\u2028",
		"alice@example.com", "a@b.co", "4111 1111 1111 1111", "4111-1111-1111-1111", "123-45-6789",
		"１２３-４５-６７８９", "٣٤٥-٦٧-٨٩٠١",
	}
	var b strings.Builder
	for range r.IntN(14) {
		if r.IntN(30) == 0 {
			b.WriteString(strings.Repeat(pieces[r.IntN(len(pieces))], 40))
		}
		b.WriteString(pieces[r.IntN(len(pieces))])
	}
	s := b.String()
	switch r.IntN(4) {
	case 0:
		s = strings.ToUpper(s)
	case 1:
		s = strings.ToLower(s)
	}
	return s
}

// condChecker tests one pattern's conditions alone.
type condChecker struct {
	re    *regexp.Regexp
	conds []chainSet
	m     chainMatcher
	at    []chainCond
}

func newCondChecker(t testing.TB, pattern string) *condChecker {
	re2, err := Translate(pattern)
	if err != nil {
		t.Fatalf("%s: %v", pattern, err)
	}
	c := &condChecker{re: regexp.MustCompile(re2), conds: patternConditions(pattern)}
	var b chainBuilder
	for _, cond := range c.conds {
		cc, ok := b.add(cond)
		if !ok {
			t.Fatalf("%s: conditions do not fit one matcher", pattern)
		}
		c.at = append(c.at, cc)
	}
	c.m = b.m
	return c
}

// check: when the regex matches text, every condition holds on the folded
// text; the Shift-And scan agrees with a naive search either way.
func (c *condChecker) check(t testing.TB, pattern, text string) {
	t.Helper()
	folded := Fold(text)
	var seen [maxChainWords]uint64
	c.m.scan(folded, &seen)
	for i, cc := range c.at {
		if got, want := cc.holds(&seen), naiveHolds(c.conds[i], folded); got != want {
			t.Fatalf("%s %s on %q: scan %v, naive %v", pattern, describeCond(c.conds[i]), folded, got, want)
		}
	}
	if !c.re.MatchString(text) {
		return
	}
	for i, cc := range c.at {
		if !cc.holds(&seen) {
			t.Fatalf("%s matches %q (%q) but its condition %s does not hold on the folded text %q",
				pattern, text, c.re.FindString(text), describeCond(c.conds[i]), folded)
		}
	}
}

// naiveHolds: one alternative of s occurs in text, rune by rune.
func naiveHolds(s chainSet, text string) bool {
	var rs []rune
	for i := 0; i < len(text); {
		r, n := utf8.DecodeRuneInString(text[i:])
		rs = append(rs, r)
		i += n
	}
	for _, q := range s {
		for i := 0; i+len(q) <= len(rs); i++ {
			ok := true
			for j, c := range q {
				if !c.contains(rs[i+j]) {
					ok = false
					break
				}
			}
			if ok {
				return true
			}
		}
	}
	return false
}

// TestPatternConditions: the conditions of the scale's literal-free
// patterns are the sharp ones the hinter relies on.
func TestPatternConditions(t *testing.T) {
	for pattern, want := range map[string][]string{
		`(?:^|\W)\d{3}-\d{2}-\d{4}(?:\W|\Z)`: {"ddd-dd-dddd"},
		`\d{4}[ -]?\d{4}[ -]?\d{4}`:          {"dddddddddddd|dddd-dddddddd|dddd dddddddd|dddddddd-dddd"},
		`[0-9a-f]{8}`:                        {"hhhhhhhh"},
	} {
		var got []string
		for _, c := range patternConditions(pattern) {
			got = append(got, describeShape(c))
		}
		if len(got) == 0 || !strings.HasPrefix(got[0], want[0][:4]) {
			t.Errorf("%s: conditions %v, want like %v", pattern, got, want)
		}
		t.Logf("%s: %v", pattern, got)
	}
	// The e-mail pattern: '@' between word-ish characters, and a dot
	// before two letters.
	if got := patternConditions(`[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}`); len(got) != 2 {
		t.Errorf("e-mail: %d conditions, want 2", len(got))
	}
	// Nothing worth testing: any character, a star.
	for _, p := range []string{`.`, `(a|b)*`, `\w`} {
		if got := patternConditions(p); len(got) != 0 {
			t.Errorf("%s: conditions %v, want none", p, got)
		}
	}
}

// describeShape is describeCond with digit classes as d and the hex class
// as h (the first alternative's shape is what TestPatternConditions checks).
func describeShape(s chainSet) string {
	var alts []string
	for _, q := range s {
		var b strings.Builder
		for _, c := range q {
			switch {
			case c == nil:
				b.WriteString(".")
			case c.single >= 0:
				b.WriteRune(c.single)
			case c.contains('٣') && c.contains('9') && !c.contains('a'):
				b.WriteString("d")
			case c.contains('f') && c.contains('9') && !c.contains('g'):
				b.WriteString("h")
			default:
				b.WriteString("?")
			}
		}
		alts = append(alts, b.String())
	}
	return strings.Join(alts, "|")
}

// TestConditionsNecessary: over generated texts, a pattern's regex
// matching means each of its conditions holds on the folded text.
func TestConditionsNecessary(t *testing.T) {
	r := rand.New(rand.NewPCG(rand.Uint64(), 11))
	n := 8000
	if testing.Short() {
		n = 1500
	}
	checkers := map[string]*condChecker{}
	for _, p := range condPatterns {
		checkers[p] = newCondChecker(t, p)
	}
	// All the patterns' conditions in one matcher (as a tenant's hinter
	// lays them out: several words, the ones past the last dropped).
	var all chainBuilder
	var allConds []chainSet
	var allAt []chainCond
	for _, p := range condPatterns {
		for _, c := range patternConditions(p) {
			if cc, ok := all.add(c); ok {
				allConds, allAt = append(allConds, c), append(allAt, cc)
			}
		}
	}
	if all.m.words < 3 {
		t.Fatalf("the combined matcher has %d words; the test wants the multi-word scan", all.m.words)
	}
	matched := map[string]int{}
	for range n {
		text := condText(r)
		var seen [maxChainWords]uint64
		all.m.scan(Fold(text), &seen)
		for i, cc := range allAt {
			if got, want := cc.holds(&seen), naiveHolds(allConds[i], Fold(text)); got != want {
				t.Fatalf("combined matcher, %s on %q: scan %v, naive %v", describeCond(allConds[i]), Fold(text), got, want)
			}
		}
		for _, p := range condPatterns {
			c := checkers[p]
			c.check(t, p, text)
			if c.re.MatchString(text) {
				matched[p]++
			}
		}
	}
	for _, p := range condPatterns[:3] {
		if matched[p] == 0 {
			t.Errorf("%s never matched: the property was not exercised", p)
		}
	}
}

// FuzzConditions: any pattern the adapter accepts, any text: the regex
// matching means every condition holds on the folded text.
func FuzzConditions(f *testing.F) {
	for i, p := range condPatterns {
		f.Add(p, condText(rand.New(rand.NewPCG(uint64(i), 1))))
	}
	f.Add(`\d{3}-\d{2}`, "١٢٣-٤٥")
	f.Add(`k\d`, "\u212a１")
	f.Fuzz(func(t *testing.T, pattern, text string) {
		if len(pattern) > 200 || len(text) > 2000 {
			return
		}
		re2, err := Translate(pattern)
		if err != nil {
			return
		}
		if _, err := regexp.Compile(re2); err != nil {
			return // refused when written (checkPattern)
		}
		newCondChecker(t, pattern).check(t, pattern, text)
	})
}

// BenchmarkConditions compares testing the scale's three literal-free or
// weak-literal patterns' conditions (one Shift-And pass) with running one
// of their regexes, over scale M's action texts (~500 bytes, as JSON).
func BenchmarkConditions(b *testing.B) {
	s := scale.M()
	var texts []string
	for _, a := range s.Actions[:200] {
		j, err := json.Marshal(map[string]any{"action": a.Name, "params": a.Params})
		if err != nil {
			b.Fatal(err)
		}
		texts = append(texts, Fold(string(j)))
	}
	pats := []string{`(?:^|\W)\d{3}-\d{2}-\d{4}(?:\W|\Z)`, `\d{4}[ -]?\d{4}[ -]?\d{4}`, `[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}`}
	var cb chainBuilder
	for _, p := range pats {
		for _, c := range patternConditions(p) {
			if _, ok := cb.add(c); !ok {
				b.Fatal("full")
			}
		}
	}
	b.Run("scan", func(b *testing.B) {
		i := 0
		for b.Loop() {
			var seen [maxChainWords]uint64
			cb.m.scan(texts[i%len(texts)], &seen)
			i++
		}
		b.ReportMetric(float64(cb.m.words), "words")
	})
	for _, p := range pats[:2] {
		re2, _ := Translate(p)
		re := regexp.MustCompile(re2)
		b.Run("regex/"+p[:8], func(b *testing.B) {
			i := 0
			for b.Loop() {
				re.FindStringIndex(texts[i%len(texts)])
				i++
			}
		})
	}
	b.Run("patternConditions", func(b *testing.B) {
		for b.Loop() {
			for _, p := range pats {
				patternConditions(p)
			}
		}
	})
}

// TestConditionsEdgeShapes: shapes the generators rarely make — a class
// that matches nothing, huge negated classes, a long literal, nested
// optional pieces, an alternation with an empty branch — give only sound
// conditions (the checker panics or fails otherwise).
func TestConditionsEdgeShapes(t *testing.T) {
	for _, p := range []string{`[^\x00-\x{10FFFF}]x`, `[^a]{3}\d`, `(?:ab|)\d\d`, `((a?)?b?)?\d{2}`, `x{0,3}\d`, `[\s\S]{2}@`,
		strings.Repeat("ab", 40) + `\d`, `(?:\d|@){3}`, `(?:^|$)\d\d`} {
		if _, err := Translate(p); err != nil {
			continue
		}
		re2, _ := Translate(p)
		if _, err := regexp.Compile(re2); err != nil {
			continue
		}
		c := newCondChecker(t, p)
		for _, text := range []string{"x", "ab12", "bbb1", "12", "@@@", "١٢", strings.Repeat("ab", 40) + "7", "\xff\xfe9", "ＡＢ１２"} {
			c.check(t, p, text)
		}
	}
}
