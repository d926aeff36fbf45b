package pdp

import "slices"

// Scopes and roles of API keys (README "Who may do what"). A key carries
// an identity — its owner's name, a role, a manager flag, scopes, and
// optionally the agent it is bound to and the step types it may submit —
// and every route names the scope it needs.

// KeyScope is one right an API key may hold.
type KeyScope string

// The scopes, as Novyx names them.
const (
	ScopeActionsSubmit   KeyScope = "actions:submit"
	ScopeApprovalsDecide KeyScope = "approvals:decide"
	ScopePoliciesRead    KeyScope = "policies:read"
	ScopePoliciesWrite   KeyScope = "policies:write"
	ScopeAuditRead       KeyScope = "audit:read"
	ScopeDashboardRead   KeyScope = "dashboard:read"
	ScopeKeysManage      KeyScope = "keys:manage"
)

// AllScopes lists every scope, in the order keys show them.
var AllScopes = []KeyScope{
	ScopeActionsSubmit, ScopeApprovalsDecide, ScopePoliciesRead, ScopePoliciesWrite,
	ScopeAuditRead, ScopeDashboardRead, ScopeKeysManage,
}

// ValidScope reports whether s names a scope.
func ValidScope(s KeyScope) bool { return slices.Contains(AllScopes, s) }

// Role is a key owner's role in the tenant, as Novyx teams name them.
type Role string

// The roles, strongest first.
const (
	RoleOwner    Role = "owner"
	RoleAdmin    Role = "admin"
	RoleMember   Role = "member"
	RoleReadonly Role = "readonly"
)

// Roles lists the roles, strongest first.
var Roles = []Role{RoleOwner, RoleAdmin, RoleMember, RoleReadonly}

// ValidRole reports whether r names a role.
func ValidRole(r Role) bool { return slices.Contains(Roles, r) }

// Rank orders roles: owner 3, admin 2, member 1, readonly 0, unknown -1.
func (r Role) Rank() int {
	switch r {
	case RoleOwner:
		return 3
	case RoleAdmin:
		return 2
	case RoleMember:
		return 1
	case RoleReadonly:
		return 0
	}
	return -1
}

// DefaultScopes are the scopes a key of role r gets when none are named:
// owners and admins everything; members submit, decide and read; readonly
// keys only read.
func DefaultScopes(r Role) []KeyScope {
	switch r {
	case RoleOwner, RoleAdmin:
		return slices.Clone(AllScopes)
	case RoleMember:
		return []KeyScope{ScopeActionsSubmit, ScopeApprovalsDecide, ScopePoliciesRead, ScopeAuditRead, ScopeDashboardRead}
	case RoleReadonly:
		return []KeyScope{ScopePoliciesRead, ScopeAuditRead, ScopeDashboardRead}
	}
	return nil
}

// SortScopes returns scopes without duplicates in AllScopes order.
func SortScopes(scopes []KeyScope) []KeyScope {
	out := make([]KeyScope, 0, len(scopes))
	for _, s := range AllScopes {
		if slices.Contains(scopes, s) {
			out = append(out, s)
		}
	}
	return out
}
