package decisionlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Roots a mask may start with, as OPA's masks (nd_builtin_cache aside:
// Gatehouse logs none).
const (
	rootInput  = "input"
	rootResult = "result"
)

// wildcard is the segment that stands for every member. OPA's pointers
// have none; Gatehouse adds it because the secrets worth erasing repeat
// per violation (/result/violations/*/match holds the matched text).
const wildcard = "*"

// pointer is a parsed mask: the root and the unescaped segments below it.
type pointer struct {
	text  string // as configured: what "erased" lists
	root  string
	parts []string
}

// parsePointer reads an RFC 6901 JSON pointer under /input or /result.
func parsePointer(s string) (pointer, error) {
	switch {
	case s == "":
		return pointer{}, errors.New("empty pointer")
	case len(s) > maxMaskLen:
		return pointer{}, fmt.Errorf("longer than %d characters", maxMaskLen)
	case !strings.HasPrefix(s, "/"):
		return pointer{}, fmt.Errorf("%q: a JSON pointer starts with /", s)
	}
	raw := strings.Split(s[1:], "/")
	parts := make([]string, len(raw))
	for i, p := range raw {
		// RFC 6901: ~1 is /, ~0 is ~; any other ~ is malformed.
		for j := 0; j < len(p); j++ {
			if p[j] == '~' && (j+1 == len(p) || (p[j+1] != '0' && p[j+1] != '1')) {
				return pointer{}, fmt.Errorf("%q: ~ must be followed by 0 or 1", s)
			}
		}
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(p, "~1", "/"), "~0", "~")
	}
	if parts[0] != rootInput && parts[0] != rootResult {
		return pointer{}, fmt.Errorf("%q: must start with /input or /result", s)
	}
	return pointer{text: s, root: parts[0], parts: parts[1:]}, nil
}

// masker erases its pointers from an event's input and result.
type masker struct {
	input, result []pointer
}

func newMasker(ptrs []string) (*masker, error) {
	m := &masker{}
	for _, s := range ptrs {
		p, err := parsePointer(s)
		if err != nil {
			return nil, err
		}
		if p.root == rootInput {
			m.input = append(m.input, p)
		} else {
			m.result = append(m.result, p)
		}
	}
	return m, nil
}

// apply erases m's pointers from *doc (an encodable value), appending
// each pointer that removed something to erased. doc is only decoded
// into a fresh generic value when a pointer concerns it, so the caller's
// value is never modified and an event without masks costs nothing.
func apply(ptrs []pointer, doc *any, erased []string) ([]string, error) {
	if len(ptrs) == 0 || *doc == nil {
		return erased, nil
	}
	v, err := generic(*doc)
	if err != nil {
		return erased, err
	}
	for _, p := range ptrs {
		if len(p.parts) == 0 { // the whole document
			v = nil
			erased = append(erased, p.text)
			continue
		}
		var removed bool
		v, removed = erase(v, p.parts)
		if removed {
			erased = append(erased, p.text)
		}
		if v == nil {
			break
		}
	}
	*doc = v
	return erased, nil
}

// generic returns v as the generic JSON value it encodes to (objects as
// map[string]any, numbers as json.Number, so their text survives).
func generic(v any) (any, error) {
	raw, ok := v.(json.RawMessage)
	if !ok {
		var err error
		if raw, err = json.Marshal(v); err != nil {
			return nil, err
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	return out, nil
}

// erase removes the member parts names from v (a wildcard segment walks
// every member) and returns the new v and whether anything was removed.
// Arrays lose the element, as OPA's masks remove it.
func erase(v any, parts []string) (any, bool) {
	key, rest := parts[0], parts[1:]
	switch x := v.(type) {
	case map[string]any:
		if key == wildcard {
			if len(rest) == 0 {
				return map[string]any{}, len(x) > 0
			}
			hit := false
			for k, child := range x {
				nv, removed := erase(child, rest)
				x[k] = nv
				hit = hit || removed
			}
			return x, hit
		}
		child, ok := x[key]
		if !ok {
			return x, false
		}
		if len(rest) == 0 {
			delete(x, key)
			return x, true
		}
		nv, removed := erase(child, rest)
		x[key] = nv
		return x, removed
	case []any:
		if key == wildcard {
			if len(rest) == 0 {
				return []any{}, len(x) > 0
			}
			hit := false
			for i, child := range x {
				nv, removed := erase(child, rest)
				x[i] = nv
				hit = hit || removed
			}
			return x, hit
		}
		i, err := strconv.Atoi(key)
		if err != nil || i < 0 || i >= len(x) {
			return x, false
		}
		if len(rest) == 0 {
			return slices.Delete(x, i, i+1), true
		}
		nv, removed := erase(x[i], rest)
		x[i] = nv
		return x, removed
	}
	return v, false
}
