package storetest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// action returns a minimal valid action record.
func action(tenant, id string, at time.Time, status pdp.Status) store.ActionRecord {
	return store.ActionRecord{
		ID: id, TenantID: tenant, Action: "github.delete_repo", StepType: pdp.DefaultStepType,
		Status: status, Params: json.RawMessage(`{"repo":"x"}`), CreatedAt: at,
	}
}

func ids(as []store.ActionRecord) []string {
	out := []string{}
	for _, a := range as {
		out = append(out, a.ID)
	}
	return out
}

var actionTests = []test{
	{"InsertGet", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		decided := base.Add(90*time.Second + 999*time.Nanosecond)
		in := store.ActionRecord{
			ID: "act_0123456789abcdef01234567", TenantID: "acme", AgentID: "billing-bot",
			Action: "github.repos.delete", Connector: "github", Operation: "repos/delete",
			Params: json.RawMessage(`{"amount":25000.10,"note":"héllo <b>"}`), StepType: "ACTION",
			Status:          pdp.StatusApproved,
			Decision:        json.RawMessage(`{"status":"pending_review","risk_score":0.68,"violations":[]}`),
			TriggeredPolicy: "FinancialSafety", Severity: pdp.SeverityHigh, RiskScore: 0.68, ViolationCount: 2,
			TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", CreatedAt: base.Add(7 * time.Nanosecond),
			DecidedAt: &decided, ApproverID: "alice", DecisionReason: "ok'd on call",
		}
		got, err := s.InsertAction(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		want := in
		want.CreatedAt = base
		want.DecidedAt = ptr(base.Add(90 * time.Second))
		same(t, "inserted", got, want)
		read, err := s.GetAction(ctx, "acme", in.ID)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "read back", read, want)
		if string(read.Params) != string(in.Params) {
			t.Errorf("Params = %s, want the bytes written %s", read.Params, in.Params)
		}
	}},
	{"Defaults", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		got, err := s.InsertAction(ctx, store.ActionRecord{ID: "act_min", TenantID: "acme", Action: "x", Status: pdp.StatusAllowed})
		if err != nil {
			t.Fatal(err)
		}
		wantUTC(t, "CreatedAt", got.CreatedAt)
		read, err := s.GetAction(ctx, "acme", "act_min")
		if err != nil {
			t.Fatal(err)
		}
		same(t, "read back", read, got)
		if read.Params != nil || read.Decision != nil || read.DecidedAt != nil {
			t.Errorf("absent fields read back as %+v", read)
		}
	}},
	{"InsertErrors", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		newTenant(t, s, "other")
		if _, err := s.InsertAction(ctx, action("acme", "act_1", base, pdp.StatusAllowed)); err != nil {
			t.Fatal(err)
		}
		_, err := s.InsertAction(ctx, action("acme", "act_1", base, pdp.StatusAllowed))
		wantErr(t, "same ID", err, store.ErrDuplicate)
		_, err = s.InsertAction(ctx, action("other", "act_1", base, pdp.StatusAllowed))
		wantErr(t, "same ID, other tenant", err, store.ErrDuplicate)
		_, err = s.InsertAction(ctx, action("ghost", "act_2", base, pdp.StatusAllowed))
		wantErr(t, "missing tenant", err, store.ErrNotFound)
		bad := action("acme", "act_3", base, pdp.StatusAllowed)
		bad.Params = json.RawMessage(`{"a":`)
		_, err = s.InsertAction(ctx, bad)
		wantValidation(t, "bad params", err, "params")
		bad = action("acme", "act_4", base, "")
		_, err = s.InsertAction(ctx, bad)
		wantValidation(t, "no status", err, "status")
		if _, n, _ := s.ListActions(ctx, "acme", store.ActionQuery{}); n != 1 {
			t.Errorf("%d actions after refused inserts, want 1", n)
		}
	}},
	{"ValidateAction", func(t *testing.T, s store.Store) {
		// One validation for every driver, the one the service runs
		// before deciding: a connector path with %FF decodes to invalid
		// UTF-8, which SQLite would store and PostgreSQL refuse.
		ctx := t.Context()
		newTenant(t, s, "acme")
		long := strings.Repeat("x", store.MaxActionTextLen+1)
		for _, c := range []struct {
			field string
			edit  func(a *store.ActionRecord)
		}{
			{"connector", func(a *store.ActionRecord) { a.Connector, a.Action = "\xff", "\xff.send" }},
			{"operation", func(a *store.ActionRecord) { a.Operation = "send\x00" }},
			{"agent_id", func(a *store.ActionRecord) { a.AgentID = "bot\xc3" }},
			{"decision_reason", func(a *store.ActionRecord) { a.DecisionReason = "why\x00" }},
			{"params", func(a *store.ActionRecord) { a.Params = json.RawMessage("{\"a\":\"\xff\"}") }},
			{"action", func(a *store.ActionRecord) { a.Action = long }},
			{"id", func(a *store.ActionRecord) { a.ID = strings.Repeat("i", store.MaxActionIDLen+1) }},
			{"violation_count", func(a *store.ActionRecord) { a.ViolationCount = -1 }},
		} {
			a := action("acme", "act_v", base, pdp.StatusAllowed)
			c.edit(&a)
			wantValidation(t, "ValidateAction "+c.field, store.ValidateAction(a), c.field)
			_, err := s.InsertAction(ctx, a)
			wantValidation(t, "InsertAction "+c.field, err, c.field)
			if g, ok := s.(store.GovernanceStore); ok {
				_, _, err := g.InsertActionAudited(ctx, a, store.AuditEvent{})
				wantValidation(t, "InsertActionAudited "+c.field, err, c.field)
			}
		}
		if _, n, _ := s.ListActions(ctx, "acme", store.ActionQuery{}); n != 0 {
			t.Errorf("%d actions after refused inserts, want 0", n)
		}
		if err := store.ValidateAction(action("acme", "act_ok", base, pdp.StatusAllowed)); err != nil {
			t.Errorf("ValidateAction of a valid action: %v", err)
		}
	}},
	{"GetMissing", func(t *testing.T, s store.Store) {
		newTenant(t, s, "acme")
		_, err := s.GetAction(t.Context(), "acme", "act_nope")
		wantErr(t, "GetAction", err, store.ErrNotFound)
	}},
	{"ListNewestFirstAndPaging", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		statuses := []pdp.Status{pdp.StatusAllowed, pdp.StatusBlocked, pdp.StatusPendingReview, pdp.StatusAllowed, pdp.StatusPendingReview, pdp.StatusAllowed, pdp.StatusDenied}
		// Inserted out of time order; act_4 and act_5 share a timestamp and
		// then rank by insertion, later first.
		at := []time.Duration{0, 3, 1, 2, 5, 5, 6}
		for i, st := range statuses {
			if _, err := s.InsertAction(ctx, action("acme", fmt.Sprintf("act_%d", i), base.Add(at[i]*time.Minute), st)); err != nil {
				t.Fatal(err)
			}
		}
		all := []string{"act_6", "act_5", "act_4", "act_1", "act_3", "act_2", "act_0"}
		cases := []struct {
			name  string
			q     store.ActionQuery
			want  []string
			total int
		}{
			{"all", store.ActionQuery{}, all, 7},
			{"first page", store.ActionQuery{Limit: 3}, all[:3], 7},
			{"second page", store.ActionQuery{Limit: 3, Offset: 3}, all[3:6], 7},
			{"last page", store.ActionQuery{Limit: 3, Offset: 6}, all[6:], 7},
			{"past the end", store.ActionQuery{Limit: 3, Offset: 10}, []string{}, 7},
			{"offset, no limit", store.ActionQuery{Offset: 5}, all[5:], 7},
			{"negative offset", store.ActionQuery{Limit: 2, Offset: -4}, all[:2], 7},
			{"allowed", store.ActionQuery{Status: pdp.StatusAllowed}, []string{"act_5", "act_3", "act_0"}, 3},
			{"pending, paged", store.ActionQuery{Status: pdp.StatusPendingReview, Limit: 1, Offset: 1}, []string{"act_2"}, 2},
			{"no match", store.ActionQuery{Status: pdp.StatusApproved}, []string{}, 0},
		}
		for _, c := range cases {
			as, total, err := s.ListActions(ctx, "acme", c.q)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if as == nil {
				t.Errorf("%s: nil list, want non-nil", c.name)
			}
			same(t, c.name, ids(as), c.want)
			if total != c.total {
				t.Errorf("%s: total %d, want %d", c.name, total, c.total)
			}
		}
		as, _, _ := s.ListActions(ctx, "acme", store.ActionQuery{Limit: 1})
		one, _ := s.GetAction(ctx, "acme", "act_6")
		same(t, "listed record equals GetAction", as[0], one)
	}},
	{"ListPagesAcrossHours", func(t *testing.T, s store.Store) {
		// Actions over many hours, some on an hour's first or last
		// microsecond, some before 1970, ties inserted out of order, every
		// status, another tenant's beside them; decided ones change status
		// after their insert. Every page of every status filter is the
		// newest-first order cut at the offset, and every total the number
		// of matches, whatever the store counts pages with.
		ctx := t.Context()
		newTenant(t, s, "acme")
		newTenant(t, s, "beta")
		statuses := []pdp.Status{pdp.StatusAllowed, pdp.StatusBlocked, pdp.StatusPendingReview, pdp.StatusAllowed, pdp.StatusApproved, pdp.StatusDenied, pdp.StatusAllowed}
		hour := base.Truncate(time.Hour)
		epoch := time.Unix(0, 0).UTC()
		var at []time.Time
		for i := range 36 {
			switch i % 6 {
			case 0:
				at = append(at, hour.Add(time.Duration(i/3)*time.Hour)) // an hour's first microsecond
			case 1:
				at = append(at, hour.Add(time.Duration(i/3+1)*time.Hour-time.Microsecond)) // its last
			case 2:
				at = append(at, at[i-2]) // a tie, inserted later
			case 3:
				at = append(at, hour.Add(-time.Duration(i)*97*time.Minute)) // scattered, out of order
			case 4:
				at = append(at, epoch.Add(-time.Duration(i)*31*time.Minute)) // before 1970
			default:
				at = append(at, hour.Add(time.Duration(i%4)*time.Hour+time.Duration(i)*time.Second))
			}
		}
		type rec struct {
			id     string
			at     time.Time
			status pdp.Status
			order  int
		}
		var want []rec
		for i, ts := range at {
			st := statuses[i%len(statuses)]
			id := fmt.Sprintf("act_%02d", i)
			if _, err := s.InsertAction(ctx, action("acme", id, ts, st)); err != nil {
				t.Fatal(err)
			}
			if _, err := s.InsertAction(ctx, action("beta", "beta_"+id, ts, pdp.StatusAllowed)); err != nil {
				t.Fatal(err)
			}
			want = append(want, rec{id, ts, st, i})
		}
		if g, ok := s.(store.GovernanceStore); ok {
			for i, id := range []string{"act_02", "act_16"} {
				st := []pdp.Status{pdp.StatusApproved, pdp.StatusDenied}[i]
				if _, _, err := g.DecideAction(ctx, store.DecideRequest{TenantID: "acme", ActionID: id, Status: st, ApproverID: "alice"}); err != nil {
					t.Fatal(err)
				}
				for j := range want {
					if want[j].id == id {
						want[j].status = st
					}
				}
			}
		}
		slices.SortFunc(want, func(a, b rec) int { return cmp.Or(b.at.Compare(a.at), cmp.Compare(b.order, a.order)) })
		for _, st := range []pdp.Status{"", pdp.StatusAllowed, pdp.StatusBlocked, pdp.StatusPendingReview, pdp.StatusApproved, pdp.StatusDenied} {
			var match []string
			for _, r := range want {
				if st == "" || r.status == st {
					match = append(match, r.id)
				}
			}
			for _, limit := range []int{0, 1, 2, 5, 13, 100} {
				for _, offset := range []int{0, 1, 2, 3, 4, 7, 11, 17, len(match) - 1, len(match), len(match) + 3} {
					q := store.ActionQuery{Status: st, Limit: limit, Offset: offset}
					as, total, err := s.ListActions(ctx, "acme", q)
					if err != nil {
						t.Fatalf("%+v: %v", q, err)
					}
					page := match[min(max(offset, 0), len(match)):]
					if limit > 0 && len(page) > limit {
						page = page[:limit]
					}
					if got := ids(as); total != len(match) || fmt.Sprint(got) != fmt.Sprint(append([]string{}, page...)) {
						t.Errorf("%+v: %v of %d, want %v of %d", q, got, total, page, len(match))
					}
				}
			}
		}
	}},
}

var isolationTests = []test{
	{"TenantsSeeOnlyTheirOwn", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		newTenant(t, s, "a", newKey("key_a", "nram_a"))
		b := newTenant(t, s, "b", newKey("key_b", "nram_b"))
		put(t, s, "a", policy("", "Secret", true))
		put(t, s, "a", policy("bot", "Secret", true))
		if _, err := s.InsertAction(ctx, action("a", "act_a", base, pdp.StatusPendingReview)); err != nil {
			t.Fatal(err)
		}

		_, err := s.GetPolicy(ctx, pkey("b", "", "Secret"))
		wantErr(t, "B gets A's policy", err, store.ErrNotFound)
		_, err = s.GetPolicy(ctx, pkey("b", "bot", "Secret"))
		wantErr(t, "B gets A's agent policy", err, store.ErrNotFound)
		_, err = s.DisablePolicy(ctx, pkey("b", "", "Secret"))
		wantErr(t, "B disables A's policy", err, store.ErrNotFound)
		_, err = s.PutPolicy(ctx, store.PutPolicyRequest{TenantID: "b", Policy: policy("", "Secret", true), Limit: store.Unlimited, MustExist: true})
		wantErr(t, "B updates A's policy", err, store.ErrNotFound)
		if ps, _ := s.ListPolicies(ctx, "b", store.PolicyFilter{}); len(ps) != 0 {
			t.Errorf("B lists %v", names(ps))
		}
		if n, _ := s.CountEnabledPolicies(ctx, "b"); n != 0 {
			t.Errorf("B counts %d enabled policies", n)
		}
		tp, err := s.TenantPolicies(ctx, "b")
		if err != nil || len(tp.Policies) != 0 || tp.Revision != b.Revision {
			t.Errorf("B's TenantPolicies = %+v, %v", tp, err)
		}
		_, err = s.GetAction(ctx, "b", "act_a")
		wantErr(t, "B gets A's action", err, store.ErrNotFound)
		if as, n, _ := s.ListActions(ctx, "b", store.ActionQuery{}); len(as) != 0 || n != 0 {
			t.Errorf("B lists actions %v (total %d)", ids(as), n)
		}
		if tn, _, err := s.TenantByKeyHash(ctx, store.HashAPIKey("nram_b")); err != nil || tn.ID != "b" {
			t.Errorf("B's key resolves to %q, %v", tn.ID, err)
		}

		// B's writes leave A alone.
		revA := revision(t, s, "a")
		put(t, s, "b", policy("", "Secret", true))
		if r := revision(t, s, "a"); r != revA {
			t.Errorf("B's write moved A's revision %d → %d", revA, r)
		}
		pa, _ := s.GetPolicy(ctx, pkey("a", "", "Secret"))
		if pa.Version != 1 {
			t.Errorf("A's policy is at version %d after B wrote its own", pa.Version)
		}
		if n, _ := s.CountEnabledPolicies(ctx, "a"); n != 2 {
			t.Errorf("A counts %d enabled policies, want 2", n)
		}
	}},
	{"LimitsArePerTenant", func(t *testing.T, s store.Store) {
		ctx := t.Context()
		newTenant(t, s, "a")
		newTenant(t, s, "b")
		put(t, s, "a", policy("", "P1", true))
		put(t, s, "a", policy("", "P2", true))
		if _, err := s.PutPolicy(ctx, store.PutPolicyRequest{TenantID: "b", Policy: policy("", "P1", true), Limit: 1}); err != nil {
			t.Errorf("B's first policy under limit 1: %v", err)
		}
	}},
}
