package store

import (
	"encoding/json"
	"testing"
	"time"
)

var digestCases = []string{
	`{"action_digest":"sha256:ab","action_id":"a1"}`,
	`{"action_id":"a1","action_digest":"sha256:ab"}`,
	`{"action_id":"a1"}`,
	`{}`,
	` { "action_digest" : "x" } `,
	`{"action_digest":1}`,
	`{"action_digest":null}`,
	`{"action_digest":{"action_digest":"inner"}}`,
	`{"note":{"action_digest":"nested"},"z":[1,{"action_digest":"y"}]}`,
	`{"a":"},\"action_digest\":\"fake","b":2}`,
	`{"action_digest":"first","action_digest":"last"}`,
	`{"action_digest":"first","action_digest":2}`,
	`{"action_digest":"esc\"aped"}`,
	`{"action_digest":"\u0041"}`,
	`{"action\u005fdigest":"escaped key"}`,
	`{"Action_Digest":"case"}`,
	"{\"action_digest\":\"\xc0\"}",
	`{"action_digest":"é"}`,
	`{"a":[[],{}],"action_digest":"after arrays","b":true,"c":false,"d":-1.5e3}`,
	`["action_digest","x"]`,
	`"action_digest"`,
	`null`,
	`{"action_digest":"x"`,
	`not json`,
	``,
}

// TestMetadataDigest: the top-level walk answers as decoding the whole
// object does, for every shape a hostile or damaged metadata can take.
func TestMetadataDigest(t *testing.T) {
	for _, c := range digestCases {
		gd, gok := metadataDigest([]byte(c))
		wd, wok := decodeDigest([]byte(c))
		if gd != wd || gok != wok {
			t.Errorf("metadataDigest(%s) = %q, %v; decoding says %q, %v", c, gd, gok, wd, wok)
		}
	}
}

func FuzzMetadataDigest(f *testing.F) {
	for _, c := range digestCases {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, c string) {
		gd, gok := metadataDigest([]byte(c))
		wd, wok := decodeDigest([]byte(c))
		if gd != wd || gok != wok {
			t.Errorf("metadataDigest(%q) = %q, %v; decoding says %q, %v", c, gd, gok, wd, wok)
		}
	})
}

// TestActionDigestGolden fixes ActionDigest's bytes (stored chains
// carry them): a record with every field set, and one whose params are
// larger than the digest's stack buffer.
func TestActionDigestGolden(t *testing.T) {
	d := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	big := make([]byte, 5000)
	for i := range big {
		big[i] = 'a' + byte(i%26)
	}
	for _, c := range []struct {
		a    ActionRecord
		want string
	}{
		{ActionRecord{}, "sha256:11fa88af74bd858151ad4ccdfb471c40b850399aa71b7689b7ea27d3109beeab"},
		{ActionRecord{ID: "act_1", TenantID: "acme", AgentID: "bot", Action: "x.y", Connector: "c", Operation: "o", Params: json.RawMessage(`{"a":1}`), StepType: "s", Status: "allowed", Decision: json.RawMessage(`{"d":2}`), TriggeredPolicy: "p", Severity: "high", RiskScore: 0.68, ViolationCount: 3, TraceID: "tr", CreatedAt: d, DecidedAt: &d, ApproverID: "ap", DecisionReason: "why é"},
			"sha256:46942cb57e9060fa476e6ddfb15a19bc62bfd760a061b3b01faee0af13d66681"},
		{ActionRecord{ID: "act_2", Params: json.RawMessage(big), CreatedAt: d}, "sha256:b2ab4192964d2716eeaf7eaac3dd80144ddc663fc31cfc77bd6b98a1b3b67b1f"},
	} {
		if got := ActionDigest(c.a); got != c.want {
			t.Errorf("ActionDigest(%.40v) = %s, want %s", c.a, got, c.want)
		}
	}
}
