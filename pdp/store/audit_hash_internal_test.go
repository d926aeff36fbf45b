package store

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestNewAuditEntryHash fixes an entry's hash (stored chains carry
// them), for an entry that fits the hash's stack buffer and one that
// does not, and holds NewAuditEntry to AuditEntryHash.
func TestNewAuditEntryHash(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	for _, c := range []struct {
		meta string
		want string
	}{
		{`{"a":"b"}`, "sha256:66f37e3690df6b972821f5fec487dddafeb1584fcb7238a6bd27b2aa7b4784b7"},
		{`{"a":"` + strings.Repeat("x", 3000) + `"}`, "sha256:1fa85d5126208995bfad87c2fe00a01c7c265b21ac8e95dfcd341b951641ef61"},
	} {
		e := NewAuditEntry("acme", 41, GenesisHash, ts, "action_executed", json.RawMessage(c.meta))
		if e.EntryHash != c.want {
			t.Errorf("entry hash = %s, want %s", e.EntryHash, c.want)
		}
		if h := AuditEntryHash(e.PrevHash, CanonicalAuditEntry(nil, e.SequenceNumber, e.Timestamp, e.Event, e.Metadata)); h != c.want {
			t.Errorf("AuditEntryHash = %s, want %s", h, c.want)
		}
	}
}

// BenchmarkNewAuditEntry numbers, stamps and hashes an action's entry.
func BenchmarkNewAuditEntry(b *testing.B) {
	meta := json.RawMessage(`{"action":"slack.send_message","action_digest":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","action_id":"act_0123456789abcdef01234567","agent_id":"billing-bot","risk_score":0.68}`)
	ts := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		NewAuditEntry("acme", 41, GenesisHash, ts, "action_executed", meta)
	}
}
