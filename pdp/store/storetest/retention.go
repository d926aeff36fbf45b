package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// Retention: ExportAudit streams a chain, PruneAudit removes its oldest
// entries behind a checkpoint, and the retained chain still verifies —
// and still fails when tampered with (docs/api.md §A10).

// stampedN appends n entries to the tenant's chain, entry i (from 1)
// stamped base + i minutes.
func stampedN(t *testing.T, s store.GovernanceStore, tenant string, n int) []store.AuditEntry {
	t.Helper()
	var out []store.AuditEntry
	for i := range n {
		es, err := s.AppendAudit(t.Context(), tenant, store.AuditEvent{
			Event: fmt.Sprintf("note-%d", i%3), Metadata: meta("i", i+1), Timestamp: base.Add(time.Duration(i+1) * time.Minute),
		})
		if err != nil {
			t.Fatalf("AppendAudit(%s) #%d: %v", tenant, i+1, err)
		}
		out = append(out, es...)
	}
	return out
}

func archive(t *testing.T, s store.GovernanceStore) store.AuditArchive {
	t.Helper()
	a, ok := store.Archive(s)
	if !ok {
		t.Fatalf("%T has no AuditArchive", s)
	}
	return a
}

// prune prunes the tenant's entries before base + minutes and checks how
// many went.
func prune(t *testing.T, s store.GovernanceStore, tenant string, minutes, maxEntries, want int) *store.AuditCheckpoint {
	t.Helper()
	cp, n, err := archive(t, s).PruneAudit(t.Context(), tenant, base.Add(time.Duration(minutes)*time.Minute), maxEntries)
	if err != nil {
		t.Fatalf("PruneAudit: %v", err)
	}
	if n != want {
		t.Fatalf("PruneAudit removed %d entries, want %d", n, want)
	}
	return cp
}

// wantRetained checks a valid verification of a pruned chain.
func wantRetained(t *testing.T, s store.GovernanceStore, tenant string, from int64, entries int) store.AuditVerification {
	t.Helper()
	v, err := s.VerifyAudit(t.Context(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Valid || v.RetainedFrom != from || v.Entries != entries || (from > 1) != (v.Checkpoint != nil) {
		t.Fatalf("VerifyAudit = %s (%+v), want valid from %d with %d entries", v, v, from, entries)
	}
	return v
}

func wantBroken(t *testing.T, s store.GovernanceStore, tenant string, firstBad int64) {
	t.Helper()
	v, err := s.VerifyAudit(t.Context(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	if v.Valid || v.FirstBadSequence == nil || *v.FirstBadSequence != firstBad {
		t.Fatalf("VerifyAudit = %s, want invalid at %d", v, firstBad)
	}
}

func retentionTests(tamper Tamperer) []govTest {
	return []govTest{
		{"ExportStreamsInChainOrder", func(t *testing.T, s store.GovernanceStore) {
			newTenant(t, s, "acme")
			newTenant(t, s, "other")
			es := stampedN(t, s, "acme", 7)
			stampedN(t, s, "other", 2)
			var got []store.AuditEntry
			collect := func(e store.AuditEntry) error { got = append(got, e); return nil }
			if err := archive(t, s).ExportAudit(t.Context(), "acme", store.AuditQuery{Limit: 1, NewestFirst: true}, collect); err != nil {
				t.Fatal(err)
			}
			if len(got) != 7 {
				t.Fatalf("exported %d entries, want 7 (limits ignored)", len(got))
			}
			for i, e := range got {
				if e.SequenceNumber != int64(i+1) || e.EntryHash != es[i].EntryHash || string(e.Metadata) != string(es[i].Metadata) || !e.Timestamp.Equal(es[i].Timestamp) {
					t.Errorf("exported entry %d = %+v, want %+v", i, e, es[i])
				}
			}
			got = nil
			q := store.AuditQuery{EventTypes: []string{"note-0", "note-2"}, Since: base.Add(2 * time.Minute), Until: base.Add(7 * time.Minute)}
			if err := archive(t, s).ExportAudit(t.Context(), "acme", q, collect); err != nil {
				t.Fatal(err)
			}
			var seqs []int64
			for _, e := range got {
				seqs = append(seqs, e.SequenceNumber)
			}
			if fmt.Sprint(seqs) != "[3 4 6]" {
				t.Errorf("filtered export %v, want [3 4 6]", seqs)
			}
			stop := errors.New("enough")
			n := 0
			err := archive(t, s).ExportAudit(t.Context(), "acme", store.AuditQuery{}, func(store.AuditEntry) error { n++; return stop })
			if !errors.Is(err, stop) || n != 1 {
				t.Errorf("export stopped by its callback: %v after %d", err, n)
			}
			if err := archive(t, s).ExportAudit(t.Context(), "nobody", store.AuditQuery{}, func(store.AuditEntry) error { return stop }); err != nil {
				t.Errorf("export of an unknown tenant: %v", err)
			}
		}},
		{"PruneKeepsTheChainVerifiable", func(t *testing.T, s store.GovernanceStore) {
			newTenant(t, s, "acme")
			newTenant(t, s, "other")
			es := stampedN(t, s, "acme", 10)
			stampedN(t, s, "other", 10)
			wantRetained(t, s, "acme", 1, 10)
			if cp := prune(t, s, "acme", 0, 0, 0); cp != nil { // nothing is that old
				t.Fatalf("checkpoint %+v before any prune", cp)
			}
			// Entries 1-4 are stamped before base+5m.
			cp := prune(t, s, "acme", 5, 0, 4)
			if cp == nil || cp.Seq != 4 || cp.Hash != es[3].EntryHash || cp.PrunedAt.IsZero() {
				t.Fatalf("checkpoint %+v, want entry 4 (%s)", cp, es[3].EntryHash)
			}
			v := wantRetained(t, s, "acme", 5, 6)
			if v.Checkpoint.Seq != 4 || v.Checkpoint.Hash != es[3].EntryHash || v.LastSequence != 10 {
				t.Errorf("verification %+v", v)
			}
			// At most maxEntries per call.
			prune(t, s, "acme", 9, 2, 2)
			wantRetained(t, s, "acme", 7, 4)
			prune(t, s, "acme", 9, 0, 2)
			wantRetained(t, s, "acme", 9, 2)
			// The chain goes on; the listing holds what is retained.
			more := stampedN(t, s, "acme", 2)
			if more[0].SequenceNumber != 11 || more[0].PrevHash != es[9].EntryHash {
				t.Fatalf("append after prune: %+v", more[0])
			}
			wantRetained(t, s, "acme", 9, 4)
			if _, total, err := s.ListAudit(t.Context(), "acme", store.AuditQuery{}); err != nil || total != 4 {
				t.Errorf("ListAudit after prune: %d, %v", total, err)
			}
			// Everything may go; the checkpoint then meets the head.
			prune(t, s, "acme", 10_000, 0, 4)
			wantRetained(t, s, "acme", 13, 0)
			wantChain(t, s, "other", 10) // one tenant's retention is its own
		}},
		{"TamperAfterPruneFails", func(t *testing.T, s store.GovernanceStore) {
			newTenant(t, s, "acme")
			stampedN(t, s, "acme", 8)
			prune(t, s, "acme", 4, 0, 3)
			wantRetained(t, s, "acme", 4, 5)
			tamper.SetAuditField(t, s, "acme", 6, "metadata", `{"i":60}`)
			wantBroken(t, s, "acme", 6)
		}},
		{"ForgedCheckpointFails", func(t *testing.T, s store.GovernanceStore) {
			newTenant(t, s, "acme")
			stampedN(t, s, "acme", 8)
			prune(t, s, "acme", 4, 0, 3)
			tamper.Exec(t, s, `UPDATE audit_checkpoints SET entry_hash = ? WHERE tenant_id = ?`, "sha256:"+store.GenesisHash, "acme")
			wantBroken(t, s, "acme", 4)
		}},
		{"RetainedEntriesRemovedFail", func(t *testing.T, s store.GovernanceStore) {
			newTenant(t, s, "acme")
			stampedN(t, s, "acme", 8)
			prune(t, s, "acme", 4, 0, 3)
			tamper.DeleteAuditEntry(t, s, "acme", 4) // pretending it was pruned too
			wantBroken(t, s, "acme", 4)
		}},
		{"PruneRefusesATamperedRange", func(t *testing.T, s store.GovernanceStore) {
			newTenant(t, s, "acme")
			stampedN(t, s, "acme", 8)
			tamper.SetAuditField(t, s, "acme", 2, "metadata", `{"i":20}`)
			_, n, err := archive(t, s).PruneAudit(t.Context(), "acme", base.Add(6*time.Minute), 0)
			if !errors.Is(err, store.ErrChainBroken) || n != 0 {
				t.Fatalf("PruneAudit over a tampered entry: %d, %v; want ErrChainBroken", n, err)
			}
			wantBroken(t, s, "acme", 2) // the evidence is still there
		}},
	}
}
