package store

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// mergeFlat is MergeMetadata without decoding raw into a map and encoding
// the map again, for the metadata the service writes on every action: a
// flat object whose keys need no escaping and whose values are numbers,
// true, false, null or strings already in canonical form. Those are
// copied as they are (canonical form writes numbers as written and such
// strings unchanged) and only the members are sorted. Anything else — a
// nested value, an escape, a duplicate key, invalid JSON — returns false,
// and MergeMetadata takes the general path, which is the definition
// (FuzzMergeFlat holds the two together).
func mergeFlat(raw []byte, set map[string]any) (json.RawMessage, bool) {
	var fs [8]flatFact
	facts := fs[:0]
	for k, v := range set {
		if !plainString(k) {
			return nil, false
		}
		var enc []byte
		if s, ok := v.(string); ok && plainString(s) {
			enc = make([]byte, 0, len(s)+2)
			enc = append(append(append(enc, '"'), s...), '"')
		} else {
			var err error
			if enc, err = encodeCanonical(v); err != nil {
				return nil, false
			}
		}
		facts = append(facts, flatFact{k, enc})
	}
	return mergeFlatFacts(raw, facts)
}

// flatFact is a key the store sets, in canonical form (plainString), and
// its value encoded in canonical form.
type flatFact struct {
	key string
	val []byte
}

// mergeFlatFacts is mergeFlat with set's members already encoded (keys
// distinct), so a caller whose facts are strings passes them without a
// map or boxing them in interfaces (mergeStringFacts).
func mergeFlatFacts(raw []byte, facts []flatFact) (json.RawMessage, bool) {
	type member struct {
		key string
		val []byte // encoded
	}
	// At most len(ms) members, so that they stay on the stack (an append
	// that could grow them would move every key and value they point to
	// to the heap); more take the general path.
	var ms [16]member
	n := 0
	i := skipSpace(raw, 0)
	if i == len(raw) { // no metadata: {}
		raw, i = []byte("{}"), 0
	}
	if raw[i] != '{' {
		return nil, false
	}
	i = skipSpace(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		i++
	} else {
		for {
			k, j, ok := flatString(raw, i)
			if !ok {
				return nil, false
			}
			j = skipSpace(raw, j)
			if j >= len(raw) || raw[j] != ':' {
				return nil, false
			}
			j = skipSpace(raw, j+1)
			v, j, ok := flatValue(raw, j)
			if !ok {
				return nil, false
			}
			// The key is a view of raw's bytes, not a copy: raw is not
			// changed while this runs and no member outlives it (out
			// copies the bytes).
			key := unsafe.String(unsafe.SliceData(k[1:]), len(k)-2)
			replaced := false
			for _, f := range facts {
				if f.key == key {
					replaced = true
					break
				}
			}
			if !replaced {
				if n == len(ms) {
					return nil, false
				}
				ms[n] = member{key, v}
				n++
			}
			j = skipSpace(raw, j)
			if j >= len(raw) {
				return nil, false
			}
			if raw[j] == '}' {
				i = j + 1
				break
			}
			if raw[j] != ',' {
				return nil, false
			}
			i = skipSpace(raw, j+1)
		}
	}
	if skipSpace(raw, i) != len(raw) {
		return nil, false
	}
	for _, f := range facts {
		if n == len(ms) {
			return nil, false
		}
		ms[n] = member{f.key, f.val}
		n++
	}
	members := ms[:n]
	n = 2
	// Insertion sort: at most 16 members, and slices.SortFunc would move
	// them to the heap.
	for i := 1; i < len(members); i++ {
		for j := i; j > 0 && members[j].key < members[j-1].key; j-- {
			members[j], members[j-1] = members[j-1], members[j]
		}
	}
	for i, m := range members {
		if i > 0 && m.key == members[i-1].key {
			return nil, false // a duplicate key of raw: the last one wins, as the general path has it
		}
		n += len(m.key) + len(m.val) + 4
	}
	out := make([]byte, 0, n)
	out = append(out, '{')
	for i, m := range members {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, '"')
		out = append(out, m.key...)
		out = append(out, `":`...)
		out = append(out, m.val...)
	}
	return append(out, '}'), true
}

// flatString returns the string token at b[i:] with its quotes if it is
// in canonical form (plainString), and the index after it.
func flatString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, i, false
	}
	end := bytes.IndexByte(b[i+1:], '"')
	if end < 0 {
		return nil, i, false
	}
	s := b[i : i+1+end+1]
	if !plainBytes(s[1 : len(s)-1]) {
		return nil, i, false
	}
	return s, i + len(s), true
}

// flatValue returns the encoded scalar at b[i:] if it is in canonical
// form, and the index after it.
func flatValue(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) {
		return nil, i, false
	}
	switch c := b[i]; {
	case c == '"':
		return flatString(b, i)
	case c == 't' || c == 'f' || c == 'n':
		for _, lit := range []string{"true", "false", "null"} {
			if bytes.HasPrefix(b[i:], []byte(lit)) {
				return b[i : i+len(lit)], i + len(lit), true
			}
		}
		return nil, i, false
	case c == '-' || c >= '0' && c <= '9':
		j := numberEnd(b, i)
		if j < 0 {
			return nil, i, false
		}
		return b[i:j], j, true
	}
	return nil, i, false
}

// numberEnd returns the end of the JSON number at b[i:], or -1 if there
// is none: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func numberEnd(b []byte, i int) int {
	digits := func(i int) int {
		j := i
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if j == i {
			return -1
		}
		return j
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(i)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		if i = digits(i + 1); i < 0 {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i = digits(i); i < 0 {
			return -1
		}
	}
	return i
}

// plainString reports whether s is written unchanged between quotes by
// the canonical form: valid UTF-8 without `"`, `\`, control characters,
// U+2028 and U+2029.
func plainString(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			return plainSlow(s)
		}
	}
	return true
}

func plainBytes(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			return plainSlow(string(b))
		}
	}
	return true
}

func plainSlow(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == '"' || r == '\\' || r == '\u2028' || r == '\u2029' {
			return false
		}
	}
	return true
}

// mergeStringFacts is MergeMetadata(raw, {kv[0]: kv[1], kv[2]: kv[3],
// ...}) for facts that are strings, as an action's entry sets them: on
// the fast path without a map, interfaces, or a copy of raw's keys.
func mergeStringFacts(raw []byte, kv ...string) (json.RawMessage, error) {
	// Facts and their encoded values live on the stack (indexed, not
	// appended, so escape analysis keeps them there).
	var fs [4]flatFact
	var vb [192]byte
	vals, n := vb[:0], 0
	plain := len(kv)%2 == 0 && len(kv)/2 <= len(fs)
	for i := 0; plain && i < len(kv); i += 2 {
		k, v := kv[i], kv[i+1]
		if plain = plainString(k) && plainString(v); plain {
			start := len(vals)
			vals = append(append(append(vals, '"'), v...), '"')
			fs[n] = flatFact{k, vals[start:len(vals):len(vals)]}
			n++
		}
	}
	if plain {
		if out, ok := mergeFlatFacts(raw, fs[:n]); ok {
			return out, nil
		}
	}
	// Copies: the caller's strings may be views of its stack (ActionEvent's
	// digest), and what goes into a map would move them to the heap.
	set := make(map[string]any, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		set[strings.Clone(kv[i])] = strings.Clone(kv[i+1])
	}
	return MergeMetadata(raw, set)
}
