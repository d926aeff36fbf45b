package decisionlog

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestAppendEventMatchesEncodingJSON: the hand-written encoding is byte for
// byte what encoding/json writes for Event (HTML not escaped), so
// Event documents the format exactly.
func TestAppendEventMatchesEncodingJSON(t *testing.T) {
	full := sampleDecision("act_1")
	result, _ := full.Result.(json.RawMessage)
	labels := map[string]string{"id": "i", "version": "v1.2.3", "type": LabelType}
	labelsJSON, _ := marshal(labels)
	at := time.Date(2026, 5, 1, 12, 0, 0, 120000000, time.UTC)
	for _, tc := range []struct {
		name string
		ev   Event
	}{
		{"minimal", Event{DecisionID: "d", Path: Path, Timestamp: at}},
		{"action", Event{
			DecisionID: "act_1", TraceID: "0123456789abcdef0123456789abcdef", SpanID: "0123456789abcdef", Path: Path,
			Input:  ActionInput{TenantID: "acme", AgentID: "bot", Action: "http.post", Params: json.RawMessage(`{"a":[1,2.50,"x"],"b":null}`)},
			Result: result, Erased: []string{"/input/params/password"}, RequestedBy: "127.0.0.1:1", Timestamp: at,
			RuleLabels: ruleLabels(full.Violations), Custom: map[string]any{"tenant_id": "acme"},
		}},
		{"no agent, default step", Event{DecisionID: "x", Path: Path, Timestamp: at, Input: ActionInput{TenantID: "t", Action: "a"}}},
		{"generic documents", Event{DecisionID: "q", Path: Path, Timestamp: at,
			Input:  QueryInput{Input: map[string]any{"action": "<b>&", "params": map[string]any{"n": json.Number("1.0")}}, TenantID: "t"},
			Result: map[string]any{"status": "allowed"}}},
		{"strings that need escaping", Event{DecisionID: "quote\" back\\ nl\n tab\t é \u2028 <>&", Path: Path, Timestamp: at,
			RequestedBy: "bad \xff utf8", Custom: map[string]any{"tenant_id": "ü"}}},
		{"erased input", Event{DecisionID: "e", Path: Path, Timestamp: at, Erased: []string{"/input", "/result/x~1y"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := tc.ev
			ev.Labels = labels
			want, err := marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			got, err := appendEvent(nil, labelsJSON, &ev)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("appendEvent:\n%s\nencoding/json:\n%s", got, want)
			}
		})
	}
}

// TestAppendEventRefusesInvalidJSON: a document that is not JSON fails its
// own event, which then cannot corrupt a batch.
func TestAppendEventRefusesInvalidJSON(t *testing.T) {
	for _, ev := range []Event{
		{Input: ActionInput{Params: json.RawMessage(`{"a":`)}},
		{Result: json.RawMessage(`{"status":}`)},
	} {
		if b, err := appendEvent(nil, []byte(`{}`), &ev); err == nil || !strings.Contains(err.Error(), "not valid JSON") {
			t.Errorf("accepted: %s (%v)", b, err)
		}
	}
}
