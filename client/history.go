package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// PolicyVersion is one entry of a policy's history.
type PolicyVersion struct {
	Version int `json:"version"`
	// Action is created, updated, disabled, enabled (re-enabled),
	// rolled_back or imported (stored before history was kept).
	Action    string    `json:"action"`
	Enabled   bool      `json:"enabled"`
	CreatedAt time.Time `json:"created_at"`
	// Actor is the ID of the API key that wrote the version.
	Actor          *string `json:"actor"`
	RolledBackFrom *int    `json:"rolled_back_from"`
	// ContentDigest is the SHA-256 of the version's content, as its audit
	// entry records it.
	ContentDigest string `json:"content_digest"`
}

// PolicyHistory is the answer of PolicyVersions.
type PolicyHistory struct {
	PolicyName string          `json:"policy_name"`
	AgentID    *string         `json:"agent_id"`
	Versions   []PolicyVersion `json:"versions"`
}

// PolicyVersions returns the policy's versions at one scope, newest first.
func (c *Client) PolicyVersions(ctx context.Context, name, agentID string) (*PolicyHistory, error) {
	var h PolicyHistory
	if err := c.do(ctx, http.MethodGet, "/v1/control/policies/"+url.PathEscape(name)+"/versions", agentQuery(agentID), nil, &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// GetPolicyVersion returns the policy exactly as it was at version.
func (c *Client) GetPolicyVersion(ctx context.Context, name, agentID string, version int) (*PolicyDetail, error) {
	var d PolicyDetail
	path := "/v1/control/policies/" + url.PathEscape(name) + "/versions/" + strconv.Itoa(version)
	if err := c.do(ctx, http.MethodGet, path, agentQuery(agentID), nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// PolicyDiff is what changed between two versions. Its parts are kept as
// JSON (see the OpenAPI document's PolicyDiff for their shape).
type PolicyDiff struct {
	PolicyName string          `json:"policy_name"`
	AgentID    *string         `json:"agent_id"`
	From       int             `json:"from"`
	To         int             `json:"to"`
	Identical  bool            `json:"identical"`
	Metadata   json.RawMessage `json:"metadata"`
	Lists      json.RawMessage `json:"lists"`
	Rules      json.RawMessage `json:"rules"`
}

// DiffPolicy compares version from with version to.
func (c *Client) DiffPolicy(ctx context.Context, name, agentID string, from, to int) (*PolicyDiff, error) {
	q := agentQuery(agentID)
	q.Set("from", strconv.Itoa(from))
	q.Set("to", strconv.Itoa(to))
	var d PolicyDiff
	if err := c.do(ctx, http.MethodGet, "/v1/control/policies/"+url.PathEscape(name)+"/diff", q, nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// RollbackPolicy writes a new version whose content equals version's.
func (c *Client) RollbackPolicy(ctx context.Context, name, agentID string, version int) (*PolicyWrite, error) {
	body := map[string]any{"version": version}
	if agentID != "" {
		body["agent_id"] = agentID
	}
	var w PolicyWrite
	if err := c.do(ctx, http.MethodPost, "/v1/control/policies/"+url.PathEscape(name)+"/rollback", nil, body, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// ImpactRequest is a draft change and the window to replay. Set exactly
// one of Policy, Disable and Rollback.
type ImpactRequest struct {
	// Policy is the policy document to create or replace: a Policy, or
	// the document's JSON as a json.RawMessage (checked as strictly as a
	// write checks it).
	Policy any `json:"policy,omitempty"`
	// Disable names a policy to disable; AgentID its agent-scoped copy.
	Disable  string          `json:"disable,omitempty"`
	AgentID  string          `json:"agent_id,omitempty"`
	Rollback *ImpactRollback `json:"rollback,omitempty"`
	// Since and Until bound the window (zero: the 7 days before now).
	Since *time.Time `json:"since,omitempty"`
	Until *time.Time `json:"until,omitempty"`
	// Limit is the most recent actions to replay (0: 10,000; at most
	// 100,000); TimeBudgetMS bounds the replay (0: 10,000; at most 30,000).
	Limit        int `json:"limit,omitempty"`
	TimeBudgetMS int `json:"time_budget_ms,omitempty"`
}

// ImpactRollback is a rollback draft.
type ImpactRollback struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	AgentID string `json:"agent_id,omitempty"`
}

// ImpactCount is one agent's or policy's changes.
type ImpactCount struct {
	AgentID     *string        `json:"agent_id,omitempty"`
	Policy      string         `json:"policy,omitempty"`
	Evaluated   int            `json:"evaluated,omitempty"`
	Changed     int            `json:"changed"`
	Transitions map[string]int `json:"transitions"`
}

// ImpactExample is one changed action.
type ImpactExample struct {
	ActionID  string    `json:"action_id"`
	AgentID   *string   `json:"agent_id"`
	Action    string    `json:"action"`
	CreatedAt time.Time `json:"created_at"`
	Before    string    `json:"before"`
	After     string    `json:"after"`
	Reason    string    `json:"reason"`
}

// ImpactResult is what a change would have done to the recorded actions.
type ImpactResult struct {
	Recorded    bool            `json:"recorded"`
	Evaluated   int             `json:"evaluated"`
	Changed     int             `json:"changed"`
	Failed      int             `json:"failed"`
	Transitions map[string]int  `json:"transitions"`
	ByAgent     []ImpactCount   `json:"by_agent"`
	ByPolicy    []ImpactCount   `json:"by_policy"`
	Examples    []ImpactExample `json:"examples"`
	// Partial: the time budget ran out; Truncated: the window held more
	// actions than the limit.
	Partial   bool `json:"partial"`
	Truncated bool `json:"truncated"`
	Window    struct {
		Since        time.Time `json:"since"`
		Until        time.Time `json:"until"`
		Limit        int       `json:"limit"`
		TimeBudgetMS int       `json:"time_budget_ms"`
	} `json:"window"`
	CompileMS     float64 `json:"compile_ms"`
	FirstResultMS float64 `json:"first_result_ms"`
	DurationMS    float64 `json:"duration_ms"`
}

// PolicyImpact replays recorded actions through the current policies and
// through the draft change, recording nothing.
func (c *Client) PolicyImpact(ctx context.Context, req ImpactRequest) (*ImpactResult, error) {
	var r ImpactResult
	if err := c.do(ctx, http.MethodPost, "/v1/control/policies/impact", nil, req, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
