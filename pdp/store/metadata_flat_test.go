package store

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// mergeGeneral is MergeMetadata's general path: decode, set, encode.
func mergeGeneral(raw json.RawMessage, set map[string]any) (json.RawMessage, error) {
	m, err := decodeMetadata(raw)
	if err != nil {
		return nil, err
	}
	for k, v := range set {
		m[k] = v
	}
	return encodeCanonical(m)
}

var flatSeeds = []string{
	`{}`, ` { } `, `{"a":1}`, `{"b":"x","a":null,"c":true,"d":false}`,
	`{"action":"slack.send_message","agent_id":"billing-bot","key_id":null,"status":"allowed","triggered_policy":null,"severity":null,"risk_score":0.68}`,
	`{"a":-0.5e+10,"b":0,"c":-0,"d":1E5,"e":12.25}`, `{"a":01}`, `{"a":1.}`, `{"a":-}`, `{"a":1e}`,
	`{"a":"x","a":"y"}`, `{"é":"ü"}`, `{"a":"\u00e9"}`, `{"a":"<&>"}`, `{"a":"` + "\u2028" + `"}`,
	`{"a":"x\ty"}`, `{"a":[1]}`, `{"a":{"b":1}}`, `{"a":1}x`, `{"a":1} {}`, `{"a" : 1 , "b":2}`,
	`{"a":1,}`, `{,}`, `{"a"}`, `{"a":tru}`, `{"a":nul}`, `null`, `[]`, ``, `  `, "{\"a\":\"\xff\"}",
	`{"action_id":"spoof","x":1}`, `{"zz":1,"action_digest":"x"}`, "{\"a\":\"\x7f\"}",
}

func checkFlat(t *testing.T, raw []byte, set map[string]any) {
	fast, ok := mergeFlat(raw, set)
	if !ok {
		return
	}
	want, err := mergeGeneral(raw, set)
	if err != nil {
		t.Fatalf("mergeFlat(%q) = %s, general path fails: %v", raw, fast, err)
	}
	if !bytes.Equal(fast, want) {
		t.Fatalf("mergeFlat(%q) = %s, want %s", raw, fast, want)
	}
}

func TestMergeFlat(t *testing.T) {
	sets := []map[string]any{nil, {"action_id": "act_1", "action_digest": "sha256:ab"}, {"a": nil, "x": "é<"}, {"a": "\u2028"}, {"b": 2.5, "c": []int{1}}}
	taken := 0
	for _, s := range flatSeeds {
		for _, set := range sets {
			checkFlat(t, []byte(s), set)
			if _, ok := mergeFlat([]byte(s), set); ok {
				taken++
			}
		}
	}
	if taken == 0 {
		t.Fatal("the fast path never applied")
	}
	// The service's evaluation metadata takes the fast path.
	if _, ok := mergeFlat([]byte(flatSeeds[4]), map[string]any{"action_id": "act_1", MetaActionDigest: "sha256:00"}); !ok {
		t.Error("evaluation metadata fell back to the general path")
	}
}

// FuzzMergeFlat holds the fast path to the general one.
//
//	go test ./pdp/store -run '^$' -fuzz FuzzMergeFlat -fuzztime 30s
func FuzzMergeFlat(f *testing.F) {
	for _, s := range flatSeeds {
		f.Add([]byte(s), "action_id", "act_1")
	}
	f.Fuzz(func(t *testing.T, raw []byte, k, v string) {
		checkFlat(t, raw, nil)
		checkFlat(t, raw, map[string]any{k: v, "action_id": "act_0"})
	})
}

// BenchmarkMergeMetadata is an evaluation entry's metadata made
// canonical with the store's facts added, as every action's is.
func BenchmarkMergeMetadata(b *testing.B) {
	raw := []byte(flatSeeds[4])
	set := map[string]any{"action_id": "act_0123456789abcdef01234567", MetaActionDigest: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := MergeMetadata(raw, set); err != nil {
			b.Fatal(err)
		}
	}
}

// TestActionEventAsMap holds ActionEvent, which passes its facts as
// strings (mergeStringFacts), to CanonicalEvent with them in a map, on
// the fast path and off it (nested metadata, a spoofed fact, an ID that
// needs escaping, no metadata).
func TestActionEventAsMap(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	ids := []string{"act_0123456789abcdef01234567", "act_\"é\u2028", ""}
	metas := append([]string{`{"a":{"b":1}}`, `{"action_id":"spoof","action_digest":"x","z":1}`},
		flatSeeds...)
	for _, id := range ids {
		a := ActionRecord{ID: id, TenantID: "acme", AgentID: "bot", Action: "slack.send", Status: "allowed", RiskScore: 0.5, CreatedAt: at}
		for _, m := range metas {
			ev := AuditEvent{Metadata: json.RawMessage(m)}
			got, gotErr := ActionEvent(a, ev)
			ev.Timestamp = a.CreatedAt
			want, wantErr := CanonicalEvent(ev, EventForStatus(a.Status), map[string]any{"action_id": a.ID, MetaActionDigest: ActionDigest(a)})
			if (gotErr != nil) != (wantErr != nil) || !bytes.Equal(got.Metadata, want.Metadata) || got.Event != want.Event || !got.Timestamp.Equal(want.Timestamp) {
				t.Fatalf("ActionEvent(%q, %q) = %s, %v; want %s, %v", id, m, got.Metadata, gotErr, want.Metadata, wantErr)
			}
		}
	}
}

// BenchmarkActionEvent is an action's evaluation entry made canonical.
func BenchmarkActionEvent(b *testing.B) {
	a := ActionRecord{ID: "act_0123456789abcdef01234567", TenantID: "acme", AgentID: "billing-bot", Action: "slack.send_message", Status: "allowed", RiskScore: 0.68, CreatedAt: time.Now()}
	ev := AuditEvent{Metadata: []byte(flatSeeds[4])}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ActionEvent(a, ev); err != nil {
			b.Fatal(err)
		}
	}
}
