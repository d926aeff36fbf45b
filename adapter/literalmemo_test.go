package adapter

import (
	"slices"
	"testing"
)

// TestLiteralMemo: a remembered set is the set computed afresh, and a
// caller that modifies what it got does not change what the next one gets.
func TestLiteralMemo(t *testing.T) {
	const pattern = `(?:password|secret)\s*[:=]`
	first, ok := Literals(pattern)
	if !ok || len(first) == 0 {
		t.Fatalf("Literals(%q) = %q, %v", pattern, first, ok)
	}
	want := analyzeLiterals(pattern)
	first[0] = "changed"
	again, ok := Literals(pattern)
	if !ok || !slices.Equal(again, want) {
		t.Fatalf("remembered %q, want %q", again, want)
	}
	if short, ok := necessaryLiterals(`a|bc`, 2); ok {
		t.Fatalf("a set with a one-letter literal passed minLength 2: %q", short)
	}
	if one, ok := necessaryLiterals(`a|bc`, 1); !ok || len(one) != 2 {
		t.Fatalf("minLength 1 after minLength 2 on the same pattern: %q, %v", one, ok)
	}
}
