package adapter

import (
	"slices"
	"sort"
	"unicode"
)

// runeSet is a set of code points as sorted, disjoint, non-adjacent
// [lo, hi] pairs (lo0, hi0, lo1, hi1, ...), the shape of RE2's classes.
// Surrogates are never members: no action text (valid UTF-8) holds one.
type runeSet []rune

// newRuneSet normalizes arbitrary pairs into a runeSet.
func newRuneSet(pairs []rune) runeSet {
	type rng struct{ lo, hi rune }
	rs := make([]rng, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		lo, hi := pairs[i], pairs[i+1]
		// Cut surrogates out.
		if lo <= 0xDFFF && hi >= 0xD800 {
			if lo < 0xD800 {
				rs = append(rs, rng{lo, 0xD7FF})
			}
			if hi > 0xDFFF {
				rs = append(rs, rng{0xE000, hi})
			}
			continue
		}
		if lo <= hi {
			rs = append(rs, rng{lo, hi})
		}
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].lo < rs[j].lo })
	out := make(runeSet, 0, len(pairs))
	for _, r := range rs {
		if n := len(out); n > 0 && r.lo <= out[n-1]+1 {
			out[n-1] = max(out[n-1], r.hi)
			continue
		}
		out = append(out, r.lo, r.hi)
	}
	return out
}

func singleRune(r rune) runeSet { return newRuneSet([]rune{r, r}) }

func (s runeSet) contains(r rune) bool {
	i := sort.Search(len(s)/2, func(i int) bool { return s[2*i+1] >= r })
	return i < len(s)/2 && s[2*i] <= r
}

func (s runeSet) union(t runeSet) runeSet {
	return newRuneSet(append(slices.Clone(s), t...))
}

// complement is taken over all code points but the surrogates.
func (s runeSet) complement() runeSet {
	var out []rune
	next := rune(0)
	for i := 0; i+1 < len(s); i += 2 {
		if s[i] > next {
			out = append(out, next, s[i]-1)
		}
		next = s[i+1] + 1
	}
	if next <= unicode.MaxRune {
		out = append(out, next, unicode.MaxRune)
	}
	return newRuneSet(out)
}

func (s runeSet) minus(t runeSet) runeSet {
	return s.complement().union(t).complement()
}

// size counts the members.
func (s runeSet) size() int {
	n := 0
	for i := 0; i+1 < len(s); i += 2 {
		n += int(s[i+1]-s[i]) + 1
	}
	return n
}

func (s runeSet) equal(t runeSet) bool { return slices.Equal(s, t) }
