package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Approval is one entry of the approvals queue; ApprovalID is the held
// action's ActionID.
type Approval struct {
	ApprovalID      string     `json:"approval_id"`
	ActionID        string     `json:"action_id"`
	Action          string     `json:"action"`
	Connector       *string    `json:"connector"`
	AgentID         *string    `json:"agent_id"`
	Status          Status     `json:"status"`
	TriggeredPolicy *string    `json:"triggered_policy"`
	SubmittedAt     time.Time  `json:"submitted_at"`
	RiskScore       float64    `json:"risk_score"`
	ApproverID      *string    `json:"approver_id"`
	DecidedAt       *time.Time `json:"decided_at"`
	// Votes are who voted (enterprise mode); DecidedBy who decided.
	Votes     []Voter    `json:"votes"`
	DecidedBy *DecidedBy `json:"decided_by"`
}

// Voter is one vote on an approval: the identity and its key's role.
type Voter struct {
	ApproverID   string    `json:"approver_id"`
	ApproverRole *string   `json:"approver_role"`
	IsManager    bool      `json:"is_manager"`
	Decision     Status    `json:"decision"`
	VotedAt      time.Time `json:"voted_at"`
}

// DecidedBy is who decided an approval: the deciding identity (the key's
// owner), its key's role and manager flag, the key, and the approver_id
// label the request sent.
type DecidedBy struct {
	ApproverID    string  `json:"approver_id"`
	ApproverRole  *string `json:"approver_role"`
	IsManager     bool    `json:"is_manager"`
	KeyID         *string `json:"key_id"`
	ApproverLabel *string `json:"approver_label"`
}

// ApprovalList is a page of ListApprovals.
type ApprovalList struct {
	Approvals []Approval `json:"approvals"`
	Total     int        `json:"total"`
}

// ListApprovalsOptions filter and page ListApprovals. Status is
// pending_review (the default), approved, denied or "all".
type ListApprovalsOptions struct {
	Status string
	Limit  int
	Offset int
}

// Decision is a human's decision on a held action.
type Decision struct {
	// Decision is "approve" or "deny" ("" sends none: approve).
	Decision string `json:"decision,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// ApproverID is a display label: the approver is the deciding key's
	// owner. ApproverRole and IsManager come from the key too; sent, they
	// must agree with it.
	ApproverID   string `json:"approver_id,omitempty"`
	ApproverRole string `json:"approver_role,omitempty"`
	// Confirmation must be "ROLLBACK" to approve a destructive action in
	// solo mode.
	Confirmation string `json:"confirmation,omitempty"`
	IsManager    bool   `json:"is_manager,omitempty"`
	// Confidential keeps the reason out of the audit chain.
	Confidential bool `json:"confidential,omitempty"`
}

// DecisionResult is the answer of Decide. Status stays pending_review
// while an enterprise chain lacks approvals.
type DecisionResult struct {
	ApprovalID        string     `json:"approval_id"`
	Decision          string     `json:"decision"`
	Reason            *string    `json:"reason"`
	Status            Status     `json:"status"`
	ApproverID        string     `json:"approver_id"`
	ApproverLabel     *string    `json:"approver_label"`
	ApproverRole      *string    `json:"approver_role"`
	DecidedAt         *time.Time `json:"decided_at"`
	ApprovalsReceived *int       `json:"approvals_received,omitempty"`
	MinApprovals      *int       `json:"min_approvals,omitempty"`
}

// ListApprovals lists the approvals queue in audit order.
func (c *Client) ListApprovals(ctx context.Context, o ListApprovalsOptions) (*ApprovalList, error) {
	q := pageQuery(url.Values{}, o.Limit, o.Offset)
	if o.Status != "" {
		q.Set("status_filter", o.Status)
	}
	var l ApprovalList
	if err := c.do(ctx, http.MethodGet, "/v1/approvals", q, nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// Decide approves or denies a held action. Refusals are *Error values:
// CodeApprovalTooEarly (RetryAfter says when), CodeConfirmationRequired,
// CodeApproverNotEligible, CodeApprovalAlreadyDecided, CodeApprovalNotFound.
// Which decisions are admitted when depends on the tenant's approval mode
// (solo, team, enterprise); in enterprise mode an approval is one vote and
// DecisionResult.Status stays pending_review until enough have come.
func (c *Client) Decide(ctx context.Context, approvalID string, d Decision) (*DecisionResult, error) {
	var r DecisionResult
	if err := c.do(ctx, http.MethodPost, "/v1/approvals/"+url.PathEscape(approvalID)+"/decision", nil, d, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Counts are the dashboard's counters.
type Counts struct {
	Evaluations   int64 `json:"evaluations"`
	Executed      int64 `json:"executed"`
	Blocked       int64 `json:"blocked"`
	PendingReview int64 `json:"pending_review"`
	Approved      int64 `json:"approved"`
	Denied        int64 `json:"denied"`
}

// PolicyViolations counts one policy's violations.
type PolicyViolations struct {
	Policy            string           `json:"policy"`
	Count             int64            `json:"count"`
	SeverityBreakdown map[string]int64 `json:"severity_breakdown"`
}

// AgentCount counts one agent's violations; AgentID nil is actions
// submitted without an agent.
type AgentCount struct {
	AgentID *string `json:"agent_id"`
	Count   int64   `json:"count"`
}

// Bucket is one zero-filled interval of the time series.
type Bucket struct {
	Bucket time.Time `json:"bucket"`
	Counts
}

// Dashboard is the governance dashboard (Starter tier and up).
type Dashboard struct {
	Window             string             `json:"window"`
	Bucket             string             `json:"bucket"`
	Backend            string             `json:"backend"`
	Since              time.Time          `json:"since"`
	Until              time.Time          `json:"until"`
	Totals             Counts             `json:"totals"`
	ViolationsByPolicy []PolicyViolations `json:"violations_by_policy"`
	ViolationsByAgent  []AgentCount       `json:"violations_by_agent"`
	TimeSeries         []Bucket           `json:"time_series"`
}

// DashboardOptions choose the window (24h, 7d, 30d) and bucket (hour,
// day); empty: the server's defaults.
type DashboardOptions struct {
	Window string
	Bucket string
}

// Dashboard returns the governance dashboard.
func (c *Client) Dashboard(ctx context.Context, o DashboardOptions) (*Dashboard, error) {
	q := url.Values{}
	if o.Window != "" {
		q.Set("window", o.Window)
	}
	if o.Bucket != "" {
		q.Set("bucket", o.Bucket)
	}
	var d Dashboard
	if err := c.do(ctx, http.MethodGet, "/v1/control/dashboard", q, nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// AgentViolation is one evaluation of an agent with at least one hit.
type AgentViolation struct {
	ActionID        string    `json:"action_id"`
	Action          string    `json:"action"`
	Timestamp       time.Time `json:"timestamp"`
	Event           string    `json:"event"`
	Status          Status    `json:"status"`
	TriggeredPolicy *string   `json:"triggered_policy"`
	Severity        *string   `json:"severity"`
	Reason          *string   `json:"reason"`
	RiskScore       float64   `json:"risk_score"`
	ViolationCount  int       `json:"violation_count"`
	AuditChainIndex *int64    `json:"audit_chain_index"`
	AuditHash       *string   `json:"audit_hash"`
}

// AgentViolations is a page of an agent's violations, newest first.
type AgentViolations struct {
	AgentID    string           `json:"agent_id"`
	Total      int              `json:"total"`    // every match, across pages
	Returned   int              `json:"returned"` // this page's size
	Backend    string           `json:"backend"`
	Violations []AgentViolation `json:"violations"`
	Limit      int              `json:"limit"`
	Offset     int              `json:"offset"`
}

// ViolationsOptions page and bound AgentViolations.
type ViolationsOptions struct {
	Limit, Offset int
	Since, Until  time.Time
}

// AgentViolations lists an agent's violations.
func (c *Client) AgentViolations(ctx context.Context, agentID string, o ViolationsOptions) (*AgentViolations, error) {
	q := pageQuery(url.Values{}, o.Limit, o.Offset)
	timeQuery(q, "since", o.Since)
	timeQuery(q, "until", o.Until)
	var v AgentViolations
	if err := c.do(ctx, http.MethodGet, "/v1/control/agents/"+url.PathEscape(agentID)+"/violations", q, nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// AuditPage is a page of the audit chain, newest first.
type AuditPage struct {
	Entries []AuditEntry `json:"entries"`
	Total   int          `json:"total"`
	Limit   int          `json:"limit"`
	Offset  int          `json:"offset"`
}

// AuditOptions filter and page ListAudit.
type AuditOptions struct {
	Limit, Offset int
	Since, Until  time.Time
	// EventType selects one event, e.g. "action_blocked", or several,
	// comma-separated: "action_blocked,action_pending_review".
	EventType string
}

// ListAudit pages through the tenant's audit chain.
func (c *Client) ListAudit(ctx context.Context, o AuditOptions) (*AuditPage, error) {
	q := pageQuery(url.Values{}, o.Limit, o.Offset)
	timeQuery(q, "since", o.Since)
	timeQuery(q, "until", o.Until)
	if o.EventType != "" {
		q.Set("event_type", o.EventType)
	}
	var p AuditPage
	if err := c.do(ctx, http.MethodGet, "/v1/audit", q, nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// AuditVerification is the answer of VerifyAudit.
type AuditVerification struct {
	Valid bool `json:"valid"`
	// RetainedFromSequence is where the retained chain starts (1 unless
	// retention pruned older entries).
	RetainedFromSequence int64     `json:"retained_from_sequence"`
	Entries              int       `json:"entries"`
	FirstBadSequence     *int64    `json:"first_bad_sequence"`
	Timestamp            time.Time `json:"timestamp"`
	LastVerifiedSequence int64     `json:"last_verified_sequence"`
	LastVerifiedHash     string    `json:"last_verified_hash"`
}

// VerifyAudit recomputes the tenant's whole audit chain on the server.
func (c *Client) VerifyAudit(ctx context.Context) (*AuditVerification, error) {
	var v AuditVerification
	if err := c.do(ctx, http.MethodGet, "/v1/audit/verify", nil, nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// AuditExportOptions select what ExportAudit writes.
type AuditExportOptions struct {
	// Format is "csv" (the default), "json" or "jsonl".
	Format       string
	Since, Until time.Time
	EventType    string
}

// ExportAudit streams the tenant's audit chain (Starter and up), in chain
// order, in o.Format, into w, and returns how many bytes it wrote.
func (c *Client) ExportAudit(ctx context.Context, o AuditExportOptions, w io.Writer) (int64, error) {
	q := url.Values{}
	if o.Format != "" {
		q.Set("format", o.Format)
	}
	timeQuery(q, "since", o.Since)
	timeQuery(q, "until", o.Until)
	if o.EventType != "" {
		q.Set("event_type", o.EventType)
	}
	u := c.base.JoinPath("/v1/audit/export")
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, fmt.Errorf("gatehouse client: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("gatehouse client: GET /v1/audit/export: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
		return 0, decodeError(resp, raw)
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("gatehouse client: GET /v1/audit/export: %w", err)
	}
	return n, nil
}

// Usage is GET /v1/usage: the tenant's tier, what it may do and how much
// of it it uses.
type Usage struct {
	TenantID     string         `json:"tenant_id"`
	Tier         string         `json:"tier"`
	Features     map[string]any `json:"features"` // bool per feature; approval_modes a list
	ApprovalMode string         `json:"approval_mode"`
	Limits       struct {
		CustomPolicies *int `json:"custom_policies"` // nil: unlimited
		RateLimit      *struct {
			RequestsPerSecond float64 `json:"requests_per_second"`
			Burst             int     `json:"burst"`
		} `json:"rate_limit"` // nil: unlimited
	} `json:"limits"`
	Usage struct {
		CustomPolicies   int `json:"custom_policies"`
		PendingApprovals int `json:"pending_approvals"`
	} `json:"usage"`
}

// Allows reports whether the tenant's tier includes feature, e.g.
// "agent_scoped_policies".
func (u *Usage) Allows(feature string) bool {
	b, _ := u.Features[feature].(bool)
	return b
}

// GetUsage returns the key's tenant's usage.
func (c *Client) GetUsage(ctx context.Context) (*Usage, error) {
	var u Usage
	if err := c.do(ctx, http.MethodGet, "/v1/usage", nil, nil, &u); err != nil {
		return nil, err
	}
	return &u, nil
}
