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
		{`end\Z`, `\Z is not supported; use \z`},
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
		{`[a]\Z`, `\Z is not supported; use \z`},
		{`\Qx\E(?=y)`, "look-ahead (?=...) is not supported"},
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
		`\(?=x\)`,       // escaped paren: optional "(" then "=x)"
		`\(?!x`,         // likewise
		`[(?=]`,         // in a class
		`[(?!<=>#]+`,    // in a class
		`[]a](?:b)`,     // ']' first in a class is literal
		`[^]a]x`,        // and after '^'
		`[[:alpha:]]+x`, // POSIX class inside a class
		`[[]x`,          // '[' inside a class is literal
		`[\]](?:x)`,     // escaped ']' in a class
		`[\\]\d`,        // escaped backslash in a class, then an escape
		`\Q(?=x)\E`,     // RE2 quoting
		`\Q(?=x)`,       // quoting to the end
		`[*+?]+x`,       // quantifier characters in a class
		`\*+`,           // escaped '*' then a quantifier
		`\++`,           // escaped '+' then a quantifier
		`\?+`,           // escaped '?' then a quantifier
		`a}+`,           // a literal '}' repeated
		`a{}+`,          // "{}" is literal in both dialects
		`a{x}+`,         // so is "{x}"
		`\{2}+`,         // escaped brace: literal text
		`[{,3}]`,        // braces in a class
		`\123`,          // octal escape in both dialects
		`\0`,            // likewise
		`\012`,          // likewise
		`\\1`,           // escaped backslash then a literal 1
		`\x{31}`,        // hex escape
		`\z`,            // RE2's end of text
		`\A\bword\B.`,   // assertions
		`(?P<name>x)`,   // named group, Python style
		`(?<name>x)`,    // named group, RE2 style
		`(?:x)`,         // non-capturing group
		`(?i)x`,         // flags
		`(?i:x)(?-i:y)`, // scoped flags
		`a{2}b{2,}c{2,5}`,
		`a{2}?b*?c+?d??`, // lazy quantifiers
		`(email|phone|ssn|passport|routing)`,
		`\p{Greek}+`,
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
		{`[a-z`, "rules[0].match: invalid regex: missing closing ]: `[a-z`"},
		{`*a`, "rules[0].match: invalid regex: missing argument to repetition operator: `*`"},
		{`a**`, "rules[0].match: invalid regex: invalid nested repetition operator: `**`"},
		{`\u00e9`, "rules[0].match: invalid regex: invalid escape sequence: `\\u`"},
		{`a{1001}`, "rules[0].match: invalid regex: invalid repeat count: `{1001}`"},
		{`(?x)a b`, "rules[0].match: invalid regex: invalid or unsupported Perl syntax: `(?x`"},
		{`a\`, "rules[0].match: invalid regex: trailing backslash at end of expression"},
		{`[[:foo:]]`, "rules[0].match: invalid regex: invalid character class range: `[:foo:]`"},
		{`\é`, "rules[0].match: invalid regex: invalid escape sequence: `\\é`"}, // a multi-byte rune after '\\'
		{"\xff", "rules[0].match: invalid regex: invalid UTF-8: `\xff`"},
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
	if re.String() != CaseInsensitivePrefix+"wire_transfer" {
		t.Errorf("String() = %q", re.String())
	}
	for _, s := range []string{`{"action":"WIRE_TRANSFER"}`, "Wire_Transfer"} {
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
		{`\b`, true},
		{`foo|$`, true},
		{`^$`, true},
		{`\b|x`, true}, // never matches "" but matches every action text
		{`a`, false},
		{`a+`, false},
		{`a{1,3}`, false},
		{`\bfoo\b`, false},
		{`^a*b$`, false},
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
	for _, p := range []string{`a*`, `(x|)`, `^`, `$`, `\B`, `(?i)(?:)`, `x{0}`, `[a-z]*?`} {
		re, err := CompilePattern(p)
		if err != nil {
			t.Fatal(err)
		}
		if re.MatchString("") && !matchesEmpty(p) {
			t.Errorf("%q matches \"\" but matchesEmpty is false", p)
		}
	}
}
