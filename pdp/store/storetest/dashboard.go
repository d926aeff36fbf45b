package storetest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// hit returns an action with n hits, the strongest from policy at sev.
func hit(tenant, id, agent string, at time.Time, st pdp.Status, policy string, sev pdp.Severity, n int) store.ActionRecord {
	a := action(tenant, id, at, st)
	a.AgentID, a.TriggeredPolicy, a.Severity, a.ViolationCount = agent, policy, sev, n
	if n > 0 {
		a.RiskScore = sev.Weight() * pdp.DefaultConfidence
		a.Decision = json.RawMessage(fmt.Sprintf(`{"status":%q,"reason":"%s says no"}`, st, policy))
	}
	return a
}

// reference computes a dashboard from records by the definitions of
// store.Dashboards, independently of any driver and of
// store.DashboardBuilder.
func reference(recs []store.ActionRecord, q store.DashboardQuery) store.DashboardReport {
	step := q.Bucket.Duration()
	r := store.DashboardReport{Since: q.Since.UTC(), Until: q.Until.UTC(), Bucket: q.Bucket, ByPolicy: []store.PolicyViolations{}, ByAgent: []store.AgentViolationCount{}}
	first := q.Since.UTC().Truncate(step)
	for t := first; t.Before(q.Until); t = t.Add(step) {
		r.Series = append(r.Series, store.DashboardBucket{Start: t})
	}
	add := func(c *store.DashboardCounts, st pdp.Status) {
		c.Evaluations++
		c.Executed += b2i(st == pdp.StatusAllowed || st == pdp.StatusApproved)
		c.Blocked += b2i(st == pdp.StatusBlocked)
		c.PendingReview += b2i(st == pdp.StatusPendingReview)
		c.Approved += b2i(st == pdp.StatusApproved)
		c.Denied += b2i(st == pdp.StatusDenied)
	}
	policies := map[string]*store.PolicyViolations{}
	agents := map[string]int64{}
	for _, a := range recs {
		at := a.CreatedAt.Truncate(store.TimePrecision)
		if at.Before(q.Since) || !at.Before(q.Until) {
			continue
		}
		add(&r.Totals, a.Status)
		add(&r.Series[int(at.Sub(first)/step)].DashboardCounts, a.Status)
		if a.ViolationCount == 0 {
			continue
		}
		p := policies[a.TriggeredPolicy]
		if p == nil {
			p = &store.PolicyViolations{Policy: a.TriggeredPolicy}
			policies[a.TriggeredPolicy] = p
		}
		p.Count++
		switch a.Severity {
		case pdp.SeverityCritical:
			p.Severities.Critical++
		case pdp.SeverityHigh:
			p.Severities.High++
		case pdp.SeverityMedium:
			p.Severities.Medium++
		case pdp.SeverityLow:
			p.Severities.Low++
		}
		agents[a.AgentID]++
	}
	for _, p := range policies {
		r.ByPolicy = append(r.ByPolicy, *p)
	}
	slices.SortFunc(r.ByPolicy, func(x, y store.PolicyViolations) int {
		return cmp.Or(cmp.Compare(y.Count, x.Count), cmp.Compare(x.Policy, y.Policy))
	})
	for id, n := range agents {
		r.ByAgent = append(r.ByAgent, store.AgentViolationCount{AgentID: id, Count: n})
	}
	slices.SortFunc(r.ByAgent, func(x, y store.AgentViolationCount) int {
		return cmp.Or(cmp.Compare(y.Count, x.Count), cmp.Compare(x.AgentID, y.AgentID))
	})
	return r
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// loadMix inserts a generated mix one by one (half of it with entries)
// and returns the records as stored.
func loadMix(t *testing.T, s store.GovernanceStore, m ActionMix) []store.ActionRecord {
	t.Helper()
	var recs []store.ActionRecord
	i := 0
	for a := range GenerateActions(m) {
		var err error
		if i%2 == 0 {
			a, err = s.InsertAction(t.Context(), a)
		} else {
			a, _, err = s.InsertActionAudited(t.Context(), a, store.AuditEvent{})
		}
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, a)
		i++
	}
	return recs
}

var dashboardTests = []govTest{
	{"KnownMix", func(t *testing.T, s store.GovernanceStore) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		day := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
		recs := []store.ActionRecord{
			hit("acme", "a1", "bot", day.Add(10*time.Minute), pdp.StatusAllowed, "", "", 0),
			hit("acme", "a2", "bot", day.Add(20*time.Minute), pdp.StatusAllowed, "Pii", pdp.SeverityLow, 1), // warn only
			hit("acme", "a3", "bot", day.Add(70*time.Minute), pdp.StatusBlocked, "DataExfiltration", pdp.SeverityCritical, 2),
			hit("acme", "a4", "crawler", day.Add(80*time.Minute), pdp.StatusBlocked, "DataExfiltration", pdp.SeverityCritical, 1),
			hit("acme", "a5", "crawler", day.Add(130*time.Minute), pdp.StatusPendingReview, "FinancialSafety", pdp.SeverityHigh, 1),
			hit("acme", "a6", "", day.Add(140*time.Minute), pdp.StatusPendingReview, "FinancialSafety", pdp.SeverityHigh, 3),
			hit("acme", "a7", "bot", day.Add(150*time.Minute), pdp.StatusPendingReview, "Pii", pdp.SeverityHigh, 1),
			hit("acme", "a8", "bot", day.Add(25*time.Hour), pdp.StatusAllowed, "", "", 0), // next day
			hit("acme", "out", "bot", day.Add(-time.Microsecond), pdp.StatusBlocked, "Pii", pdp.SeverityCritical, 1),
		}
		for i, a := range recs {
			var err error
			if i%2 == 0 {
				_, err = s.InsertAction(ctx, a)
			} else {
				_, _, err = s.InsertActionAudited(ctx, a, store.AuditEvent{})
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		for id, st := range map[string]pdp.Status{"a5": pdp.StatusApproved, "a6": pdp.StatusDenied} {
			if _, _, err := s.DecideAction(ctx, store.DecideRequest{TenantID: "acme", ActionID: id, Status: st, ApproverID: "alice", DecidedAt: day.Add(30 * time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
		q := store.DashboardQuery{Since: day, Until: day.Add(24 * time.Hour), Bucket: store.BucketHour}
		r, err := s.Dashboard(ctx, "acme", q)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "totals", r.Totals, store.DashboardCounts{Evaluations: 7, Executed: 3, Blocked: 2, PendingReview: 1, Approved: 1, Denied: 1})
		same(t, "by policy", r.ByPolicy, []store.PolicyViolations{
			{Policy: "DataExfiltration", Count: 2, Severities: store.SeverityCounts{Critical: 2}},
			{Policy: "FinancialSafety", Count: 2, Severities: store.SeverityCounts{High: 2}},
			{Policy: "Pii", Count: 2, Severities: store.SeverityCounts{High: 1, Low: 1}},
		})
		same(t, "by agent", r.ByAgent, []store.AgentViolationCount{{AgentID: "bot", Count: 3}, {AgentID: "crawler", Count: 2}, {AgentID: "", Count: 1}})
		if len(r.Series) != 24 || !r.Series[0].Start.Equal(day) || !r.Series[23].Start.Equal(day.Add(23*time.Hour)) {
			t.Fatalf("series of %d buckets from %v", len(r.Series), r.Series[0].Start)
		}
		same(t, "hour 0", r.Series[0].DashboardCounts, store.DashboardCounts{Evaluations: 2, Executed: 2})
		same(t, "hour 1", r.Series[1].DashboardCounts, store.DashboardCounts{Evaluations: 2, Blocked: 2})
		same(t, "hour 2", r.Series[2].DashboardCounts, store.DashboardCounts{Evaluations: 3, Executed: 1, Approved: 1, Denied: 1, PendingReview: 1})
		same(t, "hour 3 is zero-filled", r.Series[3].DashboardCounts, store.DashboardCounts{})
		if r.Bucket != store.BucketHour || !r.Since.Equal(q.Since) || !r.Until.Equal(q.Until) {
			t.Errorf("report window %v–%v by %s", r.Since, r.Until, r.Bucket)
		}
		// An empty window, and an unknown tenant.
		for _, c := range []struct{ tenant string }{{"acme"}, {"ghost"}} {
			r, err := s.Dashboard(ctx, c.tenant, store.DashboardQuery{Since: day.Add(48 * time.Hour), Until: day.Add(72 * time.Hour), Bucket: store.BucketDay})
			if err != nil || r.Totals != (store.DashboardCounts{}) || len(r.ByPolicy) != 0 || len(r.ByAgent) != 0 || len(r.Series) != 1 || r.ByPolicy == nil || r.ByAgent == nil {
				t.Errorf("%s's empty window: %+v, %v", c.tenant, r, err)
			}
		}
	}},
	{"MatchesReference", func(t *testing.T, s store.GovernanceStore) {
		// Windows aligned and not to hours and days, long and short, over
		// a generated mix: every driver's rollups and edge scans must add
		// up to the definitions.
		ctx := t.Context()
		newTenant(t, s, "acme")
		start := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
		m := ActionMix{TenantID: "acme", N: 600, Since: start.Add(-7 * time.Minute), Until: start.Add(77 * time.Hour), Agents: 7, Policies: 4, Seed: 7}
		recs := loadMix(t, s, m)
		// Decide some held actions now, as approvers would, after the fact.
		decided := 0
		for i, a := range recs {
			if a.Status != pdp.StatusPendingReview || i%3 == 0 {
				continue
			}
			st := pdp.StatusApproved
			if i%3 == 2 {
				st = pdp.StatusDenied
			}
			got, _, err := s.DecideAction(ctx, store.DecideRequest{TenantID: "acme", ActionID: a.ID, Status: st, ApproverID: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			recs[i] = got
			decided++
		}
		if decided == 0 {
			t.Fatal("the mix holds no pending action to decide")
		}
		windows := []store.DashboardQuery{
			{Since: start, Until: start.Add(72 * time.Hour), Bucket: store.BucketDay},
			{Since: start, Until: start.Add(72 * time.Hour), Bucket: store.BucketHour},
			{Since: start.Add(-time.Hour), Until: start.Add(80 * time.Hour), Bucket: store.BucketDay},
			{Since: start.Add(13*time.Hour + 17*time.Minute + 3*time.Microsecond), Until: start.Add(61*time.Hour + 41*time.Minute), Bucket: store.BucketDay},
			{Since: start.Add(13*time.Hour + 17*time.Minute), Until: start.Add(37*time.Hour + 17*time.Minute), Bucket: store.BucketHour},
			{Since: start.Add(5*time.Hour + 10*time.Minute), Until: start.Add(5*time.Hour + 50*time.Minute), Bucket: store.BucketHour},
			{Since: start.Add(23*time.Hour + 30*time.Minute), Until: start.Add(24*time.Hour + 30*time.Minute), Bucket: store.BucketDay},
		}
		for _, q := range windows {
			got, err := s.Dashboard(ctx, "acme", q)
			if err != nil {
				t.Fatal(err)
			}
			same(t, fmt.Sprintf("%v–%v by %s", q.Since.Format(time.RFC3339Nano), q.Until.Format(time.RFC3339Nano), q.Bucket), got, reference(recs, q))
		}
	}},
	{"EdgesOfTwoDays", func(t *testing.T, s store.GovernanceStore) {
		// A window across midnight without a whole day inside is all
		// edge: its violations are counted one by one over both days,
		// whoever committed them (agents of either day only, none), and
		// nothing outside the window or of a decided action's old status.
		ctx := t.Context()
		newTenant(t, s, "acme")
		newTenant(t, s, "beta")
		day := time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC)
		recs := []store.ActionRecord{
			hit("acme", "e1", "early", day.Add(-20*time.Minute), pdp.StatusBlocked, "Pii", pdp.SeverityCritical, 1),
			hit("acme", "e2", "early", day.Add(-40*time.Minute), pdp.StatusBlocked, "Pii", pdp.SeverityCritical, 1), // before the window
			hit("acme", "l1", "late", day.Add(10*time.Minute), pdp.StatusBlocked, "DataExfiltration", pdp.SeverityCritical, 2),
			hit("acme", "l2", "late", day.Add(5*time.Hour), pdp.StatusBlocked, "DataExfiltration", pdp.SeverityCritical, 1), // after it
			hit("acme", "n1", "", day.Add(29*time.Minute+59*time.Second), pdp.StatusPendingReview, "FinancialSafety", pdp.SeverityHigh, 1),
			hit("acme", "c1", "clean", day.Add(-5*time.Minute), pdp.StatusAllowed, "", "", 0),
			hit("acme", "o1", "other", day.Add(-25*time.Hour), pdp.StatusBlocked, "Pii", pdp.SeverityLow, 1), // the day before
			hit("beta", "b1", "late", day.Add(15*time.Minute), pdp.StatusBlocked, "Pii", pdp.SeverityLow, 1),
		}
		for i, a := range recs {
			var err error
			if i%2 == 0 {
				recs[i], err = s.InsertAction(ctx, a)
			} else {
				recs[i], _, err = s.InsertActionAudited(ctx, a, store.AuditEvent{})
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		got, _, err := s.DecideAction(ctx, store.DecideRequest{TenantID: "acme", ActionID: "n1", Status: pdp.StatusApproved, ApproverID: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		recs[4] = got
		acme := recs[:len(recs)-1]
		for _, q := range []store.DashboardQuery{
			{Since: day.Add(-30 * time.Minute), Until: day.Add(30 * time.Minute), Bucket: store.BucketDay},
			{Since: day.Add(-30 * time.Minute), Until: day.Add(30 * time.Minute), Bucket: store.BucketHour},
			{Since: day.Add(-26 * time.Hour), Until: day.Add(6 * time.Hour), Bucket: store.BucketDay},
		} {
			got, err := s.Dashboard(ctx, "acme", q)
			if err != nil {
				t.Fatal(err)
			}
			same(t, fmt.Sprintf("%v–%v by %s", q.Since.Format(time.RFC3339Nano), q.Until.Format(time.RFC3339Nano), q.Bucket), got, reference(acme, q))
		}
	}},
	{"QueryErrors", func(t *testing.T, s store.GovernanceStore) {
		newTenant(t, s, "acme")
		for _, c := range []struct {
			name  string
			q     store.DashboardQuery
			field string
		}{
			{"bucket", store.DashboardQuery{Since: base, Until: base.Add(time.Hour), Bucket: "week"}, "bucket"},
			{"backwards", store.DashboardQuery{Since: base, Until: base, Bucket: store.BucketHour}, "window"},
			{"unbounded", store.DashboardQuery{Until: base, Bucket: store.BucketHour}, "window"},
			{"too many buckets", store.DashboardQuery{Since: base, Until: base.Add(2 * 366 * 24 * time.Hour), Bucket: store.BucketHour}, "window"},
		} {
			_, err := s.Dashboard(t.Context(), "acme", c.q)
			wantValidation(t, c.name, err, c.field)
		}
	}},
}

var violationTests = []govTest{
	{"NewestFirstWithAudit", func(t *testing.T, s store.GovernanceStore) {
		ctx := t.Context()
		newTenant(t, s, "acme")
		entries := map[string]store.AuditEntry{}
		add := func(a store.ActionRecord, audited bool) {
			t.Helper()
			if !audited {
				if _, err := s.InsertAction(ctx, a); err != nil {
					t.Fatal(err)
				}
				return
			}
			_, e, err := s.InsertActionAudited(ctx, a, store.AuditEvent{})
			if err != nil {
				t.Fatal(err)
			}
			entries[a.ID] = e
		}
		add(hit("acme", "v1", "bot", base, pdp.StatusAllowed, "Pii", pdp.SeverityLow, 1), true)
		add(hit("acme", "clean", "bot", base.Add(time.Minute), pdp.StatusAllowed, "", "", 0), true)
		add(hit("acme", "v2", "bot", base.Add(2*time.Minute), pdp.StatusBlocked, "DataExfiltration", pdp.SeverityCritical, 2), true)
		add(hit("acme", "v3", "bot", base.Add(3*time.Minute), pdp.StatusPendingReview, "FinancialSafety", pdp.SeverityHigh, 1), false)
		add(hit("acme", "v4", "bot", base.Add(4*time.Minute), pdp.StatusPendingReview, "FinancialSafety", pdp.SeverityHigh, 1), true)
		add(hit("acme", "v5", "bot", base.Add(4*time.Minute), pdp.StatusPendingReview, "FinancialSafety", pdp.SeverityHigh, 1), true)
		add(hit("acme", "other", "crawler", base.Add(5*time.Minute), pdp.StatusBlocked, "Pii", pdp.SeverityCritical, 1), true)
		if _, _, err := s.DecideAction(ctx, store.DecideRequest{TenantID: "acme", ActionID: "v4", Status: pdp.StatusDenied, ApproverID: "al"}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.DecideAction(ctx, store.DecideRequest{TenantID: "acme", ActionID: "v5", Status: pdp.StatusApproved, ApproverID: "al"}); err != nil {
			t.Fatal(err)
		}

		vs, total, err := s.AgentViolations(ctx, "acme", "bot", store.ViolationQuery{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, v := range vs {
			got = append(got, v.ActionID+":"+v.Event)
		}
		same(t, "violations", got, []string{"v5:action_executed", "v4:action_denied", "v3:action_pending_review", "v2:action_blocked", "v1:action_executed"})
		if total != 5 {
			t.Errorf("total %d, want 5", total)
		}
		e := entries["v2"]
		same(t, "v2", vs[3], store.AgentViolation{
			ActionID: "v2", Action: "github.delete_repo", Timestamp: base.Add(2 * time.Minute), Status: pdp.StatusBlocked, Event: store.EventActionBlocked,
			TriggeredPolicy: "DataExfiltration", Severity: pdp.SeverityCritical, Reason: "DataExfiltration says no",
			RiskScore: pdp.SeverityCritical.Weight() * pdp.DefaultConfidence, ViolationCount: 2,
			AuditSequence: e.SequenceNumber, AuditHash: e.EntryHash,
		})
		if vs[2].AuditSequence != 0 || vs[2].AuditHash != "" {
			t.Errorf("an action without an entry has audit %d %q", vs[2].AuditSequence, vs[2].AuditHash)
		}

		for _, c := range []struct {
			name  string
			q     store.ViolationQuery
			want  []string
			total int
		}{
			{"page", store.ViolationQuery{Limit: 2, Offset: 1}, []string{"v4", "v3"}, 5},
			{"since", store.ViolationQuery{Since: base.Add(3 * time.Minute)}, []string{"v5", "v4", "v3"}, 3},
			{"until is exclusive", store.ViolationQuery{Until: base.Add(3 * time.Minute)}, []string{"v2", "v1"}, 2},
			{"window, limited", store.ViolationQuery{Since: base.Add(time.Nanosecond), Until: base.Add(4 * time.Minute), Limit: 1}, []string{"v3"}, 2},
			{"empty", store.ViolationQuery{Since: base.Add(time.Hour)}, []string{}, 0},
		} {
			vs, total, err := s.AgentViolations(ctx, "acme", "bot", c.q)
			if err != nil {
				t.Fatal(err)
			}
			ids := []string{}
			for _, v := range vs {
				ids = append(ids, v.ActionID)
			}
			same(t, c.name, ids, c.want)
			if total != c.total {
				t.Errorf("%s: total %d, want %d", c.name, total, c.total)
			}
		}
		if vs, n, err := s.AgentViolations(ctx, "acme", "nobody", store.ViolationQuery{}); err != nil || len(vs) != 0 || n != 0 || vs == nil {
			t.Errorf("an agent without violations: %v, %d, %v", vs, n, err)
		}
	}},
}

var governanceIsolationTests = []govTest{
	{"TenantsSeeOnlyTheirOwn", func(t *testing.T, s store.GovernanceStore) {
		ctx := t.Context()
		newTenant(t, s, "a")
		newTenant(t, s, "b")
		appendN(t, s, "a", 2)
		hold(t, s, "a", "act_a", base)
		if _, err := s.RecordApprovalVote(ctx, store.VoteRequest{Vote: store.ApprovalVote{TenantID: "a", ActionID: "act_a", ApproverID: "x", Decision: pdp.StatusApproved}, MinApprovals: 2}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.InsertActionAudited(ctx, hit("a", "act_v", "bot", base, pdp.StatusBlocked, "Pii", pdp.SeverityCritical, 1), store.AuditEvent{}); err != nil {
			t.Fatal(err)
		}

		if es, n, err := s.ListAudit(ctx, "b", store.AuditQuery{}); err != nil || len(es) != 0 || n != 0 {
			t.Errorf("B lists A's entries: %v (%d), %v", seqs(es), n, err)
		}
		if es, err := s.AuditTrail(ctx, "b", "act_a"); err != nil || len(es) != 0 {
			t.Errorf("B sees A's trail: %v, %v", seqs(es), err)
		}
		if as, n, err := s.ListApprovals(ctx, "b", store.ApprovalQuery{}); err != nil || len(as) != 0 || n != 0 {
			t.Errorf("B lists A's approvals: %v, %v", approvalIDs(as), err)
		}
		if vs, err := s.ApprovalVotes(ctx, "b", "act_a"); err != nil || len(vs) != 0 {
			t.Errorf("B sees A's votes: %+v, %v", vs, err)
		}
		_, _, err := s.DecideAction(ctx, store.DecideRequest{TenantID: "b", ActionID: "act_a", Status: pdp.StatusApproved, ApproverID: "x"})
		wantErr(t, "B decides A's approval", err, store.ErrNotFound)
		_, err = s.RecordApprovalVote(ctx, store.VoteRequest{Vote: store.ApprovalVote{TenantID: "b", ActionID: "act_a", ApproverID: "y", Decision: pdp.StatusApproved}, MinApprovals: 1})
		wantErr(t, "B votes on A's approval", err, store.ErrNotFound)
		r, err := s.Dashboard(ctx, "b", store.DashboardQuery{Since: base.Add(-time.Hour), Until: base.Add(time.Hour), Bucket: store.BucketHour})
		if err != nil || r.Totals != (store.DashboardCounts{}) || len(r.ByAgent) != 0 || len(r.ByPolicy) != 0 {
			t.Errorf("B's dashboard counts A's actions: %+v, %v", r, err)
		}
		if vs, n, err := s.AgentViolations(ctx, "b", "bot", store.ViolationQuery{}); err != nil || len(vs) != 0 || n != 0 {
			t.Errorf("B sees A's violations: %+v, %v", vs, err)
		}

		// B's chain is its own: numbered from 1, and A's is untouched.
		if es := appendN(t, s, "b", 1); es[0].SequenceNumber != 1 || es[0].PrevHash != store.GenesisHash {
			t.Errorf("B's first entry: %+v", es[0])
		}
		wantChain(t, s, "a", 5)
		wantChain(t, s, "b", 1)
		if a, _ := s.GetAction(ctx, "a", "act_a"); a.Status != pdp.StatusPendingReview {
			t.Errorf("A's approval is %s after B's attempts", a.Status)
		}
	}},
}
