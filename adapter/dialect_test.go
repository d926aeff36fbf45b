package adapter

import (
	"errors"
	"testing"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

func TestCheckPatternRejectsPythonConstructs(t *testing.T) {
	tests := []struct {
		pattern string
		want    string
	}{
		{`foo(?=bar)`, "look-ahead (?=...) is not supported"},
		{`foo(?!bar)`, "negative look-ahead (?!...) is not supported"},
		{`(?<=\$)\d+`, "look-behind (?<=...) is not supported"},
		{`(?<!no )transfer`, "negative look-behind (?<!...) is not supported"},
		{`(?>a|ab)c`, "atomic group (?>...) is not supported"},
		{`(?P<q>['"]).*?(?P=q)`, "named back-reference (?P=name) is not supported"},
		{`(a)\1`, `back-reference \1 is not supported`},
		{`(a)\9`, `back-reference \9 is not supported`},
		{`(a)\12`, `back-reference \12 is not supported`}, // octal in RE2, group 12 in Python
		{`(a)\18`, `back-reference \18 is not supported`},
		{`(a)\8123`, `back-reference \81 is not supported`}, // Python reads at most two digits
		{`(?P<x>a)\g<x>`, `back-reference \g<...> is not supported`},
		{`(a)\g<1>`, `back-reference \g<...> is not supported`},
		{`a*+`, "possessive quantifier *+ is not supported"},
		{`a++`, "possessive quantifier ++ is not supported"},
		{`a?+`, "possessive quantifier ?+ is not supported"},
		{`a{2}+`, "possessive quantifier }+ is not supported"},
		{`a{2,}+`, "possessive quantifier }+ is not supported"},
		{`a{2,5}+`, "possessive quantifier }+ is not supported"},
		{`a(?#comment)b`, "comment group (?#...) is not supported"},
		{`(a)?(?(1)b|c)`, "conditional group (?(...)...) is not supported"},
		{`a{,3}`, "repetition {,3} is not supported; use {0,3}"}, // literal text in RE2
		{`a{,}`, "repetition {,} is not supported; use {0,}"},
		// The look-alikes stop being look-alikes when the escape is escaped.
		{`\\(?=x)`, "look-ahead (?=...) is not supported"},
		{`\\\\1`, ""},
		{`\\\1`, `back-reference \1 is not supported`},
		// The first construct is the one reported.
		{`(?=a)\1`, "look-ahead (?=...) is not supported"},
		// After a class or a quote, scanning goes on.
		{`[a](?=b)`, "look-ahead (?=...) is not supported"},
		{`\Qx\E(?=y)`, "look-ahead (?=...) is not supported"}, // no \Q quoting in Python
		// Python's re means something RE2 cannot: refused by name.
		{`\bword\b`, `word boundary \b is not supported: Python's \b is Unicode, RE2's is ASCII-only and cannot be rebuilt without look-around`},
		{`a\B`, `\B is not supported: Python's \B is Unicode, RE2's is ASCII-only and cannot be rebuilt without look-around`},
		{`end$`, `$ is not supported: in Python it also matches before a final newline; use \Z for the end of the text`},
		{`(?i)x`, "inline flags (?i) are not supported: rules are always case-insensitive and have no other flags"},
		{`(?s:x)`, "inline flags (?s: are not supported: rules are always case-insensitive and have no other flags"},
		{`(?<name>x)`, "named group (?<name>...) is not supported; use (?P<name>...)"},
		{`\p{Greek}`, `bad escape \p`},
		{`\Qx\E`, `bad escape \Q`},
		{`\x{31}`, `\x{...} is RE2 syntax; Python writes \xhh, \uhhhh or \Uhhhhhhhh`},
		{`\N{DIGIT ONE}`, `named character escape \N{...} is not supported; write the character or \uXXXX`},
		{`\8`, `back-reference \8 is not supported`},
		{`[\8]`, `bad escape \8`},
		{`[\d-z]`, `bad character range in [...]: a range cannot start or end with \d`},
		{`[z-a]`, `bad character range z-a`},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			err := CheckPattern("rules[1].match", tt.pattern)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckPattern(%q) = %v, want nil", tt.pattern, err)
				}
				return
			}
			var ve *pdp.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("CheckPattern(%q) = %v, want a *pdp.ValidationError", tt.pattern, err)
			}
			if ve.Field != "rules[1].match" || ve.Reason != tt.want {
				t.Errorf("CheckPattern(%q) = %q, want %q", tt.pattern, err, "rules[1].match: "+tt.want)
			}
		})
	}
}

// Look-alikes of the constructs above that RE2 reads as something else, the
// same way Python does: they must be accepted.
func TestCheckPatternAcceptsLookAlikes(t *testing.T) {
	for _, p := range []string{
		`\(?=x\)`,              // escaped paren: optional "(" then "=x)"
		`\(?!x`,                // likewise
		`[(?=]`,                // in a class
		`[(?!<=>#]+`,           // in a class
		`[]a](?:b)`,            // ']' first in a class is literal
		`[^]a]x`,               // and after '^'
		`[[:alpha:]]+x`,        // POSIX class inside a class
		`[[]x`,                 // '[' inside a class is literal
		`[\]](?:x)`,            // escaped ']' in a class
		`[\\]\d`,               // escaped backslash in a class, then an escape
		`[*+?]+x`,              // quantifier characters in a class
		`\*+`,                  // escaped '*' then a quantifier
		`\++`,                  // escaped '+' then a quantifier
		`\?+`,                  // escaped '?' then a quantifier
		`a}+`,                  // a literal '}' repeated
		`a{}+`,                 // "{}" is literal in both dialects
		`a{x}+`,                // so is "{x}"
		`\{2}+`,                // escaped brace: literal text
		`[{,3}]`,               // braces in a class
		`\123`,                 // octal escape in both dialects
		`\0`,                   // likewise
		`\012`,                 // likewise
		`\\1`,                  // escaped backslash then a literal 1
		`\x31\u0031\U00000031`, // Python's hex escapes
		`\z`,                   // end of text (Python 3.14 spells it so too)
		`end\Z`,                // Python's end of text
		`\Aword.`,              // assertions
		`(?P<name>x)`,          // named group, Python style
		`(?:x)`,                // non-capturing group
		`[\b]x`,                // backspace in a class
		`a{2}b{2,}c{2,5}`,
		`a{2}?b*?c+?d??`, // lazy quantifiers
		`(email|phone|ssn|passport|routing)`,
		`é+`,
	} {
		t.Run(p, func(t *testing.T) {
			if err := CheckPattern("rules[0].match", p); err != nil {
				t.Errorf("CheckPattern(%q) = %v, want nil", p, err)
			}
		})
	}
}

func TestCheckPatternInvalidRegex(t *testing.T) {
	tests := []struct {
		pattern string
		want    string
	}{
		{`(abc`, "rules[0].match: invalid regex: missing closing )"},
		{`abc)`, "rules[0].match: invalid regex: unexpected )"},
		{`[a-z`, "rules[0].match: unterminated character set at position 0"},
		{`*a`, "rules[0].match: invalid regex: missing argument to repetition operator: `*`"},
		{`a**`, "rules[0].match: invalid regex: invalid nested repetition operator: `**`"},
		{`\u00e`, "rules[0].match: bad escape \\u00e: \\x takes 2 hex digits, \\u 4 and \\U 8"},
		{`a{1001}`, "rules[0].match: invalid regex: invalid repeat count: `{1001}`"},
		{`(?x)a b`, "rules[0].match: inline flags (?x) are not supported: rules are always case-insensitive and have no other flags"},
		{`a\`, "rules[0].match: bad escape (end of pattern)"},
		{"\xff", "rules[0].match: must be valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			err := CheckPattern("rules[0].match", tt.pattern)
			if err == nil || err.Error() != tt.want {
				t.Errorf("CheckPattern(%q) = %v, want %q", tt.pattern, err, tt.want)
			}
		})
	}
}

func TestCompilePatternIsCaseInsensitive(t *testing.T) {
	re, err := CompilePattern("wire_transfer")
	if err != nil {
		t.Fatal(err)
	}
	if re.String() != "[Ww][Ii\\x{130}\\x{131}][Rr][Ee]_[Tt][Rr][Aa][Nn][Ss\\x{17f}][Ff][Ee][Rr]" {
		t.Errorf("String() = %q", re.String())
	}
	for _, s := range []string{`{"action":"WIRE_TRANSFER"}`, "Wire_Transfer", "wıre_tranſfer"} {
		if !re.MatchString(s) {
			t.Errorf("%q does not match %q", re, s)
		}
	}
}

func TestMatchesEmpty(t *testing.T) {
	tests := []struct {
		pattern string
		want    bool
	}{
		{`a*`, true},
		{`(x|)`, true},
		{`x?`, true},
		{`(?:)`, true},
		{`a{0,3}`, true},
		{`(a*)+`, true},
		{`foo|\Z`, true},
		{`^\Z`, true},
		{`\A|x`, true}, // never matches "" at a later position, but matches every text
		{`a`, false},
		{`a+`, false},
		{`a{1,3}`, false},
		{`^a*b\Z`, false},
		{`(email|phone)`, false},
		{`[^x]`, false},
		{`.`, false},
		{`(a|b*)c`, false},
		{`(abc`, false}, // does not compile: CheckPattern reports it
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			if got := matchesEmpty(tt.pattern); got != tt.want {
				t.Errorf("matchesEmpty(%q) = %v, want %v", tt.pattern, got, tt.want)
			}
		})
	}
}

// matchesEmpty must cover at least the brief's definition: every pattern
// that matches "" at position 0 is rejected.
func TestMatchesEmptyCoversEmptyText(t *testing.T) {
	for _, p := range []string{`a*`, `(x|)`, `^`, `\Z`, `\A`, `(?:)`, `x{0}`, `[a-z]*?`} {
		re, err := CompilePattern(p)
		if err != nil {
			t.Fatal(err)
		}
		if re.MatchString("") && !matchesEmpty(p) {
			t.Errorf("%q matches \"\" but matchesEmpty is false", p)
		}
	}
}
