package engine

import (
	"hash/maphash"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Short strings recur from one decision to the next: tenant and agent
// ids, action names, step types, the keys of params objects and many of
// their values ("p1", "ops"). shortStringTerm returns a string term of
// such a string from a small fixed table (direct-mapped: one slot per
// hash, the newest string wins a collision) instead of allocating two
// objects per string per decision. A slot holds a term only if its string
// is equal, so a term is reused only for an equal string; the table's
// size is fixed, so what clients send cannot grow it. The terms are
// shared between concurrent evaluations, as OPA shares its own interned
// terms: nothing modifies a term once built.
const (
	termCacheSlots  = 4096 // a power of two
	termCacheMaxLen = 32   // longer strings are built every time
)

var (
	termCache     [termCacheSlots]atomic.Pointer[ast.Term]
	termCacheSeed = maphash.MakeSeed()
)

// shortStringTerm returns ast.StringTerm(s), shared when s is short.
func shortStringTerm(s string) *ast.Term {
	if len(s) > termCacheMaxLen {
		return ast.StringTerm(s)
	}
	slot := &termCache[maphash.String(termCacheSeed, s)&(termCacheSlots-1)]
	if t := slot.Load(); t != nil && string(t.Value.(ast.String)) == s {
		return t
	}
	t := ast.StringTerm(s)
	slot.Store(t)
	return t
}
