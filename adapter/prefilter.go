package adapter

import (
	"regexp/syntax"
	"slices"
	"strings"
	"unicode/utf8"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Prefilter limits: how many literals a rule's pre-check may test, how long
// the shortest must be to be worth testing, and how far a cross product of
// exact sets may grow while a concatenation is walked.
const (
	maxPrefilterLiterals = 16
	minPrefilterLength   = 2
	maxExactSet          = 16
)

// Literals returns a set of folded literals such that every match of the
// pattern (its translation, with Python's classes and case folding spelled
// out as explicit character sets) contains at least one of them, in Fold
// form: a class is enumerated member by member, so the set stays sound
// whatever the class holds (ı, İ, K, full-width digits, ...). The
// generated Rego tests them with contains() on the folded action text
// before it runs the regex, so a regex that cannot match never runs; the
// regex still decides, so semantics (and the {match} text) are unchanged.
// ok is false when no useful set exists (the rule then runs its regex
// unconditionally).
//
// It walks RE2's own syntax tree, in the manner of RE2's prefilter: a node
// is either "exact" (it matches one of a small set of strings) or yields a
// "necessary" set (every match contains one of them).
func Literals(pattern string) (lits []string, ok bool) {
	return necessaryLiterals(pattern, minPrefilterLength)
}

// necessaryLiterals is Literals with the shortest acceptable literal as a
// parameter: the engine's candidate pass (hints.go) takes single
// characters too, since one multi-pattern scan tests them all at once.
//
// Results are remembered by pattern (literalMemo): a tenant's compile asks
// for every rule's set two or three times (the generated pre-check, the
// first-match literals, the engine's candidates), and parsing and walking
// the pattern is most of a policy's translation.
func necessaryLiterals(pattern string, minLength int) (lits []string, ok bool) {
	set, hit := literalMemo.Get(pattern)
	if !hit {
		set = analyzeLiterals(pattern)
		literalMemo.Add(pattern, set)
	}
	if set == nil {
		return nil, false
	}
	for _, s := range set {
		if len(s) < minLength {
			return nil, false
		}
	}
	return slices.Clone(set), true
}

// translatedSyntax returns the simplified RE2 syntax tree of pattern's
// translation (Translate), the tree the regex runs from, which the
// literal sets and the conditions (conditions.go) are derived from; false
// when the pattern does not translate or parse.
func translatedSyntax(pattern string) (*syntax.Regexp, bool) {
	re2, err := Translate(pattern)
	if err != nil {
		return nil, false
	}
	re, err := syntax.Parse(re2, syntax.Perl)
	if err != nil {
		return nil, false
	}
	return re.Simplify(), true
}

// literalMemo holds analyzeLiterals' results for the patterns seen last.
var literalMemo, _ = lru.New[string, []string](4096)

// analyzeLiterals returns the pattern's necessary literal set, nil when no
// usable one exists.
func analyzeLiterals(pattern string) []string {
	re, ok := translatedSyntax(pattern)
	if !ok {
		return nil
	}
	info := analyze(re)
	set := info.necessary()
	if len(set) == 0 || len(set) > maxPrefilterLiterals {
		return nil
	}
	return set
}

// litInfo describes a regex node: exact != nil means the node matches
// exactly one of those strings (folded); otherwise need, when non-nil,
// holds literals one of which every match contains.
type litInfo struct {
	exact []string
	need  []string
}

func (li litInfo) necessary() []string {
	if li.exact != nil {
		if slices.Contains(li.exact, "") {
			return nil
		}
		return minimize(li.exact)
	}
	return li.need
}

var anyInfo = litInfo{}

func exactInfo(ss ...string) litInfo {
	set := make([]string, 0, len(ss))
	for _, s := range ss {
		set = append(set, Fold(s))
	}
	slices.Sort(set)
	return litInfo{exact: slices.Compact(set)}
}

func analyze(re *syntax.Regexp) litInfo {
	switch re.Op {
	case syntax.OpLiteral:
		return exactInfo(string(re.Rune))
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine,
		syntax.OpBeginText, syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return exactInfo("")
	case syntax.OpCharClass:
		return classInfo(re.Rune)
	case syntax.OpCapture:
		return analyze(re.Sub[0])
	case syntax.OpStar:
		return anyInfo
	case syntax.OpQuest:
		sub := analyze(re.Sub[0])
		if sub.exact != nil && len(sub.exact) < maxExactSet {
			return exactInfo(append([]string{""}, sub.exact...)...)
		}
		return anyInfo
	case syntax.OpPlus:
		return litInfo{need: analyze(re.Sub[0]).necessary()}
	case syntax.OpRepeat:
		if re.Min == 0 {
			return anyInfo
		}
		return litInfo{need: analyze(re.Sub[0]).necessary()}
	case syntax.OpConcat:
		return concatInfo(re.Sub)
	case syntax.OpAlternate:
		return alternateInfo(re.Sub)
	}
	return anyInfo // OpAnyChar, OpAnyCharNotNL, OpNoMatch and anything new
}

// classInfo turns a small character class into an exact set.
func classInfo(ranges []rune) litInfo {
	var ss []string
	for i := 0; i+1 < len(ranges); i += 2 {
		for r := ranges[i]; r <= ranges[i+1]; r++ {
			ss = append(ss, string(r))
			if len(ss) > 4*maxExactSet { // folding shrinks [Aa]-style classes
				return anyInfo
			}
		}
	}
	info := exactInfo(ss...)
	if len(info.exact) > maxExactSet {
		return anyInfo
	}
	return info
}

func concatInfo(subs []*syntax.Regexp) litInfo {
	exact := []string{""}
	allExact := true
	var candidates [][]string
	for _, sub := range subs {
		info := analyze(sub)
		if exact != nil && info.exact != nil && len(exact)*len(info.exact) <= maxExactSet {
			exact = cross(exact, info.exact)
			continue
		}
		allExact = false
		if exact != nil {
			candidates = append(candidates, minimizeOrNil(exact))
		}
		candidates = append(candidates, info.necessary())
		exact = info.exact // a new run of exact pieces starts here
	}
	if allExact {
		slices.Sort(exact)
		return litInfo{exact: slices.Compact(exact)}
	}
	if exact != nil {
		candidates = append(candidates, minimizeOrNil(exact))
	}
	return litInfo{need: best(candidates)}
}

func alternateInfo(subs []*syntax.Regexp) litInfo {
	infos := make([]litInfo, len(subs))
	allExact := true
	for i, sub := range subs {
		infos[i] = analyze(sub)
		allExact = allExact && infos[i].exact != nil
	}
	if allExact {
		var ss []string
		for _, in := range infos {
			ss = append(ss, in.exact...)
		}
		if len(ss) <= maxExactSet {
			slices.Sort(ss)
			return litInfo{exact: slices.Compact(ss)}
		}
	}
	var need []string
	for _, in := range infos {
		n := in.necessary()
		if n == nil {
			return anyInfo // one branch can match without any literal
		}
		need = append(need, n...)
	}
	return litInfo{need: minimize(need)}
}

func cross(a, b []string) []string {
	out := make([]string, 0, len(a)*len(b))
	for _, x := range a {
		for _, y := range b {
			out = append(out, x+y)
		}
	}
	return out
}

func minimizeOrNil(set []string) []string {
	if slices.Contains(set, "") {
		return nil
	}
	return minimize(set)
}

// minimize drops literals that contain another literal of the set (the
// shorter one is implied) and sorts the rest.
func minimize(set []string) []string {
	set = slices.Clone(set)
	slices.SortFunc(set, func(a, b string) int {
		if d := len(a) - len(b); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	var out []string
	for _, s := range set {
		implied := false
		for _, kept := range out {
			if strings.Contains(s, kept) {
				implied = true
				break
			}
		}
		if !implied {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// best picks the most selective candidate: the one whose shortest literal
// is longest, then the one with fewer literals.
func best(candidates [][]string) []string {
	var pick []string
	pickScore := -1
	for _, c := range candidates {
		if len(c) == 0 || len(c) > maxPrefilterLiterals {
			continue
		}
		score := utf8.RuneCountInString(c[0])
		for _, s := range c {
			score = min(score, utf8.RuneCountInString(s))
		}
		if score > pickScore || (score == pickScore && len(c) < len(pick)) {
			pick, pickScore = c, score
		}
	}
	return pick
}
