package adapter

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// The matcher finds exactly the patterns strings.Contains finds, on
// random texts over a small alphabet (many overlaps and shared prefixes)
// and with multi-byte characters.
func TestMultiMatcherAgreesWithContains(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "b", "c", "ab", "ſ", "ß", "é", "\x00", "\xff"}
	word := func(n int) string {
		var b strings.Builder
		for range n {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		return b.String()
	}
	for range 2000 {
		var pats []string
		for range r.IntN(12) {
			pats = append(pats, word(r.IntN(5)))
		}
		m := newMultiMatcher(pats)
		for range 5 {
			text := word(r.IntN(40))
			found := make([]bool, len(pats))
			m.match(text, found)
			for i, p := range pats {
				if found[i] != strings.Contains(text, p) {
					t.Fatalf("patterns %q text %q: pattern %q found=%v", pats, text, p, found[i])
				}
			}
		}
	}
}

// Texts long enough for matchSplit's parallel parts: random patterns of up
// to 12 bytes planted across the parts' borders (and anywhere else) are
// found exactly as strings.Contains finds them, and the split path agrees
// with the one-pass scan.
func TestMultiMatcherSplitAgreesWithContains(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	alphabet := "abcdé\x00ſ"
	word := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		return string(b)
	}
	split := 0
	for range 3000 {
		var pats []string
		for range 1 + r.IntN(10) {
			pats = append(pats, word(r.IntN(13)))
		}
		m := newMultiMatcher(pats)
		for range 5 {
			n := minSplitText + r.IntN(600)
			text := []byte(word(n))
			// Plant patterns at and around the parts' starts.
			part := n / matchStreams
			for i := 1; i < matchStreams; i++ {
				p := pats[r.IntN(len(pats))]
				at := i*part - r.IntN(len(p)+1)
				if at >= 0 && at+len(p) <= n {
					copy(text[at:], p)
				}
			}
			if n/matchStreams > m.maxLen {
				split++
			}
			found := make([]bool, len(pats))
			m.match(string(text), found)
			one := make([]bool, len(pats))
			for _, id := range m.outputs[0] {
				one[id] = true
			}
			m.scan(string(text), 0, one)
			for i, p := range pats {
				want := strings.Contains(string(text), p)
				if found[i] != want || one[i] != want {
					t.Fatalf("patterns %q text %q: pattern %q found=%v one pass=%v want %v", pats, text, p, found[i], one[i], want)
				}
			}
		}
	}
	if split == 0 {
		t.Fatal("no text took the split path")
	}
}
