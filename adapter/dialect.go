package adapter

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// CaseInsensitivePrefix is the flag group every rule pattern is compiled
// with: rules match case-insensitively (CONTRACT A3).
const CaseInsensitivePrefix = "(?i)"

// CompilePattern compiles a rule pattern the way Gatehouse evaluates it:
// RE2 syntax, case-insensitive. It is the one place CaseInsensitivePrefix is
// added, so every caller sees the same regexp.
func CompilePattern(pattern string) (*regexp.Regexp, error) {
	return regexp.Compile(CaseInsensitivePrefix + pattern)
}

// CheckPattern checks that pattern is a regex Gatehouse can evaluate with
// the meaning its author intended. Policies are often written for Novyx's
// hosted service, which uses Python's re; constructs that only Python
// understands are rejected by name (`look-ahead (?=...) is not supported`)
// rather than left to RE2's terser errors or, worse, to a different meaning
// (RE2 reads \12 as an octal escape, Python as a back-reference, and a{,3}
// is a repetition in Python but literal text in RE2). Then the pattern must
// compile with CompilePattern. Problems are a *pdp.ValidationError for field.
func CheckPattern(field, pattern string) error {
	if ve := checkPattern(field, pattern); ve != nil {
		return ve
	}
	return nil // not a typed nil inside a non-nil error
}

func checkPattern(field, pattern string) *pdp.ValidationError {
	if construct := pythonOnlyConstruct(pattern); construct != "" {
		return &pdp.ValidationError{Field: field, Reason: construct}
	}
	if _, err := CompilePattern(pattern); err != nil {
		return &pdp.ValidationError{Field: field, Reason: "invalid regex: " + regexErrorReason(err, pattern)}
	}
	return nil
}

// regexErrorReason turns a regexp compile error into RE2's own reason,
// without Go's "error parsing regexp: " prefix and without echoing the
// whole pattern (with our prefix in front, which the author never wrote).
func regexErrorReason(err error, pattern string) string {
	var se *syntax.Error
	if !errors.As(err, &se) {
		return strings.TrimPrefix(err.Error(), "error parsing regexp: ")
	}
	reason := se.Code.String()
	expr := se.Expr
	if expr == CaseInsensitivePrefix+pattern {
		return reason
	}
	expr = strings.TrimPrefix(expr, CaseInsensitivePrefix)
	if expr == "" {
		return reason
	}
	return reason + ": `" + expr + "`"
}

// pythonOnlyConstruct scans pattern for the first Python-only construct and
// returns why it is rejected, or "" when there is none. It understands
// escapes, \Q...\E and character classes, so `\(?=`, `[(?=]` and `[]a]` are
// not mistaken for constructs. It does not check that the pattern is
// otherwise valid; compiling does that.
func pythonOnlyConstruct(p string) string {
	for i := 0; i < len(p); {
		switch c := p[i]; c {
		case '\\':
			if i+1 >= len(p) {
				return "" // trailing backslash: the compiler reports it
			}
			switch n := p[i+1]; {
			case n == 'Q': // RE2 quoting: literal up to \E or the end
				end := strings.Index(p[i+2:], `\E`)
				if end < 0 {
					return ""
				}
				i += 2 + end + 2
				continue
			case n == 'Z':
				return `\Z is not supported; use \z`
			case n == 'g' && i+2 < len(p) && p[i+2] == '<':
				return `back-reference \g<...> is not supported`
			case n >= '1' && n <= '9':
				// Python reads \ plus three octal digits as an octal escape,
				// which RE2 reads the same way; anything else starting with
				// 1-9 is a back-reference to group 1-99.
				if n <= '7' && i+3 < len(p) && isOctalDigit(p[i+2]) && isOctalDigit(p[i+3]) {
					i += 4
					continue
				}
				end := i + 2
				if end < len(p) && p[end] >= '0' && p[end] <= '9' {
					end++
				}
				return fmt.Sprintf("back-reference %s is not supported", p[i:end])
			}
			i += 2 // a multi-byte escaped rune leaves continuation bytes, never ASCII
			continue
		case '[':
			i = skipCharClass(p, i)
			continue
		case '(':
			if i+1 < len(p) && p[i+1] == '?' {
				if what := pythonOnlyGroup(p[i+2:]); what != "" {
					return what + " is not supported"
				}
				i += 2 // past "(?" so its '?' is not taken for a quantifier
				continue
			}
		case '*', '+', '?':
			if i+1 < len(p) && p[i+1] == '+' {
				return fmt.Sprintf("possessive quantifier %c+ is not supported", c)
			}
		case '{':
			if end, lower := repetitionEnd(p, i); end > 0 {
				if !lower {
					return fmt.Sprintf("repetition %s is not supported; use {0%s", p[i:end], p[i+1:end])
				}
				if end < len(p) && p[end] == '+' {
					return "possessive quantifier }+ is not supported"
				}
				i = end
				continue
			}
		}
		i++
	}
	return ""
}

// pythonOnlyGroup names the Python-only group whose text after "(?" is rest.
func pythonOnlyGroup(rest string) string {
	for _, g := range []struct{ prefix, name string }{
		{"=", "look-ahead (?=...)"},
		{"!", "negative look-ahead (?!...)"},
		{"<=", "look-behind (?<=...)"},
		{"<!", "negative look-behind (?<!...)"},
		{">", "atomic group (?>...)"},
		{"P=", "named back-reference (?P=name)"},
		{"#", "comment group (?#...)"},
		{"(", "conditional group (?(...)...)"},
	} {
		if strings.HasPrefix(rest, g.prefix) {
			return g.name
		}
	}
	return ""
}

// skipCharClass returns the index just past the character class that opens
// at p[i] == '['. A ']' right after "[" or "[^" is a literal, and "[:name:]"
// is a POSIX class, as in RE2. An unterminated class runs to the end.
func skipCharClass(p string, i int) int {
	j := i + 1
	if j < len(p) && p[j] == '^' {
		j++
	}
	if j < len(p) && p[j] == ']' {
		j++
	}
	for j < len(p) {
		switch p[j] {
		case '\\':
			j += 2
			continue
		case ']':
			return j + 1
		case '[':
			if strings.HasPrefix(p[j:], "[:") {
				if k := strings.Index(p[j+2:], ":]"); k >= 0 {
					j += 2 + k + 2
					continue
				}
			}
		}
		j++
	}
	return len(p)
}

// repetitionEnd reports whether p[i] == '{' opens a counted repetition as
// Python reads it ({n}, {n,}, {n,m}, {,m}, {,}); end is the index after its
// '}' (0 if it is literal text) and lower whether it names a lower bound.
// RE2 reads the forms without a lower bound as literal text.
func repetitionEnd(p string, i int) (end int, lower bool) {
	j := i + 1
	start := j
	for j < len(p) && p[j] >= '0' && p[j] <= '9' {
		j++
	}
	lower = j > start
	comma := j < len(p) && p[j] == ','
	if comma {
		j++
		for j < len(p) && p[j] >= '0' && p[j] <= '9' {
			j++
		}
	}
	if j >= len(p) || p[j] != '}' || (!lower && !comma) {
		return 0, false
	}
	return j + 1, lower
}

func isOctalDigit(b byte) bool { return b >= '0' && b <= '7' }

// matchesEmpty reports whether pattern admits an empty match anywhere: the
// regex is nullable once empty-width assertions (^ $ \b \B \A \z) are taken
// as matching. Such a pattern (a*, (x|), \b, foo|$) makes a rule fire on
// every action with an empty {match}. This is stricter than asking whether
// it matches "" — `\b|x` does not match "" but matches every action text —
// and the only patterns it rejects beyond that ask are ones like ^$ that can
// never match an action text at all. A pattern that does not compile is
// not nullable here; CheckPattern reports it.
func matchesEmpty(pattern string) bool {
	re, err := syntax.Parse(CaseInsensitivePrefix+pattern, syntax.Perl)
	if err != nil {
		return false
	}
	return nullable(re)
}

func nullable(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpEmptyMatch, syntax.OpStar, syntax.OpQuest,
		syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return true
	case syntax.OpLiteral:
		return len(re.Rune) == 0
	case syntax.OpCapture, syntax.OpPlus:
		return nullable(re.Sub[0])
	case syntax.OpRepeat:
		return re.Min == 0 || nullable(re.Sub[0])
	case syntax.OpConcat:
		for _, s := range re.Sub {
			if !nullable(s) {
				return false
			}
		}
		return true
	case syntax.OpAlternate:
		for _, s := range re.Sub {
			if nullable(s) {
				return true
			}
		}
		return false
	}
	return false // OpNoMatch, OpCharClass, OpAnyChar, OpAnyCharNotNL
}
