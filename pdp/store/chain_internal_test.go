package store

import "testing"

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
