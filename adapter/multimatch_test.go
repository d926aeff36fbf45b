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
