package engine

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"
)

// interner shares equal parts of a data document (hash-consing): every
// value is rebuilt from its children's shared terms, and a value equal to
// one built before is that one. A tenant's data document repeats much of
// itself (each view lists a policy's metadata again, rules repeat their
// keys, severities and patterns, agents often hold the same policies), and
// as separate AST values the copies made up most of the engine's live heap
// and of the objects the garbage collector marks (docs/benchmarks.md,
// "heap"). The document read back is ast.Equal to the one given.
//
// Sharing is safe because nothing writes a unit's store and nothing
// changes an AST value read from it (OPA's evaluation and this package
// copy before they change an object, as withHints does). Objects iterate
// in sorted key order whatever the insertion order, so one object can
// stand for every equal one.
type interner struct {
	terms map[string]*ast.Term // by content, children by their id
	ids   map[*ast.Term]uint32
	key   []byte
}

func newInterner() *interner {
	return &interner{terms: map[string]*ast.Term{}, ids: map[*ast.Term]uint32{}}
}

// value returns v with its equal parts shared.
func (in *interner) value(v ast.Value) ast.Value {
	return in.term(ast.NewTerm(v)).Value
}

// term returns the shared term equal to t. Only terms without a location
// are shared (data documents carry none).
func (in *interner) term(t *ast.Term) *ast.Term {
	if t.Location != nil {
		return t
	}
	var rebuild func() ast.Value // the value of a new term
	in.key = in.key[:0]
	switch v := t.Value.(type) {
	case ast.String, ast.Number, ast.Boolean, ast.Null:
		in.key = append(in.key, 's')
		in.key = append(in.key, v.String()...)
		// A new term: t may sit in a block of terms (InterfaceToValue
		// allocates an array's or object's terms together) that would keep
		// the whole unshared document alive.
		rebuild = func() ast.Value { return v }
	case *ast.Array:
		elems := make([]*ast.Term, v.Len())
		for i := range elems {
			elems[i] = in.term(v.Elem(i))
		}
		in.key = append(in.key[:0], 'a')
		for _, e := range elems {
			in.key = in.appendID(in.key, e)
		}
		rebuild = func() ast.Value { return ast.NewArray(elems...) }
	case ast.Object:
		kvs := make([][2]*ast.Term, 0, v.Len())
		v.Foreach(func(k, x *ast.Term) { // sorted by key
			kvs = append(kvs, [2]*ast.Term{in.term(k), in.term(x)})
		})
		in.key = append(in.key[:0], 'o')
		for _, kv := range kvs {
			in.key = in.appendID(in.key, kv[0])
			in.key = in.appendID(in.key, kv[1])
		}
		rebuild = func() ast.Value { return ast.NewObject(kvs...) }
	default: // sets, refs, ...: not in data documents; kept as they are
		return t
	}
	if s, ok := in.terms[string(in.key)]; ok {
		return s
	}
	k := string(in.key)
	t = ast.NewTerm(rebuild())
	in.terms[k] = t
	in.ids[t] = uint32(len(in.ids))
	return t
}

func (in *interner) appendID(b []byte, t *ast.Term) []byte {
	id, ok := in.ids[t]
	if !ok { // a term kept as it is (a location, a set): its own id
		id = uint32(len(in.ids))
		in.ids[t] = id
	}
	return binary.LittleEndian.AppendUint32(b, id)
}

// internIdle is how long the engine keeps its interner after the last
// data document it shared: tenants built together (at start, in a
// warm-up, in a burst of policy writes) share their equal parts with each
// other, and the interner's tables do not stay live, and marked by every
// garbage collection, while nothing is being built.
const internIdle = 5 * time.Second

// sharedInterner is the engine's interner across tenants, dropped once
// internIdle passes without a document. A tenant built afterwards shares
// only within itself, and with the tenants built around the same time.
type sharedInterner struct {
	mu    sync.Mutex
	in    *interner
	timer *time.Timer
}

// value returns v with its equal parts shared, with each other and with
// the documents interned before it since the interner was last dropped.
func (s *sharedInterner) value(v ast.Value) ast.Value {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.in == nil {
		s.in = newInterner()
	}
	v = s.in.value(v)
	if s.timer == nil {
		s.timer = time.AfterFunc(internIdle, s.drop)
	} else {
		s.timer.Reset(internIdle)
	}
	return v
}

func (s *sharedInterner) drop() {
	s.mu.Lock()
	s.in = nil
	s.mu.Unlock()
}

// sharedQueries are the engine's queries parsed once, and the hinted
// query compiled once per library compiler: every prepared query of every
// tenant kept its own parse of the same text (rego.Query parses at each
// PrepareForEval) and every entry its own compile of the direct query,
// though registry tenants share one compiler (libcompile.go). A parsed
// body is never changed (OPA's query compiler copies it before it
// rewrites), nor a compiled one (topdown reads it).
type sharedQueries struct {
	mu      sync.Mutex
	bodies  map[string]ast.Body
	directs map[directKey]*directQuery
}

type directKey struct {
	compiler *ast.Compiler
	query    string
}

// parsed returns query parsed as rego.Query parses it (ast.ParseBody's
// options: rego's, as the engine sets no Rego version, capabilities or
// imports).
func (q *sharedQueries) parsed(query string) (ast.Body, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if b, ok := q.bodies[query]; ok {
		return b, nil
	}
	b, err := ast.ParseBody(query)
	if err != nil {
		return nil, err
	}
	if q.bodies == nil {
		q.bodies = map[string]ast.Body{}
	}
	q.bodies[query] = b
	return b, nil
}

// direct returns the direct query of query over compiler c and store s,
// its compiled body shared with every store over the same compiler. At
// most four are kept (registry tenants share the one library compiler).
func (q *sharedQueries) direct(c *ast.Compiler, s storage.Store, query string) (*directQuery, error) {
	k := directKey{c, query}
	q.mu.Lock()
	shared, ok := q.directs[k]
	q.mu.Unlock()
	if !ok {
		var err error
		if shared, err = newDirectQuery(c, nil, query); err != nil {
			return nil, err
		}
		q.mu.Lock()
		if q.directs == nil || len(q.directs) >= 4 {
			q.directs = map[directKey]*directQuery{}
		}
		q.directs[k] = shared
		q.mu.Unlock()
	}
	d := *shared
	d.store = s
	return &d, nil
}
