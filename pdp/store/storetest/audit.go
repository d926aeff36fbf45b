package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

func seqs(es []store.AuditEntry) []int64 {
	out := []int64{}
	for _, e := range es {
		out = append(out, e.SequenceNumber)
	}
	return out
}

var auditTests = []govTest{
	{"AppendChainsAndCanonicalizes", func(t *testing.T, s store.GovernanceStore) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		at := base.Add(1500 * time.Nanosecond) // below the stored precision
		es, err := s.AppendAudit(ctx, "acme",
			store.AuditEvent{Event: store.EventPolicyCreated, Metadata: json.RawMessage(` {"z": 1.50, "a": "<b>&", "m": {"y": [2, 1], "x": null}} `), Timestamp: at},
			store.AuditEvent{Event: "custom_event"},
		)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != 2 {
			t.Fatalf("%d entries, want 2", len(es))
		}
		if got, want := string(es[0].Metadata), `{"a":"<b>&","m":{"x":null,"y":[2,1]},"z":1.50}`; got != want {
			t.Errorf("canonical metadata %s, want %s", got, want)
		}
		if string(es[1].Metadata) != `{}` {
			t.Errorf("absent metadata stored as %s, want {}", es[1].Metadata)
		}
		if !es[0].Timestamp.Equal(base.Add(time.Microsecond)) {
			t.Errorf("timestamp %v, want %v", es[0].Timestamp, base.Add(time.Microsecond))
		}
		wantUTC(t, "zero timestamp set to now", es[1].Timestamp)
		got := wantChain(t, s, "acme", 2)
		same(t, "listed entries equal appended ones", got, es)
	}},
	{"AppendErrors", func(t *testing.T, s store.GovernanceStore) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		appendN(t, s, "acme", 1)
		cases := []struct {
			name  string
			ev    store.AuditEvent
			field string
		}{
			{"no event", store.AuditEvent{}, "event"},
			{"long event", store.AuditEvent{Event: string(make([]byte, store.MaxAuditEventLen+1))}, "event"},
			{"array metadata", store.AuditEvent{Event: "x", Metadata: json.RawMessage(`[1]`)}, "metadata"},
			{"bad metadata", store.AuditEvent{Event: "x", Metadata: json.RawMessage(`{"a":`)}, "metadata"},
			{"trailing data", store.AuditEvent{Event: "x", Metadata: json.RawMessage(`{} {}`)}, "metadata"},
		}
		for _, c := range cases {
			// A bad event anywhere refuses the whole call.
			_, err := s.AppendAudit(ctx, "acme", store.AuditEvent{Event: "fine"}, c.ev)
			wantValidation(t, c.name, err, c.field)
		}
		_, err := s.AppendAudit(ctx, "ghost", store.AuditEvent{Event: "x"})
		wantErr(t, "unknown tenant", err, store.ErrNotFound)
		wantChain(t, s, "acme", 1)
		es, err := s.AppendAudit(ctx, "acme")
		if err != nil || len(es) != 0 {
			t.Errorf("appending nothing: %v, %v", es, err)
		}
		wantChain(t, s, "acme", 1)
	}},
	{"ListFiltersAndPages", func(t *testing.T, s store.GovernanceStore) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		events := []string{"a", "b", "a", "c", "a", "b"}
		for i, ev := range events {
			if _, err := s.AppendAudit(ctx, "acme", store.AuditEvent{Event: ev, Timestamp: base.Add(time.Duration(i) * time.Minute)}); err != nil {
				t.Fatal(err)
			}
		}
		cases := []struct {
			name  string
			q     store.AuditQuery
			want  []int64
			total int
		}{
			{"all", store.AuditQuery{}, []int64{1, 2, 3, 4, 5, 6}, 6},
			{"page", store.AuditQuery{Limit: 2, Offset: 2}, []int64{3, 4}, 6},
			{"newest first", store.AuditQuery{Limit: 2, NewestFirst: true}, []int64{6, 5}, 6},
			{"event", store.AuditQuery{EventType: "a"}, []int64{1, 3, 5}, 3},
			{"event, newest first, paged", store.AuditQuery{EventType: "a", NewestFirst: true, Limit: 1, Offset: 1}, []int64{3}, 3},
			{"since", store.AuditQuery{Since: base.Add(4 * time.Minute)}, []int64{5, 6}, 2},
			{"until is exclusive", store.AuditQuery{Until: base.Add(2 * time.Minute)}, []int64{1, 2}, 2},
			{"since and until, sub-microsecond", store.AuditQuery{Since: base.Add(time.Minute - time.Nanosecond), Until: base.Add(3*time.Minute + time.Nanosecond)}, []int64{2, 3, 4}, 3},
			{"since, event", store.AuditQuery{Since: base.Add(time.Minute), EventType: "b"}, []int64{2, 6}, 2},
			{"nothing", store.AuditQuery{EventType: "zzz"}, []int64{}, 0},
			{"past the end", store.AuditQuery{Offset: 10}, []int64{}, 6},
		}
		for _, c := range cases {
			es, total, err := s.ListAudit(ctx, "acme", c.q)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if es == nil {
				t.Errorf("%s: nil list, want non-nil", c.name)
			}
			same(t, c.name, seqs(es), c.want)
			if total != c.total {
				t.Errorf("%s: total %d, want %d", c.name, total, c.total)
			}
		}
	}},
	{"VerifyEmpty", func(t *testing.T, s store.GovernanceStore) {
		newTenant(t, s, "acme")
		for _, tenant := range []string{"acme", "ghost"} {
			v, err := s.VerifyAudit(t.Context(), tenant)
			if err != nil || !v.Valid || v.Entries != 0 || v.LastSequence != 0 || v.LastHash != store.GenesisHash {
				t.Errorf("VerifyAudit(%s) = %+v, %v; want an empty valid chain", tenant, v, err)
			}
		}
	}},
	{"ConcurrentAppenders", func(t *testing.T, s store.GovernanceStore) {
		// 32 appenders over 3 tenants, appending single events, pairs,
		// and actions with their entries: every entry must land exactly
		// once, numbered without gaps or forks.
		ctx := t.Context()
		tenants := []string{"t0", "t1", "t2"}
		for _, tn := range tenants {
			newTenant(t, s, tn)
		}
		const (
			appenders = 32
			rounds    = 12
		)
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			seen = map[string]map[int64]string{} // tenant → seq → who
			want = map[string]int{}
		)
		for _, tn := range tenants {
			seen[tn] = map[int64]string{}
		}
		record := func(tn, who string, es ...store.AuditEntry) {
			mu.Lock()
			defer mu.Unlock()
			want[tn] += len(es)
			for _, e := range es {
				if prev, dup := seen[tn][e.SequenceNumber]; dup {
					t.Errorf("%s: sequence %d given to %s and %s", tn, e.SequenceNumber, prev, who)
				}
				seen[tn][e.SequenceNumber] = who
			}
		}
		for g := range appenders {
			wg.Go(func() {
				for i := range rounds {
					tn := tenants[(g+i)%len(tenants)]
					who := fmt.Sprintf("g%02d/%02d", g, i)
					switch i % 3 {
					case 0:
						es, err := s.AppendAudit(ctx, tn, store.AuditEvent{Event: "note", Metadata: meta("who", who)})
						if err != nil {
							t.Errorf("%s: %v", who, err)
							return
						}
						record(tn, who, es...)
					case 1:
						es, err := s.AppendAudit(ctx, tn, store.AuditEvent{Event: "first", Metadata: meta("who", who)}, store.AuditEvent{Event: "second", Metadata: meta("who", who)})
						if err != nil {
							t.Errorf("%s: %v", who, err)
							return
						}
						if len(es) != 2 || es[1].SequenceNumber != es[0].SequenceNumber+1 || es[1].PrevHash != es[0].EntryHash {
							t.Errorf("%s: one call's entries are not consecutive: %+v", who, es)
						}
						record(tn, who, es...)
					default:
						a := action(tn, "act_"+who, base, pdp.StatusAllowed)
						_, e, err := s.InsertActionAudited(ctx, a, store.AuditEvent{})
						if err != nil {
							t.Errorf("%s: %v", who, err)
							return
						}
						record(tn, who, e)
					}
				}
			})
		}
		wg.Wait()
		total := 0
		for _, tn := range tenants {
			es := wantChain(t, s, tn, want[tn])
			for _, e := range es {
				if seen[tn][e.SequenceNumber] == "" {
					t.Errorf("%s: stored entry %d was returned to no appender", tn, e.SequenceNumber)
				}
			}
			total += len(es)
		}
		if want := appenders * rounds * 4 / 3; total != want {
			t.Errorf("%d entries across tenants, want %d", total, want)
		}
	}},
}

var auditedWriteTests = []govTest{
	{"InsertActionAudited", func(t *testing.T, s store.GovernanceStore) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		appendN(t, s, "acme", 1)
		cases := []struct {
			status pdp.Status
			event  string
		}{
			{pdp.StatusAllowed, store.EventActionExecuted},
			{pdp.StatusBlocked, store.EventActionBlocked},
			{pdp.StatusPendingReview, store.EventActionPendingReview},
		}
		for i, c := range cases {
			in := action("acme", fmt.Sprintf("act_%d", i), base.Add(time.Duration(i)*time.Second+time.Nanosecond), c.status)
			a, e, err := s.InsertActionAudited(ctx, in, store.AuditEvent{Metadata: meta("agent_id", "bot", "action_id", "spoofed")})
			if err != nil {
				t.Fatal(err)
			}
			if e.SequenceNumber != int64(i+2) || !e.Timestamp.Equal(a.CreatedAt) {
				t.Errorf("%s: entry %d at %v, want %d at the action's CreatedAt %v", c.status, e.SequenceNumber, e.Timestamp, i+2, a.CreatedAt)
			}
			wantEntry(t, string(c.status), e, c.event, map[string]any{"action_id": in.ID, "agent_id": "bot"})
			read, err := s.GetAction(ctx, "acme", in.ID)
			if err != nil {
				t.Fatal(err)
			}
			same(t, "action as stored", read, a)
			trail, err := s.AuditTrail(ctx, "acme", in.ID)
			if err != nil {
				t.Fatal(err)
			}
			same(t, "trail", trail, []store.AuditEntry{e})
		}
		// The caller's event and timestamp win over the defaults.
		custom := action("acme", "act_custom", base, pdp.StatusAllowed)
		_, e, err := s.InsertActionAudited(ctx, custom, store.AuditEvent{Event: "action_shadowed", Timestamp: base.Add(time.Hour)})
		if err != nil || e.Event != "action_shadowed" || !e.Timestamp.Equal(base.Add(time.Hour)) {
			t.Errorf("custom event: %+v, %v", e, err)
		}
		wantChain(t, s, "acme", 5)
	}},
	{"InsertActionAuditedIsAtomic", func(t *testing.T, s store.GovernanceStore) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		if _, _, err := s.InsertActionAudited(ctx, action("acme", "act_1", base, pdp.StatusAllowed), store.AuditEvent{}); err != nil {
			t.Fatal(err)
		}
		_, _, err := s.InsertActionAudited(ctx, action("acme", "act_1", base, pdp.StatusAllowed), store.AuditEvent{})
		wantErr(t, "duplicate ID", err, store.ErrDuplicate)
		_, _, err = s.InsertActionAudited(ctx, action("ghost", "act_2", base, pdp.StatusAllowed), store.AuditEvent{})
		wantErr(t, "unknown tenant", err, store.ErrNotFound)
		_, _, err = s.InsertActionAudited(ctx, action("acme", "act_3", base, ""), store.AuditEvent{})
		wantValidation(t, "no status", err, "status")
		_, _, err = s.InsertActionAudited(ctx, action("acme", "act_4", base, pdp.StatusAllowed), store.AuditEvent{Metadata: json.RawMessage(`"x"`)})
		wantValidation(t, "bad metadata", err, "metadata")
		// A refused write leaves neither an entry nor an action, and the
		// next one continues the chain.
		wantChain(t, s, "acme", 1)
		if _, n, _ := s.ListActions(ctx, "acme", store.ActionQuery{}); n != 1 {
			t.Errorf("%d actions after refused writes, want 1", n)
		}
		if _, e, err := s.InsertActionAudited(ctx, action("acme", "act_5", base, pdp.StatusAllowed), store.AuditEvent{}); err != nil || e.SequenceNumber != 2 {
			t.Errorf("next write: entry %d, %v; want 2", e.SequenceNumber, err)
		}
		wantChain(t, s, "acme", 2)
	}},
	{"PolicyWrites", func(t *testing.T, s store.GovernanceStore) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		w, e, err := s.PutPolicyAudited(ctx, store.PutPolicyRequest{TenantID: "acme", Policy: policy("", "NoDrop", true), Limit: 1},
			store.AuditEvent{Metadata: meta("key_id", "key_1", "version", 99)})
		if err != nil {
			t.Fatal(err)
		}
		if !w.Created || !e.Timestamp.Equal(w.Policy.UpdatedAt) {
			t.Errorf("create: %+v, entry at %v", w, e.Timestamp)
		}
		wantEntry(t, "create", e, store.EventPolicyCreated, map[string]any{
			"policy_name": "NoDrop", "agent_id": nil, "scope": "tenant", "version": 1, "enabled": true, "key_id": "key_1"})
		got, _ := s.GetPolicy(ctx, pkey("acme", "", "NoDrop"))
		same(t, "stored policy", got, w.Policy)

		_, e, err = s.PutPolicyAudited(ctx, store.PutPolicyRequest{TenantID: "acme", Policy: policy("", "NoDrop", true), Limit: 1, MustExist: true}, store.AuditEvent{})
		if err != nil {
			t.Fatal(err)
		}
		wantEntry(t, "update", e, store.EventPolicyUpdated, map[string]any{"version": 2})

		_, e, err = s.PutPolicyAudited(ctx, store.PutPolicyRequest{TenantID: "acme", Policy: policy("bot", "NoDrop", true), Limit: store.Unlimited}, store.AuditEvent{})
		if err != nil {
			t.Fatal(err)
		}
		wantEntry(t, "agent-scoped", e, store.EventPolicyCreated, map[string]any{"agent_id": "bot", "scope": "agent", "version": 1})

		// Refused writes append nothing.
		_, _, err = s.PutPolicyAudited(ctx, store.PutPolicyRequest{TenantID: "acme", Policy: policy("", "Second", true), Limit: 1}, store.AuditEvent{})
		var le *store.LimitError
		if !errors.As(err, &le) {
			t.Errorf("over the limit: %v, want a *LimitError", err)
		}
		_, _, err = s.PutPolicyAudited(ctx, store.PutPolicyRequest{TenantID: "acme", Policy: policy("", "Missing", true), Limit: store.Unlimited, MustExist: true}, store.AuditEvent{})
		wantErr(t, "update of a missing policy", err, store.ErrNotFound)
		_, _, err = s.DisablePolicyAudited(ctx, pkey("acme", "", "Missing"), store.AuditEvent{})
		wantErr(t, "disable of a missing policy", err, store.ErrNotFound)
		_, _, err = s.PutPolicyAudited(ctx, store.PutPolicyRequest{TenantID: "acme", Policy: policy("", "X", true), Limit: store.Unlimited}, store.AuditEvent{Metadata: json.RawMessage(`[]`)})
		wantValidation(t, "bad metadata", err, "metadata")
		wantChain(t, s, "acme", 3)

		dw, e, err := s.DisablePolicyAudited(ctx, pkey("acme", "", "NoDrop"), store.AuditEvent{Metadata: meta("actor", "ops")})
		if err != nil {
			t.Fatal(err)
		}
		if dw.Policy.Enabled || dw.Policy.Version != 3 || dw.Revision != revision(t, s, "acme") {
			t.Errorf("disable: %+v", dw)
		}
		wantEntry(t, "disable", e, store.EventPolicyDisabled, map[string]any{"version": 3, "enabled": false, "actor": "ops", "scope": "tenant"})
		wantChain(t, s, "acme", 4)
	}},
}

func tamperTests(tamper Tamperer) []govTest {
	// tampered builds a 10-entry chain, lets f change it, and checks what
	// VerifyAudit reports.
	tampered := func(f func(t *testing.T, s store.GovernanceStore, es []store.AuditEntry), entries int, firstBad int64, reason ...string) func(*testing.T, store.GovernanceStore) {
		return func(t *testing.T, s store.GovernanceStore) {
			newTenant(t, s, "acme")
			newTenant(t, s, "other")
			es := appendN(t, s, "acme", 10)
			appendN(t, s, "other", 3)
			f(t, s, es)
			v, err := s.VerifyAudit(t.Context(), "acme")
			if err != nil {
				t.Fatal(err)
			}
			if v.Valid || v.Entries != entries || v.FirstBadSequence == nil || *v.FirstBadSequence != firstBad {
				t.Errorf("VerifyAudit = %+v (first bad %v), want invalid, %d entries, first bad %d", v, deref(v.FirstBadSequence), entries, firstBad)
			}
			if v.LastSequence != firstBad-1 {
				t.Errorf("LastSequence = %d, want the last good entry %d", v.LastSequence, firstBad-1)
			}
			if v.Reason == "" || (len(reason) > 0 && !strings.HasPrefix(v.Reason, reason[0])) {
				t.Errorf("Reason = %q, want %q", v.Reason, reason)
			}
			wantChain(t, s, "other", 3) // one tenant's damage is its own
		}
	}
	return []govTest{
		{"EditedMetadata", tampered(func(t *testing.T, s store.GovernanceStore, es []store.AuditEntry) {
			tamper.SetAuditField(t, s, "acme", 4, "metadata", `{"i":40}`)
		}, 10, 4)},
		{"ReformattedMetadata", tampered(func(t *testing.T, s store.GovernanceStore, es []store.AuditEntry) {
			// The same JSON, spelled differently: stored text is what was
			// hashed, so any change shows.
			tamper.SetAuditField(t, s, "acme", 7, "metadata", `{ "i": 7 }`)
		}, 10, 7)},
		{"EditedEvent", tampered(func(t *testing.T, s store.GovernanceStore, es []store.AuditEntry) {
			tamper.SetAuditField(t, s, "acme", 1, "event", "note-0")
		}, 10, 1)},
		{"EditedAndRehashed", tampered(func(t *testing.T, s store.GovernanceStore, es []store.AuditEntry) {
			// Recomputing the edited entry's own hash moves the break to
			// the link after it.
			e := es[3]
			e.Metadata = json.RawMessage(`{"i":40}`)
			tamper.SetAuditField(t, s, "acme", 4, "metadata", string(e.Metadata))
			tamper.SetAuditField(t, s, "acme", 4, "entry_hash", recomputeHash(e))
		}, 10, 5)},
		{"BrokenLink", tampered(func(t *testing.T, s store.GovernanceStore, es []store.AuditEntry) {
			tamper.SetAuditField(t, s, "acme", 6, "prev_hash", es[3].EntryHash)
		}, 10, 6)},
		{"Gap", tampered(func(t *testing.T, s store.GovernanceStore, es []store.AuditEntry) {
			tamper.DeleteAuditEntry(t, s, "acme", 6)
		}, 9, 6)},
		{"FirstRemoved", tampered(func(t *testing.T, s store.GovernanceStore, es []store.AuditEntry) {
			tamper.DeleteAuditEntry(t, s, "acme", 1)
		}, 9, 1)},
		{"Truncated", tampered(func(t *testing.T, s store.GovernanceStore, es []store.AuditEntry) {
			tamper.DeleteAuditEntry(t, s, "acme", 10)
			tamper.DeleteAuditEntry(t, s, "acme", 9)
		}, 8, 9)},
		{"AppendedPastTheHead", tampered(func(t *testing.T, s store.GovernanceStore, es []store.AuditEntry) {
			// Entries with correct hashes added behind the store's back:
			// they chain, but the head the store recorded is behind them.
			prev := es[9]
			for i := range 2 {
				e := store.NewAuditEntry("acme", prev.SequenceNumber, prev.EntryHash, base.Add(time.Duration(i)*time.Second), "forged", json.RawMessage(`{"i":0}`))
				tamper.InsertAuditEntry(t, s, e)
				prev = e
			}
			// The live store must not chain onto them.
			_, err := s.AppendAudit(t.Context(), "acme", store.AuditEvent{Event: "next"})
			wantErr(t, "append past a forged tail", err, store.ErrChainBroken)
		}, 12, 11, store.ReasonPastHead)},
		{"HeadDeleted", tampered(func(t *testing.T, s store.GovernanceStore, es []store.AuditEntry) {
			tamper.Exec(t, s, `DELETE FROM audit_heads WHERE tenant_id = ?`, "acme")
			_, err := s.AppendAudit(t.Context(), "acme", store.AuditEvent{Event: "next"})
			wantErr(t, "append without a head", err, store.ErrChainBroken)
			if errors.Is(err, store.ErrNotFound) {
				t.Errorf("append without a head: %v, must not claim the tenant is missing", err)
			}
		}, 10, 11, store.ReasonNoHead)},
		{"HeadDeletedAndTruncated", tampered(func(t *testing.T, s store.GovernanceStore, es []store.AuditEntry) {
			tamper.Exec(t, s, `DELETE FROM audit_heads WHERE tenant_id = ?`, "acme")
			tamper.DeleteAuditEntry(t, s, "acme", 10)
		}, 9, 10, store.ReasonNoHead)},
		{"AppendAfterTruncationKeepsTheGap", tampered(func(t *testing.T, s store.GovernanceStore, es []store.AuditEntry) {
			tamper.DeleteAuditEntry(t, s, "acme", 10)
			got := appendN(t, s, "acme", 1)
			if got[0].SequenceNumber != 11 {
				t.Errorf("append after truncation got sequence %d, want 11 (never reuse a number)", got[0].SequenceNumber)
			}
		}, 10, 10)},
		{"ActionStatusEdited", actionTampered(tamper, func(t *testing.T, s store.GovernanceStore) {
			tamper.Exec(t, s, `UPDATE actions SET status = 'allowed' WHERE tenant_id = ? AND id = ?`, "acme", "act_blocked")
		}, 2, store.ReasonAction)},
		{"ActionRiskEdited", actionTampered(tamper, func(t *testing.T, s store.GovernanceStore) {
			tamper.Exec(t, s, `UPDATE actions SET risk_score = 0.1, triggered_policy = '' WHERE tenant_id = ? AND id = ?`, "acme", "act_blocked")
		}, 2, store.ReasonAction)},
		{"DecisionEdited", actionTampered(tamper, func(t *testing.T, s store.GovernanceStore) {
			// The decision entry vouches for the decided action.
			tamper.Exec(t, s, `UPDATE actions SET status = 'approved', approver_id = 'mallory' WHERE tenant_id = ? AND id = ?`, "acme", "act_held")
		}, 4, store.ReasonAction)},
		{"ActionDeleted", actionTampered(tamper, func(t *testing.T, s store.GovernanceStore) {
			tamper.Exec(t, s, `DELETE FROM actions WHERE tenant_id = ? AND id = ?`, "acme", "act_allowed")
		}, 1, store.ReasonNoAction)},
		{"ActionRenamed", actionTampered(tamper, func(t *testing.T, s store.GovernanceStore) {
			// The renamed row still points at act_blocked's entry, whose
			// digest names the old ID.
			tamper.Exec(t, s, `UPDATE actions SET id = 'act_other' WHERE tenant_id = ? AND id = ?`, "acme", "act_blocked")
		}, 2, store.ReasonAction)},
		{"ActionUnlinkedAndEdited", actionTampered(tamper, func(t *testing.T, s store.GovernanceStore) {
			// Cut from its entry and edited: the entry still vouches for it.
			tamper.Exec(t, s, `UPDATE actions SET audit_seq = NULL, status = 'allowed' WHERE tenant_id = ? AND id = ?`, "acme", "act_blocked")
		}, 2, store.ReasonAction)},
		{"DecisionReverted", actionTampered(tamper, func(t *testing.T, s store.GovernanceStore) {
			// Put back exactly as it was before its decision: its evaluation
			// entry matches, but the decision entry is the latest.
			tamper.Exec(t, s, `UPDATE actions SET status = 'pending_review', decided_at = NULL, approver_id = '', decision_reason = '' WHERE tenant_id = ? AND id = ?`, "acme", "act_held")
		}, 4, store.ReasonAction)},
		{"Unreadable", func(t *testing.T, s store.GovernanceStore) {
			newTenant(t, s, "acme")
			appendN(t, s, "acme", 3)
			tamper.Exec(t, s, `ALTER TABLE audit_log RENAME TO audit_log_gone`)
			v, err := s.VerifyAudit(t.Context(), "acme")
			if err != nil {
				t.Fatalf("VerifyAudit of an unreadable chain: %v, want an answer", err)
			}
			if v.Valid || v.Reason != store.ReasonUnreadable || v.Cause == nil {
				t.Errorf("VerifyAudit of an unreadable chain = %+v, want invalid with reason %q and a cause", v, store.ReasonUnreadable)
			}
		}},
	}
}

// actionTampered records four actions through the audited paths —
// allowed (entry 1), blocked (2), held (3) and then denied (4) — lets f
// edit the actions table, and checks that VerifyAudit finds it at entry
// firstBad with reason. Untouched, the same store verifies.
func actionTampered(tamper Tamperer, f func(t *testing.T, s store.GovernanceStore), firstBad int64, reason string) func(*testing.T, store.GovernanceStore) {
	return func(t *testing.T, s store.GovernanceStore) {
		newTenant(t, s, "acme")
		blocked := action("acme", "act_blocked", base.Add(time.Second), pdp.StatusBlocked)
		blocked.TriggeredPolicy, blocked.Severity, blocked.RiskScore, blocked.ViolationCount = "NoDrop", pdp.SeverityCritical, 0.95, 1
		v := verifyTampered(t, s, f, action("acme", "act_allowed", base, pdp.StatusAllowed), blocked, heldAction("acme", "act_held", base.Add(2*time.Second)))
		if v.Valid || v.FirstBadSequence == nil || *v.FirstBadSequence != firstBad || !strings.HasPrefix(v.Reason, reason) || v.LastSequence != firstBad-1 {
			t.Errorf("VerifyAudit = %+v (first bad %v), want invalid at %d, reason %q", v, deref(v.FirstBadSequence), firstBad, reason)
		}
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// verifyTampered records actions through the audited path, denies
// acme's held action act_held, checks that acme's chain verifies, lets f
// edit the store, and returns acme's verification after the edit.
func verifyTampered(t *testing.T, s store.GovernanceStore, f func(t *testing.T, s store.GovernanceStore), actions ...store.ActionRecord) store.AuditVerification {
	t.Helper()
	ctx := t.Context()
	for _, a := range actions {
		if _, _, err := s.InsertActionAudited(ctx, a, store.AuditEvent{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.DecideAction(ctx, store.DecideRequest{TenantID: "acme", ActionID: "act_held", Status: pdp.StatusDenied, ApproverID: "al", Reason: "no"}); err != nil {
		t.Fatal(err)
	}
	if v, err := s.VerifyAudit(ctx, "acme"); err != nil || !v.Valid {
		t.Fatalf("VerifyAudit before tampering: %+v, %v", v, err)
	}
	f(t, s)
	v, err := s.VerifyAudit(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	return v
}
