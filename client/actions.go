package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Status is an action's outcome.
type Status string

// Statuses. Evaluation yields the first three; a human decision on a
// pending_review action yields approved or denied.
const (
	StatusAllowed       Status = "allowed"
	StatusBlocked       Status = "blocked"
	StatusPendingReview Status = "pending_review"
	StatusApproved      Status = "approved"
	StatusDenied        Status = "denied"
)

// Action is what an agent asks to do.
type Action struct {
	// Action names it (at most 200 characters), e.g. "send_email".
	Action string `json:"action"`
	// Params are its parameters (at most 64 KiB as JSON).
	Params map[string]any `json:"params,omitempty"`
	// AgentID selects the agent's policies.
	AgentID string `json:"agent_id,omitempty"`
	// StepType is thought, action (default), observation, output, error
	// or policy_check.
	StepType string `json:"step_type,omitempty"`
}

// Violation is one rule that fired.
type Violation struct {
	Policy      string  `json:"policy"`
	Scope       string  `json:"scope"`
	Rule        int     `json:"rule"`
	Severity    string  `json:"severity"`
	OnViolation string  `json:"on_violation"`
	Reason      string  `json:"reason"`
	Match       string  `json:"match"`
	Confidence  float64 `json:"confidence"`
}

// ShadowHit is one hit of a policy in shadow mode; WouldStatus is what
// the hit alone would have made the action's status.
type ShadowHit struct {
	Policy      string `json:"policy"`
	Scope       string `json:"scope"`
	Rule        int    `json:"rule"`
	Severity    string `json:"severity"`
	OnViolation string `json:"on_violation"`
	Reason      string `json:"reason"`
	Match       string `json:"match"`
	WouldStatus string `json:"would_status"`
}

// PolicyResult is the decision's detail.
type PolicyResult struct {
	ActionID          string      `json:"action_id"`
	Status            Status      `json:"status"`
	ShadowStatus      Status      `json:"shadow_status,omitempty"`
	RiskScore         float64     `json:"risk_score"`
	EvaluationTimeMS  float64     `json:"evaluation_time_ms"`
	PoliciesEvaluated []string    `json:"policies_evaluated"`
	TriggeredPolicy   *string     `json:"triggered_policy"`
	Severity          *string     `json:"severity"`
	Reason            *string     `json:"reason"`
	Violations        []Violation `json:"violations"`
	Warnings          []Violation `json:"warnings"`
	// Shadow lists the hits of policies in shadow mode (never enforced);
	// empty when none fired.
	Shadow []ShadowHit `json:"shadow,omitempty"`
}

// ActionResult is the answer of a submission.
type ActionResult struct {
	ActionID     string       `json:"action_id"`
	Action       string       `json:"action"`
	AgentID      *string      `json:"agent_id"`
	Status       Status       `json:"status"`
	PolicyResult PolicyResult `json:"policy_result"`
	Message      string       `json:"message"`
	TraceID      string       `json:"trace_id"`
}

// Allowed reports whether the agent may go ahead now. Only "allowed" is;
// pending_review must wait for a human (WaitForDecision).
func (r *ActionResult) Allowed() bool { return r.Status == StatusAllowed }

// ActionRecord is a recorded action (GetAction, ListActions).
type ActionRecord struct {
	ActionID     string        `json:"action_id"`
	Action       string        `json:"action"`
	AgentID      *string       `json:"agent_id"`
	Status       Status        `json:"status"`
	PolicyResult *PolicyResult `json:"policy_result"`
	Message      string        `json:"message"`
	// Reason is the approver's reason once one was given, else the
	// decision's.
	Reason     *string    `json:"reason"`
	ApproverID *string    `json:"approver_id"`
	DecidedAt  *time.Time `json:"decided_at"`
	CreatedAt  time.Time  `json:"created_at"`
	TraceID    *string    `json:"trace_id"`
}

// ActionList is a page of ListActions.
type ActionList struct {
	Actions []ActionRecord `json:"actions"`
	Total   int            `json:"total"`
}

// ListActionsOptions filter and page ListActions; zero values are the
// server's defaults (newest 50, any status).
type ListActionsOptions struct {
	Status Status
	Limit  int
	Offset int
}

// AuditEntry is one entry of the tenant's audit chain.
type AuditEntry struct {
	SequenceNumber int64           `json:"sequence_number"`
	Timestamp      string          `json:"timestamp"` // exactly the text the hash covers
	Event          string          `json:"event"`
	Operation      string          `json:"operation"`   // Novyx's name for Event
	AgentID        *string         `json:"agent_id"`    // metadata.agent_id
	ArtifactID     *string         `json:"artifact_id"` // metadata.action_id, else policy_name
	ContentHash    string          `json:"content_hash"`
	Metadata       json.RawMessage `json:"metadata"`
	PrevHash       string          `json:"prev_hash"`
	EntryHash      string          `json:"entry_hash"`
}

// Vote is one approver's vote on a held action.
type Vote struct {
	ApproverID   string    `json:"approver_id"`
	Decision     Status    `json:"decision"`
	ApproverRole *string   `json:"approver_role"`
	IsManager    bool      `json:"is_manager"`
	Reason       *string   `json:"reason"`
	VotedAt      time.Time `json:"voted_at"`
}

// ApprovalState is the review of a held action (Explanation.Approval).
type ApprovalState struct {
	ApprovalID        string     `json:"approval_id"`
	Status            Status     `json:"status"`
	Mode              string     `json:"mode"`
	ApproverID        *string    `json:"approver_id"`
	Reason            *string    `json:"reason"`
	DecidedAt         *time.Time `json:"decided_at"`
	Votes             []Vote     `json:"votes"`
	ApprovalsReceived *int       `json:"approvals_received,omitempty"`
	MinApprovals      *int       `json:"min_approvals,omitempty"`
	Destructive       bool       `json:"destructive"`
}

// Explanation is the answer of ExplainAction.
type Explanation struct {
	ActionID     string         `json:"action_id"`
	Action       string         `json:"action"`
	AgentID      *string        `json:"agent_id"`
	Connector    *string        `json:"connector"`
	Operation    string         `json:"operation"`
	SubmittedAt  time.Time      `json:"submitted_at"`
	PolicyResult *PolicyResult  `json:"policy_result"`
	Approval     *ApprovalState `json:"approval"`
	AuditTrail   []AuditEntry   `json:"audit_trail"`
	Summary      string         `json:"summary"`
}

// SubmitAction asks Gatehouse to decide a. Every outcome — allowed,
// blocked, pending_review — is a result, not an error. An error means the
// action was not decided; in particular CodeEvaluationUnavailable (503)
// means it is not allowed, and Error.RetryAfter may say when to retry.
func (c *Client) SubmitAction(ctx context.Context, a Action) (*ActionResult, error) {
	var r ActionResult
	if err := c.do(ctx, http.MethodPost, "/v1/actions", nil, a, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// SubmitConnectorAction decides the action "<connector>.<operation>"
// (POST /v1/actions/{connector}/{operation}); operation may contain "/",
// which becomes ".". params are the action's params; agentID and stepType
// are optional.
func (c *Client) SubmitConnectorAction(ctx context.Context, connector, operation string, params map[string]any, agentID, stepType string) (*ActionResult, error) {
	if connector == "" || strings.Trim(operation, "/") == "" {
		return nil, errors.New("gatehouse client: connector and operation are required")
	}
	body := make(map[string]any, len(params)+2)
	for k, v := range params {
		body[k] = v
	}
	if agentID != "" {
		body["agent_id"] = agentID
	}
	if stepType != "" {
		body["step_type"] = stepType
	}
	segs := strings.Split(strings.Trim(operation, "/"), "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	var r ActionResult
	if err := c.do(ctx, http.MethodPost, "/v1/actions/"+url.PathEscape(connector)+"/"+strings.Join(segs, "/"), nil, body, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// GetAction returns a recorded action (CodeActionNotFound if the tenant
// has none of that id).
func (c *Client) GetAction(ctx context.Context, actionID string) (*ActionRecord, error) {
	var r ActionRecord
	if err := c.do(ctx, http.MethodGet, "/v1/actions/"+url.PathEscape(actionID), nil, nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// ListActions lists recorded actions, newest first.
func (c *Client) ListActions(ctx context.Context, o ListActionsOptions) (*ActionList, error) {
	q := pageQuery(url.Values{}, o.Limit, o.Offset)
	if o.Status != "" {
		q.Set("status", string(o.Status))
	}
	var l ActionList
	if err := c.do(ctx, http.MethodGet, "/v1/actions", q, nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// ExplainAction says why an action was decided as it was, with its
// approval and audit trail.
func (c *Client) ExplainAction(ctx context.Context, actionID string) (*Explanation, error) {
	var e Explanation
	if err := c.do(ctx, http.MethodGet, "/v1/actions/"+url.PathEscape(actionID)+"/explain", nil, nil, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// WaitForDecision polls a pending_review action every interval (default
// 1 s) until a human approves or denies it, and returns it. It returns at
// once for an action that is not pending, and ctx.Err() when ctx ends
// first — bound the wait with a deadline; an agent should not wait
// forever for a human.
func (c *Client) WaitForDecision(ctx context.Context, actionID string, interval time.Duration) (*ActionRecord, error) {
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		r, err := c.GetAction(ctx, actionID)
		if err != nil {
			return nil, err
		}
		if r.Status != StatusPendingReview {
			return r, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}
