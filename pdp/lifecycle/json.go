package lifecycle

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strconv"

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
	return appendDecision(make([]byte, 0, 512), d)
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

// appendString appends s as a JSON string. Printable ASCII without quotes
// or backslashes — ids, names, most reasons — is copied; anything else is
// left to encoding/json (invalid UTF-8 as \ufffd, U+2028 escaped, no HTML
// escaping).
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			raw, _ := encodeJSON(s) // a string always encodes
			return append(b, raw...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendFloat writes f as encoding/json does: %f between 1e-6 and 1e21,
// else %e with a one-digit negative exponent unpadded.
func appendFloat(b []byte, f float64) []byte {
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

func finite(f float64) bool { return !math.IsInf(f, 0) && !math.IsNaN(f) }
