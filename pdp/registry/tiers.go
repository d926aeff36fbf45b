package registry

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/approval"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// Feature is a capability a tier may or may not include (docs/api.md §A2).
type Feature string

// Features gated by tier.
const (
	// FeatureDraftPolicies is custom policies at all (Starter and up).
	FeatureDraftPolicies Feature = "draft_policies"
	// FeatureAgentScopedPolicies is policies with an agent_id (Pro and up).
	FeatureAgentScopedPolicies Feature = "agent_scoped_policies"
	// FeatureGovernanceDashboard is the dashboard and agent violations
	// (Starter and up).
	FeatureGovernanceDashboard Feature = "governance_dashboard"
	// FeatureAuditExport is GET /v1/audit/export (Starter and up).
	FeatureAuditExport Feature = "audit_export"
)

// Features lists every gated feature, in the order GET /v1/usage shows
// them.
var Features = []Feature{FeatureDraftPolicies, FeatureAgentScopedPolicies, FeatureGovernanceDashboard, FeatureAuditExport}

// Approval modes (docs/api.md §A8), weakest first.
const (
	ApprovalSolo       = approval.Solo
	ApprovalTeam       = approval.Team
	ApprovalEnterprise = approval.Enterprise
)

// tiers lists the tiers weakest first; a tier includes a feature when its
// index is at least the feature's minimum tier's.
var tiers = []store.Tier{store.TierFree, store.TierStarter, store.TierPro, store.TierEnterprise}

var minimumTier = map[Feature]store.Tier{
	FeatureDraftPolicies:       store.TierStarter,
	FeatureAgentScopedPolicies: store.TierPro,
	FeatureGovernanceDashboard: store.TierStarter,
	FeatureAuditExport:         store.TierStarter,
}

func rank(t store.Tier) int { return slices.Index(tiers, t) }

// RequiredTier returns the weakest tier that includes f ("" for an unknown
// feature).
func RequiredTier(f Feature) store.Tier { return minimumTier[f] }

// Allows reports whether tier includes f. An unknown tier or feature
// includes nothing.
func Allows(tier store.Tier, f Feature) bool {
	min, ok := minimumTier[f]
	return ok && tier.Valid() && rank(tier) >= rank(min)
}

// RequireFeature returns nil when tier includes f, else a *TierError with
// code feature_required.
func RequireFeature(tier store.Tier, f Feature) error {
	if Allows(tier, f) {
		return nil
	}
	return &TierError{Code: pdp.CodeFeatureRequired, Feature: f, RequiredTier: RequiredTier(f), CurrentTier: tier}
}

// PolicyWriteFeature returns the feature a policy write needs: agent-scoped
// policies for a write with an agent_id, custom policies otherwise. Free
// tenants writing an agent-scoped policy are therefore told about
// agent_scoped_policies (requires Pro), as the seed document shows, rather
// than about draft_policies: Pro is what would make the request succeed.
func PolicyWriteFeature(agentScoped bool) Feature {
	if agentScoped {
		return FeatureAgentScopedPolicies
	}
	return FeatureDraftPolicies
}

// PolicyLimit returns how many enabled custom policies (both scopes) a
// tenant of tier may have, or store.Unlimited.
func PolicyLimit(tier store.Tier) int {
	switch tier {
	case store.TierStarter:
		return 5
	case store.TierPro:
		return 25
	case store.TierEnterprise:
		return store.Unlimited
	}
	return 0
}

// ApprovalModes returns the approval modes tier allows, weakest first.
func ApprovalModes(tier store.Tier) []string {
	switch tier {
	case store.TierStarter, store.TierPro:
		return []string{ApprovalSolo, ApprovalTeam}
	case store.TierEnterprise:
		return []string{ApprovalSolo, ApprovalTeam, ApprovalEnterprise}
	}
	return []string{ApprovalSolo}
}

// NewTenantApprovalMode is the approval mode a new tenant starts in, on
// every tier: solo, the one mode every tier has, where the documented
// Novyx flow (the submitting key approves after the delay) works. An
// operator moves a tenant to team or enterprise.
const NewTenantApprovalMode = ApprovalSolo

// DefaultApprovalMode is the strongest mode tier allows: what a tenant
// whose mode its tier no longer allows (a lowered tier) falls back to,
// the safe direction.
func DefaultApprovalMode(tier store.Tier) string {
	m := ApprovalModes(tier)
	return m[len(m)-1]
}

// TierError is a 403 of docs/api.md §A1: a feature the tenant's tier lacks
// (Code pdp.CodeFeatureRequired, with Feature, RequiredTier, CurrentTier),
// or the custom policy limit reached (Code pdp.CodeLimitExceeded, with
// Limit and Current).
type TierError struct {
	Code         string
	Feature      Feature
	RequiredTier store.Tier
	CurrentTier  store.Tier
	Limit        int
	Current      int
}

// Error returns the contract's message, e.g. "Feature
// 'agent_scoped_policies' requires Pro tier or higher".
func (e *TierError) Error() string {
	if e.Code == pdp.CodeLimitExceeded {
		return fmt.Sprintf("Custom policy limit reached (%d) for tier '%s'", e.Limit, e.CurrentTier)
	}
	return fmt.Sprintf("Feature '%s' requires %s tier or higher", e.Feature, titleTier(e.RequiredTier))
}

// titleTier is the tier's display name: "Pro" for pro.
func titleTier(t store.Tier) string {
	s := string(t)
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
