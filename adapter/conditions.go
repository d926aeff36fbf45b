package adapter

import (
	"encoding/binary"
	"regexp/syntax"
	"slices"
	"sort"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Necessary conditions for patterns without a usable literal set.
//
// A pattern like `\d{3}-\d{2}-\d{4}` has no necessary literal: its digit
// classes hold hundreds of Unicode digits. It still has a necessary
// *sequence of classes*: every match contains eleven consecutive
// characters, three of the (folded) digit class, '-', two digits, '-', four
// digits. A condition is one or more such sequences (alternatives, each a
// run of character classes, "any character" allowed); it holds on a text
// when one of its sequences occurs in it. A pattern's conditions are a
// conjunction: all must hold for the pattern to match.
//
// The conditions are derived from the translated pattern's RE2 syntax tree
// (the same tree the regex runs from) and tested on the folded action
// text. Folding maps the text rune by rune (lower(upper(r)), invalid UTF-8
// already replaced by U+FFFD in the action text), so if the regex matches
// runes r1…rn of the text with ri in class Ci, the folded text holds
// fold(r1)…fold(rn) at the same place, with fold(ri) in fold(Ci): each
// class of a condition is the fold image of the pattern's class (a superset
// of it: the class itself plus the fold of its cased members). Soundness
// rests on that alone: whenever the regex matches the action text, each
// condition holds on the folded text (tested by FuzzConditions and the
// engine's candidate property test).
//
// All the conditions of a tenant are tested together by one left-to-right
// pass (chainMatcher: bit-parallel Shift-And over up to maxChainWords
// 64-bit words), allocation-free.

// Limits of a condition and of a tenant's conditions.
const (
	maxChainAlts   = 4  // alternatives of one condition
	maxChainLen    = 32 // classes in one alternative
	maxChainBits   = 64 // classes over all alternatives: one word
	maxChainNeeds  = 2  // conditions of one pattern (a conjunction)
	maxChainWords  = 4  // words of a tenant's matcher; conditions past it are dropped
	minChainScore  = 2  // a condition weaker than this is not worth testing
	maxClassRanges = 4096
)

// cclass is a folded character class: sorted, merged [lo, hi] pairs. The
// nil *cclass is any character.
type cclass struct {
	ranges []rune
	key    string
	weight int  // how selective it is (chainScore)
	single rune // its one member folded text can hold, -1 if several
}

func (c *cclass) contains(r rune) bool {
	if c == nil {
		return true
	}
	rs := c.ranges
	// Binary search over the pairs.
	i := sort.Search(len(rs)/2, func(i int) bool { return rs[2*i+1] >= r })
	return i < len(rs)/2 && rs[2*i] <= r
}

type chainSeq []*cclass

// chainSet: alternatives; nil means nothing is known (trivially true).
type chainSet []chainSeq

// chainInfo describes a regex node. exact, when non-nil, is the set of
// class sequences the node matches exactly (an empty sequence: it can
// match the empty string); pre and suf: every match starts (ends) with one
// of them; needs: conditions every match satisfies, all of them.
type chainInfo struct {
	exact, pre, suf chainSet
	needs           []chainSet
}

// foldRune is Fold for one rune.
func foldRune(r rune) rune { return unicode.ToLower(unicode.ToUpper(r)) }

// casedRunes are the runes fold changes, sorted: only runes in
// unicode.CaseRanges have a case mapping.
var casedRunes = sync.OnceValue(func() []rune {
	var out []rune
	for _, cr := range unicode.CaseRanges {
		for r := rune(cr.Lo); r <= rune(cr.Hi); r++ {
			if foldRune(r) != r {
				out = append(out, r)
			}
		}
	}
	slices.Sort(out)
	return out
})

// classInterner makes equal classes one pointer within one pattern's
// analysis, so sequences compare by pointer: by image key ("f…") and by
// source key ("s…").
type classInterner map[string]*cclass

// foldClass returns the interned fold image (a superset) of the class of
// pairs ranges: ranges ∪ {fold(r) : r ∈ ranges, fold(r) ≠ r}; nil (any
// character) when it is too large to be worth keeping exactly.
func (ci classInterner) foldClass(ranges []rune) *cclass {
	src := runesKey(ranges)
	if c, ok := ci[src]; ok {
		return c
	}
	c, ok := foldMemo.Get(src)
	if !ok {
		c = foldImage(ranges)
		foldMemo.Add(src, c)
	}
	if c != nil {
		if k, ok := ci[c.key]; ok {
			c = k
		} else {
			ci[c.key] = c
		}
	}
	ci[src] = c
	return c
}

// foldMemo holds fold images by their source class (runesKey): the
// Unicode classes (\d, \w, \W, \s) recur across patterns and tenants.
// Classes are never modified once built.
var foldMemo, _ = lru.New[string, *cclass](1024)

// runesKey is a map key for a rune slice ("s" and the runes' bytes).
func runesKey(rs []rune) string {
	b := make([]byte, 1, 1+4*len(rs))
	b[0] = 's'
	for _, r := range rs {
		b = binary.LittleEndian.AppendUint32(b, uint32(r))
	}
	return string(b)
}

func foldImage(ranges []rune) *cclass {
	src := &cclass{ranges: mergePairs(ranges)}
	set := slices.Clone(src.ranges)
	for _, r := range casedRunes() {
		if src.contains(r) {
			f := foldRune(r)
			set = append(set, f, f)
		}
	}
	set = mergePairs(set)
	if len(set) == 0 || len(set) > 2*maxClassRanges {
		return nil // empty (matches nothing) or too large: any character
	}
	c := &cclass{ranges: set, key: "f" + runesKey(set)[1:]}
	c.weight, c.single = classWeight(set)
	return c
}

// mergePairs sorts and merges [lo, hi] pairs.
func mergePairs(rs []rune) []rune {
	type pair struct{ lo, hi rune }
	ps := make([]pair, 0, len(rs)/2)
	for i := 0; i+1 < len(rs); i += 2 {
		ps = append(ps, pair{rs[i], rs[i+1]})
	}
	slices.SortFunc(ps, func(a, b pair) int { return int(a.lo - b.lo) })
	var out []rune
	for _, p := range ps {
		if n := len(out); n > 0 && p.lo <= out[n-1]+1 {
			out[n-1] = max(out[n-1], p.hi)
			continue
		}
		out = append(out, p.lo, p.hi)
	}
	return out
}

// classWeight: how rare a class's members are in action texts (a
// heuristic that only ranks conditions; soundness does not depend on it),
// and the class's only member that folded text can hold (fold leaves it
// as it is), -1 if it has several. JSON's own punctuation is in every
// action text.
func classWeight(rs []rune) (weight int, single rune) {
	n, stable, ascii := 0, 0, 0
	single = -1
	for i := 0; i+1 < len(rs); i += 2 {
		n += int(rs[i+1]-rs[i]) + 1
		if n > 64 {
			stable = 2 // large: not one character
		}
		for r := rs[i]; r <= rs[i+1] && n <= 64; r++ {
			if foldRune(r) == r {
				stable++
				single = r
			}
		}
		for r := rs[i]; r <= rs[i+1] && r < utf8.RuneSelf; r++ {
			if r < 'A' || r > 'Z' { // never in folded text
				ascii++
			}
		}
	}
	if stable != 1 {
		single = -1
	}
	switch {
	case single >= 0 && strings.ContainsRune(`" :,{}`, single):
		return 1, single
	case single >= 0 && strings.ContainsRune(`.-_/`, single):
		return 2, single
	case single >= 0:
		return 4, single
	case n <= 12:
		return 3, -1
	case ascii <= 12:
		return 2, -1
	}
	return 1, -1
}

// chainScore of a set: its weakest alternative's summed weights.
func chainScore(s chainSet) int {
	best := -1
	for _, q := range s {
		w := 0
		for _, c := range q {
			if c != nil {
				w += c.weight
			}
		}
		if best < 0 || w < best {
			best = w
		}
	}
	return best
}

func chainBits(s chainSet) int {
	n := 0
	for _, q := range s {
		n += len(q)
	}
	return n
}

// fits: a set small enough to keep; a set with an empty sequence is
// trivial (nothing known) and is returned as nil by the callers.
func fits(s chainSet) bool {
	if len(s) > maxChainAlts || chainBits(s) > maxChainBits {
		return false
	}
	for _, q := range s {
		if len(q) > maxChainLen {
			return false
		}
	}
	return true
}

func trivial(s chainSet) bool {
	return s == nil || slices.ContainsFunc(s, func(q chainSeq) bool { return len(q) == 0 })
}

func dedupe(s chainSet) chainSet {
	var out chainSet
	for _, q := range s {
		if !slices.ContainsFunc(out, func(o chainSeq) bool { return slices.Equal(o, q) }) {
			out = append(out, q)
		}
	}
	return out
}

// cross is every concatenation of a sequence of a and one of b; ok is
// false when the result does not fit.
func chainCross(a, b chainSet) (chainSet, bool) {
	if len(a)*len(b) > maxChainAlts {
		return nil, false
	}
	var out chainSet
	for _, x := range a {
		for _, y := range b {
			out = append(out, append(slices.Clip(slices.Clone(x)), y...))
		}
	}
	out = dedupe(out)
	return out, fits(out)
}

// containsSeq: a holds b contiguously (classes compared by pointer; "any"
// in b matches anything in a).
func containsSeq(a, b chainSeq) bool {
	for i := 0; i+len(b) <= len(a); i++ {
		ok := true
		for j, c := range b {
			if c != nil && a[i+j] != c {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// minimizeChain drops alternatives that contain another alternative (the
// shorter one is implied).
func minimizeChain(s chainSet) chainSet {
	s = dedupe(s)
	var out chainSet
	for i, q := range s {
		implied := false
		for j, o := range s {
			if i != j && containsSeq(q, o) && (!containsSeq(o, q) || j < i) {
				implied = true
				break
			}
		}
		if !implied {
			out = append(out, q)
		}
	}
	return out
}

// implies: every alternative of a contains one of b's, so a holding
// makes b hold.
func implies(a, b chainSet) bool {
	for _, q := range a {
		if !slices.ContainsFunc(b, func(o chainSeq) bool { return containsSeq(q, o) }) {
			return false
		}
	}
	return true
}

// pruneNeeds keeps the strongest non-trivial conditions none of which
// implies another, at most maxChainNeeds.
func pruneNeeds(needs []chainSet) []chainSet {
	var cands []chainSet
	for _, n := range needs {
		if !trivial(n) && fits(n) {
			cands = append(cands, minimizeChain(n))
		}
	}
	slices.SortStableFunc(cands, func(a, b chainSet) int {
		if d := chainScore(b) - chainScore(a); d != 0 {
			return d
		}
		return chainBits(a) - chainBits(b)
	})
	var out []chainSet
	for _, c := range cands {
		if len(out) == maxChainNeeds {
			break
		}
		if slices.ContainsFunc(out, func(k chainSet) bool { return implies(k, c) }) {
			continue
		}
		out = append(out, c)
	}
	return out
}

func exactChain(s chainSet) chainInfo {
	s = dedupe(s)
	info := chainInfo{exact: s, pre: s, suf: s}
	if !trivial(s) {
		info.needs = []chainSet{s}
	}
	return info
}

func (ci classInterner) analyze(re *syntax.Regexp) chainInfo {
	switch re.Op {
	case syntax.OpLiteral:
		q := make(chainSeq, 0, len(re.Rune))
		for _, r := range re.Rune {
			if re.Flags&syntax.FoldCase != 0 {
				var orbit []rune
				for f := r; ; {
					orbit = append(orbit, f, f)
					if f = unicode.SimpleFold(f); f == r {
						break
					}
				}
				q = append(q, ci.foldClass(orbit))
			} else {
				q = append(q, ci.foldClass([]rune{r, r}))
			}
		}
		if len(q) > maxChainLen {
			pre, suf := q[:maxChainLen], q[len(q)-maxChainLen:]
			return chainInfo{pre: chainSet{pre}, suf: chainSet{suf}, needs: []chainSet{{pre}}}
		}
		return exactChain(chainSet{q})
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine,
		syntax.OpBeginText, syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return exactChain(chainSet{{}})
	case syntax.OpCharClass:
		return exactChain(chainSet{{ci.foldClass(re.Rune)}})
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return exactChain(chainSet{{nil}})
	case syntax.OpCapture:
		return ci.analyze(re.Sub[0])
	case syntax.OpQuest:
		sub := ci.analyze(re.Sub[0])
		if sub.exact != nil {
			if s := dedupe(append(chainSet{{}}, sub.exact...)); fits(s) {
				return chainInfo{exact: s, pre: s, suf: s}
			}
		}
		return chainInfo{}
	case syntax.OpPlus:
		sub := ci.analyze(re.Sub[0])
		return chainInfo{pre: sub.pre, suf: sub.suf, needs: sub.needs}
	case syntax.OpRepeat:
		if re.Min == 0 {
			return chainInfo{}
		}
		sub := ci.analyze(re.Sub[0])
		return chainInfo{pre: sub.pre, suf: sub.suf, needs: sub.needs}
	case syntax.OpConcat:
		acc := exactChain(chainSet{{}})
		for _, sub := range re.Sub {
			acc = concatChain(acc, ci.analyze(sub))
		}
		return acc
	case syntax.OpAlternate:
		infos := make([]chainInfo, len(re.Sub))
		for i, sub := range re.Sub {
			infos[i] = ci.analyze(sub)
		}
		return alternateChain(infos)
	}
	return chainInfo{} // OpStar, OpNoMatch and anything new: nothing known
}

func concatChain(x, y chainInfo) chainInfo {
	if x.exact != nil && y.exact != nil {
		if s, ok := chainCross(x.exact, y.exact); ok {
			return exactChain(s)
		}
	}
	var out chainInfo
	switch {
	case x.exact == nil:
		out.pre = x.pre
	case y.pre != nil:
		if s, ok := chainCross(x.exact, y.pre); ok {
			out.pre = s
		} else {
			out.pre = x.exact
		}
	default:
		out.pre = x.exact
	}
	switch {
	case y.exact == nil:
		out.suf = y.suf
	case x.suf != nil:
		if s, ok := chainCross(x.suf, y.exact); ok {
			out.suf = s
		} else {
			out.suf = y.exact
		}
	default:
		out.suf = y.exact
	}
	needs := append(slices.Clone(x.needs), y.needs...)
	if x.suf != nil && y.pre != nil {
		if s, ok := chainCross(x.suf, y.pre); ok {
			needs = append(needs, s)
		}
	}
	needs = append(needs, out.pre, out.suf)
	out.needs = pruneNeeds(needs)
	return out
}

func alternateChain(infos []chainInfo) chainInfo {
	union := func(get func(chainInfo) chainSet) chainSet {
		var s chainSet
		for _, in := range infos {
			part := get(in)
			if part == nil {
				return nil
			}
			s = append(s, part...)
		}
		s = dedupe(s)
		if !fits(s) {
			return nil
		}
		return s
	}
	if s := union(func(in chainInfo) chainSet { return in.exact }); s != nil {
		return exactChain(s)
	}
	out := chainInfo{
		pre: union(func(in chainInfo) chainSet { return in.pre }),
		suf: union(func(in chainInfo) chainSet { return in.suf }),
	}
	// Each branch's strongest condition; the union holds whichever branch
	// matched.
	need := union(func(in chainInfo) chainSet {
		if len(in.needs) == 0 {
			return nil
		}
		return in.needs[0]
	})
	out.needs = pruneNeeds([]chainSet{need, out.pre, out.suf})
	return out
}

// patternConditions returns the conditions of a pattern (its translation):
// every match of it satisfies all of them. nil when none is worth testing.
func patternConditions(pattern string) []chainSet {
	re, ok := translatedSyntax(pattern)
	if !ok {
		return nil
	}
	ci := classInterner{}
	info := ci.analyze(re)
	var out []chainSet
	for _, n := range pruneNeeds(info.needs) {
		if chainScore(n) >= minChainScore {
			out = append(out, n)
		}
	}
	return out
}

// allSingletons: every class of the condition is one character, so it is
// a set of literals (the literal pass already tests those).
func allSingletons(s chainSet) bool {
	for _, q := range s {
		for _, c := range q {
			if c == nil || c.single < 0 {
				return false
			}
		}
	}
	return true
}

// chainMatcher tests conditions over a text with one pass: Shift-And,
// each condition's alternatives laid out as consecutive bit positions of
// one word, several conditions per word.
type chainMatcher struct {
	words   int
	ascii   [128][maxChainWords]uint64 // byte → by word, positions whose class holds it
	start   [maxChainWords]uint64      // by word: first positions of the alternatives
	anyMask [maxChainWords]uint64      // by word: positions of "any character"
	classes []matcherClass
}

// matcherClass: a class with non-ASCII members and its positions by word,
// what scan tests a non-ASCII rune against.
type matcherClass struct {
	c     *cclass
	masks [maxChainWords]uint64 // by word
}

// chainCond locates a condition: a match ended at one of end's positions.
type chainCond struct {
	word int
	end  uint64
}

// chainBuilder lays conditions out; add returns the condition's place,
// ok false when the matcher is full.
type chainBuilder struct {
	m       chainMatcher
	used    []int // bits used by word
	classes map[string]int
}

func (b *chainBuilder) add(s chainSet) (chainCond, bool) {
	n := chainBits(s)
	if n == 0 || n > 64 || slices.ContainsFunc(s, func(q chainSeq) bool { return len(q) == 0 }) {
		return chainCond{}, false // not a condition pruneNeeds keeps
	}
	w := slices.IndexFunc(b.used, func(u int) bool { return u+n <= 64 })
	if w < 0 {
		if len(b.used) == maxChainWords {
			return chainCond{}, false
		}
		b.used = append(b.used, 0)
		w = len(b.used) - 1
	}
	if b.classes == nil {
		b.classes = map[string]int{}
	}
	pos := b.used[w]
	var end uint64
	for _, q := range s {
		b.m.start[w] |= 1 << pos
		for _, c := range q {
			bit := uint64(1) << pos
			if c == nil {
				b.m.anyMask[w] |= bit
				for ch := range 128 {
					b.m.ascii[ch][w] |= bit
				}
			} else {
				for k := 0; k+1 < len(c.ranges) && c.ranges[k] < utf8.RuneSelf; k += 2 {
					for ch := c.ranges[k]; ch <= min(c.ranges[k+1], utf8.RuneSelf-1); ch++ {
						b.m.ascii[ch][w] |= bit
					}
				}
				if c.ranges[len(c.ranges)-1] < utf8.RuneSelf {
					pos++
					continue // ASCII only: the table holds it
				}
				i, ok := b.classes[c.key]
				if !ok {
					i = len(b.m.classes)
					b.classes[c.key] = i
					b.m.classes = append(b.m.classes, matcherClass{c: c})
				}
				b.m.classes[i].masks[w] |= bit
			}
			pos++
		}
		end |= 1 << (pos - 1)
	}
	b.used[w] = pos
	b.m.words = len(b.used)
	return chainCond{word: w, end: end}, true
}

// scan sets seen[w] to the positions reached in word w over text (a
// condition held when one of its end positions is among them).
func (m *chainMatcher) scan(text string, seen *[maxChainWords]uint64) {
	if m.words <= 2 { // the usual tenant: two registers (word 1 unused: 0)
		var d0, d1, acc0, acc1 uint64
		s0, s1 := m.start[0], m.start[1]
		for i := 0; i < len(text); {
			c := text[i]
			var b0, b1 uint64
			if c < utf8.RuneSelf {
				row := &m.ascii[c]
				b0, b1 = row[0], row[1]
				i++
			} else {
				r, size := utf8.DecodeRuneInString(text[i:])
				i += size
				b0, b1 = m.anyMask[0], m.anyMask[1]
				for k := range m.classes {
					if m.classes[k].c.contains(r) {
						b0 |= m.classes[k].masks[0]
						b1 |= m.classes[k].masks[1]
					}
				}
			}
			d0 = (d0<<1 | s0) & b0
			d1 = (d1<<1 | s1) & b1
			acc0 |= d0
			acc1 |= d1
		}
		seen[0] |= acc0
		seen[1] |= acc1
		return
	}
	var d [maxChainWords]uint64
	for i := 0; i < len(text); {
		c := text[i]
		var b [maxChainWords]uint64
		if c < utf8.RuneSelf {
			b = m.ascii[c]
			i++
		} else {
			r, size := utf8.DecodeRuneInString(text[i:])
			i += size
			b = m.anyMask
			for k := range m.classes {
				if m.classes[k].c.contains(r) {
					for w := range maxChainWords {
						b[w] |= m.classes[k].masks[w]
					}
				}
			}
		}
		for w := range maxChainWords { // unused words stay 0
			d[w] = (d[w]<<1 | m.start[w]) & b[w]
			seen[w] |= d[w]
		}
	}
}

// holds: the condition at cc held during the scan that filled seen.
func (cc chainCond) holds(seen *[maxChainWords]uint64) bool {
	return seen[cc.word]&cc.end != 0
}
