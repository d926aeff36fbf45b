package api

import (
	"encoding/json"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// The admin API (docs/api.md §B2) is registered only when an admin token is
// configured; adminAuth guards every route.

// tenantView is a tenant as the admin API shows it (never its keys).
type tenantView struct {
	TenantID         string          `json:"tenant_id"`
	Name             string          `json:"name"`
	Tier             store.Tier      `json:"tier"`
	Mode             pdp.Mode        `json:"mode"`
	ApprovalMode     string          `json:"approval_mode"`
	ApprovalModes    []string        `json:"approval_modes"`
	ApprovalSettings json.RawMessage `json:"approval_settings"`
	RateLimit        *rateLimitView  `json:"rate_limit"` // null: the tier's default
	RequireAgentKeys bool            `json:"require_agent_keys"`
	Revision         uint64          `json:"revision"`
	CreatedAt        string          `json:"created_at"`
}

func viewTenant(t store.Tenant) tenantView {
	settings := t.ApprovalSettings
	if len(settings) == 0 {
		settings = json.RawMessage("null")
	}
	return tenantView{
		TenantID:         t.ID,
		Name:             t.Name,
		Tier:             t.Tier,
		Mode:             t.Mode,
		ApprovalMode:     t.ApprovalMode,
		ApprovalModes:    registry.ApprovalModes(t.Tier),
		ApprovalSettings: settings,
		RateLimit:        viewRateLimit(t.RateLimit),
		RequireAgentKeys: t.RequireAgentKeys,
		Revision:         t.Revision,
		CreatedAt:        timestamp(t.CreatedAt),
	}
}

type createTenantBody struct {
	ID           *string `json:"id"`
	Name         *string `json:"name"`
	Tier         *string `json:"tier"`
	Mode         *string `json:"mode"`
	ApprovalMode *string `json:"approval_mode"`
}

func (s *server) createTenant(c *gin.Context) {
	body, err := readBody(c)
	if err != nil {
		fail(c, err)
		return
	}
	var b createTenantBody
	if err := decodeStrict(body, &b); err != nil {
		fail(c, err)
		return
	}
	t, key, err := s.reg.CreateTenant(c.Request.Context(), registry.NewTenant{
		ID:           deref(b.ID),
		Name:         deref(b.Name),
		Tier:         store.Tier(deref(b.Tier)),
		Mode:         pdp.Mode(deref(b.Mode)),
		ApprovalMode: deref(b.ApprovalMode),
	})
	if err != nil {
		fail(c, err)
		return
	}
	writeJSON(c, http.StatusCreated, gin.H{"tenant_id": t.ID, "name": t.Name, "tier": t.Tier, "api_key": key})
}

func (s *server) listTenants(c *gin.Context) {
	ts, err := s.reg.Tenants(c.Request.Context())
	if err != nil {
		fail(c, err)
		return
	}
	views := make([]tenantView, len(ts))
	for i, t := range ts {
		views[i] = viewTenant(t)
	}
	writeJSON(c, http.StatusOK, gin.H{"tenants": views, "total": len(views)})
}

func (s *server) getTenant(c *gin.Context) {
	t, err := s.reg.Tenant(c.Request.Context(), c.Param("id"))
	if err != nil {
		fail(c, err)
		return
	}
	writeJSON(c, http.StatusOK, viewTenant(t))
}

type updateTenantBody struct {
	Name             *string         `json:"name"`
	Tier             *string         `json:"tier"`
	Mode             *string         `json:"mode"`
	ApprovalMode     *string         `json:"approval_mode"`
	ApprovalSettings json.RawMessage `json:"approval_settings"` // JSON null clears
	RateLimit        json.RawMessage `json:"rate_limit"`        // JSON null: back to the tier's default
	RequireAgentKeys *bool           `json:"require_agent_keys"`
}

func (s *server) updateTenant(c *gin.Context) {
	body, err := readBody(c)
	if err != nil {
		fail(c, err)
		return
	}
	var b updateTenantBody
	if err := decodeStrict(body, &b); err != nil {
		fail(c, err)
		return
	}
	u := registry.TenantUpdate{Name: b.Name, ApprovalMode: b.ApprovalMode, RequireAgentKeys: b.RequireAgentKeys}
	if b.Tier != nil {
		tier := store.Tier(*b.Tier)
		u.Tier = &tier
	}
	if b.Mode != nil {
		mode := pdp.Mode(*b.Mode)
		u.Mode = &mode
	}
	if b.ApprovalSettings != nil {
		u.ApprovalSettings = &b.ApprovalSettings
	}
	if b.RateLimit != nil {
		u.SetRateLimit = true
		if u.RateLimit, err = decodeRateLimit(b.RateLimit); err != nil {
			fail(c, err)
			return
		}
	}
	t, err := s.reg.UpdateTenant(c.Request.Context(), c.Param("id"), u)
	if err != nil {
		fail(c, err)
		return
	}
	writeJSON(c, http.StatusOK, viewTenant(t))
}

func (s *server) createKey(c *gin.Context) {
	k, key, err := s.reg.CreateKey(c.Request.Context(), c.Param("id"))
	if err != nil {
		fail(c, err)
		return
	}
	writeJSON(c, http.StatusCreated, gin.H{
		"key_id":     k.ID,
		"tenant_id":  k.TenantID,
		"api_key":    key,
		"prefix":     k.Prefix,
		"created_at": timestamp(k.CreatedAt),
	})
}

func (s *server) revokeKey(c *gin.Context) {
	id := c.Param("key_id")
	if err := s.reg.RevokeKey(c.Request.Context(), id); err != nil {
		fail(c, err)
		return
	}
	writeJSON(c, http.StatusOK, gin.H{"key_id": id, "revoked": true})
}
