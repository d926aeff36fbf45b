package lifecycle

import (
	"math"
	"math/rand/v2"
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
