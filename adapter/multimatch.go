package adapter

// multiMatcher finds which of a fixed set of byte strings occur in a text
// with one left-to-right pass (Aho-Corasick). The automaton is built once
// per tenant revision; Match allocates nothing but the result bitset the
// caller passes in.
//
// Bytes that occur in no pattern share one input class, so the transition
// table is states × (distinct pattern bytes + 1) instead of states × 256.
//
// The transitions hold the next state's row offset (state × classes),
// bit-complemented (negative) when the state has outputs, so a byte that
// completes no pattern costs one table load and one sign test.
//
// A text of at least minSplitText bytes is scanned as matchStreams
// overlapping parts at once (matchSplit): each byte's load depends on
// the last byte's, so one stream waits out every load's latency (and,
// with the table out of the cache as a server's many tenants leave it,
// every miss); independent streams overlap them.
type multiMatcher struct {
	class   [256]int32 // byte → input class; 0: in no pattern
	nclass  int
	next    []int32   // row offset + class → next row offset, ^offset for states with outputs
	outputs [][]int32 // state → patterns ending here (own and via failure links)
	n       int       // number of patterns
	maxLen  int       // length of the longest pattern
}

// matchStreams is how many parts of a text matchSplit scans at once;
// minSplitText the shortest text it splits (shorter ones are one pass).
const (
	matchStreams = 4
	minSplitText = 128
)

// newMultiMatcher builds the automaton of patterns; empty patterns match
// every text.
func newMultiMatcher(patterns []string) *multiMatcher {
	m := &multiMatcher{n: len(patterns)}
	for _, p := range patterns {
		m.maxLen = max(m.maxLen, len(p))
		for i := 0; i < len(p); i++ {
			if m.class[p[i]] == 0 {
				m.nclass++
				m.class[p[i]] = int32(m.nclass)
			}
		}
	}
	m.nclass++ // class 0
	// The trie, with -1 for a missing edge.
	trie := [][]int32{make([]int32, m.nclass)}
	for i := range trie[0] {
		trie[0][i] = -1
	}
	m.outputs = [][]int32{nil}
	for id, p := range patterns {
		s := int32(0)
		for i := 0; i < len(p); i++ {
			c := m.class[p[i]]
			if trie[s][c] < 0 {
				row := make([]int32, m.nclass)
				for j := range row {
					row[j] = -1
				}
				trie = append(trie, row)
				m.outputs = append(m.outputs, nil)
				trie[s][c] = int32(len(trie) - 1)
			}
			s = trie[s][c]
		}
		m.outputs[s] = append(m.outputs[s], int32(id))
	}
	// Breadth-first: failure links, completed transitions, merged outputs.
	fail := make([]int32, len(trie))
	m.next = make([]int32, len(trie)*m.nclass)
	queue := make([]int32, 0, len(trie))
	for c := 0; c < m.nclass; c++ {
		if t := trie[0][c]; t >= 0 {
			m.next[c] = t
			fail[t] = 0
			queue = append(queue, t)
		} else {
			m.next[c] = 0
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		m.outputs[s] = append(m.outputs[s], m.outputs[fail[s]]...)
		for c := 0; c < m.nclass; c++ {
			f := m.next[int(fail[s])*m.nclass+c]
			if t := trie[s][c]; t >= 0 {
				m.next[int(s)*m.nclass+c] = t
				fail[t] = f
				queue = append(queue, t)
			} else {
				m.next[int(s)*m.nclass+c] = f
			}
		}
	}
	// Row offsets, output states marked.
	for i, t := range m.next {
		off := t * int32(m.nclass)
		if len(m.outputs[t]) > 0 {
			off = ^off
		}
		m.next[i] = off
	}
	return m
}

// match sets found[id] for every pattern id that occurs in text. found
// must hold at least as many entries as there are patterns.
func (m *multiMatcher) match(text string, found []bool) {
	for _, id := range m.outputs[0] { // empty patterns
		found[id] = true
	}
	// Each part overlaps the next by maxLen-1 bytes, so every occurrence
	// lies whole in the part where it starts; parts shorter than the
	// overlap are not worth it.
	if len(text) >= minSplitText && len(text)/matchStreams > m.maxLen {
		m.matchSplit(text, found)
		return
	}
	m.scan(text, 0, found)
}

// scan runs the automaton over text from state row offset s (a
// non-negative one) and sets found for every pattern that ends in it.
func (m *multiMatcher) scan(text string, s int32, found []bool) {
	next, class := m.next, &m.class
	for i := 0; i < len(text); i++ {
		s = next[s+class[text[i]]]
		if s < 0 {
			s = ^s
			m.hit(s, found)
		}
	}
}

// hit sets found for the patterns that end in the state at row offset s.
func (m *multiMatcher) hit(s int32, found []bool) {
	for _, id := range m.outputs[int(s)/m.nclass] {
		found[id] = true
	}
}

// matchSplit is match's loop over matchStreams parts of text at once:
// part i starts at i×len/matchStreams and runs maxLen-1 bytes into the
// next part (the last to the end). An occurrence starting in part i ends
// before part i's end, and each part starts in the automaton's start
// state, so the parts together find every occurrence, and only
// occurrences. The parts run in lockstep for the shortest part's length,
// then each finishes alone.
func (m *multiMatcher) matchSplit(text string, found []bool) {
	n := len(text)
	part := n / matchStreams // > maxLen (match), so 3×part+overlap <= n
	overlap := max(m.maxLen-1, 0)
	p0 := text[0 : part+overlap]
	p1 := text[part : 2*part+overlap]
	p2 := text[2*part : 3*part+overlap]
	p3 := text[3*part:] // at least part bytes, maybe fewer than part+overlap
	common := min(len(p0), len(p3))
	next, class := m.next, &m.class
	var s0, s1, s2, s3 int32
	a, b, c, d := p0[:common], p1[:common], p2[:common], p3[:common]
	for j := 0; j < len(a) && j < len(b) && j < len(c) && j < len(d); j++ {
		s0 = next[s0+class[a[j]]]
		s1 = next[s1+class[b[j]]]
		s2 = next[s2+class[c[j]]]
		s3 = next[s3+class[d[j]]]
		if s0|s1|s2|s3 < 0 {
			if s0 < 0 {
				s0 = ^s0
				m.hit(s0, found)
			}
			if s1 < 0 {
				s1 = ^s1
				m.hit(s1, found)
			}
			if s2 < 0 {
				s2 = ^s2
				m.hit(s2, found)
			}
			if s3 < 0 {
				s3 = ^s3
				m.hit(s3, found)
			}
		}
	}
	m.scan(p0[common:], s0, found)
	m.scan(p1[common:], s1, found)
	m.scan(p2[common:], s2, found)
	m.scan(p3[common:], s3, found)
}
