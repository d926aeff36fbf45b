package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// TestAuditHashGoldenVector pins the verification contract: the expected
// hashes were computed outside Go (Python's hashlib over the canonical
// text below), so a change to canonicalization or hashing fails here
// before it silently invalidates every stored chain.
func TestAuditHashGoldenVector(t *testing.T) {
	md, err := store.CanonicalMetadata(json.RawMessage(`{"c": {"z": "q\"u", "y": [true, null]}, "b": "<x>&é", "a": 1}`))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 6, 1, 14, 0, 0, 123400000, time.FixedZone("CEST", 2*3600))
	canon := store.CanonicalAuditEntry(nil, 1, at, store.EventPolicyCreated, md)
	const wantCanon = `{"event":"policy_created","metadata":{"a":1,"b":"<x>&é","c":{"y":[true,null],"z":"q\"u"}},"sequence_number":1,"timestamp":"2025-06-01T12:00:00.1234Z"}`
	if string(canon) != wantCanon {
		t.Errorf("canonical entry\n got %s\nwant %s", canon, wantCanon)
	}
	e1 := store.NewAuditEntry("acme", 0, store.GenesisHash, at, store.EventPolicyCreated, md)
	if want := "sha256:8e2c05244df8a808bc42d18264b269807f6230ade455e45578773d73288ba770"; e1.EntryHash != want || e1.SequenceNumber != 1 || e1.PrevHash != store.GenesisHash {
		t.Errorf("entry 1 = %+v, want hash %s", e1, want)
	}
	e2 := store.NewAuditEntry("acme", 1, e1.EntryHash, time.Date(2025, 6, 1, 12, 0, 1, 0, time.UTC), store.EventActionExecuted, json.RawMessage(`{"action_id":"act_1"}`))
	if want := "sha256:3e50db8789e7aa58c5a0a2a12212f6ccc0c85bc309eb6c9f046ceb249f1e265d"; e2.EntryHash != want || e2.PrevHash != e1.EntryHash {
		t.Errorf("entry 2 = %+v, want hash %s", e2, want)
	}
}

func TestCanonicalMetadata(t *testing.T) {
	cases := []struct{ in, want string }{
		{``, `{}`},
		{`  `, `{}`},
		{`{}`, `{}`},
		{` { "b" : 2 , "a" : 1 } `, `{"a":1,"b":2}`},
		{`{"n":[1.50,-0,1e3,12345678901234567890]}`, `{"n":[1.50,-0,1e3,12345678901234567890]}`},
		{`{"a":1,"a":2}`, `{"a":2}`},
		{`{"html":"<a href='x'>&</a>"}`, `{"html":"<a href='x'>&</a>"}`},
		{`{"ctl":"\u0001\b\f\n\r\t\"\\\/"}`, `{"ctl":"\u0001\b\f\n\r\t\"\\/"}`},
		{`{"ls":"\u2028\u2029","uni":"\u00e9😀"}`, `{"ls":"\u2028\u2029","uni":"é😀"}`},
		{`{"B":1,"a":2,"é":3,"b":4}`, `{"B":1,"a":2,"b":4,"é":3}`}, // byte order
		{`{"deep":{"z":{"y":1,"x":2},"a":[{"d":1,"c":2}]}}`, `{"deep":{"a":[{"c":2,"d":1}],"z":{"x":2,"y":1}}}`},
	}
	for _, c := range cases {
		got, err := store.CanonicalMetadata(json.RawMessage(c.in))
		if err != nil || string(got) != c.want {
			t.Errorf("CanonicalMetadata(%s) = %s, %v; want %s", c.in, got, err, c.want)
			continue
		}
		again, err := store.CanonicalMetadata(got)
		if err != nil || !bytes.Equal(again, got) {
			t.Errorf("not idempotent: %s → %s, %v", got, again, err)
		}
	}
	for _, in := range []string{`null`, `[]`, `"s"`, `1`, `{"a":}`, `{} {}`, `{"a":1}x`} {
		_, err := store.CanonicalMetadata(json.RawMessage(in))
		var ve *pdp.ValidationError
		if !errors.As(err, &ve) || ve.Field != "metadata" {
			t.Errorf("CanonicalMetadata(%s): %v, want a metadata ValidationError", in, err)
		}
	}
	got, err := store.MergeMetadata(json.RawMessage(`{"action_id":"spoof","x":1}`), map[string]any{"action_id": "act_1", "agent_id": nil})
	if want := `{"action_id":"act_1","agent_id":null,"x":1}`; err != nil || string(got) != want {
		t.Errorf("MergeMetadata = %s, %v; want %s", got, err, want)
	}
}

// TestCanonicalEventStrings checks the event fast path against the
// general encoder.
func TestCanonicalEventStrings(t *testing.T) {
	for _, ev := range []string{"policy_created", "a b", `q"uote`, `back\slash`, "tab\t", "<html>&", "é", "\u2028", "del\x7f", ""} {
		md := json.RawMessage(`{}`)
		got := store.CanonicalAuditEntry(nil, 1, time.Unix(0, 0), ev, md)
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(ev)
		want := `{"event":` + string(bytes.TrimSpace(b.Bytes())) + `,"metadata":{},"sequence_number":1,"timestamp":"1970-01-01T00:00:00Z"}`
		if string(got) != want {
			t.Errorf("event %q: %s, want %s", ev, got, want)
		}
	}
}

func TestMetadataActionID(t *testing.T) {
	for in, want := range map[string]string{
		`{"action_id":"act_1"}`: "act_1",
		`{"Action_ID":"act_1"}`: "",
		`{"action_id":1}`:       "",
		`{"action_id":null}`:    "",
		`{}`:                    "",
		`not json`:              "",
	} {
		if got := store.MetadataActionID(json.RawMessage(in)); got != want {
			t.Errorf("MetadataActionID(%s) = %q, want %q", in, got, want)
		}
	}
}

// chainOf builds n valid entries.
func chainOf(n int) []store.AuditEntry {
	var es []store.AuditEntry
	prev, at := store.GenesisHash, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		e := store.NewAuditEntry("t", int64(i), prev, at.Add(time.Duration(i)*time.Second), "e", json.RawMessage(`{"i":1}`))
		es = append(es, e)
		prev = e.EntryHash
	}
	return es
}

func verify(es []store.AuditEntry, head *store.ChainHead) store.AuditVerification {
	v := store.NewChainVerifier()
	for _, e := range es {
		v.Add(e.SequenceNumber, e.Timestamp, []byte(e.Event), e.Metadata, []byte(e.PrevHash), []byte(e.EntryHash))
	}
	return v.Result(head)
}

func TestChainVerifier(t *testing.T) {
	good := chainOf(6)
	last := good[5]
	edited := append([]store.AuditEntry(nil), good...)
	edited[2].Event = "x"
	swapped := append([]store.AuditEntry(nil), good...) // rows 3 and 4 trade contents
	swapped[2], swapped[3] = swapped[3], swapped[2]
	swapped[2].SequenceNumber, swapped[3].SequenceNumber = 3, 4
	head := &store.ChainHead{Seq: 6, Hash: last.EntryHash}
	cases := []struct {
		name    string
		es      []store.AuditEntry
		head    *store.ChainHead
		entries int
		bad     int64 // 0: valid
		reason  string
	}{
		{"unknown tenant", nil, nil, 0, 0, ""},
		{"empty", nil, &store.ChainHead{Hash: store.GenesisHash}, 0, 0, ""},
		{"valid", good, head, 6, 0, ""},
		{"head missing", good, nil, 6, 7, store.ReasonNoHead},
		{"edited", edited, head, 6, 3, store.ReasonHash},
		{"swapped", swapped, head, 6, 3, store.ReasonLink},
		{"gap", append(append([]store.AuditEntry(nil), good[:2]...), good[3:]...), head, 5, 3, store.ReasonGap},
		{"no first", good[1:], head, 5, 1, store.ReasonGap},
		{"truncated", good[:4], head, 4, 5, store.ReasonTruncated},
		{"head hash differs", good, &store.ChainHead{Seq: 6, Hash: "sha256:00"}, 6, 6, store.ReasonHeadHash},
		{"everything removed", nil, head, 0, 1, store.ReasonTruncated},
		{"past the head", good, &store.ChainHead{Seq: 4, Hash: good[3].EntryHash}, 6, 5, store.ReasonPastHead},
		{"past an empty head", good, &store.ChainHead{Hash: store.GenesisHash}, 6, 1, store.ReasonPastHead},
	}
	for _, c := range cases {
		r := verify(c.es, c.head)
		if r.Reason != c.reason {
			t.Errorf("%s: reason %q, want %q", c.name, r.Reason, c.reason)
		}
		switch {
		case c.bad == 0 && (!r.Valid || r.FirstBadSequence != nil || r.Entries != c.entries):
			t.Errorf("%s: %+v, want valid with %d entries", c.name, r, c.entries)
		case c.bad != 0 && (r.Valid || r.FirstBadSequence == nil || *r.FirstBadSequence != c.bad || r.Entries != c.entries):
			t.Errorf("%s: %v, want first bad %d of %d entries", c.name, r, c.bad, c.entries)
		}
	}
	// Verified in segments split anywhere, every case reads the same as in
	// one pass: what parallel verification relies on.
	for _, c := range cases {
		whole := verify(c.es, c.head)
		for a := int64(1); a <= 8; a++ {
			for b := a; b <= 8; b++ {
				vs := []*store.ChainVerifier{store.NewChainVerifier(), store.NewChainVerifier(), store.NewChainVerifier()}
				for _, e := range c.es {
					i := 0
					if e.SequenceNumber >= b {
						i = 2
					} else if e.SequenceNumber >= a {
						i = 1
					}
					vs[i].Add(e.SequenceNumber, e.Timestamp, []byte(e.Event), e.Metadata, []byte(e.PrevHash), []byte(e.EntryHash))
				}
				got := store.JoinSegments(c.head, vs[0].Segment(), vs[1].Segment(), vs[2].Segment())
				if fmt.Sprint(got) != fmt.Sprint(whole) || got.LastSequence != whole.LastSequence || got.LastHash != whole.LastHash {
					t.Errorf("%s split at %d, %d: %+v, one pass %+v", c.name, a, b, got, whole)
				}
			}
		}
	}
	if r := verify(good, head); r.LastSequence != 6 || r.LastHash != last.EntryHash {
		t.Errorf("head of a valid chain: %d %s", r.LastSequence, r.LastHash)
	}
	if r := verify(nil, nil); r.LastSequence != 0 || r.LastHash != store.GenesisHash {
		t.Errorf("head of an empty chain: %d %s", r.LastSequence, r.LastHash)
	}
}

func BenchmarkChainVerifier(b *testing.B) {
	es := chainOf(1000)
	type row struct{ ev, md, prev, hash []byte }
	rows := make([]row, len(es))
	for i, e := range es {
		rows[i] = row{[]byte(e.Event), e.Metadata, []byte(e.PrevHash), []byte(e.EntryHash)}
	}
	b.ReportAllocs()
	for b.Loop() {
		v := store.NewChainVerifier()
		for i, e := range es {
			v.Add(e.SequenceNumber, e.Timestamp, rows[i].ev, rows[i].md, rows[i].prev, rows[i].hash)
		}
		if !v.Result(&store.ChainHead{Seq: int64(len(es)), Hash: es[len(es)-1].EntryHash}).Valid {
			b.Fatal("invalid")
		}
	}
	b.ReportMetric(float64(b.N*len(es))/b.Elapsed().Seconds(), "entries/s")
}

func TestEventForStatus(t *testing.T) {
	for st, want := range map[pdp.Status]string{
		pdp.StatusAllowed: "action_executed", pdp.StatusBlocked: "action_blocked", pdp.StatusPendingReview: "action_pending_review",
		pdp.StatusApproved: "action_approved", pdp.StatusDenied: "action_denied", "weird": "",
	} {
		if got := store.EventForStatus(st); got != want {
			t.Errorf("EventForStatus(%s) = %q, want %q", st, got, want)
		}
	}
}

// TestVerifyChainSkipsVouched: the pass counting vouched-for actions runs
// whenever a verified entry mentions the digest key (even nested, which
// the drivers' SQL matches too), and only then.
func TestVerifyChainSkipsVouched(t *testing.T) {
	for _, tc := range []struct {
		meta     string
		mentions int
	}{
		{`{"action_id":"a1","status":"allowed"}`, 0},
		{`{"action_id":"a1","note":{"action_digest":"x"}}`, 1},
		{`{"action_digest":"sha256:00","action_id":"a1"}`, 1},
	} {
		es := chainOf(3)
		es = append(es, store.NewAuditEntry("t", 3, es[2].EntryHash, es[2].Timestamp, "e", json.RawMessage(tc.meta)))
		vouched := 0
		src := store.ChainSource{
			Head: func(context.Context) (*store.ChainHead, int64, error) {
				return &store.ChainHead{Seq: 4, Hash: es[3].EntryHash}, 4, nil
			},
			Range: func(_ context.Context, lo, hi int64) (store.ChainSegment, error) {
				v := store.NewChainVerifier()
				for _, e := range es {
					if e.SequenceNumber >= lo && e.SequenceNumber < hi {
						v.Add(e.SequenceNumber, e.Timestamp, []byte(e.Event), e.Metadata, []byte(e.PrevHash), []byte(e.EntryHash))
					}
				}
				return v.Segment(), nil
			},
			Actions: store.ActionSource{
				Fast:    func(context.Context, *store.ActionCheck) error { return nil },
				Vouched: func(context.Context) (int, int, error) { vouched++; return 0, 0, nil },
				All:     func(context.Context, *store.ActionCheck) error { return errors.New("not reached") },
			},
			Workers: 2, Segment: 1,
		}
		v, err := store.VerifyChain(t.Context(), "t", src)
		if err != nil || !v.Valid || v.Entries != 4 {
			t.Errorf("%s: VerifyChain = %+v, %v; want valid with 4 entries", tc.meta, v, err)
		}
		if vouched != tc.mentions {
			t.Errorf("%s: Vouched ran %d times, want %d", tc.meta, vouched, tc.mentions)
		}
	}
}
