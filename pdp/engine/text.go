package engine

import (
	"errors"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
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
func actionText(name string, params ast.Object) (string, error) {
	var b strings.Builder
	b.Grow(64 + 2*len(name))
	b.WriteString(`{"action":`)
	writeString(&b, name)
	b.WriteString(`,"params":`)
	if err := writeValue(&b, params); err != nil {
		return "", err
	}
	b.WriteByte('}')
	return b.String(), nil
}

func writeValue(b *strings.Builder, v ast.Value) error {
	switch x := v.(type) {
	case ast.Null:
		b.WriteString("null")
	case ast.Boolean:
		if x {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case ast.Number:
		if !validNumber(string(x)) {
			return errNoText
		}
		b.WriteString(string(x))
	case ast.String:
		writeString(b, string(x))
	case *ast.Array:
		b.WriteByte('[')
		for i := range x.Len() {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeValue(b, x.Elem(i).Value); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case ast.Object:
		keys := make([]string, 0, x.Len())
		for _, k := range x.Keys() {
			s, ok := k.Value.(ast.String)
			if !ok {
				return errNoText
			}
			keys = append(keys, string(s))
		}
		slices.Sort(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(b, k)
			b.WriteByte(':')
			if err := writeValue(b, x.Get(ast.InternedTerm(k)).Value); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	default: // sets and anything else: not what a decoded action holds
		return errNoText
	}
	return nil
}

const hexDigits = "0123456789abcdef"

// writeString is encoding/json's string encoder without HTML escaping and
// without escaping U+2028/U+2029 (which the library unescapes).
func writeString(b *strings.Builder, s string) {
	b.WriteByte('"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b.WriteString(s[start:i])
			switch c {
			case '\\', '"':
				b.WriteByte('\\')
				b.WriteByte(c)
			case '\b':
				b.WriteString(`\b`)
			case '\f':
				b.WriteString(`\f`)
			case '\n':
				b.WriteString(`\n`)
			case '\r':
				b.WriteString(`\r`)
			case '\t':
				b.WriteString(`\t`)
			default:
				b.WriteString(`\u00`)
				b.WriteByte(hexDigits[c>>4])
				b.WriteByte(hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteString(s[start:i])
			b.WriteString(`\ufffd`)
			i += size
			start = i
			continue
		}
		i += size
	}
	b.WriteString(s[start:])
	b.WriteByte('"')
}

// validNumber is encoding/json's isValidNumber: json.Number text it writes
// as is (anything else makes json.marshal fail).
func validNumber(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == '-' {
		s = s[1:]
		if s == "" {
			return false
		}
	}
	switch {
	case s[0] == '0':
		s = s[1:]
	case '1' <= s[0] && s[0] <= '9':
		s = s[1:]
		for len(s) > 0 && '0' <= s[0] && s[0] <= '9' {
			s = s[1:]
		}
	default:
		return false
	}
	if len(s) >= 2 && s[0] == '.' && '0' <= s[1] && s[1] <= '9' {
		s = s[2:]
		for len(s) > 0 && '0' <= s[0] && s[0] <= '9' {
			s = s[1:]
		}
	}
	if len(s) >= 2 && (s[0] == 'e' || s[0] == 'E') {
		s = s[1:]
		if s[0] == '+' || s[0] == '-' {
			s = s[1:]
			if s == "" {
				return false
			}
		}
		for len(s) > 0 && '0' <= s[0] && s[0] <= '9' {
			s = s[1:]
		}
	}
	return s == ""
}

// foldText is the library's lower(upper(text)).
func foldText(s string) string {
	return strings.ToLower(strings.ToUpper(s))
}

// isASCII is the library's regex.match(`^[\x00-\x7f]*$`, text).
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
