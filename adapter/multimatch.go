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
type multiMatcher struct {
	class   [256]int32 // byte → input class; 0: in no pattern
	nclass  int
	next    []int32   // row offset + class → next row offset, ^offset for states with outputs
	outputs [][]int32 // state → patterns ending here (own and via failure links)
	n       int       // number of patterns
}

// newMultiMatcher builds the automaton of patterns; empty patterns match
// every text.
func newMultiMatcher(patterns []string) *multiMatcher {
	m := &multiMatcher{n: len(patterns)}
	for _, p := range patterns {
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
	next, class := m.next, &m.class
	s := int32(0)
	for i := 0; i < len(text); i++ {
		s = next[s+class[text[i]]]
		if s < 0 {
			s = ^s
			for _, id := range m.outputs[int(s)/m.nclass] {
				found[id] = true
			}
		}
	}
}
