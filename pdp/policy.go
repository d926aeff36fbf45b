package pdp

import "time"

// Severity ranks how serious a rule's hit is (docs/api.md §A3).
type Severity string

// Severities, strongest first.
const (
	SeverityCritical Severity = "critical"
	SeverityHigh     Severity = "high"
	SeverityMedium   Severity = "medium"
	SeverityLow      Severity = "low"
)

// Rank orders severities: critical 4 … low 1, unknown 0.
func (s Severity) Rank() int {
	switch s {
	case SeverityCritical:
		return 4
	case SeverityHigh:
		return 3
	case SeverityMedium:
		return 2
	case SeverityLow:
		return 1
	}
	return 0
}

// Weight is the severity's factor in risk_score (docs/api.md §A7).
func (s Severity) Weight() float64 {
	switch s {
	case SeverityCritical:
		return 1.0
	case SeverityHigh:
		return 0.8
	case SeverityMedium:
		return 0.5
	case SeverityLow:
		return 0.25
	}
	return 0
}

// DefaultOutcome is the on_violation a rule gets when it names none:
// critical blocks, high requires approval, medium and low warn.
func (s Severity) DefaultOutcome() Outcome {
	switch s {
	case SeverityCritical:
		return OutcomeBlock
	case SeverityHigh:
		return OutcomeRequireApproval
	}
	return OutcomeWarn
}

// Outcome is what a rule's hit does to the action (on_violation).
type Outcome string

// Outcomes, strongest first.
const (
	OutcomeBlock           Outcome = "block"
	OutcomeRequireApproval Outcome = "require_approval"
	OutcomeWarn            Outcome = "warn"
)

// Rank orders outcomes: block 3, require_approval 2, warn 1, unknown 0.
func (o Outcome) Rank() int {
	switch o {
	case OutcomeBlock:
		return 3
	case OutcomeRequireApproval:
		return 2
	case OutcomeWarn:
		return 1
	}
	return 0
}

// Scope says where a policy lives: tenant-wide, agent-scoped, or built in.
type Scope string

// Scopes, in the order they win ties (agent > tenant > builtin).
const (
	ScopeAgent   Scope = "agent"
	ScopeTenant  Scope = "tenant"
	ScopeBuiltin Scope = "builtin"
)

// StepTypes are the step types a policy may name (stored upper-case).
var StepTypes = []string{"THOUGHT", "ACTION", "OBSERVATION", "OUTPUT", "ERROR", "POLICY_CHECK"}

// DefaultStepType is the step type of an action that names none.
const DefaultStepType = "ACTION"

// DefaultConfidence is a rule's confidence when it names none.
const DefaultConfidence = 0.85

// Rule is one regex rule of a policy, normalized: severity lower-case,
// on_violation and confidence resolved to their defaults.
type Rule struct {
	Match           string   `json:"match"`
	Severity        Severity `json:"severity"`
	OnViolation     Outcome  `json:"on_violation"`
	Reason          string   `json:"reason,omitempty"`
	ContextRequires string   `json:"context_requires,omitempty"`
	Confidence      float64  `json:"confidence"`
}

// Policy is a custom policy of one tenant at one scope. AgentID is empty for
// a tenant-wide policy. The content fields (Name … Rules) are what a user
// writes; Enabled, Version and the timestamps are kept by the registry.
type Policy struct {
	Name               string   `json:"name"`
	Description        string   `json:"description,omitempty"`
	AgentID            string   `json:"agent_id,omitempty"`
	StepTypes          []string `json:"step_types"`
	WhitelistedDomains []string `json:"whitelisted_domains"`
	Rules              []Rule   `json:"rules"`
	// Mode is PolicyEnforce (stored as "", the default) or PolicyShadow: a
	// shadow policy is evaluated but never changes the decision; its hits
	// are reported in the decision's shadow list.
	Mode      PolicyMode `json:"mode,omitempty"`
	Enabled   bool       `json:"enabled"`
	Version   int        `json:"version"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
}

// PolicyMode is a policy's mode.
type PolicyMode string

// Policy modes. The zero value means PolicyEnforce.
const (
	PolicyEnforce PolicyMode = "enforce"
	PolicyShadow  PolicyMode = "shadow"
)

// Shadow reports whether p is in shadow mode.
func (p *Policy) Shadow() bool { return p.Mode == PolicyShadow }

// ModeName is p's mode as the API shows it: "enforce" or "shadow".
func (p *Policy) ModeName() string {
	if p.Shadow() {
		return string(PolicyShadow)
	}
	return string(PolicyEnforce)
}

// Scope reports whether p is tenant-wide or agent-scoped.
func (p *Policy) Scope() Scope {
	if p.AgentID != "" {
		return ScopeAgent
	}
	return ScopeTenant
}

// Built-in policy names as they appear in the policy list and CRUD
// (docs/api.md §A5).
const (
	BuiltinFinancialSafety  = "FinancialSafety"
	BuiltinDataExfiltration = "DataExfiltration"
)

// Built-in policy names as they appear in decisions (triggered_policy,
// violations, warnings, policies_evaluated), stats, the violations feed
// and decision logs: Novyx's names, which its clients compare against.
// The Rego library spells them so.
const (
	DecisionFinancialSafety  = "FinancialSafetyPolicy"
	DecisionDataExfiltration = "DataExfiltrationPolicy"
)

// Builtin describes a built-in policy for listings.
type Builtin struct {
	Name        string
	Description string
}

// Builtins lists the built-in policies in the order decisions evaluate them.
var Builtins = []Builtin{
	{BuiltinFinancialSafety, "Policy to prevent unauthorized financial operations."},
	{BuiltinDataExfiltration, "Policy to prevent data exfiltration attempts."},
}
