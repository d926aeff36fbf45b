package adapter

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// pyrePairs is how many pattern/text pairs TestPythonDifferential runs:
// `make test` runs the default, `make test-pyre` the full 200,000+.
var pyrePairs = flag.Int("pyre.pairs", 24000, "pattern/text pairs for TestPythonDifferential")

// pyreSeed seeds the generator; failures print it.
var pyreSeed = flag.Uint64("pyre.seed", 1, "seed for TestPythonDifferential")

// pyOracle is one long-lived python3 running testdata/pyre/oracle.py.
type pyOracle struct {
	cmd     *exec.Cmd
	in      *bufio.Writer
	out     *bufio.Scanner
	version struct{ Version, Unicode string }
}

func startOracle(t *testing.T) *pyOracle {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is needed for the differential test against CPython's re: %v", err)
	}
	cmd := exec.CommandContext(t.Context(), py, "testdata/pyre/oracle.py")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	o := &pyOracle{cmd: cmd, in: bufio.NewWriter(stdin), out: bufio.NewScanner(stdout)}
	o.out.Buffer(make([]byte, 1<<20), 1<<24)
	t.Cleanup(func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil && t.Context().Err() == nil {
			t.Errorf("oracle: %v\n%s", err, stderr.String())
		}
	})
	if !o.out.Scan() {
		t.Fatalf("oracle did not start: %s", stderr.String())
	}
	if err := json.Unmarshal(o.out.Bytes(), &o.version); err != nil {
		t.Fatal(err)
	}
	return o
}

// pyResult is the oracle's answer for one pattern.
type pyResult struct {
	Err     string    `json:"e"`
	Timeout bool      `json:"timeout"`
	Spans   [][]int64 `json:"s"`
}

func (o *pyOracle) search(t *testing.T, pattern string, texts []string) pyResult {
	t.Helper()
	req, _ := json.Marshal(map[string]any{"p": pattern, "t": texts})
	o.in.Write(req)
	o.in.WriteByte('\n')
	if err := o.in.Flush(); err != nil {
		t.Fatalf("oracle: %v", err)
	}
	if !o.out.Scan() {
		t.Fatalf("oracle stopped: %v", o.out.Err())
	}
	var r pyResult
	if err := json.Unmarshal(o.out.Bytes(), &r); err != nil {
		t.Fatalf("oracle: %v: %s", err, o.out.Bytes())
	}
	return r
}

// diffRunes are the characters patterns and texts are drawn from: ASCII,
// and every character where Python's re and RE2 disagree or could —
// Unicode digits, spaces and word characters, the case pairs Python's
// IGNORECASE treats specially, characters whose case changes length, and
// non-BMP cased letters.
var diffRunes = []rune(`aAbBiIkKsSzZ019_ -.,:;"'\/{}[]()|*+?^$@#~` +
	"\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\u00a0\u1680\u2000\u2028\u2029\u202f\u3000\u200b\ufeff" +
	"ıİſKÅµμßẞéÉǅǆǄσςΣϐβθϑκϰﬀŉǰΐΐͅιι" +
	"０１９٠٣٩०५߀𝟎𝟗¹²½Ⅻ" +
	"ªºˆ中文" + "𐐀𐐨𞤀𞤢😀")

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// patternGen writes random patterns in the accepted dialect.
type patternGen struct {
	r *rand.Rand
}

func (g *patternGen) char(inClass bool) string {
	c := pick(g.r, diffRunes)
	switch {
	case c == '\n':
		return `\n`
	case c == '\t':
		return `\t`
	case strings.ContainsRune(`\.+*?()|[]{}^$-`, c):
		return `\` + string(c)
	case c < ' ' || c == 0x85:
		return fmt.Sprintf(`\x%02x`, c)
	case g.r.IntN(12) == 0 && c < 0x10000:
		return fmt.Sprintf(`\u%04x`, c)
	case g.r.IntN(12) == 0:
		return fmt.Sprintf(`\U%08x`, c)
	}
	return string(c)
}

func (g *patternGen) class() string {
	var b strings.Builder
	b.WriteByte('[')
	if g.r.IntN(3) == 0 {
		b.WriteByte('^')
	}
	for range 1 + g.r.IntN(4) {
		switch g.r.IntN(6) {
		case 0:
			b.WriteString(pick(g.r, []string{`\d`, `\D`, `\w`, `\W`, `\s`, `\S`}))
		case 1:
			lo, hi := pick(g.r, diffRunes), pick(g.r, diffRunes)
			if lo > hi {
				lo, hi = hi, lo
			}
			b.WriteString(g.escapeClassRune(lo) + "-" + g.escapeClassRune(hi))
		default:
			b.WriteString(g.char(true))
		}
	}
	b.WriteByte(']')
	return b.String()
}

func (g *patternGen) escapeClassRune(c rune) string {
	if strings.ContainsRune(`\]^-[`, c) {
		return `\` + string(c)
	}
	if c == '\n' {
		return `\n`
	}
	return string(c)
}

func (g *patternGen) atom(depth int) (string, bool) {
	switch n := g.r.IntN(20); {
	case n < 8:
		return g.char(false), false
	case n < 11:
		return pick(g.r, []string{`\d`, `\D`, `\w`, `\W`, `\s`, `\S`, `.`}), false
	case n < 14:
		return g.class(), false
	case n < 15 && depth == 0:
		return pick(g.r, []string{`^`, `\A`, `\Z`}), true
	case depth < 2:
		inner, unbounded := g.alt(depth + 1)
		open := pick(g.r, []string{"(", "(?:", "(?P<g" + fmt.Sprint(g.r.IntN(1000)) + ">"})
		return open + inner + ")", unbounded
	}
	return g.char(false), false
}

// quantify adds a quantifier; an unbounded one only on a single-character
// atom, so CPython's backtracking stays polynomial (groups get bounded
// counts).
func (g *patternGen) quantify(atom string, unbounded, zeroWidth bool) (string, bool) {
	isGroup := strings.HasPrefix(atom, "(")
	if zeroWidth || g.r.IntN(3) != 0 {
		return atom, unbounded
	}
	lazy := ""
	if g.r.IntN(3) == 0 {
		lazy = "?"
	}
	if unbounded || isGroup {
		return atom + pick(g.r, []string{"?", "{0,2}", "{1,2}", "{2}"}) + lazy, unbounded
	}
	q := pick(g.r, []string{"*", "+", "?", "{2}", "{1,3}", "{0,2}", "{2,}"})
	return atom + q + lazy, q == "*" || q == "+" || q == "{2,}"
}

func (g *patternGen) concat(depth int) (string, bool) {
	var b strings.Builder
	any := false
	for range 1 + g.r.IntN(4) {
		a, u := g.atom(depth)
		zw := a == "^" || a == `\A` || a == `\Z`
		a, u = g.quantify(a, u, zw)
		b.WriteString(a)
		any = any || u
	}
	return b.String(), any
}

func (g *patternGen) alt(depth int) (string, bool) {
	s, u := g.concat(depth)
	for g.r.IntN(4) == 0 {
		s2, u2 := g.concat(depth)
		s, u = s+"|"+s2, u || u2
	}
	return s, u
}

// actionText builds a text the way the Rego library does: the compact
// JSON of {"action", "params"}, keys sorted, no HTML escaping, U+2028/9
// unescaped.
func actionText(action string, params map[string]any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(map[string]any{"action": action, "params": params})
	s := strings.TrimSuffix(buf.String(), "\n")
	return strings.NewReplacer(`\\`, `\\`, `\u2028`, "\u2028", `\u2029`, "\u2029").Replace(s)
}

func (g *patternGen) text() string {
	var b strings.Builder
	for range g.r.IntN(14) {
		b.WriteRune(pick(g.r, diffRunes))
	}
	if g.r.IntN(3) == 0 {
		return actionText(pick(g.r, []string{"send", "db.query", "transfer"}), map[string]any{"text": b.String(), "n": json.Number("12")})
	}
	return b.String()
}

// TestPythonDifferential runs CPython's re.search(p, text, re.IGNORECASE)
// and Go's regexp on Translate(p) over generated patterns and texts
// (action texts among them) and requires the same span, in code points,
// or the same "no match", for every pair; and that CPython compiles every
// pattern Translate accepts. Patterns Translate refuses are counted, not
// compared: refusing is the sound answer for what RE2 cannot mean.
func TestPythonDifferential(t *testing.T) {
	o := startOracle(t)
	if o.version.Unicode != pyUnicodeVersion {
		t.Fatalf("python3 %s has Unicode %s but pyre_tables.go was generated from Unicode %s (CPython %s): run go generate ./adapter",
			o.version.Version, o.version.Unicode, pyUnicodeVersion, pyVersion)
	}
	g := &patternGen{r: rand.New(rand.NewPCG(*pyreSeed, 10))}
	pairs, patterns, refused, pyErrors, slow, diffs := 0, 0, 0, 0, 0, 0
	const textsPerPattern = 24
	for pairs < *pyrePairs {
		p, _ := g.alt(0)
		texts := make([]string, textsPerPattern)
		for i := range texts {
			texts[i] = g.text()
		}
		// Texts that contain the pattern's own characters match more often.
		texts[0] = strings.ReplaceAll(strings.ReplaceAll(p, `\`, ""), "|", "")
		re2, err := Translate(p)
		py := o.search(t, p, texts)
		if err != nil {
			refused++
			continue
		}
		if py.Timeout {
			slow++
			continue
		}
		re, cerr := regexp.Compile(re2)
		if py.Err != "" || cerr != nil {
			if py.Err != "" && cerr != nil {
				pyErrors++
				continue
			}
			t.Errorf("pattern %q: Python error %q, Go error %.200v (translation %.300q)", p, py.Err, cerr, re2)
			diffs++
			continue
		}
		patterns++
		for i, text := range texts {
			pairs++
			var got []int64
			if loc := re.FindStringIndex(text); loc != nil {
				got = []int64{int64(utf8.RuneCountInString(text[:loc[0]])), int64(utf8.RuneCountInString(text[:loc[1]]))}
			}
			if fmt.Sprint(got) != fmt.Sprint(py.Spans[i]) {
				diffs++
				if diffs <= 20 {
					t.Errorf("pattern %q text %q: Python span %v, Go %v (translation %.300q)", p, text, py.Spans[i], got, re2)
				}
			}
		}
	}
	t.Logf("%d pairs over %d patterns, 0 allowed differences, %d found; %d patterns refused by Translate, %d refused by both, %d too slow for CPython (seed %d, CPython %s)",
		pairs, patterns, diffs, refused, pyErrors, slow, *pyreSeed, o.version.Version)
	if diffs > 0 {
		t.Fatalf("%d differences", diffs)
	}
}
