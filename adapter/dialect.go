package adapter

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"sync"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// CaseInsensitivePrefix is the flag group RE2 needs to read a pattern
// case-insensitively. Translated patterns do not use it (Translate spells
// Python's case folding out character by character); it remains for the
// library's own fixed patterns and for older callers.
const CaseInsensitivePrefix = "(?i)"

// Pattern is a rule pattern read once at write time: translated to RE2,
// parsed and compiled once, and measured.
type Pattern struct {
	// Source is the pattern as written (Python re syntax).
	Source string
	// RE2 is its translation, what the generated Rego matches with.
	RE2 string
	// Cost is the most instruction visits Go's regexp makes per byte of
	// text (see MaxRuleCost).
	Cost int
	// Nullable reports whether it admits an empty match (matchesEmpty).
	Nullable bool
}

// AnalyzePattern translates pattern (Translate), compiles the translation
// once with Go's regexp/syntax — what regexp.Compile, and so OPA, does —
// and measures it. The error is a refusal reason without a field.
func AnalyzePattern(pattern string) (*Pattern, error) {
	analyses.mu.Lock()
	r, ok := analyses.m[pattern]
	analyses.mu.Unlock()
	if ok {
		return r.p, r.err
	}
	p, err := analyzePattern(pattern)
	analyses.mu.Lock()
	if len(analyses.m) >= maxTranslations {
		clear(analyses.m)
	}
	analyses.m[pattern] = analysis{p, err}
	analyses.mu.Unlock()
	return p, err
}

// analyses memoizes AnalyzePattern, a pure function the registry, the
// tenant budget and the engine's re-validation of stored policies all
// call; bounded like translations. Patterns are never modified.
var analyses = struct {
	mu sync.Mutex
	m  map[string]analysis
}{m: map[string]analysis{}}

type analysis struct {
	p   *Pattern
	err error
}

// RE2Cost measures a pattern already in RE2 syntax (a translation, as
// generated modules carry it) the way AnalyzePattern measures a Python
// one: a bundle's patterns are checked against the same bounds as a
// write's, since a bundle holds only translations.
func RE2Cost(re2 string) (int, error) {
	re, err := syntax.Parse(re2, syntax.Perl)
	if err != nil {
		return 0, err
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return 0, err
	}
	return patternCost(prog), nil
}

func analyzePattern(pattern string) (*Pattern, error) {
	re2, err := Translate(pattern)
	if err != nil {
		return nil, err
	}
	re, err := syntax.Parse(re2, syntax.Perl)
	if err != nil {
		return nil, patternError("invalid regex: " + regexErrorReason(err, pattern))
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return nil, patternError("invalid regex: " + regexErrorReason(err, pattern))
	}
	return &Pattern{Source: pattern, RE2: re2, Cost: patternCost(prog), Nullable: nullable(re)}, nil
}

// CompilePattern compiles a rule pattern the way Gatehouse evaluates it:
// its translation to RE2 (Translate), which means what Python's
// re.search(pattern, text, re.IGNORECASE) means.
func CompilePattern(pattern string) (*regexp.Regexp, error) {
	re2, err := Translate(pattern)
	if err != nil {
		return nil, err
	}
	return regexp.Compile(re2)
}

// CheckPattern checks that pattern is a regex Gatehouse can evaluate with
// the meaning its author intended. Policies are written for Python's re
// (Novyx's hosted service); Translate rewrites it for RE2 and refuses by
// name what RE2 cannot mean the same way (`look-ahead (?=...) is not
// supported`, `word boundary \b is not supported: ...`) rather than leave
// it to RE2's terser errors or, worse, a different meaning (RE2 reads \12
// as an octal escape, Python as a back-reference; a{,3} is a repetition in
// Python but literal text in RE2). Then the translation must compile and
// cost at most MaxRuleCost. Problems are a *pdp.ValidationError for field.
func CheckPattern(field, pattern string) error {
	if _, ve := checkPattern(field, pattern); ve != nil {
		return ve
	}
	return nil // not a typed nil inside a non-nil error
}

func checkPattern(field, pattern string) (*Pattern, *pdp.ValidationError) {
	p, err := AnalyzePattern(pattern)
	if err != nil {
		return nil, &pdp.ValidationError{Field: field, Reason: err.Error()}
	}
	if p.Cost > MaxRuleCost {
		return nil, &pdp.ValidationError{Field: field, Reason: costReason(p.Cost, MaxRuleCost, "a rule")}
	}
	return p, nil
}

// costReason explains a cost refusal with the bound.
func costReason(cost, bound int, what string) string {
	return fmt.Sprintf("regex too expensive: costs %d units per byte of text, over the bound of %d for %s (about %s per rule on a %d-byte action; simplify the pattern, e.g. fewer or smaller counted repetitions and alternatives)",
		cost, bound, what, "1 ms", MaxActionTextBytes)
}

// regexErrorReason turns a regexp compile error into RE2's own reason,
// without Go's "error parsing regexp: " prefix. The failing expression is
// quoted only when the author wrote it: the compiler saw the translation.
func regexErrorReason(err error, pattern string) string {
	var se *syntax.Error
	if !errors.As(err, &se) {
		return strings.TrimPrefix(err.Error(), "error parsing regexp: ")
	}
	reason := se.Code.String()
	if se.Expr == "" || se.Expr == pattern || !strings.Contains(pattern, se.Expr) {
		return reason
	}
	return reason + ": `" + se.Expr + "`"
}

// pythonOnlyConstruct scans pattern for the first Python-only construct and
// returns why it is rejected, or "" when there is none. It understands
// escapes and character classes, so `\(?=`, `[(?=]` and `[]a]` are not
// mistaken for constructs. It does not check that the pattern is
// otherwise valid; compiling does that.
func pythonOnlyConstruct(p string) string {
	for i := 0; i < len(p); {
		switch c := p[i]; c {
		case '\\':
			if i+1 >= len(p) {
				return "" // trailing backslash: the compiler reports it
			}
			switch n := p[i+1]; {
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
// at p[i] == '['. A ']' right after "[" or "[^" is a literal, as in Python
// (which has no POSIX classes: "[[:alpha:]" is a class of five characters).
// An unterminated class runs to the end.
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
// regex is nullable once empty-width assertions (^ \A \z) are taken as
// matching. Such a pattern (a*, (x|), foo|^) makes a rule fire on every
// action with an empty {match}. This is stricter than asking whether it
// matches "", and the only patterns it rejects beyond that ask are ones
// like ^\Z that can never match an action text at all. A pattern that does
// not translate or compile is not nullable here; CheckPattern reports it.
func matchesEmpty(pattern string) bool {
	p, err := AnalyzePattern(pattern)
	return err == nil && p.Nullable
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
