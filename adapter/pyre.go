package adapter

//go:generate sh -c "python3 testdata/pyre/gen_tables.py > pyre_tables.go"

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// Python's re, on RE2.
//
// Novyx policies are written for Python 3's re.search(pattern, text,
// re.IGNORECASE) on str. RE2 (Go's regexp, behind OPA's regex builtins)
// reads the same text differently: its \d, \w, \s and \b are ASCII-only and
// its (?i) is Unicode simple case folding, while Python's classes are
// Unicode and its IGNORECASE compares simple lower case plus a table of
// extra equivalences (i ~ ı, s ~ ſ, µ ~ μ, ...). So the adapter does not
// hand the author's text to RE2: Translate reads it with Python's grammar
// and writes an RE2 pattern in which every character, escape and class is
// the explicit set of code points Python's matcher accepts there — no (?i),
// no \d, no \w — computed from tables generated from CPython itself
// (pyre_tables.go). What RE2 cannot express with Python's meaning is
// refused by name: \b and \B (Python's word boundary is Unicode, RE2's
// ASCII, and RE2 has no look-around to build one), $ (Python's also matches
// before a final newline; \Z is the end of the text in both), inline flags,
// and the constructs pythonOnlyConstruct names. A differential test runs
// CPython's re against Go's regexp on the translation (pydiff_test.go).

// pyTables holds the derived lookups of pyre_tables.go, built on first use.
var pyTables = sync.OnceValue(func() *pyData {
	d := &pyData{
		digit:   newRuneSet(pyDigit),
		space:   newRuneSet(pySpace),
		word:    newRuneSet(pyWord),
		cased:   newRuneSet(pyCased),
		lower:   map[rune]rune{},
		upper:   map[rune]rune{},
		fixes:   map[rune][]rune{},
		lowerOf: map[rune][]rune{},
	}
	var nonFixed []rune
	for _, p := range pyLower {
		d.lower[p[0]] = p[1]
		d.lowerOf[p[1]] = append(d.lowerOf[p[1]], p[0])
		nonFixed = append(nonFixed, p[0], p[0])
	}
	d.lowerMoved = newRuneSet(nonFixed)
	var upMoved []rune
	for _, p := range pyUpper {
		d.upper[p[0]] = p[1]
		upMoved = append(upMoved, p[0], p[0])
	}
	d.upperMoved = newRuneSet(upMoved)
	for _, p := range pyFixes {
		d.fixes[p[0]] = append(d.fixes[p[0]], p[1])
	}
	return d
})

// pyData is Python's character data as sets and maps.
type pyData struct {
	digit, space, word, cased runeSet
	lower, upper              map[rune]rune
	lowerMoved, upperMoved    runeSet // code points lower (upper) changes
	fixes                     map[rune][]rune
	lowerOf                   map[rune][]rune // l -> the c != l with lower(c) == l
}

func (d *pyData) toLower(r rune) rune {
	if l, ok := d.lower[r]; ok {
		return l
	}
	return r
}

func (d *pyData) toUpper(r rune) rune {
	if u, ok := d.upper[r]; ok {
		return u
	}
	return r
}

// lowerPreimage is {c : lower(c) ∈ x}: the characters Python's *_UNI_IGNORE
// opcodes accept for a set x of lower-case targets.
func (d *pyData) lowerPreimage(x runeSet) runeSet {
	if x.size() <= 64 { // a literal's targets: use the inverse index
		var pairs []rune
		for i := 0; i+1 < len(x); i += 2 {
			for l := x[i]; l <= x[i+1]; l++ {
				if _, moved := d.lower[l]; !moved {
					pairs = append(pairs, l, l)
				}
				for _, c := range d.lowerOf[l] {
					pairs = append(pairs, c, c)
				}
			}
		}
		return newRuneSet(pairs)
	}
	out := x.minus(d.lowerMoved)
	var add []rune
	for c, l := range d.lower {
		if x.contains(l) {
			add = append(add, c, c)
		}
	}
	return out.union(newRuneSet(add))
}

// upperPreimage is {c : upper(c) ∈ x}.
func (d *pyData) upperPreimage(x runeSet) runeSet {
	out := x.minus(d.upperMoved)
	var add []rune
	for c, u := range d.upper {
		if x.contains(u) {
			add = append(add, c, c)
		}
	}
	return out.union(newRuneSet(add))
}

// lowerImage is {lower(c) : c ∈ x} plus the extra equivalences of each
// result: what _optimize_charset puts in a class's charmap.
func (d *pyData) lowerImage(x runeSet) runeSet {
	out := x.minus(d.lowerMoved)
	var add []rune
	for c, l := range d.lower {
		if x.contains(c) {
			add = append(add, l, l)
		}
	}
	out = out.union(newRuneSet(add))
	var fix []rune
	for k, vs := range d.fixes {
		if out.contains(k) {
			for _, v := range vs {
				fix = append(fix, v, v)
			}
		}
	}
	return out.union(newRuneSet(fix))
}

// literalSet is what a literal character c matches under IGNORECASE
// (LITERAL_UNI_IGNORE, or IN_UNI_IGNORE over lower(c) and its fixes).
func (d *pyData) literalSet(c rune) runeSet {
	if !d.cased.contains(c) {
		return singleRune(c)
	}
	lo := d.toLower(c)
	targets := []rune{lo, lo}
	for _, f := range d.fixes[lo] {
		targets = append(targets, f, f)
	}
	return d.lowerPreimage(newRuneSet(targets))
}

// category returns the set of \d, \s, \w or a negation (\D, \S, \W).
func (d *pyData) category(esc byte) runeSet {
	switch esc {
	case 'd':
		return d.digit
	case 'D':
		return d.digit.complement()
	case 's':
		return d.space
	case 'S':
		return d.space.complement()
	case 'w':
		return d.word
	case 'W':
		return d.word.complement()
	}
	return nil
}

// pyClass is a parsed [...] class, in Python's terms.
type pyClass struct {
	negate bool
	lits   []rune    // single characters
	ranges [][2]rune // lo-hi ranges
	cats   []byte    // d D s S w W
}

// set computes what the class matches under IGNORECASE, following
// _optimize_charset and the IN / IN_UNI_IGNORE opcodes: members go into a
// charmap of lower-cased BMP characters (plus fixes); categories and
// non-BMP members go to a tail; if no literal or range member is cased (a
// non-BMP member counts as cased) the class tests the character itself,
// else it tests lower(character) against charmap, categories and tail
// (a non-BMP range also accepts upper(lower(character)); a non-BMP literal
// is compared as written).
func (c *pyClass) set(d *pyData) runeSet {
	if len(c.lits) == 1 && len(c.ranges) == 0 && len(c.cats) == 0 {
		// sre_parse turns a one-character class into LITERAL (or
		// NOT_LITERAL), which folds as a literal does.
		if c.negate {
			return d.literalSet(c.lits[0]).complement()
		}
		return d.literalSet(c.lits[0])
	}
	var members runeSet
	var tailLits, tailRanges []rune
	hascased := false
	for _, l := range c.lits {
		if l > 0xFFFF {
			tailLits = append(tailLits, l, l)
			hascased = true
			continue
		}
		members = members.union(singleRune(l))
		hascased = hascased || d.cased.contains(l)
	}
	for _, r := range c.ranges {
		if r[1] > 0xFFFF {
			tailRanges = append(tailRanges, r[0], r[1])
			hascased = true
			if r[0] <= 0xFFFF {
				members = members.union(newRuneSet([]rune{r[0], 0xFFFF}))
			}
			continue
		}
		rs := newRuneSet([]rune{r[0], r[1]})
		members = members.union(rs)
		hascased = hascased || !rs.minus(d.cased).equal(rs)
	}
	var cats runeSet
	for _, k := range c.cats {
		cats = cats.union(d.category(k))
	}
	var out runeSet
	if !hascased {
		out = members.union(cats)
	} else {
		out = d.lowerPreimage(d.lowerImage(members).union(cats))
		out = out.union(d.lowerPreimage(newRuneSet(tailLits)))
		tr := newRuneSet(tailRanges)
		out = out.union(d.lowerPreimage(tr)).union(d.lowerPreimage(d.upperPreimage(tr)))
	}
	if c.negate {
		return out.complement()
	}
	return out
}

// Translate returns the RE2 pattern that means what pattern means to
// Python 3's re.search(pattern, text, re.IGNORECASE) on str, or an error
// whose text names the construct it refuses. The result needs no flags.
func Translate(pattern string) (string, error) {
	if r, ok := translations.get(pattern); ok {
		return r.re2, r.err
	}
	re2, err := translate(pattern)
	translations.put(pattern, translation{re2, err})
	return re2, err
}

func translate(pattern string) (string, error) {
	if construct := pythonOnlyConstruct(pattern); construct != "" {
		return "", patternError(construct)
	}
	t := &translator{p: pattern, d: pyTables()}
	if err := t.run(); err != nil {
		return "", err
	}
	return t.out.String(), nil
}

// translations memoizes Translate, a pure function called for every rule
// each time a tenant's modules are built (pre-checks, the emitted pattern,
// the policy guard). It is bounded: when full it starts over, so it holds
// at most maxTranslations patterns (1024 characters each, translations a
// few KB) whatever the tenants write.
var translations = &translationCache{m: map[string]translation{}}

const maxTranslations = 4096

type translation struct {
	re2 string
	err error
}

type translationCache struct {
	mu sync.Mutex
	m  map[string]translation
}

func (c *translationCache) get(p string) (translation, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.m[p]
	return r, ok
}

func (c *translationCache) put(p string, r translation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxTranslations {
		clear(c.m)
	}
	c.m[p] = r
}

// patternError is a refusal reason, reported as the field's reason.
type patternError string

func (e patternError) Error() string { return string(e) }

type translator struct {
	p     string
	i     int
	d     *pyData
	out   strings.Builder
	names []string // group names so far
}

func (t *translator) failf(format string, args ...any) error {
	return patternError(fmt.Sprintf(format, args...))
}

func (t *translator) run() error {
	for t.i < len(t.p) {
		c := t.p[t.i]
		switch c {
		case '\\':
			if err := t.escape(); err != nil {
				return err
			}
		case '[':
			cls, err := t.class()
			if err != nil {
				return err
			}
			t.emitSet(cls.set(t.d))
		case '(':
			if err := t.group(); err != nil {
				return err
			}
		case '$':
			return t.failf(`$ is not supported: in Python it also matches before a final newline; use \Z for the end of the text`)
		case '{':
			if end, _ := repetitionEnd(t.p, t.i); end > 0 {
				t.out.WriteString(t.p[t.i:end])
				t.i = end
				continue
			}
			t.out.WriteString(`\{`)
			t.i++
		case '}':
			t.out.WriteString(`\}`)
			t.i++
		case ')', '|', '*', '+', '?', '^', '.':
			t.out.WriteByte(c)
			t.i++
		default:
			r, size := utf8.DecodeRuneInString(t.p[t.i:])
			if r == utf8.RuneError && size <= 1 {
				return t.failf("must be valid UTF-8")
			}
			t.i += size
			t.emitSet(t.d.literalSet(r))
		}
	}
	return nil
}

// group copies a group opening: (, (?: and (?P<name> pass; look-around,
// back-references and the other Python-only groups were refused before;
// anything else after (? is a flag group, which is refused.
func (t *translator) group() error {
	rest := t.p[t.i:]
	switch {
	case strings.HasPrefix(rest, "(?:"):
		t.out.WriteString("(?:")
		t.i += 3
	case strings.HasPrefix(rest, "(?P<"):
		end := strings.IndexByte(rest, '>')
		if end < 0 {
			return t.failf("missing > in group name")
		}
		name := rest[4:end]
		if slices.Contains(t.names, name) {
			return t.failf("redefinition of group name %q", name)
		}
		t.names = append(t.names, name)
		t.out.WriteString(rest[:end+1]) // RE2 checks the name
		t.i += end + 1
	case strings.HasPrefix(rest, "(?<"):
		return t.failf("named group (?<name>...) is not supported; use (?P<name>...)")
	case strings.HasPrefix(rest, "(?"):
		end := strings.IndexAny(rest[2:], ":)")
		flags := rest
		if end >= 0 {
			flags = rest[:2+end+1]
		}
		return t.failf("inline flags %s are not supported: rules are always case-insensitive and have no other flags", flags)
	default:
		t.out.WriteByte('(')
		t.i++
	}
	return nil
}

// escape translates an escape outside a class (sre_parse._escape).
func (t *translator) escape() error {
	if t.i+1 >= len(t.p) {
		return t.failf(`bad escape (end of pattern)`)
	}
	c := t.p[t.i+1]
	switch c {
	case 'd', 'D', 's', 'S', 'w', 'W':
		t.i += 2
		t.emitSet(t.d.category(c))
		return nil
	case 'b':
		return t.failf(`word boundary \b is not supported: Python's \b is Unicode, RE2's is ASCII-only and cannot be rebuilt without look-around`)
	case 'B':
		return t.failf(`\B is not supported: Python's \B is Unicode, RE2's is ASCII-only and cannot be rebuilt without look-around`)
	case 'A':
		t.i += 2
		t.out.WriteString(`\A`)
		return nil
	case 'Z', 'z':
		t.i += 2
		t.out.WriteString(`\z`)
		return nil
	}
	r, err := t.charEscape(false)
	if err != nil {
		return err
	}
	t.emitSet(t.d.literalSet(r))
	return nil
}

// charEscape reads an escape that stands for one character, at t.p[t.i]
// == '\\', and advances past it. inClass selects _class_escape's rules
// (\b is a backspace; any digit starts an octal escape).
func (t *translator) charEscape(inClass bool) (rune, error) {
	c := t.p[t.i+1]
	start := t.i
	switch c {
	case 'a':
		t.i += 2
		return '\a', nil
	case 'f':
		t.i += 2
		return '\f', nil
	case 'n':
		t.i += 2
		return '\n', nil
	case 'r':
		t.i += 2
		return '\r', nil
	case 't':
		t.i += 2
		return '\t', nil
	case 'v':
		t.i += 2
		return '\v', nil
	case '\\':
		t.i += 2
		return '\\', nil
	case 'x', 'u', 'U':
		if strings.HasPrefix(t.p[t.i:], `\x{`) {
			return 0, t.failf(`\x{...} is RE2 syntax; Python writes \xhh, \uhhhh or \Uhhhhhhhh`)
		}
		n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[c]
		hex := t.p[t.i+2 : min(len(t.p), t.i+2+n)]
		v, err := strconv.ParseUint(hex, 16, 32)
		if len(hex) != n || err != nil || strings.ContainsAny(hex, "+-_") {
			return 0, t.failf(`bad escape %s: \x takes 2 hex digits, \u 4 and \U 8`, t.p[start:min(len(t.p), t.i+2+n)])
		}
		if v > utf8.MaxRune || (v >= 0xD800 && v <= 0xDFFF) {
			return 0, t.failf(`bad escape %s: not a character`, t.p[start:t.i+2+n])
		}
		t.i += 2 + n
		return rune(v), nil
	case 'N':
		return 0, t.failf(`named character escape \N{...} is not supported; write the character or \uXXXX`)
	}
	if c >= '0' && c <= '9' {
		j := t.i + 1
		if c > '7' {
			return 0, t.failf(`bad escape \%c`, c)
		}
		// Octal: \0 plus up to two more octal digits outside a class;
		// any octal digit plus up to two more inside one. Three-digit
		// escapes 1xx-7xx outside a class; anything else there is a
		// back-reference, refused before.
		k := j + 1
		for k < len(t.p) && k < j+3 && isOctalDigit(t.p[k]) {
			k++
		}
		if !inClass && c != '0' && k-j != 3 {
			return 0, t.failf("back-reference %s is not supported", t.p[start:k])
		}
		v, _ := strconv.ParseUint(t.p[j:k], 8, 32)
		if v > 0o377 {
			return 0, t.failf(`octal escape %s is out of range 0-0o377`, t.p[start:k])
		}
		t.i = k
		return rune(v), nil
	}
	if c < utf8.RuneSelf && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
		if inClass && c == 'b' {
			t.i += 2
			return '\b', nil
		}
		return 0, t.failf(`bad escape \%c`, c)
	}
	r, size := utf8.DecodeRuneInString(t.p[t.i+1:])
	t.i += 1 + size
	return r, nil
}

// class parses a [...] class with sre_parse's rules: ']' first is a
// literal, a '-' first or last is a literal, a range needs two single
// characters in order, and every escape is a _class_escape.
func (t *translator) class() (*pyClass, error) {
	start := t.i
	t.i++
	cls := &pyClass{}
	if t.i < len(t.p) && t.p[t.i] == '^' {
		cls.negate = true
		t.i++
	}
	first := true
	for {
		if t.i >= len(t.p) {
			return nil, t.failf("unterminated character set at position %d", start)
		}
		if t.p[t.i] == ']' && !first {
			t.i++
			return cls, nil
		}
		first = false
		lo, cat, err := t.classItem()
		if err != nil {
			return nil, err
		}
		if t.i+1 < len(t.p) && t.p[t.i] == '-' && t.p[t.i+1] != ']' {
			t.i++
			hi, cat2, err := t.classItem()
			if err != nil {
				return nil, err
			}
			if cat != 0 || cat2 != 0 {
				return nil, t.failf(`bad character range in [...]: a range cannot start or end with \%c`, max(cat, cat2))
			}
			if hi < lo {
				return nil, t.failf("bad character range %s-%s", string(lo), string(hi))
			}
			cls.ranges = append(cls.ranges, [2]rune{lo, hi})
			continue
		}
		if cat != 0 {
			cls.cats = append(cls.cats, cat)
		} else {
			cls.lits = append(cls.lits, lo)
		}
	}
}

// classItem reads one class member: a character, or a category escape
// (returned as its letter in cat).
func (t *translator) classItem() (r rune, cat byte, err error) {
	if t.p[t.i] != '\\' {
		r, size := utf8.DecodeRuneInString(t.p[t.i:])
		if r == utf8.RuneError && size <= 1 {
			return 0, 0, t.failf("must be valid UTF-8")
		}
		t.i += size
		return r, 0, nil
	}
	if t.i+1 >= len(t.p) {
		return 0, 0, t.failf(`bad escape (end of pattern)`)
	}
	switch c := t.p[t.i+1]; c {
	case 'd', 'D', 's', 'S', 'w', 'W':
		t.i += 2
		return 0, c, nil
	}
	r, err = t.charEscape(true)
	return r, 0, err
}

// emitSet writes the RE2 form of a set: one escaped character, or a
// class (negated when that is shorter).
func (t *translator) emitSet(s runeSet) {
	if len(s) == 2 && s[0] == s[1] {
		t.out.WriteString(quoteRune(s[0]))
		return
	}
	if len(s) == 0 {
		t.out.WriteString(`[^\x00-\x{10FFFF}]`) // matches nothing, as in Python
		return
	}
	neg := s.complement()
	if len(neg) == 0 {
		t.out.WriteString(`(?s:.)`) // every character
		return
	}
	t.out.WriteByte('[')
	if len(neg) < len(s) {
		t.out.WriteByte('^')
		s = neg
	}
	for i := 0; i+1 < len(s); i += 2 {
		t.out.WriteString(quoteClassRune(s[i]))
		if s[i+1] != s[i] {
			if s[i+1] > s[i]+1 {
				t.out.WriteByte('-')
			}
			t.out.WriteString(quoteClassRune(s[i+1]))
		}
	}
	t.out.WriteByte(']')
}

// quoteRune writes r so that RE2 reads it as that one character.
func quoteRune(r rune) string {
	switch {
	case r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == ' '):
		return string(r)
	case r > ' ' && r < utf8.RuneSelf:
		return `\` + string(r)
	default:
		return fmt.Sprintf(`\x{%x}`, r)
	}
}

func quoteClassRune(r rune) string {
	if r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
		return string(r)
	}
	if r > ' ' && r < utf8.RuneSelf {
		return `\` + string(r)
	}
	return fmt.Sprintf(`\x{%x}`, r)
}
