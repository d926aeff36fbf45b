package lifecycle

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// A decision is encoded once per action, by hand: the same bytes are
// stored as the record's policy_result and embedded in the response.
// encoding/json would reflect over pdp.Decision twice per request (once
// for the store, once for the answer) and allocate for every field. The
// output is exactly what encoding/json writes without HTML escaping
// (TestEncodeDecisionMatchesEncodingJSON holds the two together).

// encodeJSON is json.Marshal without HTML escaping: action text and
// reasons must read back as they were written.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

var errNotFinite = errors.New("json: unsupported value: a number that is not finite")

// encodeDecision encodes a policy_result as it is stored and answered.
func encodeDecision(d *pdp.Decision) ([]byte, error) {
	out, ok := encodeExact(func(b []byte) ([]byte, bool) {
		b, err := appendDecision(b, d)
		return b, err == nil
	})
	if !ok {
		return nil, errNotFinite // appendDecision's only error
	}
	return out, nil
}

// scratchBuffers hold encodings while they are written: a decision or
// params object is appended into a reused buffer and then copied once
// into one allocation of its exact size, instead of growing a fresh
// slice by doubling (every step a copy, the last one up to half unused),
// as both are kept (stored, answered) after the request.
var scratchBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxScratch bounds the buffers kept for reuse: a rare huge encoding is
// not kept.
const maxScratch = 64 << 10

// encodeExact returns what appendTo appends to an empty slice, in a slice
// of its own of exactly that length; ok is false when appendTo reports
// false.
func encodeExact(appendTo func([]byte) ([]byte, bool)) (_ []byte, ok bool) {
	buf := scratchBuffers.Get().(*[]byte)
	b, ok := appendTo((*buf)[:0])
	var out []byte
	if ok {
		out = make([]byte, len(b))
		copy(out, b)
	}
	if cap(b) <= maxScratch {
		*buf = b[:0]
		scratchBuffers.Put(buf)
	}
	return out, ok
}

// actionBytes holds the encodings of one submitted action while they are
// written: its params, its policy_result and its evaluation entry's
// metadata, one after the other in one scratch buffer from
// scratchBuffers, held from before the decision to after it. done then
// copies them into one allocation of their exact total size, where each
// is a full slice expression (capacity = length), so an append to one
// copies it rather than write into the next. Three encodings kept after
// the request (stored, answered) cost one allocation, not three.
type actionBytes struct {
	buf *[]byte
	b   []byte
	// Where each encoding ends in b; params are not in b when the
	// caller had them or encoding/json wrote them.
	paramsEnd, decisionEnd int
}

func newActionBytes() actionBytes {
	buf := scratchBuffers.Get().(*[]byte)
	return actionBytes{buf: buf, b: (*buf)[:0]}
}

// params encodes params as encodeParams does. The result is in the
// scratch buffer (until done), or of its own when encoding/json wrote it.
func (a *actionBytes) params(params map[string]any) ([]byte, error) {
	if b, ok := appendValue(a.b, params, 0); ok {
		a.b, a.paramsEnd = b, len(b)
		return b, nil
	}
	a.b = a.b[:0] // appendValue may have written part of it
	return encodeJSON(params)
}

// decision encodes the policy_result, after params.
func (a *actionBytes) decision(d *pdp.Decision) error {
	b, err := appendDecision(a.b, d)
	if err != nil {
		return err
	}
	a.b, a.decisionEnd = b, len(b)
	return nil
}

// meta encodes the evaluation entry's metadata, after the decision.
func (a *actionBytes) meta(m *evaluationMeta) error {
	b, err := m.appendJSON(a.b)
	if err != nil {
		return err
	}
	a.b = b
	return nil
}

// done returns the three encodings in one allocation; pj is the params
// as params returned them (or as the caller had them), returned as they
// are when they are not in the scratch buffer. meta is empty when it was
// not written.
func (a *actionBytes) done(pj []byte) (params, decision, meta []byte) {
	out := make([]byte, len(a.b))
	copy(out, a.b)
	p, d := a.paramsEnd, a.decisionEnd
	params = pj
	if p > 0 {
		params = out[:p:p]
	}
	return params, out[p:d:d], out[d:]
}

// release returns the scratch buffer for reuse (not a huge one); nothing
// written into it may be used afterwards except what done copied.
func (a *actionBytes) release() {
	if cap(a.b) <= maxScratch {
		*a.buf = a.b[:0]
		scratchBuffers.Put(a.buf)
	}
	a.buf, a.b = nil, nil
}

func appendDecision(b []byte, d *pdp.Decision) ([]byte, error) {
	if !finite(d.RiskScore) || !finite(d.EvaluationTimeMS) {
		return nil, errNotFinite
	}
	b = append(b, '{')
	if d.ActionID != "" {
		b = append(b, `"action_id":`...)
		b = appendString(b, d.ActionID)
		b = append(b, ',')
	}
	b = append(b, `"status":`...)
	b = appendString(b, string(d.Status))
	if d.ShadowStatus != "" {
		b = append(b, `,"shadow_status":`...)
		b = appendString(b, string(d.ShadowStatus))
	}
	b = append(b, `,"risk_score":`...)
	b = appendFloat(b, d.RiskScore)
	b = append(b, `,"evaluation_time_ms":`...)
	b = appendFloat(b, d.EvaluationTimeMS)
	b = append(b, `,"policies_evaluated":`...)
	if d.PoliciesEvaluated == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, p := range d.PoliciesEvaluated {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, p)
		}
		b = append(b, ']')
	}
	b = append(b, `,"triggered_policy":`...)
	b = appendOptString(b, d.TriggeredPolicy)
	b = append(b, `,"severity":`...)
	if d.Severity == nil {
		b = append(b, "null"...)
	} else {
		b = appendString(b, string(*d.Severity))
	}
	b = append(b, `,"reason":`...)
	b = appendOptString(b, d.Reason)
	var err error
	b = append(b, `,"violations":`...)
	if b, err = appendViolations(b, d.Violations); err != nil {
		return nil, err
	}
	b = append(b, `,"warnings":`...)
	if b, err = appendViolations(b, d.Warnings); err != nil {
		return nil, err
	}
	if len(d.Shadow) > 0 {
		b = append(b, `,"shadow":`...)
		b = appendShadow(b, d.Shadow)
	}
	return append(b, '}'), nil
}

// appendShadow encodes the hits of shadow policies.
func appendShadow(b []byte, hs []pdp.ShadowHit) []byte {
	b = append(b, '[')
	for i := range hs {
		h := &hs[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"policy":`...)
		b = appendString(b, h.Policy)
		b = append(b, `,"scope":`...)
		b = appendString(b, string(h.Scope))
		b = append(b, `,"rule":`...)
		b = strconv.AppendInt(b, int64(h.Rule), 10)
		b = append(b, `,"severity":`...)
		b = appendString(b, string(h.Severity))
		b = append(b, `,"on_violation":`...)
		b = appendString(b, string(h.OnViolation))
		b = append(b, `,"reason":`...)
		b = appendString(b, h.Reason)
		b = append(b, `,"match":`...)
		b = appendString(b, h.Match)
		b = append(b, `,"would_status":`...)
		b = appendString(b, string(h.WouldStatus))
		b = append(b, '}')
	}
	return append(b, ']')
}

func appendViolations(b []byte, vs []pdp.Violation) ([]byte, error) {
	if vs == nil {
		return append(b, "null"...), nil
	}
	b = append(b, '[')
	for i := range vs {
		v := &vs[i]
		if !finite(v.Confidence) {
			return nil, errNotFinite
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"policy":`...)
		b = appendString(b, v.Policy)
		b = append(b, `,"scope":`...)
		b = appendString(b, string(v.Scope))
		b = append(b, `,"rule":`...)
		b = strconv.AppendInt(b, int64(v.Rule), 10)
		b = append(b, `,"severity":`...)
		b = appendString(b, string(v.Severity))
		b = append(b, `,"on_violation":`...)
		b = appendString(b, string(v.OnViolation))
		b = append(b, `,"reason":`...)
		b = appendString(b, v.Reason)
		b = append(b, `,"match":`...)
		b = appendString(b, v.Match)
		b = append(b, `,"confidence":`...)
		b = appendFloat(b, v.Confidence)
		b = append(b, '}')
	}
	return append(b, ']'), nil
}

// AppendJSON appends the answer of the submission (docs/api.md §A7):
// {"action_id","action","agent_id","status","policy_result","message",
// "trace_id"}, with policy_result the bytes that were stored.
func (r *Result) AppendJSON(b []byte) []byte {
	b = append(b, `{"action_id":`...)
	b = appendString(b, r.ActionID)
	b = append(b, `,"action":`...)
	b = appendString(b, r.Action)
	b = append(b, `,"agent_id":`...)
	if r.AgentID == "" {
		b = append(b, "null"...)
	} else {
		b = appendString(b, r.AgentID)
	}
	b = append(b, `,"status":`...)
	b = appendString(b, string(r.Decision.Status))
	b = append(b, `,"policy_result":`...)
	b = append(b, r.DecisionJSON...)
	b = append(b, `,"message":`...)
	b = appendString(b, r.Message)
	b = append(b, `,"trace_id":`...)
	b = appendString(b, r.TraceID)
	return append(b, '}')
}

func appendOptString(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return appendString(b, *s)
}

// appendString appends s as a JSON string, escaped exactly as
// encoding/json escapes it without HTML escaping: quotes, backslashes and
// control characters escaped (\b \f \n \r \t short), invalid UTF-8 as
// \ufffd, U+2028 and U+2029 escaped, everything else copied.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; ; {
		i += plainPrefix(s[i:])
		if i >= len(s) {
			break
		}
		if c := s[i]; c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			start = i + size
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			start = i + size
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// plainPrefix returns the length of the longest prefix of s that a JSON
// string holds as it is: ASCII from 0x20 up, without '"' or '\\'. It
// tests eight bytes at a time while it can.
func plainPrefix(s string) int {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		q, bs := w^(ones*'"'), w^(ones*'\\')
		// A high bit in any term: a byte >= 0x80, < 0x20, a quote or
		// a backslash (exact as a yes or no, which is all it is used
		// for); the bytes are then looked at one by one.
		if (w|(w-ones*0x20)&^w|(q-ones)&^q|(bs-ones)&^bs)&highs != 0 {
			break
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' {
			break
		}
	}
	return i
}

const hexDigits = "0123456789abcdef"

// appendValue appends v, a decoded JSON value (map[string]any with its
// keys sorted, []any, string, json.Number, float64, bool, nil), as
// encoding/json encodes it without HTML escaping; ok is false for any
// other type, or a value encoding/json refuses, and then b is not to be
// used: encode with encodeJSON instead (which reports the error). It is
// the params' encoding on every action, without reflection.
func appendValue(b []byte, v any, depth int) (_ []byte, ok bool) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), true
	case string:
		return appendString(b, v), true
	case json.Number:
		n := string(v)
		if n == "" {
			n = "0" // as encoding/json writes the empty Number
		}
		if !pdp.ValidNumber(n) {
			return b, false
		}
		return append(b, n...), true
	case bool:
		if v {
			return append(b, "true"...), true
		}
		return append(b, "false"...), true
	case float64:
		if !finite(v) {
			return b, false
		}
		return appendFloat(b, v), true
	case map[string]any:
		if depth > maxValueDepth {
			return b, false
		}
		if v == nil {
			return append(b, "null"...), true
		}
		var buf [16]string
		keys := buf[:0]
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			if b, ok = appendValue(b, v[k], depth+1); !ok {
				return b, false
			}
		}
		return append(b, '}'), true
	case []any:
		if depth > maxValueDepth {
			return b, false
		}
		if v == nil {
			return append(b, "null"...), true
		}
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			if b, ok = appendValue(b, e, depth+1); !ok {
				return b, false
			}
		}
		return append(b, ']'), true
	}
	return b, false
}

// maxValueDepth bounds appendValue's recursion; deeper values are left to
// encoding/json.
const maxValueDepth = 1000

// encodeParams is params as encoding/json encodes it without HTML
// escaping: by appendValue when it can, else by encoding/json.
func encodeParams(params map[string]any) ([]byte, error) {
	if b, ok := encodeExact(func(b []byte) ([]byte, bool) { return appendValue(b, params, 0) }); ok {
		return b, nil
	}
	return encodeJSON(params)
}

// appendFloat writes f as encoding/json does: %f between 1e-6 and 1e21,
// else %e with a one-digit negative exponent unpadded.
func appendFloat(b []byte, f float64) []byte {
	if out, ok := appendShortDecimal(b, f); ok {
		return out
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// appendShortDecimal writes f as appendFloat does when f is the double
// nearest a decimal D with at most six fractional digits, 0 < |D| < 1e9:
// a decision's numbers are such (risk scores and confidences of two
// digits, evaluation times in whole microseconds), and strconv's shortest
// formatting costs more than the rest of their encoding. D is then what
// strconv writes: it reads back as f, and no decimal of fewer digits does
// (any other decimal of at most six fractional digits is at least 1e-6
// from D, while f's neighbours below 1e9 are within 1.2e-7), and in
// this range strconv writes %f. Anything else reports false.
// TestAppendFloatMatchesStrconv holds it to appendFloat's slow path.
func appendShortDecimal(b []byte, f float64) ([]byte, bool) {
	if !(f > -1e9 && f < 1e9) || f == 0 {
		return b, false
	}
	k := math.Round(f * 1e6)
	if k == 0 || k/1e6 != f {
		return b, false
	}
	n := int64(k)
	if n < 0 {
		b = append(b, '-')
		n = -n
	}
	b = strconv.AppendInt(b, n/1e6, 10)
	frac := n % 1e6
	if frac == 0 {
		return b, true
	}
	var digits [7]byte
	digits[0] = '.'
	for i := 6; i >= 1; i-- {
		digits[i] = byte('0' + frac%10)
		frac /= 10
	}
	end := 7
	for digits[end-1] == '0' {
		end--
	}
	return append(b, digits[:end]...), true
}

func finite(f float64) bool { return !math.IsInf(f, 0) && !math.IsNaN(f) }
