package api

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// actionFields is the body of POST /v1/actions as the handler reads it:
// actionBody without a pointer per string field. Each has bit is whether
// its field was given as a string (absent and null are both "not
// given"), so the two say the same thing and from converts losslessly.
type actionFields struct {
	Action, AgentID, StepType          string
	HasAction, HasAgentID, HasStepType bool
	// Params is decoded with the body in one pass (numbers as
	// json.Number): nil when absent or null.
	Params any
	// ParamsText is the text of the params object in the body when it is
	// exactly what the lifecycle encodes Params as (encoding/json's
	// output without HTML escaping: keys sorted and once each, no
	// space, no escape, no U+2028 or U+2029), as clients that encode
	// params with encoding/json or sorted compact JSON send them; nil
	// otherwise. The lifecycle then stores it as it is instead of
	// encoding Params again.
	ParamsText []byte
}

// from sets f to what b says.
func (f *actionFields) from(b *actionBody) {
	*f = actionFields{Params: b.Params}
	f.Action, f.HasAction = deref(b.Action), b.Action != nil
	f.AgentID, f.HasAgentID = deref(b.AgentID), b.AgentID != nil
	f.StepType, f.HasStepType = deref(b.StepType), b.StepType != nil
}

// decodeActionBody decodes the body of POST /v1/actions into f exactly as
// decodeLenient does into an actionBody, without encoding/json's
// reflection, scanner and stream buffer on the common body: one JSON
// object of string fields and a params object, numbers as json.Number.
// Whatever it does not decode the way encoding/json would — any syntax
// error, a field of another type, a key that matches a field only
// case-insensitively, an escaped string, nesting deeper than
// maxFastDepth, data after the object — it leaves to decodeLenient, so
// results and error messages stay encoding/json's
// (FuzzDecodeActionBody holds the two together).
//
// The decoded strings share body's memory (no copy of the body, nor of
// each string): body must not be modified afterwards. The handlers'
// bodies are read for this request alone and never written again.
func decodeActionBody(body []byte, f *actionFields) error {
	p := fastParserOver(body)
	if p.actionBody(f) {
		return nil
	}
	*f = actionFields{}
	return decodeActionBodyJSON(body, f)
}

// decodeActionBodyJSON is decodeActionBody by encoding/json alone; its
// actionBody escapes to the heap, so it is only declared off the fast
// path.
func decodeActionBodyJSON(body []byte, f *actionFields) error {
	var b actionBody
	if err := decodeLenient(body, &b); err != nil {
		return err
	}
	f.from(&b)
	return nil
}

// maxFastDepth bounds fastParser's recursion; deeper values go to
// encoding/json (whose own bound is 10,000).
const maxFastDepth = 512

// fastParser decodes JSON for decodeActionBody. Its methods report false
// as soon as the input is anything but the plain case, with no error:
// the caller starts again with encoding/json.
type fastParser struct {
	data []byte
	// text is data as a string: every decoded string and number is a
	// substring of it rather than a copy of its own.
	text string
	i    int
	// inexact is set when the value being decoded is not written as
	// encodeParams would write it (actionFields.ParamsText).
	inexact bool
}

// newFastParser returns a parser over a copy of data.
func newFastParser(data []byte) fastParser {
	return fastParser{data: data, text: string(data)}
}

// fastParserOver returns a parser whose strings share data's memory, for
// data that is never modified afterwards (decodeActionBody).
func fastParserOver(data []byte) fastParser {
	return fastParser{data: data, text: unsafe.String(unsafe.SliceData(data), len(data))}
}

func (p *fastParser) space() {
	for p.i < len(p.data) {
		switch p.data[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// actionBody decodes the top-level object into b.
func (p *fastParser) actionBody(b *actionFields) bool {
	p.space()
	if !p.consume('{') {
		return false
	}
	p.space()
	if p.consume('}') {
		return p.end()
	}
	for {
		p.space()
		key, ok := p.string()
		if !ok {
			return false
		}
		p.space()
		if !p.consume(':') {
			return false
		}
		p.space()
		switch key {
		case "action":
			if b.Action, b.HasAction, ok = p.optString(); !ok {
				return false
			}
		case "agent_id":
			if b.AgentID, b.HasAgentID, ok = p.optString(); !ok {
				return false
			}
		case "step_type":
			if b.StepType, b.HasStepType, ok = p.optString(); !ok {
				return false
			}
		case "params":
			start := p.i
			p.inexact = false
			if b.Params, ok = p.value(0); !ok {
				return false
			}
			b.ParamsText = nil
			if _, isObject := b.Params.(map[string]any); isObject && !p.inexact {
				b.ParamsText = p.data[start:p.i:p.i]
			}
		default:
			// encoding/json matches field names case-insensitively
			// (Unicode folding included): such a key is left to it.
			for _, f := range [...]string{"action", "agent_id", "step_type", "params"} {
				if strings.EqualFold(key, f) {
					return false
				}
			}
			if _, ok = p.value(0); !ok { // unknown: ignored, but must be valid
				return false
			}
		}
		p.space()
		if p.consume('}') {
			return p.end()
		}
		if !p.consume(',') {
			return false
		}
	}
}

// innerSpace is space within a value, which encodeParams never writes.
func (p *fastParser) innerSpace() {
	start := p.i
	p.space()
	if p.i != start {
		p.inexact = true
	}
}

// end reports whether only whitespace follows.
func (p *fastParser) end() bool {
	p.space()
	return p.i == len(p.data)
}

func (p *fastParser) consume(c byte) bool {
	if p.i < len(p.data) && p.data[p.i] == c {
		p.i++
		return true
	}
	return false
}

// optString decodes an optional string field: a string (set), or null
// ("", not set).
func (p *fastParser) optString() (s string, set, ok bool) {
	if p.literal("null") {
		return "", false, true
	}
	s, ok = p.string()
	return s, ok, ok
}

// literal consumes word if it is next.
func (p *fastParser) literal(word string) bool {
	if len(p.data)-p.i >= len(word) && string(p.data[p.i:p.i+len(word)]) == word {
		p.i += len(word)
		return true
	}
	return false
}

// string decodes a string without escapes. Valid UTF-8 is kept as is, as
// encoding/json keeps it; a backslash, invalid UTF-8 or a control
// character is left to encoding/json.
func (p *fastParser) string() (string, bool) {
	if !p.consume('"') {
		return "", false
	}
	start := p.i
	ascii := true
	for p.i < len(p.data) {
		c := p.data[p.i]
		switch {
		case c == '"':
			raw := p.text[start:p.i]
			p.i++
			if !ascii {
				if !utf8.ValidString(raw) {
					return "", false
				}
				if strings.Contains(raw, "\u2028") || strings.Contains(raw, "\u2029") {
					p.inexact = true // encodeParams escapes them
				}
			}
			return raw, true
		case c == '\\' || c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		p.i++
	}
	return "", false
}

// value decodes any JSON value as encoding/json decodes it into an any
// with UseNumber: map[string]any, []any, string, json.Number, bool, nil.
func (p *fastParser) value(depth int) (any, bool) {
	if p.i >= len(p.data) || depth > maxFastDepth {
		return nil, false
	}
	switch c := p.data[p.i]; {
	case c == '{':
		p.i++
		m := map[string]any{}
		p.innerSpace()
		if p.consume('}') {
			return m, true
		}
		prev := ""
		for n := 0; ; n++ {
			p.innerSpace()
			k, ok := p.string()
			if !ok {
				return nil, false
			}
			if n > 0 && k <= prev {
				p.inexact = true // encodeParams sorts the keys, once each
			}
			prev = k
			p.innerSpace()
			if !p.consume(':') {
				return nil, false
			}
			p.innerSpace()
			v, ok := p.value(depth + 1)
			if !ok {
				return nil, false
			}
			m[k] = v // a repeated key: the last wins, as in encoding/json
			p.innerSpace()
			if p.consume('}') {
				return m, true
			}
			if !p.consume(',') {
				return nil, false
			}
		}
	case c == '[':
		p.i++
		p.innerSpace()
		if p.consume(']') {
			return []any{}, true
		}
		// Room for a short list at once: appending from empty
		// allocates at 1, 2 and 4 elements.
		a := make([]any, 0, 4)
		for {
			p.innerSpace()
			v, ok := p.value(depth + 1)
			if !ok {
				return nil, false
			}
			a = append(a, v)
			p.innerSpace()
			if p.consume(']') {
				return a, true
			}
			if !p.consume(',') {
				return nil, false
			}
		}
	case c == '"':
		return p.string()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	}
	return nil, false
}

// number decodes a number of JSON's grammar as its text.
func (p *fastParser) number() (any, bool) {
	start := p.i
	p.consume('-')
	switch {
	case p.consume('0'):
	case p.i < len(p.data) && p.data[p.i] >= '1' && p.data[p.i] <= '9':
		p.digits()
	default:
		return nil, false
	}
	if p.consume('.') {
		if p.digits() == 0 {
			return nil, false
		}
	}
	if p.consume('e') || p.consume('E') {
		if !p.consume('+') {
			p.consume('-')
		}
		if p.digits() == 0 {
			return nil, false
		}
	}
	return json.Number(p.text[start:p.i]), true
}

// digits consumes a run of digits and returns its length.
func (p *fastParser) digits() int {
	start := p.i
	for p.i < len(p.data) && p.data[p.i] >= '0' && p.data[p.i] <= '9' {
		p.i++
	}
	return p.i - start
}
