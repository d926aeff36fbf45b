package storetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// Tamperer changes a driver's stored audit chain behind the store's back,
// the way someone with write access to the database would. Each driver's
// test implements it with its own SQL; fields use the contract's names.
type Tamperer interface {
	// SetAuditField overwrites field ("event", "metadata", "prev_hash" or
	// "entry_hash") of the tenant's entry seq with value.
	SetAuditField(t *testing.T, s store.GovernanceStore, tenantID string, seq int64, field, value string)
	// DeleteAuditEntry removes the tenant's entry seq.
	DeleteAuditEntry(t *testing.T, s store.GovernanceStore, tenantID string, seq int64)
	// InsertAuditEntry stores e as a row of audit_log, as it is, without
	// touching the head.
	InsertAuditEntry(t *testing.T, s store.GovernanceStore, e store.AuditEntry)
	// Exec runs one SQL statement written with ? placeholders, portable
	// between the drivers (no timestamps).
	Exec(t *testing.T, s store.GovernanceStore, query string, args ...any)
}

// RunGovernance runs the suite of the audit chain, approvals and the
// dashboard. open must return a new, empty store each call and arrange for
// it to be closed when t ends; tamper edits what a store has written.
// Subtests run in parallel, each on its own store.
func RunGovernance(t *testing.T, open func(t *testing.T) store.GovernanceStore, tamper Tamperer) {
	groups := []struct {
		name  string
		tests []govTest
	}{
		{"Audit", auditTests},
		{"AuditedWrites", auditedWriteTests},
		{"AuditedPolicyVersions", auditedVersionTests},
		{"Tamper", tamperTests(tamper)},
		{"Rollups", rollupTests(tamper)},
		{"Retention", retentionTests(tamper)},
		{"Approvals", approvalTests},
		{"Dashboard", dashboardTests},
		{"AgentViolations", violationTests},
		{"GovernanceIsolation", governanceIsolationTests},
		{"KeyIdentities", keyIdentityTests},
		{"ApproverStats", approverStatsTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.run(t, open(t))
				})
			}
		})
	}
}

type govTest struct {
	name string
	run  func(t *testing.T, s store.GovernanceStore)
}

// RunGovernanceReopen checks that chains, approvals and the dashboard's
// numbers survive closing and reopening the database, and that appends
// continue the chains where they stopped. database is as in RunReopen.
func RunGovernanceReopen(t *testing.T, database func(t *testing.T) func(t *testing.T) store.GovernanceStore) {
	t.Run("GovernanceReopen", func(t *testing.T) {
		open := database(t)
		ctx := t.Context()
		s := open(t)
		newTenant(t, s, "acme")
		put(t, s, "acme", policy("", "NoDrop", true)) // unaudited writes leave the chain alone
		appendN(t, s, "acme", 3)
		held := heldAction("acme", "act_held", base)
		if _, _, err := s.InsertActionAudited(ctx, held, store.AuditEvent{}); err != nil {
			t.Fatal(err)
		}
		q := store.DashboardQuery{Since: base.Add(-time.Hour), Until: base.Add(time.Hour), Bucket: store.BucketHour}
		dash, err := s.Dashboard(ctx, "acme", q)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}

		s = open(t)
		defer s.Close()
		wantChain(t, s, "acme", 4)
		again, err := s.Dashboard(ctx, "acme", q)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "dashboard after reopen", again, dash)
		_, e, err := s.DecideAction(ctx, store.DecideRequest{TenantID: "acme", ActionID: "act_held", Status: pdp.StatusApproved, ApproverID: "alice"})
		if err != nil || e.SequenceNumber != 5 {
			t.Errorf("decision after reopen: entry %d, %v; want sequence 5", e.SequenceNumber, err)
		}
		wantChain(t, s, "acme", 5)
	})
}

// meta returns a metadata object.
func meta(kv ...any) json.RawMessage {
	m := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// appendN appends n events note-1 … note-n to the tenant's chain, one call
// each, and returns the entries.
func appendN(t *testing.T, s store.GovernanceStore, tenant string, n int) []store.AuditEntry {
	t.Helper()
	var out []store.AuditEntry
	for i := range n {
		es, err := s.AppendAudit(t.Context(), tenant, store.AuditEvent{Event: fmt.Sprintf("note-%d", i+1), Metadata: meta("i", i+1)})
		if err != nil {
			t.Fatalf("AppendAudit(%s) #%d: %v", tenant, i+1, err)
		}
		out = append(out, es...)
	}
	return out
}

// chain returns the tenant's whole chain in sequence order.
func chain(t *testing.T, s store.GovernanceStore, tenant string) []store.AuditEntry {
	t.Helper()
	es, total, err := s.ListAudit(t.Context(), tenant, store.AuditQuery{})
	if err != nil {
		t.Fatalf("ListAudit(%s): %v", tenant, err)
	}
	if total != len(es) {
		t.Errorf("ListAudit(%s): total %d for %d entries", tenant, total, len(es))
	}
	return es
}

// wantChain checks that the tenant's chain holds n entries numbered 1…n,
// each linked to and hashed over the one before, and that VerifyAudit
// agrees.
func wantChain(t *testing.T, s store.GovernanceStore, tenant string, n int) []store.AuditEntry {
	t.Helper()
	es := chain(t, s, tenant)
	if len(es) != n {
		t.Errorf("%s's chain holds %d entries, want %d", tenant, len(es), n)
	}
	prev := store.GenesisHash
	for i, e := range es {
		if e.SequenceNumber != int64(i+1) || e.TenantID != tenant || e.PrevHash != prev {
			t.Fatalf("%s's entry %d: sequence %d, tenant %q, prev %s; want %d, %q, %s", tenant, i, e.SequenceNumber, e.TenantID, e.PrevHash, i+1, tenant, prev)
		}
		if h := recomputeHash(e); h != e.EntryHash {
			t.Fatalf("%s's entry %d: entry_hash %s, recomputed %s", tenant, e.SequenceNumber, e.EntryHash, h)
		}
		prev = e.EntryHash
	}
	v, err := s.VerifyAudit(t.Context(), tenant)
	if err != nil {
		t.Fatalf("VerifyAudit(%s): %v", tenant, err)
	}
	if !v.Valid || v.Entries != n || v.FirstBadSequence != nil || v.LastSequence != int64(n) || v.LastHash != prev {
		t.Errorf("VerifyAudit(%s) = %+v, want valid with %d entries ending at %s", tenant, v, n, prev)
	}
	return es
}

// recomputeHash recomputes an entry's hash from the contract's definition,
// spelled out here rather than through the store's helpers.
func recomputeHash(e store.AuditEntry) string {
	var canon bytes.Buffer
	ev, _ := json.Marshal(e.Event)
	fmt.Fprintf(&canon, `{"event":%s,"metadata":%s,"sequence_number":%d,"timestamp":"%s"}`,
		ev, e.Metadata, e.SequenceNumber, e.Timestamp.UTC().Format(time.RFC3339Nano))
	return store.AuditEntryHash(e.PrevHash, canon.Bytes())
}

// heldAction is a pending_review action with a hit.
func heldAction(tenant, id string, at time.Time) store.ActionRecord {
	a := action(tenant, id, at, pdp.StatusPendingReview)
	a.AgentID, a.TriggeredPolicy, a.Severity, a.RiskScore, a.ViolationCount = "bot", "DataExfiltration", pdp.SeverityHigh, 0.68, 1
	a.Decision = json.RawMessage(`{"status":"pending_review","reason":"Sensitive data export requires approval: ssn"}`)
	return a
}

// wantEntry checks an entry's event and that its metadata holds kv.
func wantEntry(t *testing.T, what string, e store.AuditEntry, event string, kv map[string]any) {
	t.Helper()
	if e.Event != event {
		t.Errorf("%s: event %q, want %q", what, e.Event, event)
	}
	var m map[string]any
	if err := json.Unmarshal(e.Metadata, &m); err != nil {
		t.Fatalf("%s: metadata %s: %v", what, e.Metadata, err)
	}
	for k, want := range kv {
		g, _ := json.Marshal(m[k])
		w, _ := json.Marshal(want)
		if string(g) != string(w) {
			t.Errorf("%s: metadata.%s = %s, want %s (metadata %s)", what, k, g, w, e.Metadata)
		}
	}
}
