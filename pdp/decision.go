package pdp

// Status is the outcome of an action as the API reports it.
type Status string

// Statuses. The first three come from evaluation; approved and denied from
// a human decision on a pending_review action.
const (
	StatusAllowed       Status = "allowed"
	StatusBlocked       Status = "blocked"
	StatusPendingReview Status = "pending_review"
	StatusApproved      Status = "approved"
	StatusDenied        Status = "denied"
)

// Mode is a tenant's enforcement setting: in shadow mode every action is
// reported allowed and the would-be status is kept in ShadowStatus.
type Mode string

// Modes.
const (
	ModeEnforcement Mode = "enforcement"
	ModeShadow      Mode = "shadow"
)

// Action is what an agent asks to do. Params holds decoded JSON; numbers
// should be json.Number so their text survives exactly as the agent sent it
// (the action text the rules match is built from it).
type Action struct {
	TenantID string         `json:"tenant_id"`
	AgentID  string         `json:"agent_id,omitempty"`
	Name     string         `json:"action"`
	Params   map[string]any `json:"params"`
	StepType string         `json:"step_type,omitempty"`
	// ParamsJSON, when set, is Params as encoding/json encodes them
	// without HTML escaping (compact, keys sorted), for Params decoded
	// from JSON with UseNumber (only objects, arrays, strings,
	// json.Number, booleans and null). A caller that has that text (the
	// lifecycle, which stores it) vouches for it by setting it; the engine
	// then writes the action text the rules match from it instead of
	// walking and sorting Params a second time. It must not be modified
	// while the action is decided, and is never kept.
	ParamsJSON []byte `json:"-"`
}

// Violation is one rule hit (docs/api.md §A7). Rule is the 0-based rule index
// inside the policy; built-ins number their checks the same way.
type Violation struct {
	Policy      string   `json:"policy"`
	Scope       Scope    `json:"scope"`
	Rule        int      `json:"rule"`
	Severity    Severity `json:"severity"`
	OnViolation Outcome  `json:"on_violation"`
	Reason      string   `json:"reason"`
	Match       string   `json:"match"`
	Confidence  float64  `json:"confidence"`
}

// Decision is the policy_result of one evaluation. Everything but ActionID
// and EvaluationTimeMS is computed by data.gatehouse.decision.result, so an
// embedded evaluation and a stock OPA serving the same bundle agree on it.
type Decision struct {
	ActionID          string      `json:"action_id,omitempty"`
	Status            Status      `json:"status"`
	ShadowStatus      Status      `json:"shadow_status,omitempty"`
	RiskScore         float64     `json:"risk_score"`
	EvaluationTimeMS  float64     `json:"evaluation_time_ms"`
	PoliciesEvaluated []string    `json:"policies_evaluated"`
	TriggeredPolicy   *string     `json:"triggered_policy"`
	Severity          *Severity   `json:"severity"`
	Reason            *string     `json:"reason"`
	Violations        []Violation `json:"violations"`
	Warnings          []Violation `json:"warnings"`
	// Shadow lists the hits of policies in shadow mode, strongest first;
	// they never change the status, trigger or risk score. Absent when no
	// shadow policy fired.
	Shadow []ShadowHit `json:"shadow,omitempty"`
}

// ShadowHit is one rule hit of a policy in shadow mode. WouldStatus is
// the status the hit alone would give the action were its policy
// enforcing.
type ShadowHit struct {
	Policy      string   `json:"policy"`
	Scope       Scope    `json:"scope"`
	Rule        int      `json:"rule"`
	Severity    Severity `json:"severity"`
	OnViolation Outcome  `json:"on_violation"`
	Reason      string   `json:"reason"`
	Match       string   `json:"match"`
	WouldStatus Status   `json:"would_status"`
}

// TenantPolicies is everything the engine needs to decide for one tenant at
// one revision: its mode and its policies (disabled ones are ignored).
type TenantPolicies struct {
	TenantID string
	Revision uint64
	Mode     Mode
	Policies []Policy
}
