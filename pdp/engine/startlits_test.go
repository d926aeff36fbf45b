package engine

import (
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/test/scale"
)

// startLiteralPatterns are Python patterns as policies write them; the
// tests run their translations (what the rule data holds).
var startLiteralPatterns = []string{
	`(email|phone|address)`,
	`(external|public)\s+(channel|share)`,
	`(external|public|customer)`,
	`(?:^|\W)\d{3}-\d{2}-\d{4}(?:\W|\Z)`,
	`[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}`,
	`\d{4}[ -]?\d{4}[ -]?\d{4}`,
	`\bpassword\b`,
	`pass(word)?s?`,
	`(ab|abc)(c|d)`,
	`(abd|abc)(c|d)`,
	`(abc|ab)(cd|c)d?`,
	`(?i)kelvin|STRASSE`,
	`secret[-_ ]?(key|token)+`,
	`(aa|aaa)+b`,
	`(?:aaa)+b`, // fails at the first "aaa" of "aaaab", matches at the next
	`ſecret|ﬀoo`,
	`api_?key\s*[:=]\s*\S+`,
	`internal only`,
	`x*abc`,
	`(abc)?def`,
	`rm -rf /`,
	`drop\s+table`,
	`a{2,}aab`,
	`foo$`,
	`(?m)foo$`,
	`[Tt][Oo][Kk][Ee][Nn]`,
	`[a-c]+@[a-z]+`,
	`[a-c]+?@`,
	`(?:ab)+c`,
	`a+b+c`,
	`[0-9]+(?:\.|-)[0-9]`,
	`(?i)[a-c]+[1-3]+`,
	`[ab]+\s*@`,
	`\w+\W`,
	`(?:^|\W)\d+`,
	`(?:\W|^)[a-c]+@`,
	`(?:^|\s)(?:ab|cd)\b`,
	`(?m)(?:^|\W)\d{3}`,
	`(?:^|\W)\w+`,
}

// startLiteralTexts are texts built to land on and near the patterns'
// literals (case variants, overlapping starts, near misses), plus scale
// M's corpus.
func startLiteralTexts(t *testing.T) []string {
	t.Helper()
	texts := []string{
		"", "email", "EMAIL me", "the Public  Channel", "external partner channel",
		"external\tshare external share", "123-45-6789", "x 123-45-6789 y", "a@b.co alice@example.com",
		"1234 5678 9012", "password PASSWORD passwords", "passpass", "abcd abcc abd", "abcdd abccd",
		"KELVIN strasse Strasse", "secret-keytoken secret tokenkey", "aaaab aab ab", "secret ffoo",
		"api_key = abc apikey:def", "INTERNAL ONLY internal  only", "xxabc abc", "abcdef def", "rm -rf /tmp",
		"DROP  TABLE x", "aaaab aab", "foo\nfoo", "barfoo", "TOKEN token ToKeN",
		"123-45-6789 x", "x123-45-6789", "a-123-45-6789-", "1 123-45-6789", "(123-45-6789)", "\n123-45-67890",
		`{"action":"x","params":{"ssn":"123-45-6789"}}`, "ab@", " ab", "cd-", "x\n123",
	}
	r := rand.New(rand.NewPCG(3, 5))
	alphabet := []string{"a", "b", "c", "d", "A", "B", "-", " ", "\t", "\n", "@", ".", "1", "2", "3", "4", "5",
		"email", "PHONE", "external", "public", "channel", "share", "customer", "password", "secret", "key",
		"token", "foo", "ab", "abc", "cd", "kelvin", "strasse", "internal", "only", "drop", "table", "rm -rf /", "_", "=", ":"}
	for range 3000 {
		var sb strings.Builder
		for range r.IntN(24) {
			sb.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		texts = append(texts, sb.String())
	}
	s := scale.M()
	for _, a := range s.Actions[:300] {
		text, err := actionText(a.Name, a.Params)
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, text)
	}
	return texts
}

// TestGoRegexMatchesOPA: goRegex's find and match give what OPA's
// regex.find_n(p, text, 1) (FindAllString) and regex.match (MatchString)
// give, for every pattern and text, with and without start literals.
func TestGoRegexMatchesOPA(t *testing.T) {
	texts := startLiteralTexts(t)
	withStarts := 0
	for _, p := range startLiteralPatterns {
		patterns := []string{p}
		if translated, err := adapter.Translate(p); err == nil {
			patterns = append(patterns, translated)
		}
		for _, pattern := range patterns {
			g, err := compileGoRegex(pattern)
			if err != nil {
				continue // Python-only syntax: only its translation runs
			}
			if g.anchored != nil {
				withStarts++
			}
			re := regexp.MustCompile(pattern)
			for _, text := range texts {
				folded, ascii := foldText(text), isASCII(text)
				want := re.FindAllString(text, 1)
				got, ok := g.find(text, folded, ascii)
				if ok != (len(want) == 1) || ok && got != want[0] {
					t.Fatalf("%.60q (starts %q) on %q: find %q %v, want %q", pattern, g.starts, text, got, ok, want)
				}
				if got, want := g.match(text, folded, ascii), re.MatchString(text); got != want {
					t.Fatalf("%.60q (starts %q) on %q: match %v, want %v", pattern, g.starts, text, got, want)
				}
			}
		}
	}
	if withStarts < len(startLiteralPatterns) {
		t.Fatalf("only %d patterns with start literals: the test tests little", withStarts)
	}
}

// TestLeadingRun pins which patterns find tries at run starts.
func TestLeadingRun(t *testing.T) {
	for _, c := range []struct {
		pattern string
		class   string // ASCII bytes of C, "" for none
	}{
		{`[a-c]+@[a-z]+`, "abc"},
		{`(?i)[a-c]+[1-3]+`, "ABCabc"},
		{`a+b+c`, "a"},
		{`(?:ab)+c`, ""},   // runs of "ab", not of one character
		{`[ab]+\s*@`, ""},  // may be followed by nothing: \s*
		{`[ab]+[b-c]`, ""}, // what follows may continue the run
		{`\b[ab]+@`, ""},   // looks behind
		{`[a-z]+`, ""},     // nothing follows
	} {
		class, _ := leadingRun(c.pattern)
		got := ""
		if class != nil {
			for b := range class {
				if class[b] {
					got += string(rune(b))
				}
			}
		}
		if got != c.class {
			t.Errorf("%s: run class %q, want %q", c.pattern, got, c.class)
		}
	}
}

// TestLeadingBoundary pins which patterns find tries at (?:^|W) boundaries.
func TestLeadingBoundary(t *testing.T) {
	for _, c := range []struct {
		pattern     string
		class, next string // ASCII bytes of W and of R's first, "" for none
	}{
		{`(?:^|[ -])\d{2}`, " -", "0123456789"},
		{`(?:[ -]|^)[a-c]+@`, " -", "abc"},
		{`(?:^|[ -])[a-c-]`, "", ""},            // R may begin with a W byte
		{`(?m)(?:^|[ -])\d`, "", ""},            // ^ of a line: true after \n
		{`(?:^|[ -])\b\d`, "", ""},              // R looks behind
		{`(?:^|[ -])\d*x`, "", ""},              // R may begin empty (\d*): not a form firstBytes knows
		{`(?:^|[ -]|_)\d`, " -_", "0123456789"}, // W merged into one class
	} {
		class, next := leadingBoundary(c.pattern)
		bytesOf := func(set *[128]bool) (s string) {
			if set != nil {
				for b := range set {
					if set[b] {
						s += string(rune(b))
					}
				}
			}
			return s
		}
		if got, gotNext := bytesOf(class), bytesOf(next); got != c.class || gotNext != c.next {
			t.Errorf("%s: %q %q, want %q %q", c.pattern, got, gotNext, c.class, c.next)
		}
	}
	// The SSN rule, in Python's spelling and as translated.
	ssn := `(?:^|\W)\d{3}-\d{2}-\d{4}(?:\W|\Z)`
	translated, err := adapter.Translate(ssn)
	if err != nil {
		t.Fatal(err)
	}
	if g, err := compileGoRegex(translated); err != nil || g.bndClass == nil {
		t.Fatalf("the translated SSN rule has no boundary fast path (%v)", err)
	}
}

// TestStartLiterals pins the start literals of a few patterns: what the
// fast path relies on, and what it refuses.
func TestStartLiterals(t *testing.T) {
	for _, c := range []struct {
		pattern string
		want    []string
	}{
		{`(external|public)\s+(channel|share)`, []string{"external", "public"}},
		{`(?i)(email|phone)`, []string{"email", "phone"}},
		{`[Ee][Mm][Aa][Ii\x{130}\x{131}][Ll]`, []string{"email"}},
		{`(?i)ſecret`, []string{"secret"}},
		{`(?i)kelvin`, []string{"kelvin"}},
		{`secret[-_ ]?key`, []string{"secret"}},
		{`(abd|abc)(c|d)`, []string{"abc", "abd"}},
		{`(ab|abc)(c|d)`, nil},    // parsed as ab(?:|c)(c|d): "ab" is too short
		{`x*abc`, nil},            // may start with x
		{`\bpassword`, nil},       // looks behind its start
		{`(?:^|\W)\d{3}`, nil},    // idem
		{`\d{4}-\d{4}`, nil},      // ten starts of one byte
		{`ab`, nil},               // too short
		{`(?i)é+abc`, nil},        // no ASCII start
		{`[a-z0-9._%+-]+@x`, nil}, // too many starts
		{`(abc)?def`, nil},        // may start with d
		{`abc|`, nil},             // may be empty
		{`internal only`, []string{"internal only"}},
	} {
		got := startLiterals(c.pattern)
		slices.Sort(got)
		slices.Sort(c.want)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: start literals %q, want %q", c.pattern, got, c.want)
		}
	}
}
