package api

import (
	"bytes"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// Self-service keys, Novyx-shaped (README "Who may do what"): a key with
// keys:manage creates, lists and revokes its tenant's keys; any key
// rotates itself. The registry keeps a key from giving more rights than
// its own and puts every operation on the audit chain.

func (s *server) keyRoutes(v1 *gin.RouterGroup) {
	keys := v1.Group("/keys", s.authenticate)
	keys.GET("", s.listTenantKeys)
	keys.POST("", s.createTenantKey)
	keys.POST("/rotate", s.rotateTenantKey)
	keys.DELETE("/:key_id", s.revokeTenantKey)
}

// keyView is a key as GET /v1/keys shows it: never its secret or hash.
type keyView struct {
	KeyID     string         `json:"key_id"`
	Name      string         `json:"name"`
	Role      pdp.Role       `json:"role"`
	Scopes    []pdp.KeyScope `json:"scopes"`
	AgentID   *string        `json:"agent_id"`
	StepTypes []string       `json:"step_types"`
	IsManager bool           `json:"is_manager"`
	Prefix    string         `json:"prefix"`
	CreatedAt string         `json:"created_at"`
	CreatedBy *string        `json:"created_by"`
	ExpiresAt any            `json:"expires_at"`
	RevokedAt any            `json:"revoked_at"`
}

func viewKey(k store.APIKey) keyView {
	steps := k.StepTypes
	if steps == nil {
		steps = []string{}
	}
	return keyView{
		KeyID: k.ID, Name: k.Identity(), Role: k.Role, Scopes: k.Scopes, AgentID: agentPtr(k.AgentID),
		StepTypes: steps, IsManager: k.IsManager, Prefix: k.Prefix, CreatedAt: timestamp(k.CreatedAt),
		CreatedBy: agentPtr(k.CreatedBy), ExpiresAt: optTimestamp(k.ExpiresAt), RevokedAt: optTimestamp(k.RevokedAt),
	}
}

func (s *server) listTenantKeys(c *gin.Context) {
	ks, err := s.reg.TenantKeys(c.Request.Context(), tenant(c).ID)
	if err != nil {
		fail(c, err)
		return
	}
	views := make([]keyView, len(ks))
	for i, k := range ks {
		views[i] = viewKey(k)
	}
	writeJSON(c, http.StatusOK, gin.H{"keys": views, "total": len(views)})
}

type createKeyBody struct {
	Name      *string   `json:"name"`
	Role      *string   `json:"role"`
	Scopes    *[]string `json:"scopes"`
	AgentID   *string   `json:"agent_id"`
	StepTypes *[]string `json:"step_types"`
	IsManager *bool     `json:"is_manager"`
}

func (s *server) createTenantKey(c *gin.Context) {
	body, err := readBody(c)
	if err != nil {
		fail(c, err)
		return
	}
	var b createKeyBody
	if err := decodeStrict(body, &b); err != nil {
		fail(c, err)
		return
	}
	nk := registry.NewKey{Name: deref(b.Name), Role: pdp.Role(deref(b.Role)), AgentID: deref(b.AgentID)}
	if b.Scopes != nil {
		nk.Scopes = make([]pdp.KeyScope, len(*b.Scopes))
		for i, sc := range *b.Scopes {
			nk.Scopes[i] = pdp.KeyScope(sc)
		}
	}
	if b.StepTypes != nil {
		nk.StepTypes = *b.StepTypes
		if nk.StepTypes == nil {
			nk.StepTypes = []string{}
		}
	}
	if b.IsManager != nil {
		nk.IsManager = *b.IsManager
	}
	k, secret, err := s.reg.CreateTenantKey(c.Request.Context(), apiKey(c), nk)
	if err != nil {
		fail(c, err)
		return
	}
	v := viewKey(k)
	writeJSON(c, http.StatusCreated, gin.H{
		"key_id": v.KeyID, "api_key": secret, "name": v.Name, "role": v.Role, "scopes": v.Scopes, "agent_id": v.AgentID,
		"step_types": v.StepTypes, "is_manager": v.IsManager, "prefix": v.Prefix, "created_at": v.CreatedAt,
	})
}

func (s *server) revokeTenantKey(c *gin.Context) {
	k, err := s.reg.RevokeTenantKey(c.Request.Context(), apiKey(c), c.Param("key_id"))
	if err != nil {
		fail(c, err)
		return
	}
	writeJSON(c, http.StatusOK, gin.H{"key_id": k.ID, "revoked": true, "revoked_at": optTimestamp(k.RevokedAt)})
}

type rotateKeyBody struct {
	KeyID              *string `json:"key_id"`
	GracePeriodSeconds *int64  `json:"grace_period_seconds"`
}

// rotateTenantKey rotates the calling key, or with key_id another key of
// the tenant, which needs keys:manage.
func (s *server) rotateTenantKey(c *gin.Context) {
	body, err := readBody(c)
	if err != nil {
		fail(c, err)
		return
	}
	var b rotateKeyBody
	if len(bytes.TrimSpace(body)) > 0 {
		if err := decodeStrict(body, &b); err != nil {
			fail(c, err)
			return
		}
	}
	actor := apiKey(c)
	id := deref(b.KeyID)
	if id != "" && id != actor.ID && !actor.Has(pdp.ScopeKeysManage) {
		fail(c, &apiError{Status: http.StatusForbidden, Code: pdp.CodeForbidden,
			Message: "Rotating another key needs the scope keys:manage; without key_id a key rotates itself",
			Extra:   map[string]any{"required_scopes": []string{string(pdp.ScopeKeysManage)}}})
		return
	}
	var grace *time.Duration
	if b.GracePeriodSeconds != nil {
		g := time.Duration(*b.GracePeriodSeconds) * time.Second
		if *b.GracePeriodSeconds < 0 || *b.GracePeriodSeconds > int64(registry.MaxRotationGrace/time.Second) {
			g = -1 // refused by the registry, naming the field
		}
		grace = &g
	}
	k, secret, expires, err := s.reg.RotateTenantKey(c.Request.Context(), actor, id, grace)
	if err != nil {
		fail(c, err)
		return
	}
	if id == "" {
		id = actor.ID
	}
	v := viewKey(k)
	writeJSON(c, http.StatusOK, gin.H{
		"key_id": v.KeyID, "api_key": secret, "name": v.Name, "role": v.Role, "scopes": v.Scopes, "agent_id": v.AgentID,
		"step_types": v.StepTypes, "is_manager": v.IsManager, "prefix": v.Prefix, "created_at": v.CreatedAt,
		"rotated_key_id": id, "old_key_expires_at": timestamp(expires),
	})
}
