package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Rule is one rule of a policy (docs/api.md §A3).
type Rule struct {
	// Match is an RE2 regular expression, matched case-insensitively
	// against the action text.
	Match string `json:"match"`
	// Severity is critical, high, medium or low.
	Severity string `json:"severity"`
	// OnViolation is block, require_approval or warn; empty: the
	// severity's default.
	OnViolation string `json:"on_violation,omitempty"`
	// Reason is reported when the rule fires; {match} is replaced by the
	// matched text.
	Reason string `json:"reason,omitempty"`
	// ContextRequires must also match for the rule to fire.
	ContextRequires string `json:"context_requires,omitempty"`
	// Confidence is 0..1; nil: 0.85.
	Confidence *float64 `json:"confidence,omitempty"`
}

// Policy is a policy document as written (POST and PUT).
type Policy struct {
	Name        string `json:"name,omitempty"`
	Description string `json:"description,omitempty"`
	// AgentID makes the policy agent-scoped (Pro tier and up).
	AgentID            string   `json:"agent_id,omitempty"`
	StepTypes          []string `json:"step_types,omitempty"`
	WhitelistedDomains []string `json:"whitelisted_domains,omitempty"`
	Rules              []Rule   `json:"rules"`
	// Enabled nil means true.
	Enabled *bool `json:"enabled,omitempty"`
	// Mode is enforce (the default when empty) or shadow: a shadow policy
	// is evaluated, but its hits only go to PolicyResult.Shadow.
	Mode string `json:"mode,omitempty"`
}

// PolicyWrite is the answer of a create, update or delete.
type PolicyWrite struct {
	PolicyName string  `json:"policy_name"`
	AgentID    *string `json:"agent_id"`
	// Scope is tenant or agent.
	Scope string `json:"scope"`
	// Action is created, updated or disabled.
	Action  string `json:"action"`
	Version int    `json:"version"`
	Message string `json:"message"`
}

// PolicySummary is one entry of ListPolicies. Built-ins have Source
// "builtin" and no scope, version or times.
type PolicySummary struct {
	Name        string     `json:"name"`
	Enabled     bool       `json:"enabled"`
	Description string     `json:"description"`
	Source      string     `json:"source"`
	AgentID     *string    `json:"agent_id"`
	Scope       string     `json:"scope,omitempty"`
	Version     int        `json:"version,omitempty"`
	CreatedAt   *time.Time `json:"created_at,omitempty"`
	UpdatedAt   *time.Time `json:"updated_at,omitempty"`
	// Effective is set when listing for an agent: whether the policy
	// applies to it (an enabled agent-scoped copy shadows the tenant's).
	Effective *bool `json:"effective,omitempty"`
	// Mode is enforce or shadow (custom policies).
	Mode string `json:"mode,omitempty"`
}

// PolicyList is the answer of ListPolicies.
type PolicyList struct {
	Policies      []PolicySummary `json:"policies"`
	Mode          string          `json:"mode"`
	Connectors    []string        `json:"connectors"`
	ApprovalModes []string        `json:"approval_modes"`
}

// PolicyConfig is a stored policy's document, with defaults applied.
type PolicyConfig struct {
	Name               string   `json:"name"`
	Description        string   `json:"description"`
	Rules              []Rule   `json:"rules"`
	StepTypes          []string `json:"step_types"`
	WhitelistedDomains []string `json:"whitelisted_domains"`
}

// PolicyDetail is the answer of GetPolicy.
type PolicyDetail struct {
	Name        string       `json:"name"`
	Description string       `json:"description"`
	Source      string       `json:"source"`
	AgentID     *string      `json:"agent_id"`
	Scope       string       `json:"scope"`
	Enabled     bool         `json:"enabled"`
	Version     int          `json:"version"`
	Mode        string       `json:"mode,omitempty"`
	Config      PolicyConfig `json:"config"`
	CreatedAt   *time.Time   `json:"created_at"`
	UpdatedAt   *time.Time   `json:"updated_at"`
}

func agentQuery(agentID string) url.Values {
	q := url.Values{}
	if agentID != "" {
		q.Set("agent_id", agentID)
	}
	return q
}

// PutPolicy creates the policy, or updates the one of its name and scope
// (re-enabling it if it was disabled). PolicyWrite.Action says which.
func (c *Client) PutPolicy(ctx context.Context, p Policy) (*PolicyWrite, error) {
	var w PolicyWrite
	if err := c.do(ctx, http.MethodPost, "/v1/control/policies", nil, p, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// ReplacePolicy replaces the existing policy name at p's scope; p.Name, if
// set, must equal name.
func (c *Client) ReplacePolicy(ctx context.Context, name string, p Policy) (*PolicyWrite, error) {
	var w PolicyWrite
	if err := c.do(ctx, http.MethodPut, "/v1/control/policies/"+url.PathEscape(name), nil, p, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// ListPolicies lists the built-ins, the tenant-wide policies and, with an
// agentID, that agent's.
func (c *Client) ListPolicies(ctx context.Context, agentID string) (*PolicyList, error) {
	var l PolicyList
	if err := c.do(ctx, http.MethodGet, "/v1/control/policies", agentQuery(agentID), nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// GetPolicy returns the policy name: the agent's copy with an agentID, the
// tenant-wide one without.
func (c *Client) GetPolicy(ctx context.Context, name, agentID string) (*PolicyDetail, error) {
	var d PolicyDetail
	if err := c.do(ctx, http.MethodGet, "/v1/control/policies/"+url.PathEscape(name), agentQuery(agentID), nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// DeletePolicy disables the policy (a soft delete; PutPolicy re-enables
// it). Built-ins cannot be deleted (CodeCannotDeleteBuiltin).
func (c *Client) DeletePolicy(ctx context.Context, name, agentID string) (*PolicyWrite, error) {
	var w PolicyWrite
	if err := c.do(ctx, http.MethodDelete, "/v1/control/policies/"+url.PathEscape(name), agentQuery(agentID), nil, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// PolicyRego returns the Rego module the policy is enforced with.
func (c *Client) PolicyRego(ctx context.Context, name, agentID string) (string, error) {
	b, _, err := c.send(ctx, http.MethodGet, "/v1/control/policies/"+url.PathEscape(name)+"/rego", agentQuery(agentID), nil)
	if err != nil {
		return "", err
	}
	return string(b), nil
}
