package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

func approvalIDs(as []store.Approval) []string {
	out := []string{}
	for _, a := range as {
		out = append(out, a.Action.ID)
	}
	return out
}

// hold inserts a pending_review action with its entry.
func hold(t *testing.T, s store.GovernanceStore, tenant, id string, at time.Time) store.AuditEntry {
	t.Helper()
	_, e, err := s.InsertActionAudited(t.Context(), heldAction(tenant, id, at), store.AuditEvent{})
	if err != nil {
		t.Fatalf("InsertActionAudited(%s): %v", id, err)
	}
	return e
}

// wantDecided fails t unless err is an *AlreadyDecidedError saying st.
func wantDecided(t *testing.T, what string, err error, st pdp.Status) {
	t.Helper()
	var de *store.AlreadyDecidedError
	if !errors.As(err, &de) || de.Status != st || !errors.Is(err, store.ErrAlreadyDecided) || !errors.Is(err, store.ErrConflict) {
		t.Errorf("%s: error %v, want an *AlreadyDecidedError (%s)", what, err, st)
	}
}

var approvalTests = []govTest{
	{"ListInAuditOrder", func(t *testing.T, s store.GovernanceStore) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		// CreatedAt order differs from audit order on purpose: the queue
		// follows the chain.
		if _, err := s.InsertAction(ctx, heldAction("acme", "act_unaudited", base.Add(time.Hour))); err != nil {
			t.Fatal(err)
		}
		hold(t, s, "acme", "act_c", base.Add(3*time.Minute))
		appendN(t, s, "acme", 2)
		hold(t, s, "acme", "act_a", base.Add(1*time.Minute))
		if _, _, err := s.InsertActionAudited(ctx, action("acme", "act_allowed", base, pdp.StatusAllowed), store.AuditEvent{}); err != nil {
			t.Fatal(err)
		}
		eb := hold(t, s, "acme", "act_b", base.Add(2*time.Minute))
		hold(t, s, "acme", "act_d", base)
		if _, _, err := s.DecideAction(ctx, store.DecideRequest{TenantID: "acme", ActionID: "act_a", Status: pdp.StatusApproved, ApproverID: "alice"}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.DecideAction(ctx, store.DecideRequest{TenantID: "acme", ActionID: "act_d", Status: pdp.StatusDenied, ApproverID: "bob"}); err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name  string
			q     store.ApprovalQuery
			want  []string
			total int
		}{
			{"pending", store.ApprovalQuery{Status: pdp.StatusPendingReview}, []string{"act_unaudited", "act_c", "act_b"}, 3},
			{"pending, paged", store.ApprovalQuery{Status: pdp.StatusPendingReview, Limit: 1, Offset: 2}, []string{"act_b"}, 3},
			{"approved", store.ApprovalQuery{Status: pdp.StatusApproved}, []string{"act_a"}, 1},
			{"denied", store.ApprovalQuery{Status: pdp.StatusDenied}, []string{"act_d"}, 1},
			{"all", store.ApprovalQuery{}, []string{"act_unaudited", "act_c", "act_a", "act_b", "act_d"}, 5},
			{"all, paged", store.ApprovalQuery{Limit: 2, Offset: 1}, []string{"act_c", "act_a"}, 5},
		}
		for _, c := range cases {
			as, total, err := s.ListApprovals(ctx, "acme", c.q)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			same(t, c.name, approvalIDs(as), c.want)
			if total != c.total {
				t.Errorf("%s: total %d, want %d", c.name, total, c.total)
			}
		}
		as, _, _ := s.ListApprovals(ctx, "acme", store.ApprovalQuery{Status: pdp.StatusPendingReview})
		if as[0].AuditSequence != 0 || as[2].AuditSequence != eb.SequenceNumber {
			t.Errorf("audit sequences %d, %d; want 0 and %d", as[0].AuditSequence, as[2].AuditSequence, eb.SequenceNumber)
		}
		got, _ := s.GetAction(ctx, "acme", "act_b")
		same(t, "listed action equals GetAction", as[2].Action, got)
		_, _, err := s.ListApprovals(ctx, "acme", store.ApprovalQuery{Status: pdp.StatusAllowed})
		wantValidation(t, "allowed is no approval status", err, "status")
	}},
	{"Decide", func(t *testing.T, s store.GovernanceStore) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		held := hold(t, s, "acme", "act_1", base)
		at := base.Add(90*time.Second + time.Nanosecond)
		a, e, err := s.DecideAction(ctx, store.DecideRequest{TenantID: "acme", ActionID: "act_1", Status: pdp.StatusApproved,
			ApproverID: "alice", Reason: "looks fine", DecidedAt: at, Audit: store.AuditEvent{Metadata: meta("approver_role", "lead")}})
		if err != nil {
			t.Fatal(err)
		}
		want := heldAction("acme", "act_1", base)
		want.Status, want.ApproverID, want.DecisionReason = pdp.StatusApproved, "alice", "looks fine"
		want.DecidedAt = ptr(base.Add(90 * time.Second))
		same(t, "decided action", a, want)
		read, _ := s.GetAction(ctx, "acme", "act_1")
		same(t, "read back", read, want)
		wantEntry(t, "decision", e, store.EventActionApproved, map[string]any{
			"action_id": "act_1", "status": "approved", "approver_id": "alice", "approver_role": "lead"})
		if !e.Timestamp.Equal(*want.DecidedAt) {
			t.Errorf("entry at %v, want the decision's time %v", e.Timestamp, *want.DecidedAt)
		}
		trail, _ := s.AuditTrail(ctx, "acme", "act_1")
		same(t, "trail", seqs(trail), []int64{held.SequenceNumber, e.SequenceNumber})

		_, _, err = s.DecideAction(ctx, store.DecideRequest{TenantID: "acme", ActionID: "act_1", Status: pdp.StatusDenied, ApproverID: "bob"})
		wantDecided(t, "second decision", err, pdp.StatusApproved)
		var de *store.AlreadyDecidedError
		if errors.As(err, &de) && (de.ApproverID != "alice" || de.DecidedAt == nil || !de.DecidedAt.Equal(*want.DecidedAt)) {
			t.Errorf("AlreadyDecidedError = %+v, want alice's decision", de)
		}

		if _, _, err := s.InsertActionAudited(ctx, action("acme", "act_allowed", base, pdp.StatusAllowed), store.AuditEvent{}); err != nil {
			t.Fatal(err)
		}
		hold(t, s, "acme", "act_2", base)
		for _, c := range []struct {
			name   string
			req    store.DecideRequest
			target error
			field  string
		}{
			{"missing", store.DecideRequest{TenantID: "acme", ActionID: "act_nope", Status: pdp.StatusApproved}, store.ErrNotFound, ""},
			{"never held", store.DecideRequest{TenantID: "acme", ActionID: "act_allowed", Status: pdp.StatusDenied}, store.ErrNotFound, ""},
			{"other tenant", store.DecideRequest{TenantID: "ghost", ActionID: "act_2", Status: pdp.StatusApproved}, store.ErrNotFound, ""},
			{"bad status", store.DecideRequest{TenantID: "acme", ActionID: "act_2", Status: pdp.StatusAllowed}, nil, "status"},
			{"bad metadata", store.DecideRequest{TenantID: "acme", ActionID: "act_2", Status: pdp.StatusDenied, Audit: store.AuditEvent{Metadata: []byte(`1`)}}, nil, "metadata"},
		} {
			_, _, err := s.DecideAction(ctx, c.req)
			if c.field != "" {
				wantValidation(t, c.name, err, c.field)
			} else {
				wantErr(t, c.name, err, c.target)
			}
		}
		if a, _ := s.GetAction(ctx, "acme", "act_2"); a.Status != pdp.StatusPendingReview {
			t.Errorf("refused decisions changed act_2 to %s", a.Status)
		}
		wantChain(t, s, "acme", 4)
	}},
	{"DecideExactlyOnce", func(t *testing.T, s store.GovernanceStore) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		hold(t, s, "acme", "act_1", base)
		const deciders = 20
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			winners []string
			status  pdp.Status
		)
		start := make(chan struct{})
		for g := range deciders {
			wg.Go(func() {
				st := pdp.StatusApproved
				if g%2 == 1 {
					st = pdp.StatusDenied
				}
				who := fmt.Sprintf("approver-%02d", g)
				<-start
				a, _, err := s.DecideAction(ctx, store.DecideRequest{TenantID: "acme", ActionID: "act_1", Status: st, ApproverID: who})
				var de *store.AlreadyDecidedError
				switch {
				case err == nil:
					mu.Lock()
					winners, status = append(winners, who), a.Status
					mu.Unlock()
				case errors.As(err, &de):
				default:
					t.Errorf("%s: %v", who, err)
				}
			})
		}
		close(start)
		wg.Wait()
		if len(winners) != 1 {
			t.Fatalf("%d deciders won (%v), want exactly 1", len(winners), winners)
		}
		a, _ := s.GetAction(ctx, "acme", "act_1")
		if a.ApproverID != winners[0] || a.Status != status {
			t.Errorf("stored decision by %s (%s), winner %s (%s)", a.ApproverID, a.Status, winners[0], status)
		}
		es := wantChain(t, s, "acme", 2)
		wantEntry(t, "the one decision entry", es[1], store.EventForStatus(status), map[string]any{"approver_id": winners[0]})
	}},
	{"Votes", func(t *testing.T, s store.GovernanceStore) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		hold(t, s, "acme", "act_1", base)
		noInterns := func(v store.ApprovalVote) bool { return v.Role != "intern" }
		vote := func(approver, role string, st pdp.Status, at time.Duration) (store.VoteResult, error) {
			return s.RecordApprovalVote(ctx, store.VoteRequest{
				Vote:         store.ApprovalVote{TenantID: "acme", ActionID: "act_1", ApproverID: approver, Role: role, IsManager: role == "manager", Decision: st, Reason: "by " + approver, VotedAt: base.Add(at)},
				MinApprovals: 2, Counts: noInterns,
				Audit: store.AuditEvent{Metadata: meta("note", approver)},
			})
		}
		r, err := vote("alice", "lead", pdp.StatusApproved, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if r.Decided || r.Approvals != 1 || len(r.Votes) != 1 || r.Action.Status != pdp.StatusPendingReview || len(r.Entries) != 1 {
			t.Errorf("first vote: %+v", r)
		}
		wantEntry(t, "vote entry", r.Entries[0], store.EventApprovalVote, map[string]any{
			"action_id": "act_1", "approver_id": "alice", "decision": "approved", "role": "lead", "is_manager": false, "note": "alice"})
		_, err = vote("alice", "lead", pdp.StatusDenied, 2*time.Minute)
		wantErr(t, "second vote by alice", err, store.ErrAlreadyVoted)
		wantErr(t, "second vote by alice", err, store.ErrConflict)
		r, err = vote("ivan", "intern", pdp.StatusApproved, 3*time.Minute)
		if err != nil || r.Decided || r.Approvals != 1 || len(r.Votes) != 2 {
			t.Errorf("an intern's vote must be recorded but not count: %+v, %v", r, err)
		}
		r, err = vote("mia", "manager", pdp.StatusApproved, 4*time.Minute)
		if err != nil || !r.Decided || r.Approvals != 2 || r.Action.Status != pdp.StatusApproved || r.Action.ApproverID != "mia" || len(r.Entries) != 2 {
			t.Fatalf("deciding vote: %+v, %v", r, err)
		}
		if !r.Action.DecidedAt.Equal(base.Add(4*time.Minute)) || r.Action.DecisionReason != "by mia" {
			t.Errorf("decision at %v with reason %q", r.Action.DecidedAt, r.Action.DecisionReason)
		}
		wantEntry(t, "decision entry", r.Entries[1], store.EventActionApproved, map[string]any{"action_id": "act_1", "approver_id": "mia", "status": "approved"})
		vs, err := s.ApprovalVotes(ctx, "acme", "act_1")
		if err != nil {
			t.Fatal(err)
		}
		same(t, "votes", vs, r.Votes)
		want := []store.ApprovalVote{
			{TenantID: "acme", ActionID: "act_1", ApproverID: "alice", Role: "lead", Decision: pdp.StatusApproved, Reason: "by alice", VotedAt: base.Add(time.Minute)},
			{TenantID: "acme", ActionID: "act_1", ApproverID: "ivan", Role: "intern", Decision: pdp.StatusApproved, Reason: "by ivan", VotedAt: base.Add(3 * time.Minute)},
			{TenantID: "acme", ActionID: "act_1", ApproverID: "mia", Role: "manager", IsManager: true, Decision: pdp.StatusApproved, Reason: "by mia", VotedAt: base.Add(4 * time.Minute)},
		}
		same(t, "votes as stored", vs, want)
		_, err = vote("zed", "lead", pdp.StatusApproved, 5*time.Minute)
		wantDecided(t, "vote after the decision", err, pdp.StatusApproved)

		// A counted deny decides at once; an uncounted one does not.
		hold(t, s, "acme", "act_2", base)
		denyBy := func(approver, role string) (store.VoteResult, error) {
			return s.RecordApprovalVote(ctx, store.VoteRequest{
				Vote:         store.ApprovalVote{TenantID: "acme", ActionID: "act_2", ApproverID: approver, Role: role, Decision: pdp.StatusDenied},
				MinApprovals: 2, Counts: noInterns,
			})
		}
		if r, err := denyBy("ivan", "intern"); err != nil || r.Decided {
			t.Errorf("an intern's deny: %+v, %v", r, err)
		}
		r, err = denyBy("bob", "lead")
		if err != nil || !r.Decided || r.Action.Status != pdp.StatusDenied || r.Entries[1].Event != store.EventActionDenied {
			t.Errorf("a counted deny: %+v, %v", r, err)
		}
		wantUTC(t, "default VotedAt", r.Votes[1].VotedAt)

		for _, c := range []struct {
			name   string
			req    store.VoteRequest
			target error
			field  string
		}{
			{"missing", store.VoteRequest{Vote: store.ApprovalVote{TenantID: "acme", ActionID: "act_nope", ApproverID: "a", Decision: pdp.StatusApproved}, MinApprovals: 1}, store.ErrNotFound, ""},
			{"other tenant", store.VoteRequest{Vote: store.ApprovalVote{TenantID: "ghost", ActionID: "act_1", ApproverID: "a", Decision: pdp.StatusApproved}, MinApprovals: 1}, store.ErrNotFound, ""},
			{"no approver", store.VoteRequest{Vote: store.ApprovalVote{TenantID: "acme", ActionID: "act_1", Decision: pdp.StatusApproved}, MinApprovals: 1}, nil, "approver_id"},
			{"bad decision", store.VoteRequest{Vote: store.ApprovalVote{TenantID: "acme", ActionID: "act_1", ApproverID: "a", Decision: "maybe"}, MinApprovals: 1}, nil, "decision"},
			{"no minimum", store.VoteRequest{Vote: store.ApprovalVote{TenantID: "acme", ActionID: "act_1", ApproverID: "a", Decision: pdp.StatusApproved}}, nil, "min_approvals"},
		} {
			_, err := s.RecordApprovalVote(ctx, c.req)
			if c.field != "" {
				wantValidation(t, c.name, err, c.field)
			} else {
				wantErr(t, c.name, err, c.target)
			}
		}
		// 2 holds, 3 + 2 votes, 2 decisions.
		wantChain(t, s, "acme", 9)
	}},
	{"ConcurrentVotesDecideOnce", func(t *testing.T, s store.GovernanceStore) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		hold(t, s, "acme", "act_1", base)
		const voters, minApprovals = 12, 3
		var (
			wg                 sync.WaitGroup
			mu                 sync.Mutex
			recorded, deciders int
		)
		start := make(chan struct{})
		for g := range voters {
			wg.Go(func() {
				<-start
				r, err := s.RecordApprovalVote(ctx, store.VoteRequest{
					Vote:         store.ApprovalVote{TenantID: "acme", ActionID: "act_1", ApproverID: fmt.Sprintf("v%02d", g), Decision: pdp.StatusApproved},
					MinApprovals: minApprovals,
				})
				var de *store.AlreadyDecidedError
				switch {
				case err == nil:
					mu.Lock()
					recorded++
					if r.Decided {
						deciders++
					}
					mu.Unlock()
				case errors.As(err, &de):
				default:
					t.Errorf("voter %d: %v", g, err)
				}
			})
		}
		close(start)
		wg.Wait()
		if recorded != minApprovals || deciders != 1 {
			t.Errorf("%d votes recorded, %d decided; want %d and 1", recorded, deciders, minApprovals)
		}
		if vs, _ := s.ApprovalVotes(ctx, "acme", "act_1"); len(vs) != minApprovals {
			t.Errorf("%d votes stored, want %d", len(vs), minApprovals)
		}
		wantChain(t, s, "acme", 1+minApprovals+1)
	}},
}
