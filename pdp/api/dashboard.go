package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// The governance dashboard (docs/api.md §A9), feature governance_dashboard
// (Starter and up). The store computes it from its rollups (see
// store.Dashboards for what is counted where); this file checks the tier
// and the parameters and renders it.

// dashboardWindows are the windows the dashboard offers, ending now.
var dashboardWindows = []struct {
	name string
	d    time.Duration
}{{"24h", 24 * time.Hour}, {"7d", 7 * 24 * time.Hour}, {"30d", 30 * 24 * time.Hour}}

const defaultDashboardWindow = "7d"

// paramError is a 400 with code, naming the bad parameters in its message
// and in "params".
func paramError(code string, es pdp.ValidationErrors) *apiError {
	params := make([]string, len(es))
	for i, e := range es {
		params[i] = e.Field
	}
	return &apiError{Status: http.StatusBadRequest, Code: code, Message: es.Error(), Extra: map[string]any{"params": params}, cause: es}
}

type countsView struct {
	Evaluations   int64 `json:"evaluations"`
	Executed      int64 `json:"executed"`
	Blocked       int64 `json:"blocked"`
	PendingReview int64 `json:"pending_review"`
	Approved      int64 `json:"approved"`
	Denied        int64 `json:"denied"`
}

func viewCounts(c store.DashboardCounts) countsView {
	return countsView{c.Evaluations, c.Executed, c.Blocked, c.PendingReview, c.Approved, c.Denied}
}

type bucketView struct {
	Bucket string `json:"bucket"` // the bucket's start, RFC 3339 UTC
	countsView
}

type policyCountView struct {
	Policy            string           `json:"policy"`
	Count             int64            `json:"count"`
	SeverityBreakdown map[string]int64 `json:"severity_breakdown"`
}

type agentCountView struct {
	AgentID *string `json:"agent_id"` // null: actions submitted without an agent
	Count   int64   `json:"count"`
}

type dashboardView struct {
	Window             string            `json:"window"`
	Bucket             store.Bucket      `json:"bucket"`
	Backend            string            `json:"backend"`
	Since              string            `json:"since"`
	Until              string            `json:"until"`
	Totals             countsView        `json:"totals"`
	ViolationsByPolicy []policyCountView `json:"violations_by_policy"`
	ViolationsByAgent  []agentCountView  `json:"violations_by_agent"`
	TimeSeries         []bucketView      `json:"time_series"`
	// ShadowHitsByPolicy counts the hits of policies in shadow mode in the
	// window's decisions (policy_result.shadow entries), most first.
	ShadowHitsByPolicy []shadowCountView `json:"shadow_hits_by_policy"`
	// DecisionsByApprover counts the window's final decisions per
	// deciding identity (README "Who may do what").
	DecisionsByApprover []approverCountView `json:"decisions_by_approver"`
}

type approverCountView struct {
	ApproverID string `json:"approver_id"`
	Approved   int64  `json:"approved"`
	Denied     int64  `json:"denied"`
}

type shadowCountView struct {
	Policy string `json:"policy"`
	Count  int64  `json:"count"`
}

func (s *server) dashboard(c *gin.Context) {
	t := tenant(c)
	if err := registry.RequireFeature(t.Tier, registry.FeatureGovernanceDashboard); err != nil {
		fail(c, err)
		return
	}
	var es pdp.ValidationErrors
	window := c.Query("window")
	if window == "" {
		window = defaultDashboardWindow
	}
	var length time.Duration
	for _, w := range dashboardWindows {
		if w.name == window {
			length = w.d
		}
	}
	if length == 0 {
		es = append(es, &pdp.ValidationError{Field: "window", Reason: fmt.Sprintf("must be one of 24h, 7d, 30d (got %q)", truncate(window, 32))})
	}
	bucket := store.Bucket(c.Query("bucket"))
	switch {
	case bucket == "" && window == "24h":
		bucket = store.BucketHour
	case bucket == "":
		bucket = store.BucketDay
	case bucket.Duration() == 0:
		es = append(es, &pdp.ValidationError{Field: "bucket", Reason: fmt.Sprintf("must be hour or day (got %q)", truncate(string(bucket), 32))})
	}
	if len(es) > 0 {
		fail(c, paramError(pdp.CodeInvalidDashboardParam, es))
		return
	}
	until := s.gov.now().UTC()
	r, err := s.gov.st.Dashboard(c.Request.Context(), t.ID, store.DashboardQuery{Since: until.Add(-length), Until: until, Bucket: bucket})
	if err != nil {
		fail(c, err)
		return
	}
	v := dashboardView{
		Window:             window,
		Bucket:             bucket,
		Backend:            s.gov.st.Backend(),
		Since:              timestamp(r.Since),
		Until:              timestamp(r.Until),
		Totals:             viewCounts(r.Totals),
		ViolationsByPolicy: make([]policyCountView, len(r.ByPolicy)),
		ViolationsByAgent:  make([]agentCountView, len(r.ByAgent)),
		TimeSeries:         make([]bucketView, len(r.Series)),
	}
	for i, p := range r.ByPolicy {
		v.ViolationsByPolicy[i] = policyCountView{Policy: p.Policy, Count: p.Count, SeverityBreakdown: map[string]int64{
			string(pdp.SeverityCritical): p.Severities.Critical,
			string(pdp.SeverityHigh):     p.Severities.High,
			string(pdp.SeverityMedium):   p.Severities.Medium,
			string(pdp.SeverityLow):      p.Severities.Low,
		}}
	}
	// Agentless actions are counted under totals only: a client keys this
	// list by agent, and a null key breaks it (docs/api.md §A9).
	v.ViolationsByAgent = v.ViolationsByAgent[:0]
	for _, a := range r.ByAgent {
		if a.AgentID != "" {
			v.ViolationsByAgent = append(v.ViolationsByAgent, agentCountView{AgentID: agentPtr(a.AgentID), Count: a.Count})
		}
	}
	for i, b := range r.Series {
		v.TimeSeries[i] = bucketView{Bucket: b.Start.UTC().Format(time.RFC3339), countsView: viewCounts(b.DashboardCounts)}
	}
	hits, err := s.st.ShadowHitsByPolicy(c.Request.Context(), t.ID, r.Since, r.Until)
	if err != nil {
		fail(c, err)
		return
	}
	v.ShadowHitsByPolicy = make([]shadowCountView, len(hits))
	for i, h := range hits {
		v.ShadowHitsByPolicy[i] = shadowCountView{Policy: h.Policy, Count: h.Count}
	}
	byApprover, err := s.gov.st.DecisionsByApprover(c.Request.Context(), t.ID, r.Since, r.Until.Add(store.TimePrecision))
	if err != nil {
		fail(c, err)
		return
	}
	v.DecisionsByApprover = make([]approverCountView, len(byApprover))
	for i, a := range byApprover {
		v.DecisionsByApprover[i] = approverCountView{ApproverID: a.ApproverID, Approved: a.Approved, Denied: a.Denied}
	}
	writeJSON(c, http.StatusOK, v)
}

// violationView is one entry of an agent's violations.
type violationView struct {
	ActionID        string     `json:"action_id"`
	Action          string     `json:"action"`
	Timestamp       string     `json:"timestamp"`
	Event           string     `json:"event"`
	Status          pdp.Status `json:"status"`
	TriggeredPolicy *string    `json:"triggered_policy"`
	Severity        *string    `json:"severity"`
	Reason          *string    `json:"reason"`
	RiskScore       float64    `json:"risk_score"`
	ViolationCount  int        `json:"violation_count"`
	AuditChainIndex any        `json:"audit_chain_index"` // null: recorded without an entry
	AuditHash       any        `json:"audit_hash"`
}

func (s *server) agentViolations(c *gin.Context) {
	t := tenant(c)
	if err := registry.RequireFeature(t.Tier, registry.FeatureGovernanceDashboard); err != nil {
		fail(c, err)
		return
	}
	var es pdp.ValidationErrors
	agentID := c.Param("agent_id")
	addProblem(&es, registry.CheckAgentID("agent_id", agentID))
	limit := queryInt(c, "limit", defaultListLimit, 1, maxListLimit, &es)
	offset := queryInt(c, "offset", 0, 0, maxListOffset, &es)
	since := queryTime(c, "since", &es)
	until := queryTime(c, "until", &es)
	checkWindow(since, until, &es)
	if len(es) > 0 {
		fail(c, paramError(pdp.CodeInvalidViolationsParam, es))
		return
	}
	vs, total, err := s.gov.st.AgentViolations(c.Request.Context(), t.ID, agentID, store.ViolationQuery{Since: since, Until: until, Limit: limit, Offset: offset})
	if err != nil {
		fail(c, err)
		return
	}
	items := make([]violationView, len(vs))
	for i, v := range vs {
		items[i] = violationView{
			ActionID:        v.ActionID,
			Action:          v.Action,
			Timestamp:       timestamp(v.Timestamp),
			Event:           v.Event,
			Status:          v.Status,
			TriggeredPolicy: agentPtr(v.TriggeredPolicy),
			Severity:        agentPtr(string(v.Severity)),
			Reason:          agentPtr(v.Reason),
			RiskScore:       v.RiskScore,
			ViolationCount:  v.ViolationCount,
			AuditChainIndex: nil,
			AuditHash:       optString(v.AuditHash),
		}
		if v.AuditSequence > 0 {
			items[i].AuditChainIndex = v.AuditSequence
		}
	}
	// total: every match of the query; returned: this page's size.
	writeJSON(c, http.StatusOK, gin.H{"agent_id": agentID, "total": total, "returned": len(items), "backend": s.gov.st.Backend(), "violations": items, "limit": limit, "offset": offset})
}
