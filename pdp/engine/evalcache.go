package engine

import (
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// virtualCache is topdown's VirtualCache (the values of the rules and
// function calls an evaluation has computed: a trie keyed by the terms of
// a reference, a stack of frames for `with`) with the same semantics as
// topdown.NewVirtualCache's, but reusable: its nodes live in one slice
// and each node's children map survives a reset, so an evaluation from
// the pool builds its cache without allocating. OPA's allocates a node
// and a map entry per rule and call evaluated, and a map per inner node:
// about a hundred allocations in a decision where three rules fire.
// Evaluate takes one from virtualCaches per evaluation and puts it back
// reset (no term of the evaluation is kept). TestVirtualCacheAsOPAs
// compares it with OPA's over random operations.
type virtualCache struct {
	nodes []vnode
	stack []int32 // the frames' roots, innermost last
}

// vnode is one node of the trie: key (nil for a frame's root), the value
// cached at its path (or undefined), and its children: key hash → the
// first child with that hash, further ones chained by next.
type vnode struct {
	key       *ast.Term
	value     *ast.Term
	undefined bool
	next      int32
	children  map[int]int32
}

// maxPooledNodes bounds the nodes of a cache put back in the pool: an
// evaluation that needed more (a large tenant, a long iteration over
// function calls) does not make every later one hold that much memory.
const maxPooledNodes = 4096

var virtualCaches = sync.Pool{New: func() any {
	c := &virtualCache{}
	c.Push()
	return c
}}

// getVirtualCache is an empty cache with one frame, from the pool.
func getVirtualCache() *virtualCache { return virtualCaches.Get().(*virtualCache) }

// putVirtualCache resets c and puts it back in the pool (unless it grew
// past maxPooledNodes).
func putVirtualCache(c *virtualCache) {
	if len(c.nodes) > maxPooledNodes {
		return
	}
	for i := range c.nodes {
		n := &c.nodes[i]
		n.key, n.value, n.undefined, n.next = nil, nil, false, -1
		if n.children != nil {
			clear(n.children)
		}
	}
	c.nodes, c.stack = c.nodes[:0], c.stack[:0]
	c.Push()
	virtualCaches.Put(c)
}

var _ topdown.VirtualCache = (*virtualCache)(nil)

// node adds a node for key, reusing a slot (and its children map) left
// by an earlier evaluation.
func (c *virtualCache) node(key *ast.Term) int32 {
	i := len(c.nodes)
	if i < cap(c.nodes) {
		c.nodes = c.nodes[:i+1]
	} else {
		c.nodes = append(c.nodes, vnode{})
	}
	n := &c.nodes[i]
	n.key, n.value, n.undefined, n.next = key, nil, false, -1
	return int32(i)
}

// child is the child of node p with key k, or -1.
func (c *virtualCache) child(p int32, k *ast.Term) int32 {
	m := c.nodes[p].children
	if len(m) == 0 {
		return -1
	}
	i, ok := m[k.Hash()]
	if !ok {
		return -1
	}
	for ; i >= 0; i = c.nodes[i].next {
		if c.nodes[i].key.Equal(k) {
			return i
		}
	}
	return -1
}

// Push pushes a new, empty frame.
func (c *virtualCache) Push() { c.stack = append(c.stack, c.node(nil)) }

// Pop drops the innermost frame (its nodes stay unused until the reset).
func (c *virtualCache) Pop() { c.stack = c.stack[:len(c.stack)-1] }

// Get is the value cached for ref in the innermost frame: (nil, true)
// when it was found undefined, (nil, false) when nothing is cached.
func (c *virtualCache) Get(ref ast.Ref) (*ast.Term, bool) {
	n := c.stack[len(c.stack)-1]
	for _, k := range ref {
		if n = c.child(n, k); n < 0 {
			return nil, false
		}
	}
	if c.nodes[n].undefined {
		return nil, true
	}
	return c.nodes[n].value, false
}

// Put caches value for ref in the innermost frame; a nil value marks ref
// undefined (as OPA's, a later value does not clear the mark).
func (c *virtualCache) Put(ref ast.Ref, value *ast.Term) {
	n := c.stack[len(c.stack)-1]
	for _, k := range ref {
		x := c.child(n, k)
		if x < 0 {
			x = c.node(k)
			h := k.Hash()
			if c.nodes[n].children == nil {
				c.nodes[n].children = make(map[int]int32)
			}
			if head, ok := c.nodes[n].children[h]; ok {
				c.nodes[x].next = head
			}
			c.nodes[n].children[h] = x
		}
		n = x
	}
	if value != nil {
		c.nodes[n].value = value
	} else {
		c.nodes[n].undefined = true
	}
}

// Keys are the references with a value in the innermost frame (as OPA's,
// not those cached undefined).
func (c *virtualCache) Keys() []ast.Ref {
	return c.keys(nil, c.stack[len(c.stack)-1])
}

func (c *virtualCache) keys(root ast.Ref, p int32) []ast.Ref {
	var out []ast.Ref
	for _, first := range c.nodes[p].children {
		for i := first; i >= 0; i = c.nodes[i].next {
			ref := root.Append(c.nodes[i].key)
			if c.nodes[i].value != nil {
				out = append(out, ref)
			}
			if len(c.nodes[i].children) > 0 {
				out = append(out, c.keys(ref, i)...)
			}
		}
	}
	return out
}

// baseCache is topdown's BaseCache (the base documents an evaluation has
// read from the store: a trie keyed by the values of a reference's terms,
// a value hiding what is below it) with the semantics of OPA's (unexported)
// one, reusable as virtualCache is: OPA's allocates a node and a map per
// reference term it caches, some two dozen allocations per decision.
// Taken from baseCaches per evaluation and put back reset.
type baseCache struct {
	nodes []bnode // nodes[0] is the root
}

type bnode struct {
	value    ast.Value
	children map[ast.Value]int32
}

var baseCaches = sync.Pool{New: func() any {
	return &baseCache{nodes: make([]bnode, 1, 16)}
}}

var _ topdown.BaseCache = (*baseCache)(nil)

// getBaseCache is an empty cache from the pool.
func getBaseCache() *baseCache { return baseCaches.Get().(*baseCache) }

// putBaseCache resets c and puts it back in the pool (unless it grew past
// maxPooledNodes).
func putBaseCache(c *baseCache) {
	if len(c.nodes) > maxPooledNodes {
		return
	}
	for i := range c.nodes {
		c.nodes[i].value = nil
		if c.nodes[i].children != nil {
			clear(c.nodes[i].children)
		}
	}
	c.nodes = c.nodes[:1]
	baseCaches.Put(c)
}

// Get is the value at ref, found in the value cached at ref or at one of
// its prefixes, or nil.
func (c *baseCache) Get(ref ast.Ref) ast.Value {
	n := int32(0)
	for i := range ref {
		x, ok := c.nodes[n].children[ref[i].Value]
		if !ok {
			return nil
		}
		n = x
		if v := c.nodes[n].value; v != nil {
			if i == len(ref)-1 {
				// What OPA's Find(ref[i+1:]) returns, without boxing a
				// scalar again (a string's Find does).
				return v
			}
			result, err := v.Find(ref[i+1:])
			if err != nil {
				return nil
			}
			return result
		}
	}
	return nil
}

// Put caches value at ref, forgetting what was cached below ref.
func (c *baseCache) Put(ref ast.Ref, value ast.Value) {
	n := int32(0)
	for i := range ref {
		x, ok := c.nodes[n].children[ref[i].Value]
		if !ok {
			x = int32(len(c.nodes))
			if int(x) < cap(c.nodes) {
				c.nodes = c.nodes[:x+1]
			} else {
				c.nodes = append(c.nodes, bnode{})
			}
			c.nodes[x].value = nil
			if c.nodes[n].children == nil {
				c.nodes[n].children = make(map[ast.Value]int32)
			}
			c.nodes[n].children[ref[i].Value] = x
		}
		n = x
	}
	c.nodes[n].value = value
	if c.nodes[n].children != nil {
		clear(c.nodes[n].children)
	}
}
