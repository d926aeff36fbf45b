package store

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// Dashboards answers the governance dashboard (docs/api.md §A9) from the stored
// actions.
//
// Definitions, the same for every driver (DashboardBuilder implements the
// arithmetic they share):
//   - The window is [Since, Until). An action belongs to it, and to a time
//     bucket, by its CreatedAt (when it was evaluated), and is counted by
//     its current status: an action evaluated in the window and approved
//     later counts as approved, in the bucket of its evaluation.
//   - evaluations: every action; executed: allowed + approved; blocked;
//     pending_review: still held now; approved; denied. So evaluations =
//     executed + blocked + pending_review + denied.
//   - A violation is an evaluation with at least one hit (ViolationCount ≥
//     1; warn-only hits count). violations_by_policy counts violations by
//     their TriggeredPolicy (the hit that decided, one policy per
//     evaluation, not every policy that fired), with a breakdown by that
//     hit's Severity; violations_by_agent counts violations by AgentID (""
//     for actions without an agent). Both are ordered by count, highest
//     first, then by name.
//   - The time series has one bucket per UTC hour or day from the one
//     holding Since to the one holding the last instant before Until,
//     zero-filled; the first and last buckets cover only the part inside
//     the window.
type Dashboards interface {
	// Dashboard computes the tenant's dashboard for q. An unknown tenant
	// has an empty one.
	Dashboard(ctx context.Context, tenantID string, q DashboardQuery) (DashboardReport, error)
	// AgentViolations returns one page of the agent's violations in q's
	// window, newest first — one per evaluation with at least one hit —
	// and how many there are in the window.
	AgentViolations(ctx context.Context, tenantID, agentID string, q ViolationQuery) ([]AgentViolation, int, error)
}

// Bucket is the time series' resolution.
type Bucket string

// Buckets.
const (
	BucketHour Bucket = "hour"
	BucketDay  Bucket = "day"
)

// Duration returns the length of one bucket, 0 for an unknown one.
func (b Bucket) Duration() time.Duration {
	switch b {
	case BucketHour:
		return time.Hour
	case BucketDay:
		return 24 * time.Hour
	}
	return 0
}

// MaxDashboardBuckets bounds a dashboard's time series (a year of hours).
const MaxDashboardBuckets = 366 * 24

// DashboardQuery is a dashboard's window and resolution.
type DashboardQuery struct {
	Since, Until time.Time
	Bucket       Bucket
}

// Validate checks the window and the bucket.
func (q DashboardQuery) Validate() error {
	var es pdp.ValidationErrors
	d := q.Bucket.Duration()
	if d == 0 {
		es = append(es, invalid("bucket", "must be hour or day, got %q", q.Bucket))
	}
	switch {
	case q.Since.IsZero() || q.Until.IsZero():
		es = append(es, invalid("window", "since and until are required"))
	case !q.Since.Before(q.Until):
		es = append(es, invalid("window", "since must be before until"))
	case d > 0 && q.Until.Sub(q.Since.Truncate(d)) > MaxDashboardBuckets*d:
		es = append(es, invalid("window", "at most %d buckets", MaxDashboardBuckets))
	}
	return es.Err()
}

// DashboardCounts are the dashboard's counters, of the whole window or of
// one bucket.
type DashboardCounts struct {
	Evaluations   int64
	Executed      int64
	Blocked       int64
	PendingReview int64
	Approved      int64
	Denied        int64
}

// Add counts n actions in status st.
func (c *DashboardCounts) Add(st pdp.Status, n int64) {
	c.Evaluations += n
	switch st {
	case pdp.StatusAllowed:
		c.Executed += n
	case pdp.StatusApproved:
		c.Executed += n
		c.Approved += n
	case pdp.StatusBlocked:
		c.Blocked += n
	case pdp.StatusPendingReview:
		c.PendingReview += n
	case pdp.StatusDenied:
		c.Denied += n
	}
}

// SeverityCounts break violations down by the triggering hit's severity.
type SeverityCounts struct {
	Critical, High, Medium, Low int64
}

// PolicyViolations counts the violations one policy triggered.
type PolicyViolations struct {
	Policy     string
	Count      int64
	Severities SeverityCounts
}

// AgentViolationCount counts one agent's violations.
type AgentViolationCount struct {
	AgentID string
	Count   int64
}

// DashboardBucket is one step of the time series.
type DashboardBucket struct {
	Start time.Time // UTC, on a bucket boundary
	DashboardCounts
}

// DashboardReport is a computed dashboard.
type DashboardReport struct {
	Since, Until time.Time
	Bucket       Bucket
	Totals       DashboardCounts
	ByPolicy     []PolicyViolations
	ByAgent      []AgentViolationCount
	Series       []DashboardBucket
}

// DashboardBuilder accumulates what a driver's queries return into a
// DashboardReport, so every driver buckets, totals, sorts and zero-fills
// the same way. Drivers feed counts at any resolution that nests in the
// bucket (hour counts into day buckets).
type DashboardBuilder struct {
	r        DashboardReport
	first    time.Time
	step     time.Duration
	byPolicy map[string]*PolicyViolations
	byAgent  map[string]int64
}

// NewDashboardBuilder starts the report of a validated q.
func NewDashboardBuilder(q DashboardQuery) *DashboardBuilder {
	step := q.Bucket.Duration()
	first := q.Since.UTC().Truncate(step)
	last := q.Until.UTC().Add(-TimePrecision).Truncate(step)
	b := &DashboardBuilder{
		r:        DashboardReport{Since: q.Since.UTC(), Until: q.Until.UTC(), Bucket: q.Bucket},
		first:    first,
		step:     step,
		byPolicy: map[string]*PolicyViolations{},
		byAgent:  map[string]int64{},
	}
	for t := first; !t.After(last); t = t.Add(step) {
		b.r.Series = append(b.r.Series, DashboardBucket{Start: t})
	}
	return b
}

// Count adds n actions in status st evaluated at (or in the hour or day
// starting at) at.
func (b *DashboardBuilder) Count(at time.Time, st pdp.Status, n int64) {
	b.r.Totals.Add(st, n)
	if i := int(at.Sub(b.first) / b.step); i >= 0 && i < len(b.r.Series) {
		b.r.Series[i].Add(st, n)
	}
}

// PolicyViolations adds n violations triggered by policy at severity sev.
func (b *DashboardBuilder) PolicyViolations(policy string, sev pdp.Severity, n int64) {
	p := b.byPolicy[policy]
	if p == nil {
		p = &PolicyViolations{Policy: policy}
		b.byPolicy[policy] = p
	}
	p.Count += n
	switch sev {
	case pdp.SeverityCritical:
		p.Severities.Critical += n
	case pdp.SeverityHigh:
		p.Severities.High += n
	case pdp.SeverityMedium:
		p.Severities.Medium += n
	case pdp.SeverityLow:
		p.Severities.Low += n
	}
}

// AgentViolations adds n violations by agent.
func (b *DashboardBuilder) AgentViolations(agent string, n int64) { b.byAgent[agent] += n }

// Report returns the finished report; groups whose count is 0 are left out.
func (b *DashboardBuilder) Report() DashboardReport {
	r := b.r
	r.Series = slices.Clone(r.Series)
	r.ByPolicy = []PolicyViolations{}
	for _, p := range b.byPolicy {
		if p.Count > 0 {
			r.ByPolicy = append(r.ByPolicy, *p)
		}
	}
	slices.SortFunc(r.ByPolicy, func(x, y PolicyViolations) int {
		return cmp.Or(cmp.Compare(y.Count, x.Count), cmp.Compare(x.Policy, y.Policy))
	})
	r.ByAgent = []AgentViolationCount{}
	for a, n := range b.byAgent {
		if n > 0 {
			r.ByAgent = append(r.ByAgent, AgentViolationCount{AgentID: a, Count: n})
		}
	}
	slices.SortFunc(r.ByAgent, func(x, y AgentViolationCount) int {
		return cmp.Or(cmp.Compare(y.Count, x.Count), cmp.Compare(x.AgentID, y.AgentID))
	})
	return r
}

// ViolationQuery selects a page of an agent's violations.
type ViolationQuery struct {
	Since  time.Time // at or after, unless zero
	Until  time.Time // before, unless zero
	Limit  int       // ≤ 0 for no limit; the API layer bounds it
	Offset int
}

// AgentViolation is one evaluation of an agent with at least one hit.
type AgentViolation struct {
	ActionID        string
	Action          string
	Timestamp       time.Time // the action's CreatedAt
	Status          pdp.Status
	Event           string // ViolationEvent(Status)
	TriggeredPolicy string
	Severity        pdp.Severity
	Reason          string // policy_result.reason
	RiskScore       float64
	ViolationCount  int
	AuditSequence   int64  // the evaluation entry's sequence number, 0 if none
	AuditHash       string // its entry_hash, "" if none
}

// ViolationEvent names a violation by its action's current status, within
// the feed's documented set (docs/api.md §A9): warn-only hits leave an
// action allowed, action_executed; then action_blocked,
// action_pending_review, action_denied; a held action a human let through
// was executed too, action_executed (its status says approved).
func ViolationEvent(st pdp.Status) string {
	if st == pdp.StatusApproved {
		return EventActionExecuted
	}
	return EventForStatus(st)
}
