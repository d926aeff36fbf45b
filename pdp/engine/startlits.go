package engine

import (
	"regexp"
	"regexp/syntax"
	"runtime"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
	"weak"
)

// goRegex is one of a hit program's regexes (hitProgram: the rule's
// pattern, its context), with what makes it cheap on ASCII texts.
//
// Go's regexp has no literal prefix to search for when a pattern begins
// with a case-folded literal, which is how the translation spells every
// (?i) pattern ([Ee][Xx]...): an unanchored search then runs the
// backtracker from every position of the text, ~20-40 ns per byte, so a
// 500-byte text costs 10-20 µs per rule whether or not it matches.
// starts are the pattern's start literals (startLiterals): every match on
// an ASCII text begins where the folded text (lower-cased: foldText) has
// one of them. On an ASCII text, find tries the anchored pattern at those
// positions only, in ascending order; the first that matches is the
// leftmost match, and its end is the one the unanchored search gives at
// that start (leftmost-first preferences do not depend on where a search
// began), so find returns what FindAllString(text, 1) returns (and
// match what MatchString does) at the cost of a few anchored attempts.
// Patterns without start literals, or with an assertion that looks before
// the position it is tested at (^, \A, \b, \B: the anchored attempt on
// text[p:] would see a text start at p), and non-ASCII texts, use the
// regex as OPA does.
//
// A pattern that begins with a repeated class C (C+, such as an e-mail
// address's local part) followed by something whose first character is
// never in C has no start literals, but its leftmost match begins where
// a run of C characters does, and that run is followed by one of the
// bytes that can follow C+ (runTail): a match starting inside a run would
// also start one character earlier. On an ASCII text, find tries the
// anchored pattern at those run starts only.
type goRegex struct {
	re       *regexp.Regexp
	anchored *regexp.Regexp // `^(?:pattern)`; nil: neither fast path
	starts   []string
	// runClass, runTail: the ASCII bytes of C and of what follows C+
	// (disjoint); nil without.
	runClass, runTail *[utf8.RuneSelf]bool
	// bndClass, bndNext: for a pattern (?:^|W)R (leadingBoundary), the
	// ASCII bytes of W and those R can begin with (disjoint); nil
	// without.
	bndClass, bndNext *[utf8.RuneSelf]bool
}

// goRegexes are the compiled patterns in use, by pattern, shared by every
// rule (of every tenant and engine) with the same pattern: the tenants
// of a deployment repeat patterns, and each compiled copy was live heap
// the collector walks. The values are weak: a pattern no hit program
// holds any more is collected, and its entry removed.
var goRegexes = struct {
	sync.Mutex
	m map[string]weak.Pointer[goRegex]
}{m: map[string]weak.Pointer[goRegex]{}}

// compileGoRegex compiles pattern as OPA's regex built-ins do
// (regexp.Compile), with its start literals when it has some; a pattern
// compiled before and still in use is shared (a goRegex is read-only and,
// like a regexp.Regexp, safe for concurrent use).
func compileGoRegex(pattern string) (*goRegex, error) {
	goRegexes.Lock()
	wp, ok := goRegexes.m[pattern]
	goRegexes.Unlock()
	if ok {
		if g := wp.Value(); g != nil {
			return g, nil
		}
	}
	g, err := compileGoRegexAlone(pattern)
	if err != nil {
		return nil, err
	}
	goRegexes.Lock()
	if g0 := goRegexes.m[pattern].Value(); g0 != nil {
		g = g0 // compiled meanwhile by another caller
	} else {
		goRegexes.m[pattern] = weak.Make(g)
		runtime.AddCleanup(g, forgetGoRegex, pattern)
	}
	goRegexes.Unlock()
	return g, nil
}

// forgetGoRegex removes pattern's entry once its goRegex is collected
// (unless a newer one took its place).
func forgetGoRegex(pattern string) {
	goRegexes.Lock()
	if wp, ok := goRegexes.m[pattern]; ok && wp.Value() == nil {
		delete(goRegexes.m, pattern)
	}
	goRegexes.Unlock()
}

// compileGoRegexAlone compiles pattern without sharing.
func compileGoRegexAlone(pattern string) (*goRegex, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, err
	}
	g := &goRegex{re: re}
	starts := startLiterals(pattern)
	var runClass, runTail *[utf8.RuneSelf]bool
	var bndClass, bndNext *[utf8.RuneSelf]bool
	if starts == nil {
		runClass, runTail = leadingRun(pattern)
		if runClass == nil {
			bndClass, bndNext = leadingBoundary(pattern)
		}
	}
	if starts != nil || runClass != nil || bndClass != nil {
		if anchored, err := regexp.Compile(`^(?:` + pattern + `)`); err == nil {
			g.anchored, g.starts, g.runClass, g.runTail = anchored, starts, runClass, runTail
			g.bndClass, g.bndNext = bndClass, bndNext
		}
	}
	return g, nil
}

// find is regex.find_n(pattern, text, 1)[0]: the leftmost match, ok false
// when there is none. folded is foldText(text), ascii whether text is
// ASCII.
func (g *goRegex) find(text, folded string, ascii bool) (string, bool) {
	if g.anchored == nil || !ascii {
		ms := g.re.FindAllString(text, 1)
		if len(ms) == 0 {
			return "", false
		}
		return ms[0], true
	}
	for from := 0; ; {
		p, next := g.nextStart(text, folded, from)
		if p < 0 {
			return "", false
		}
		if loc := g.anchored.FindStringIndex(text[p:]); loc != nil {
			return text[p : p+loc[1]], true
		}
		from = next
	}
}

// match is regex.match(pattern, text).
func (g *goRegex) match(text, folded string, ascii bool) bool {
	if g.anchored == nil || !ascii {
		return g.re.MatchString(text)
	}
	for from := 0; ; {
		p, next := g.nextStart(text, folded, from)
		if p < 0 {
			return false
		}
		if g.anchored.MatchString(text[p:]) {
			return true
		}
		from = next
	}
}

// nextStart is the least position p at or after from where a match may
// start (-1 if none), and where to look for the next one if none does.
func (g *goRegex) nextStart(text, folded string, from int) (p, next int) {
	if g.runClass != nil {
		return g.nextRun(text, from)
	}
	if g.bndClass != nil {
		return g.nextBoundary(text, from)
	}
	p = g.nextLiteral(folded, from)
	return p, p + 1
}

// nextLiteral is the least position at or after from where folded has a
// start literal, -1 if none.
func (g *goRegex) nextLiteral(folded string, from int) int {
	best := -1
	for _, lit := range g.starts {
		end := len(folded)
		if best >= 0 { // only an occurrence before best can improve it
			end = min(end, best+len(lit)-1)
		}
		if end-from < len(lit) {
			continue
		}
		if i := strings.Index(folded[from:end], lit); i >= 0 {
			best = from + i
		}
	}
	return best
}

// nextRun is the start of the first run of runClass bytes at or after
// from (a run begins after a byte not in runClass) that a runTail byte
// follows, -1 if none; next is past that byte.
func (g *goRegex) nextRun(text string, from int) (p, next int) {
	for q := from; q < len(text); q++ {
		if !g.runTail[text[q]] { // text is ASCII
			continue
		}
		p = q
		for p > from && g.runClass[text[p-1]] {
			p--
		}
		if p < q {
			return p, q + 1
		}
	}
	return -1, len(text)
}

// nextBoundary is the first position at or after from where a match of
// (?:^|W)R may begin on an ASCII text (-1 if none): 0 when R can begin
// there (the ^ branch), or a W byte followed by a byte R can begin with
// (the W branch). next is the position after it.
func (g *goRegex) nextBoundary(text string, from int) (p, next int) {
	if from == 0 && len(text) > 0 && g.bndNext[text[0]] {
		return 0, 1
	}
	for q := from; q+1 < len(text); q++ {
		if g.bndClass[text[q]] && g.bndNext[text[q+1]] {
			return q, q + 1
		}
	}
	return -1, len(text)
}

// leadingBoundary recognizes a pattern (?:^|W)R, ^ the start of the text
// (not of a line), W a character class and R a sequence without
// assertions about the text before a position, whose first character is
// required and never in W (on ASCII bytes): `(?:^|\W)\d{3}-\d{2}-\d{4}`,
// the SSN rule, in Python's spelling or its translation. It returns W's
// ASCII bytes and those R can begin with; nil, nil for any other
// pattern.
//
// Such a pattern looks behind (^), so it has no start literals, and
// Go's regexp, with no literal prefix to search for, runs its
// backtracker from every position of the text. But on an ASCII text a
// match begins only at 0, where R begins, or at a W byte that a byte R
// can begin with follows. At such a position p > 0 the anchored pattern
// on text[p:] takes the ^ branch as true at p, where it is false in the
// text; that branch then needs R to begin with text[p], a W byte, which
// it cannot: only the W branch can match, as in the text. So find tries
// the anchored pattern at those positions only, as it does at start
// literals.
func leadingBoundary(pattern string) (class, next *[utf8.RuneSelf]bool) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil, nil
	}
	re = re.Simplify()
	for re.Op == syntax.OpCapture {
		re = re.Sub[0]
	}
	if re.Op != syntax.OpConcat || len(re.Sub) < 2 {
		return nil, nil
	}
	alt := re.Sub[0]
	for alt.Op == syntax.OpCapture {
		alt = alt.Sub[0]
	}
	if alt.Op != syntax.OpAlternate || len(alt.Sub) != 2 {
		return nil, nil
	}
	var w *syntax.Regexp
	begin := false
	for _, sub := range alt.Sub {
		switch sub.Op {
		case syntax.OpBeginText:
			begin = true
		case syntax.OpCharClass:
			w = sub
		}
	}
	if !begin || w == nil {
		return nil, nil
	}
	rest := &syntax.Regexp{Op: syntax.OpConcat, Sub: re.Sub[1:]}
	if looksBehind(rest) {
		return nil, nil
	}
	class, next = firstBytes(w), firstBytes(rest)
	if class == nil || next == nil {
		return nil, nil
	}
	for c := range next {
		if next[c] && class[c] {
			return nil, nil
		}
	}
	return class, next
}

// Bounds of startLiterals: at most maxStartLiterals literals, each at
// least minStartLiteral bytes (shorter ones would make too many starts
// to try).
const (
	maxStartLiterals = 16
	minStartLiteral  = 3
)

// startLiterals returns lower-case ASCII strings such that every match of
// pattern (as regexp.Compile reads it) on an ASCII text begins at a
// position where the text, lower-cased, has one of them; nil when the
// pattern has no such set within the bounds, or has an assertion about
// what precedes a position (^, \A, \b, \B).
func startLiterals(pattern string) []string {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil
	}
	re = re.Simplify()
	if looksBehind(re) {
		return nil
	}
	set, _, ok := prefixes(re)
	if !ok || len(set) == 0 {
		return nil
	}
	for _, s := range set {
		if len(s) < minStartLiteral {
			return nil
		}
	}
	return set
}

// looksBehind: re has an assertion whose truth at a position depends on
// the text before it.
func looksBehind(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpBeginLine, syntax.OpBeginText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return true
	}
	for _, sub := range re.Sub {
		if looksBehind(sub) {
			return true
		}
	}
	return false
}

// prefixes returns a set of lower-case ASCII strings one of which begins
// every match of re on an ASCII text, lower-cased (exact: every such match
// is one of them), ok false when there is none within the bounds.
func prefixes(re *syntax.Regexp) (set []string, exact, ok bool) {
	switch re.Op {
	case syntax.OpLiteral:
		out := make([]byte, 0, len(re.Rune))
		for _, r := range re.Rune {
			c, ok := asciiLower([]rune{r, r}, re.Flags&syntax.FoldCase != 0)
			if !ok {
				return nil, false, false
			}
			out = append(out, c)
		}
		return []string{string(out)}, true, true
	case syntax.OpCharClass:
		cs, ok := classBytes(re.Rune)
		if !ok {
			return nil, false, false
		}
		set := make([]string, len(cs))
		for i, c := range cs {
			set[i] = string(rune(c))
		}
		return set, true, true
	case syntax.OpCapture:
		return prefixes(re.Sub[0])
	case syntax.OpPlus:
		set, _, ok := prefixes(re.Sub[0])
		return set, false, ok
	case syntax.OpRepeat:
		if re.Min < 1 {
			return nil, false, false
		}
		set, _, ok := prefixes(re.Sub[0])
		return set, false, ok
	case syntax.OpAlternate:
		exact = true
		for _, sub := range re.Sub {
			s, e, ok := prefixes(sub)
			if !ok {
				return nil, false, false
			}
			set = append(set, s...)
			exact = exact && e
			if len(set) > maxStartLiterals {
				return nil, false, false
			}
		}
		return dedupe(set), exact, true
	case syntax.OpConcat:
		acc := []string{""}
		for _, sub := range re.Sub {
			s, e, ok := prefixes(sub)
			if !ok || len(acc)*len(s) > maxStartLiterals || len(s) > 1 && long(acc) {
				return nonEmpty(acc) // long enough: more literals cost more searches
			}
			next := make([]string, 0, len(acc)*len(s))
			for _, a := range acc {
				for _, b := range s {
					next = append(next, a+b)
				}
			}
			acc = dedupe(next)
			if !e {
				return nonEmpty(acc)
			}
		}
		return nonEmpty(acc)
	}
	return nil, false, false
}

// long: every prefix of acc has at least minStartLiteral bytes.
func long(acc []string) bool {
	for _, a := range acc {
		if len(a) < minStartLiteral {
			return false
		}
	}
	return true
}

// nonEmpty is a concatenation's prefixes so far (not exact), ok when they
// are not the empty string.
func nonEmpty(acc []string) ([]string, bool, bool) {
	if len(acc) == 1 && acc[0] == "" {
		return nil, false, false
	}
	return acc, false, true
}

func dedupe(set []string) []string {
	out := set[:0]
	seen := map[string]bool{}
	for _, s := range set {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// asciiLower is the one lower-case ASCII byte whose ASCII case variants
// are exactly the ASCII runes the class ranges (pairs, as syntax.Regexp
// holds them) match, folded to their simple case orbits when fold; ok
// false when they match no ASCII rune or several that are not one
// letter's cases.
func asciiLower(ranges []rune, fold bool) (byte, bool) {
	var in [utf8.RuneSelf]bool
	for i := 0; i+1 < len(ranges); i += 2 {
		for r := ranges[i]; r <= ranges[i+1] && r < utf8.RuneSelf; r++ {
			in[r] = true
		}
		if fold {
			for r := ranges[i]; r <= ranges[i+1]; r++ {
				for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
					if f < utf8.RuneSelf {
						in[f] = true
					}
				}
				if r-ranges[i] > 256 {
					return 0, false // too wide to be one letter
				}
			}
		}
	}
	var got []byte
	for c := range in {
		if in[c] {
			got = append(got, byte(c))
		}
	}
	switch {
	case len(got) == 1:
		return lowerASCII(got[0]), true
	case len(got) == 2 && lowerASCII(got[0]) == lowerASCII(got[1]):
		return lowerASCII(got[0]), true
	}
	return 0, false
}

// classBytes is the lower-case ASCII bytes, one per letter, of the ASCII
// runes class ranges matches (at most a few); ok false for none or more
// than maxStartLiterals.
func classBytes(ranges []rune) ([]byte, bool) {
	var in [utf8.RuneSelf]bool
	for i := 0; i+1 < len(ranges); i += 2 {
		if ranges[i] < utf8.RuneSelf && ranges[i+1]-ranges[i] > maxStartLiterals*2 {
			return nil, false
		}
		for r := ranges[i]; r <= ranges[i+1] && r < utf8.RuneSelf; r++ {
			in[lowerASCII(byte(r))] = true
		}
	}
	var got []byte
	for c := range in {
		if in[c] {
			got = append(got, byte(c))
		}
	}
	if len(got) == 0 || len(got) > maxStartLiterals {
		return nil, false
	}
	return got, true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// leadingRun returns, for a pattern that is C+ followed by X (C a
// character class, or a literal character; X's first character never in
// C on ASCII texts; no assertion looking behind), the ASCII bytes of C and
// those X can begin with; nil, nil otherwise.
func leadingRun(pattern string) (class, tail *[utf8.RuneSelf]bool) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil, nil
	}
	re = re.Simplify()
	if looksBehind(re) {
		return nil, nil
	}
	for re.Op == syntax.OpCapture {
		re = re.Sub[0]
	}
	if re.Op != syntax.OpConcat || len(re.Sub) < 2 || re.Sub[0].Op != syntax.OpPlus {
		return nil, nil
	}
	if c := re.Sub[0].Sub[0]; c.Op != syntax.OpCharClass && (c.Op != syntax.OpLiteral || len(c.Rune) != 1) {
		return nil, nil // runs of one character each, not of (?:ab)+
	}
	class, tail = firstBytes(re.Sub[0].Sub[0]), firstBytes(re.Sub[1])
	if class == nil || tail == nil {
		return nil, nil
	}
	for c := range tail {
		if tail[c] && class[c] {
			return nil, nil
		}
	}
	return class, tail
}

// firstBytes is the set of ASCII bytes a match of re on an ASCII text can
// begin with, nil when re may match the empty string or is not a form
// this knows.
func firstBytes(re *syntax.Regexp) *[utf8.RuneSelf]bool {
	var set [utf8.RuneSelf]bool
	switch re.Op {
	case syntax.OpLiteral:
		r := re.Rune[0]
		if r < utf8.RuneSelf {
			set[r] = true
		}
		if re.Flags&syntax.FoldCase != 0 {
			for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
				if f < utf8.RuneSelf {
					set[f] = true
				}
			}
		}
	case syntax.OpCharClass:
		for i := 0; i+1 < len(re.Rune); i += 2 {
			for r := re.Rune[i]; r <= re.Rune[i+1] && r < utf8.RuneSelf; r++ {
				set[r] = true
			}
		}
	case syntax.OpCapture, syntax.OpPlus:
		return firstBytes(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min < 1 {
			return nil
		}
		return firstBytes(re.Sub[0])
	case syntax.OpConcat:
		if len(re.Sub) == 0 {
			return nil
		}
		return firstBytes(re.Sub[0])
	default:
		return nil
	}
	return &set
}
