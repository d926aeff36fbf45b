package lifecycle

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// TestEncodeDecisionMatchesEncodingJSON: the hand-written encoder writes
// exactly what encoding/json (without HTML escaping) writes, for
// decisions with every optional field set or not and strings that need
// escaping (quotes, controls, HTML characters, U+2028, invalid UTF-8).
func TestEncodeDecisionMatchesEncodingJSON(t *testing.T) {
	strs := []string{"", "plain", `quo"te`, `back\slash`, "tab\tnew\nline\r", "<a href='x'>&amp;</a>", "é ü 日本",
		"line\u2028sep\u2029", "bad\xffutf8", "\x00\x1f\x7f", "emoji 🙂"}
	floats := []float64{0, 1, -1, 0.85, 1e-7, 1e21, 123456789.125, 1e-6, 3.0000001, -2.5e-9, math.SmallestNonzeroFloat64, math.MaxFloat64}
	r := rand.New(rand.NewPCG(1, 2))
	str := func() string { return strs[r.IntN(len(strs))] }
	opt := func() *string {
		if r.IntN(3) == 0 {
			return nil
		}
		s := str()
		return &s
	}
	viols := func() []pdp.Violation {
		if r.IntN(4) == 0 {
			return nil
		}
		vs := make([]pdp.Violation, r.IntN(3))
		for i := range vs {
			vs[i] = pdp.Violation{Policy: str(), Scope: pdp.Scope(str()), Rule: r.IntN(100) - 5, Severity: pdp.Severity(str()),
				OnViolation: pdp.Outcome(str()), Reason: str(), Match: str(), Confidence: floats[r.IntN(len(floats))]}
		}
		return vs
	}
	for i := range 3000 {
		d := &pdp.Decision{
			ActionID: str(), Status: pdp.Status(str()), ShadowStatus: pdp.Status(str()),
			RiskScore: floats[r.IntN(len(floats))], EvaluationTimeMS: r.Float64() * 10,
			TriggeredPolicy: opt(), Reason: opt(), Violations: viols(), Warnings: viols(),
		}
		if r.IntN(2) == 0 {
			sev := pdp.Severity(str())
			d.Severity = &sev
		}
		if r.IntN(4) != 0 {
			d.PoliciesEvaluated = []string{}
			for range r.IntN(4) {
				d.PoliciesEvaluated = append(d.PoliciesEvaluated, str())
			}
		}
		want, err := encodeJSON(d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := encodeDecision(d)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("case %d:\n got %s\nwant %s", i, got, want)
		}
		res := Result{ActionID: d.ActionID, TraceID: str(), Action: str(), AgentID: str(), Decision: d, DecisionJSON: got, Message: str()}
		wantRes, err := encodeJSON(struct {
			ActionID     string        `json:"action_id"`
			Action       string        `json:"action"`
			AgentID      *string       `json:"agent_id"`
			Status       pdp.Status    `json:"status"`
			PolicyResult *pdp.Decision `json:"policy_result"`
			Message      string        `json:"message"`
			TraceID      string        `json:"trace_id"`
		}{res.ActionID, res.Action, optPtr(res.AgentID), d.Status, d, res.Message, res.TraceID})
		if err != nil {
			t.Fatal(err)
		}
		if got := res.AppendJSON(nil); string(got) != string(wantRes) {
			t.Fatalf("response %d:\n got %s\nwant %s", i, got, wantRes)
		}
	}
	if _, err := encodeDecision(&pdp.Decision{RiskScore: math.NaN()}); err == nil {
		t.Fatal("NaN encoded")
	}
}

func BenchmarkEncodeDecision(b *testing.B) {
	reason, pol := "PII blocked: email", "pii_protection"
	sev := pdp.SeverityHigh
	d := &pdp.Decision{ActionID: "act_0123456789abcdef01234567", Status: pdp.StatusBlocked, RiskScore: 0.85, EvaluationTimeMS: 0.412,
		PoliciesEvaluated: []string{"pii_protection", "FinancialSafety", "DataExfiltration"}, TriggeredPolicy: &pol, Severity: &sev, Reason: &reason,
		Violations: []pdp.Violation{{Policy: pol, Scope: pdp.ScopeTenant, Severity: sev, OnViolation: "block", Reason: reason, Match: "email", Confidence: 0.85}},
		Warnings:   []pdp.Violation{}}
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = encodeDecision(d)
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = encodeJSON(d)
		}
	})
}

// testStrings are strings that need every kind of escaping.
var testStrings = []string{"", "plain", `quo"te`, `back\slash`, "tab\tnew\nline\r\b\f", "<a href='x'>&amp;</a>", "é ü 日本",
	"line\u2028sep\u2029", "bad\xffutf8", "\xc3", "\xed\xa0\x80 surrogate", "\x00\x1f\x7f", "emoji 🙂", "\ufffd"}

// randomValue is a random decoded JSON value of every kind appendValue
// handles, and some it leaves to encoding/json.
func randomValue(r *rand.Rand, depth int) any {
	n := 9
	if depth > 3 {
		n = 6
	}
	switch r.IntN(n) {
	case 0:
		return nil
	case 1:
		return testStrings[r.IntN(len(testStrings))]
	case 2:
		return json.Number([]string{"0", "-0", "12", "-3.5e-7", "1E+30", "123456789012345678901234567890", "", "0.1"}[r.IntN(8)])
	case 3:
		return r.IntN(2) == 0
	case 4:
		return []float64{0, 1.5, -2, 1e-7, 1e21, math.SmallestNonzeroFloat64, 123.456}[r.IntN(7)]
	case 5:
		if r.IntN(20) == 0 {
			return 42 // an int: not a decoded JSON value, left to encoding/json
		}
		return "x"
	case 6, 7:
		m := map[string]any{}
		for range r.IntN(20) {
			m[testStrings[r.IntN(len(testStrings))]+string(rune('a'+r.IntN(26)))] = randomValue(r, depth+1)
		}
		if r.IntN(10) == 0 {
			return map[string]any(nil)
		}
		return m
	default:
		if r.IntN(10) == 0 {
			return []any(nil)
		}
		a := make([]any, r.IntN(5))
		for i := range a {
			a[i] = randomValue(r, depth+1)
		}
		return a
	}
}

// TestEncodeParamsMatchesEncodingJSON: params are encoded exactly as
// encoding/json (without HTML escaping) encodes them, and what
// encoding/json refuses is refused.
func TestEncodeParamsMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 5000 {
		params := map[string]any{}
		for range r.IntN(8) {
			params[testStrings[r.IntN(len(testStrings))]] = randomValue(r, 0)
		}
		want, wantErr := encodeJSON(params)
		got, err := encodeParams(params)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("case %d: error %v, encoding/json's %v", i, err, wantErr)
		}
		if string(got) != string(want) {
			t.Fatalf("case %d:\n got %s\nwant %s", i, got, want)
		}
	}
	for _, bad := range []any{json.Number("1."), json.Number("01"), json.Number("abc"), math.NaN(), math.Inf(-1)} {
		if _, ok := appendValue(nil, map[string]any{"k": bad}, 0); ok {
			t.Errorf("%v: encoded, encoding/json refuses it", bad)
		}
		if _, err := encodeParams(map[string]any{"k": bad}); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
	deep := any("leaf")
	for range maxValueDepth + 5 {
		deep = []any{deep}
	}
	want, _ := encodeJSON(map[string]any{"d": deep})
	if got, err := encodeParams(map[string]any{"d": deep}); err != nil || string(got) != string(want) {
		t.Fatalf("deep value: %v, differs from encoding/json: %t", err, string(got) != string(want))
	}
}

// TestEvaluationMetaMatchesEncodingJSON: the audit entry's metadata is
// what encoding/json writes for evaluationMeta.
func TestEvaluationMetaMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	str := func() string { return testStrings[r.IntN(len(testStrings))] }
	opt := func() *string {
		if r.IntN(3) == 0 {
			return nil
		}
		s := str()
		return &s
	}
	for i := range 3000 {
		m := evaluationMeta{Action: str(), AgentID: opt(), KeyID: opt(), SubmittedBy: opt(), Status: pdp.Status(str()),
			TriggeredPolicy: opt(), Severity: opt(), RiskScore: []float64{0, 0.85, 1, 1e-9, 3.25}[r.IntN(5)]}
		if r.IntN(2) == 0 {
			m.ShadowStatus = pdp.Status(str())
		}
		want, err := encodeJSON(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.appendJSON(nil)
		if err != nil || string(got) != string(want) {
			t.Fatalf("case %d: %v\n got %s\nwant %s", i, err, got, want)
		}
	}
	if _, err := (&evaluationMeta{RiskScore: math.Inf(1)}).appendJSON(nil); err == nil {
		t.Fatal("Inf encoded")
	}
}

func BenchmarkEncodeParams(b *testing.B) {
	params := map[string]any{"channel": "#general", "text": "Quarterly numbers attached, see the sheet", "count": json.Number("3"),
		"urgent": false, "to": []any{"a@example.com", "b@example.com"}, "meta": map[string]any{"ticket": "OPS-1234", "amount": json.Number("1250.50")}}
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = encodeParams(params)
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = encodeJSON(params)
		}
	})
}

// TestPlainPrefix: the eight-bytes-at-a-time scan stops exactly where a
// byte-by-byte one does, for a special byte at every position.
func TestPlainPrefix(t *testing.T) {
	naive := func(s string) int {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
				return i
			}
		}
		return len(s)
	}
	specials := []byte{0, 0x1f, '"', '\\', 0x80, 0xff, 0xc3}
	plains := []byte{0x20, '!', '#', '[', ']', 0x7e, 0x7f, 'a', '0'}
	r := rand.New(rand.NewPCG(9, 10))
	for n := range 40 {
		for pos := range n + 1 {
			for range 20 {
				b := make([]byte, n)
				for i := range b {
					b[i] = plains[r.IntN(len(plains))]
				}
				if pos < n {
					b[pos] = specials[r.IntN(len(specials))]
				}
				if got, want := plainPrefix(string(b)), naive(string(b)); got != want {
					t.Fatalf("%q: %d, want %d", b, got, want)
				}
			}
		}
	}
	for c := range 256 {
		b := []byte("abcdefghijklmnopq") // a byte of each value in the word scan and in the tail
		b[3], b[16] = byte(c), byte(c)
		if got, want := plainPrefix(string(b)), naive(string(b)); got != want {
			t.Fatalf("byte %#x: %d, want %d", c, got, want)
		}
	}
}

// TestAppendFloatMatchesStrconv: appendFloat's short-decimal path writes
// what its strconv path writes, for decimals of up to nine fractional
// digits, every magnitude, random doubles and the edges.
func TestAppendFloatMatchesStrconv(t *testing.T) {
	slow := func(f float64) string {
		format := byte('f')
		if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
			format = 'e'
		}
		b := strconv.AppendFloat(nil, f, format, -1, 64)
		if format == 'e' {
			if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
				b[n-2] = b[n-1]
				b = b[:n-1]
			}
		}
		return string(b)
	}
	check := func(f float64) {
		t.Helper()
		if got, want := string(appendFloat(nil, f)), slow(f); got != want {
			t.Fatalf("appendFloat(%v) = %s, strconv %s", f, got, want)
		}
	}
	for _, f := range []float64{0, math.Copysign(0, -1), 1, -1, 0.85, 0.1, 0.2, 0.3, 1e-6, -1e-6, 9.99e-7, 1e-7, 0.000001, 0.0000015,
		999999999.999999, 1e9, -1e9, 1e9 - 1, 123456.5, 0.1 + 0.2, 1.0 / 3, math.MaxFloat64, math.SmallestNonzeroFloat64, 4503599627.370496} {
		check(f)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 200000 {
		d := r.IntN(10)
		k := r.Int64N(2_000_000_000_000) - 1_000_000_000_000
		check(float64(k) / math.Pow10(d))
		check(float64(r.Int64N(1e9)) / 1000) // evaluation times
		check(math.Float64frombits(r.Uint64()))
		check(r.Float64() * math.Pow10(r.IntN(20)-10))
	}
}
