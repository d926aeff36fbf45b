package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// GET /v1/usage (docs/api.md §A11): what the key's tenant may do — its
// tier, each tier-gated feature, its limits — and how much of them it
// uses, so a client learns it up front instead of catching 403s.

type usageView struct {
	TenantID     string          `json:"tenant_id"`
	Tier         store.Tier      `json:"tier"`
	Features     map[string]any  `json:"features"`
	ApprovalMode string          `json:"approval_mode"`
	Limits       usageLimitsView `json:"limits"`
	Usage        usageCountsView `json:"usage"`
}

type usageLimitsView struct {
	// CustomPolicies is the most enabled custom policies (both scopes),
	// null for unlimited.
	CustomPolicies *int `json:"custom_policies"`
	// RateLimit is the per-key request rate, null when unlimited.
	RateLimit *usageRateView `json:"rate_limit"`
}

type usageRateView struct {
	RequestsPerSecond float64 `json:"requests_per_second"`
	Burst             int     `json:"burst"`
}

type usageCountsView struct {
	// CustomPolicies counts the tenant's enabled custom policies, as the
	// limit counts them.
	CustomPolicies int `json:"custom_policies"`
	// PendingApprovals counts the actions waiting for a decision.
	PendingApprovals int `json:"pending_approvals"`
}

func (s *server) usage(c *gin.Context) {
	ctx := c.Request.Context()
	t, err := s.reg.Tenant(ctx, tenant(c).ID) // the current tier, not the auth cache's
	if err != nil {
		fail(c, err)
		return
	}
	v := usageView{TenantID: t.ID, Tier: t.Tier, Features: map[string]any{}, ApprovalMode: t.ApprovalMode}
	for _, f := range registry.Features {
		v.Features[string(f)] = registry.Allows(t.Tier, f)
	}
	v.Features["approval_modes"] = registry.ApprovalModes(t.Tier)
	if n := registry.PolicyLimit(t.Tier); n != store.Unlimited {
		v.Limits.CustomPolicies = &n
	}
	if rl := s.rateLimit(t); rl.RequestsPerSecond > 0 {
		v.Limits.RateLimit = &usageRateView{RequestsPerSecond: rl.RequestsPerSecond, Burst: rl.Burst}
	}
	if v.Usage.CustomPolicies, err = s.st.CountEnabledPolicies(ctx, t.ID); err != nil {
		fail(c, err)
		return
	}
	if s.gov.st != nil {
		_, total, err := s.life.Approvals(ctx, t.ID, store.ApprovalQuery{Status: pdp.StatusPendingReview, Limit: 1})
		if err != nil {
			fail(c, err)
			return
		}
		v.Usage.PendingApprovals = total
	}
	writeJSON(c, http.StatusOK, v)
}
