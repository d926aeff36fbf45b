package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

func TestDashboardBuilderBuckets(t *testing.T) {
	day := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name   string
		q      store.DashboardQuery
		n      int
		first  time.Time
		last   time.Time
		bucket store.Bucket
	}{
		{"aligned day", store.DashboardQuery{Since: day, Until: day.Add(24 * time.Hour), Bucket: store.BucketHour}, 24, day, day.Add(23 * time.Hour), store.BucketHour},
		{"unaligned 24h", store.DashboardQuery{Since: day.Add(90 * time.Minute), Until: day.Add(25*time.Hour + 30*time.Minute), Bucket: store.BucketHour}, 25, day.Add(time.Hour), day.Add(25 * time.Hour), store.BucketHour},
		{"7d by day, unaligned", store.DashboardQuery{Since: day.Add(5 * time.Hour), Until: day.Add(7*24*time.Hour + 5*time.Hour), Bucket: store.BucketDay}, 8, day, day.Add(7 * 24 * time.Hour), store.BucketDay},
		{"other zone", store.DashboardQuery{Since: day.In(time.FixedZone("X", -5*3600)), Until: day.Add(48 * time.Hour), Bucket: store.BucketDay}, 2, day, day.Add(24 * time.Hour), store.BucketDay},
		{"one microsecond", store.DashboardQuery{Since: day, Until: day.Add(time.Microsecond), Bucket: store.BucketDay}, 1, day, day, store.BucketDay},
	}
	for _, c := range cases {
		if err := c.q.Validate(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		r := store.NewDashboardBuilder(c.q).Report()
		if len(r.Series) != c.n || !r.Series[0].Start.Equal(c.first) || !r.Series[len(r.Series)-1].Start.Equal(c.last) || r.Series[0].Start.Location() != time.UTC {
			t.Errorf("%s: %d buckets %v … %v, want %d from %v to %v", c.name, len(r.Series), r.Series[0].Start, r.Series[len(r.Series)-1].Start, c.n, c.first, c.last)
		}
		if r.ByPolicy == nil || r.ByAgent == nil {
			t.Errorf("%s: nil groups", c.name)
		}
	}
}

func TestDashboardBuilderCounts(t *testing.T) {
	day := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	b := store.NewDashboardBuilder(store.DashboardQuery{Since: day, Until: day.Add(48 * time.Hour), Bucket: store.BucketDay})
	b.Count(day.Add(3*time.Hour), pdp.StatusAllowed, 5)
	b.Count(day.Add(30*time.Hour), pdp.StatusApproved, 2)
	b.Count(day.Add(31*time.Hour), pdp.StatusDenied, 1)
	b.Count(day.Add(31*time.Hour), pdp.StatusPendingReview, 4)
	b.Count(day.Add(32*time.Hour), pdp.StatusBlocked, 3)
	b.PolicyViolations("B", pdp.SeverityHigh, 2)
	b.PolicyViolations("A", pdp.SeverityCritical, 1)
	b.PolicyViolations("A", pdp.SeverityLow, 1)
	b.PolicyViolations("C", pdp.SeverityMedium, 0)
	b.AgentViolations("", 1)
	b.AgentViolations("bot", 3)
	b.AgentViolations("z", 1)
	r := b.Report()
	if want := (store.DashboardCounts{Evaluations: 15, Executed: 7, Blocked: 3, PendingReview: 4, Approved: 2, Denied: 1}); r.Totals != want {
		t.Errorf("totals %+v, want %+v", r.Totals, want)
	}
	if want := (store.DashboardCounts{Evaluations: 5, Executed: 5}); r.Series[0].DashboardCounts != want {
		t.Errorf("day 1 %+v", r.Series[0].DashboardCounts)
	}
	if got := r.Series[1].DashboardCounts; got.Evaluations != 10 || got.Executed != 2 || got.Blocked != 3 {
		t.Errorf("day 2 %+v", got)
	}
	if len(r.ByPolicy) != 2 || r.ByPolicy[0].Policy != "A" || r.ByPolicy[0].Severities != (store.SeverityCounts{Critical: 1, Low: 1}) || r.ByPolicy[1].Policy != "B" {
		t.Errorf("by policy %+v (ties by name, zero counts left out)", r.ByPolicy)
	}
	if len(r.ByAgent) != 3 || r.ByAgent[0].AgentID != "bot" || r.ByAgent[1].AgentID != "" || r.ByAgent[2].AgentID != "z" {
		t.Errorf("by agent %+v", r.ByAgent)
	}
}

func TestGovernanceValidation(t *testing.T) {
	base := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name  string
		err   error
		field string // "" means valid
	}{
		{"dashboard ok", store.DashboardQuery{Since: base, Until: base.Add(time.Hour), Bucket: store.BucketHour}.Validate(), ""},
		{"dashboard bucket", store.DashboardQuery{Since: base, Until: base.Add(time.Hour), Bucket: "minute"}.Validate(), "bucket"},
		{"dashboard window", store.DashboardQuery{Since: base.Add(time.Hour), Until: base, Bucket: store.BucketHour}.Validate(), "window"},
		{"dashboard year of hours", store.DashboardQuery{Since: base, Until: base.Add(366 * 24 * time.Hour), Bucket: store.BucketHour}.Validate(), ""},
		{"dashboard too long", store.DashboardQuery{Since: base, Until: base.Add(367 * 24 * time.Hour), Bucket: store.BucketHour}.Validate(), "window"},
		{"approvals ok", store.ApprovalQuery{Status: pdp.StatusDenied}.Validate(), ""},
		{"approvals all", store.ApprovalQuery{}.Validate(), ""},
		{"approvals status", store.ApprovalQuery{Status: pdp.StatusBlocked}.Validate(), "status"},
		{"decide ok", store.DecideRequest{TenantID: "t", ActionID: "a", Status: pdp.StatusApproved}.Validate(), ""},
		{"decide status", store.DecideRequest{TenantID: "t", ActionID: "a", Status: pdp.StatusPendingReview}.Validate(), "status"},
		{"decide ids", store.DecideRequest{Status: pdp.StatusDenied}.Validate(), "tenant_id"},
		{"decide event", store.DecideRequest{TenantID: "t", ActionID: "a", Status: pdp.StatusDenied, Audit: store.AuditEvent{Event: string(make([]byte, 65))}}.Validate(), "event"},
		{"vote ok", store.VoteRequest{Vote: store.ApprovalVote{TenantID: "t", ActionID: "a", ApproverID: "x", Decision: pdp.StatusDenied}, MinApprovals: 1}.Validate(), ""},
		{"vote min", store.VoteRequest{Vote: store.ApprovalVote{TenantID: "t", ActionID: "a", ApproverID: "x", Decision: pdp.StatusDenied}}.Validate(), "min_approvals"},
		{"vote metadata too big", store.VoteRequest{Vote: store.ApprovalVote{TenantID: "t", ActionID: "a", ApproverID: "x", Decision: pdp.StatusDenied}, MinApprovals: 1,
			DecisionAudit: store.AuditEvent{Metadata: make([]byte, store.MaxAuditMetadataBytes+1)}}.Validate(), "metadata"},
		{"event required", store.AuditEvent{}.Validate(), "event"},
	}
	for _, c := range cases {
		var ve *pdp.ValidationError
		switch {
		case c.field == "" && c.err != nil:
			t.Errorf("%s: %v, want valid", c.name, c.err)
		case c.field != "" && (!errors.As(c.err, &ve) || !hasField(c.err, c.field)):
			t.Errorf("%s: %v, want a problem with %s", c.name, c.err, c.field)
		}
	}
}

func hasField(err error, field string) bool {
	var es pdp.ValidationErrors
	if !errors.As(err, &es) {
		var ve *pdp.ValidationError
		return errors.As(err, &ve) && ve.Field == field
	}
	for _, e := range es {
		if e.Field == field {
			return true
		}
	}
	return false
}

func TestAlreadyDecidedError(t *testing.T) {
	err := error(&store.AlreadyDecidedError{ActionID: "act_1", Status: pdp.StatusDenied})
	var de *store.AlreadyDecidedError
	if !errors.Is(err, store.ErrAlreadyDecided) || !errors.Is(err, store.ErrConflict) || !errors.Is(err, pdp.ErrConflict) || !errors.As(err, &de) || errors.Is(err, store.ErrNotFound) {
		t.Errorf("AlreadyDecidedError classifies wrong: %v", err)
	}
	if !errors.Is(store.ErrAlreadyVoted, store.ErrConflict) {
		t.Error("ErrAlreadyVoted is not a conflict")
	}
}
