package lifecycle

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"
	"time"
)

// TestRandomIDs: action IDs and random hex read the injected source when
// there is one, and crypto/rand (read directly) by default.
func TestRandomIDs(t *testing.T) {
	at := time.UnixMilli(0x0102030405)
	s := &Service{now: func() time.Time { return at }, random: bytes.NewReader(bytes.Repeat([]byte{0xab}, 64))}
	if id := s.newActionID(); id != "act_000102030405abababababab" {
		t.Errorf("action id %q", id)
	}
	if h := s.RandomHex(3); h != "ababab" {
		t.Errorf("RandomHex(3) = %q", h)
	}
	if h := s.RandomHex(40); h != strings.Repeat("ab", 40) {
		t.Errorf("RandomHex(40) = %q", h)
	}
	def := &Service{now: time.Now, random: rand.Reader}
	a, b := def.RandomHex(16), def.RandomHex(16)
	if len(a) != 32 || a == b || strings.Trim(a, "0123456789abcdef") != "" {
		t.Errorf("RandomHex(16) = %q, %q", a, b)
	}
	if id := def.newActionID(); len(id) != len("act_")+24 || !strings.HasPrefix(id, "act_") {
		t.Errorf("action id %q", id)
	}
}
