package pdp

import (
	"errors"
	"fmt"
	"strings"
)

// Error codes of the contract's error envelope (docs/api.md §A1), in one place.
const (
	CodeUnauthorized          = "UNAUTHORIZED"
	CodeRateLimited           = "RATE_LIMITED"
	CodeValidation            = "VALIDATION_ERROR"
	CodeNotFound              = "NOT_FOUND"
	CodeMethodNotAllowed      = "METHOD_NOT_ALLOWED"
	CodePayloadTooLarge       = "PAYLOAD_TOO_LARGE"
	CodeInternal              = "INTERNAL"
	CodeConflict              = "CONFLICT"
	CodeFeatureRequired       = "novyx_ram.v1.tier.feature_required"
	CodeLimitExceeded         = "novyx_ram.v1.tier.limit_exceeded"
	CodeInvalidPolicy         = "novyx_ram.v1.control.invalid_policy"
	CodePolicyNotFound        = "novyx_ram.v1.control.policy_not_found"
	CodeCannotDeleteBuiltin   = "novyx_ram.v1.control.cannot_delete_builtin"
	CodeEvaluationUnavailable = "novyx_ram.v1.control.evaluation_unavailable"
	CodeReadOnly              = "novyx_ram.v1.control.read_only"
	CodeActionNotFound        = "actions.not_found"

	// Approvals, the dashboard and the audit chain (docs/api.md §A8, A9).
	CodeInvalidDecision        = "novyx_ram.v1.control.invalid_decision"
	CodeConfirmationRequired   = "novyx_ram.v1.control.confirmation_required"
	CodeApproverNotEligible    = "novyx_ram.v1.control.approver_not_eligible"
	CodeApprovalNotFound       = "novyx_ram.v1.control.approval_not_found"
	CodeApprovalAlreadyDecided = "novyx_ram.v1.control.approval_already_decided"
	CodeApprovalTooEarly       = "novyx_ram.v1.control.approval_too_early"
	CodeInvalidDashboardParam  = "novyx_ram.v1.control.invalid_dashboard_param"
	CodeInvalidViolationsParam = "novyx_ram.v1.control.invalid_violations_param"
	CodeGovernanceUnavailable  = "novyx_ram.v1.control.governance_unavailable"

	// Identities (README "Who may do what").
	CodeForbidden     = "FORBIDDEN"                           // the key lacks the route's scope
	CodeAgentMismatch = "novyx_ram.v1.control.agent_mismatch" // an agent-bound key named another agent, or a step type it may not use
	CodeKeyNotFound   = "novyx_ram.v1.control.key_not_found"
)

// Sentinel errors shared by the layers; classify with errors.Is.
var (
	ErrNotFound         = errors.New("not found")
	ErrConflict         = errors.New("conflict")
	ErrEvaluationFailed = errors.New("evaluation failed")
)

// ValidationError reports one bad field of an input, named the way the user
// wrote it (for example "rules[1].match").
type ValidationError struct {
	Field  string
	Reason string
}

// Error returns "field: reason".
func (e *ValidationError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// Invalid returns a *ValidationError for field with a formatted reason.
func Invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// ValidationErrors collects every problem of one input, in the order found.
type ValidationErrors []*ValidationError

// Error joins the problems with "; ".
func (es ValidationErrors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// Err returns es as an error, or nil when it holds no problem.
func (es ValidationErrors) Err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// As lets errors.As find the first *ValidationError inside es.
func (es ValidationErrors) As(target any) bool {
	if t, ok := target.(**ValidationError); ok && len(es) > 0 {
		*t = es[0]
		return true
	}
	return false
}

// IsGenericCode reports whether code is one of the generic, upper-case
// codes (UNAUTHORIZED, VALIDATION_ERROR, …) rather than a namespaced one
// (novyx_ram.v1.control.*, actions.not_found): their envelopes differ in
// what "error" holds (docs/api.md §A1).
func IsGenericCode(code string) bool {
	return code != "" && !strings.Contains(code, ".")
}
