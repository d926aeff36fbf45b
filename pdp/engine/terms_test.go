package engine

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// TestShortStringTerm: the shared table returns a term of the very string
// asked for, whatever other strings share its slot, from many goroutines
// at once (run with -race), and never shares a term of a long string.
func TestShortStringTerm(t *testing.T) {
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 20000 { // 5× the slots: collisions guaranteed
				s := fmt.Sprintf("k%d", (i*7+g)%(2*termCacheSlots+1))
				if got := shortStringTerm(s); got.Value.Compare(ast.String(s)) != 0 {
					t.Errorf("shortStringTerm(%q) = %v", s, got)
					return
				}
			}
		})
	}
	wg.Wait()
	if a, b := shortStringTerm("ops"), shortStringTerm("ops"); a != b {
		t.Error("a short string repeated at once is not shared")
	}
	long := strings.Repeat("x", termCacheMaxLen+1)
	if shortStringTerm(long) == shortStringTerm(long) {
		t.Error("a long string's term is shared")
	}
	if got := shortStringTerm(""); got.Value.Compare(ast.String("")) != 0 {
		t.Errorf("empty string: %v", got)
	}
}

// TestFoldTextASCII: the ASCII shortcut of foldText is lower(upper(s)).
func TestFoldTextASCII(t *testing.T) {
	var all strings.Builder
	for c := range 0x80 {
		all.WriteByte(byte(c))
	}
	for _, s := range []string{"", "abc", "ABC", "MiXeD 123 {\"K\":1}", all.String(), "é", "Aé", "aBé", "abcé", "AB\u212a", "x\xffY"} {
		if got, want := foldText(s), strings.ToLower(strings.ToUpper(s)); got != want {
			t.Errorf("foldText(%q) = %q, want %q", s, got, want)
		}
		if _, ascii := foldASCII(s); ascii != isASCII(s) {
			t.Errorf("foldASCII(%q): ascii %v", s, ascii)
		}
	}
}

// TestTextsOf: textsOf's text and fold are the bytes as a string and
// foldASCII's result for it (ASCII with and without upper case, non-ASCII,
// empty), and the text and fold do not change when the pooled buffer they
// were made from is written afterwards.
func TestTextsOf(t *testing.T) {
	for _, s := range []string{"", "a", "A", `{"action":"x","params":{}}`, `{"action":"Send","params":{"To":"BOB"}}`,
		"straße", "STRASSE ſ", "K\u212a", "mixed É and e", "\x00\x7f", strings.Repeat("AbC", 300)} {
		b := []byte(s)
		got := textsOf(b, true)
		folded, ascii := foldASCII(s)
		if got.text != s || got.folded != folded || got.ascii != ascii {
			t.Errorf("textsOf(%q) = %q, %q, %v; want %q, %q, %v", s, got.text, got.folded, got.ascii, s, folded, ascii)
		}
		for i := range b {
			b[i] = '#'
		}
		if got.text != s || got.folded != folded {
			t.Errorf("textsOf(%q) shares the buffer: %q, %q", s, got.text, got.folded)
		}
		if plain := textsOf([]byte(s), false); plain.text != s || plain.folded != "" {
			t.Errorf("textsOf(%q, false) = %+v", s, plain)
		}
	}
}
