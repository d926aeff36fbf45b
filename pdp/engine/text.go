package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// errNoText means the action text cannot be computed in Go exactly as the
// library computes it (a value json.marshal would refuse); the engine then
// evaluates without hints, so the library decides (and fails) itself.
var errNoText = errors.New("action text not computable in Go")

// actionText is data.gatehouse.text.text computed in Go: the compact JSON
// of {"action": name, "params": params} that the library's json.marshal
// (encoding/json over ast.JSON) produces, with the escapes the library
// undoes (<, >, &, U+2028, U+2029) written as the characters themselves.
// Object keys are sorted as encoding/json sorts them; strings are escaped
// as encoding/json escapes them (invalid UTF-8 becomes \ufffd). A fuzz
// test checks it byte for byte against the library on OPA.
//
// It reads params as decoded (JSON-shaped Go values), so the decision
// input need not be converted to AST first; a value of any other Go type
// is converted as the input is (termOf) and written from its AST. When it
// returns no error, every value of params converts (inputAndParams cannot
// fail on it), so the input may convert lazily (lazyInput).
func actionText(name string, params map[string]any) (string, error) {
	t, err := actionTexts(name, params, false)
	return t.text, err
}

// texts is an action's text (actionText) and, when asked for, its fold
// (foldASCII: folded and ascii), made from the text's bytes in one
// allocation for both (textsOf).
type texts struct {
	text, folded string
	ascii        bool
}

// textsOf copies b, an action's text in a pooled buffer, into texts: the
// text alone when fold is false; with fold, the text and its fold, which
// is foldASCII(text) exactly. An ASCII text with an upper-case letter
// takes one allocation of twice its length for both (the fold in the
// second half) where the text and foldASCII took one each; without one,
// the fold is the text itself; other text is folded by foldASCII.
func textsOf(b []byte, fold bool) texts {
	if !fold {
		return texts{text: string(b)}
	}
	upper := false
	for _, c := range b {
		if c >= utf8.RuneSelf {
			t := string(b)
			folded, ascii := foldASCII(t)
			return texts{text: t, folded: folded, ascii: ascii}
		}
		upper = upper || 'A' <= c && c <= 'Z'
	}
	if !upper || len(b) == 0 {
		t := string(b)
		return texts{text: t, folded: t, ascii: true}
	}
	both := make([]byte, 2*len(b))
	copy(both, b)
	for i, c := range b {
		both[len(b)+i] = asciiLowerTable[c]
	}
	// both is never written again.
	return texts{text: unsafe.String(&both[0], len(b)), folded: unsafe.String(&both[len(b)], len(b)), ascii: true}
}

// actionTexts is actionText, with its fold when fold is set (textsOf).
func actionTexts(name string, params map[string]any, fold bool) (texts, error) {
	bp := textBufs.Get().(*textBuf)
	b := append(bp.b[:0], `{"action":`...)
	b = appendString(b, name)
	b = append(b, `,"params":`...)
	var err error
	if params == nil {
		b = append(b, "{}"...)
	} else {
		b, err = bp.appendObject(b, params)
	}
	b = append(b, '}')
	var t texts
	if err == nil {
		t = textsOf(b, fold)
	}
	if cap(b) <= maxPooledText && cap(bp.keys) <= maxPooledKeys {
		bp.b = b
		clear(bp.keys[:cap(bp.keys)]) // drop the action's keys
		bp.keys = bp.keys[:0]
		textBufs.Put(bp)
	}
	if err != nil {
		return texts{}, err
	}
	return t, nil
}

// actionTextOf is actionText(a.Name, a.Params), written from a.ParamsJSON
// when the caller has it and it reads as the walk would write it: the
// params' text is then copied between the action's name and the closing
// brace, without a second walk of the params map, its key sorting and
// its per-value type switches (about a sixth of a hinted decision's
// CPU). encoding/json and actionText write the same bytes for params
// decoded from JSON, with two exceptions, both left to the walk:
// encoding/json escapes U+2028 and U+2029, which actionText writes as
// they are, and a number in exponent form may be out of OPA's range,
// which the walk refuses (ast.NumberChecked) so that the engine
// evaluates unhinted and fails as the library does. usableParamsText
// finds both, conservatively.
func actionTextOf(a *pdp.Action) (string, error) {
	t, err := actionTextsOf(a, false)
	return t.text, err
}

// actionTextsOf is actionTextOf, with the text's fold when fold is set
// (textsOf).
func actionTextsOf(a *pdp.Action, fold bool) (texts, error) {
	if a.ParamsJSON == nil || !usableParamsText(a.ParamsJSON) {
		return actionTexts(a.Name, a.Params, fold)
	}
	bp := textBufs.Get().(*textBuf)
	b := append(bp.b[:0], `{"action":`...)
	b = appendString(b, a.Name)
	b = append(b, `,"params":`...)
	b = append(b, a.ParamsJSON...)
	b = append(b, '}')
	t := textsOf(b, fold)
	if cap(b) <= maxPooledText {
		bp.b = b
		textBufs.Put(bp)
	}
	return t, nil
}

// usableParamsText reports whether pj, params encoded by encoding/json
// (pdp.Action.ParamsJSON), is an object with no \u2028 or \u2029 escape
// and no number in exponent form: the bytes actionText would write for
// the params it encodes. It may say no to usable text (an escaped
// backslash before "u2028" in a string), never yes to unusable text.
// Strings are skipped whole (an 'e' after a digit in one is no
// exponent), so a digit followed by 'e' or 'E' outside them is one.
func usableParamsText(pj []byte) bool {
	if len(pj) < 2 || pj[0] != '{' || pj[len(pj)-1] != '}' || bytes.Contains(pj, []byte(`\u202`)) {
		return false
	}
	for i := 0; i < len(pj); i++ {
		switch c := pj[i]; {
		case c == '"':
			// The closing quote is the first one after an even number
			// of backslashes.
			j := i + 1
			for {
				k := bytes.IndexByte(pj[j:], '"')
				if k < 0 {
					return false
				}
				j += k
				n := 0
				for m := j - 1; m > i && pj[m] == '\\'; m-- {
					n++
				}
				if n%2 == 0 {
					break
				}
				j++
			}
			i = j
		case c|0x20 == 'e':
			if i > 0 && pj[i-1] >= '0' && pj[i-1] <= '9' {
				return false
			}
		}
	}
	return true
}

// textBuf is actionText's scratch space: the text, and the keys of the
// objects being written (a stack: each object's sorted keys above its
// parent's).
type textBuf struct {
	b    []byte
	keys []string
}

// appendObject writes m with its keys in encoding/json's order.
func (t *textBuf) appendObject(b []byte, m map[string]any) ([]byte, error) {
	start := len(t.keys)
	for k := range m {
		t.keys = append(t.keys, k)
	}
	keys := t.keys[start:]
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		var err error
		if b, err = t.appendGo(b, m[k]); err != nil {
			return b, err
		}
	}
	t.keys = t.keys[:start]
	return append(b, '}'), nil
}

// appendGo writes one params value as appendValue writes its AST.
func (t *textBuf) appendGo(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendString(b, x), nil
	case bool:
		if x {
			return append(b, "true"...), nil
		}
		return append(b, "false"...), nil
	case json.Number:
		// As termOf converts it (ast.InterfaceToValue): the text as is,
		// refused when out of range.
		if _, err := ast.NumberChecked(string(x)); err != nil {
			return b, err
		}
		return appendValue(b, ast.Number(x))
	case map[string]any:
		return t.appendObject(b, x)
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = t.appendGo(b, e); err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	}
	term, err := termOf(v)
	if err != nil {
		return b, err
	}
	return appendValue(b, term.Value)
}

// textBufs holds the buffers actionText writes into before it copies the
// text out: one allocation of the text's size per decision instead of the
// growth steps of a fresh buffer.
var textBufs = sync.Pool{New: func() any { return &textBuf{b: make([]byte, 0, 1024), keys: make([]string, 0, 32)} }}

// maxPooledText and maxPooledKeys bound the buffers kept in textBufs: a
// huge action's buffers are left to the collector.
const (
	maxPooledText = 64 << 10
	maxPooledKeys = 1024
)

func appendValue(b []byte, v ast.Value) ([]byte, error) {
	switch x := v.(type) {
	case ast.Null:
		b = append(b, "null"...)
	case ast.Boolean:
		if x {
			b = append(b, "true"...)
		} else {
			b = append(b, "false"...)
		}
	case ast.Number:
		if !pdp.ValidNumber(string(x)) {
			return b, errNoText
		}
		b = append(b, x...)
	case ast.String:
		b = appendString(b, string(x))
	case *ast.Array:
		b = append(b, '[')
		for i := range x.Len() {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendValue(b, x.Elem(i).Value); err != nil {
				return b, err
			}
		}
		b = append(b, ']')
	case ast.Object:
		// Keys are in OPA's order, which for string keys is Go's string
		// order: encoding/json's order of map keys.
		b = append(b, '{')
		for i, k := range x.Keys() {
			s, ok := k.Value.(ast.String)
			if !ok {
				return b, errNoText
			}
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, string(s))
			b = append(b, ':')
			var err error
			if b, err = appendValue(b, x.Get(k).Value); err != nil {
				return b, err
			}
		}
		b = append(b, '}')
	default: // sets and anything else: not what a decoded action holds
		return b, errNoText
	}
	return b, nil
}

const hexDigits = "0123456789abcdef"

// appendString is encoding/json's string encoder without HTML escaping
// and without escaping U+2028/U+2029 (which the library unescapes).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, `\b`...)
			case '\f':
				b = append(b, `\f`...)
			case '\n':
				b = append(b, `\n`...)
			case '\r':
				b = append(b, `\r`...)
			case '\t':
				b = append(b, `\t`...)
			default:
				b = append(b, `\u00`...)
				b = append(b, hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// foldText is the library's lower(upper(text)). On ASCII text that is
// strings.ToLower alone (no copy when s has no upper-case letter).
func foldText(s string) string {
	folded, _ := foldASCII(s)
	return folded
}

// foldASCII is foldText(s) and isASCII(s) from one pass over an ASCII s:
// the bytes up to the first upper-case letter are copied at once, the
// rest lower-cased byte by byte into the one allocation of the result.
func foldASCII(s string) (folded string, ascii bool) {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			return strings.ToLower(strings.ToUpper(s)), false
		}
		if 'A' <= c && c <= 'Z' {
			break
		}
	}
	if i == len(s) {
		return s, true
	}
	b := make([]byte, len(s))
	copy(b, s[:i])
	for ; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			return strings.ToLower(strings.ToUpper(s)), false
		}
		b[i] = asciiLowerTable[c]
	}
	return unsafe.String(&b[0], len(b)), true // b is never written again
}

// asciiLowerTable maps each ASCII byte to its lower case.
var asciiLowerTable = func() (t [utf8.RuneSelf]byte) {
	for c := range t {
		t[c] = byte(c)
		if 'A' <= c && c <= 'Z' {
			t[c] += 'a' - 'A'
		}
	}
	return t
}()

// isASCII is the library's regex.match(`^[\x00-\x7f]*$`, text).
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
