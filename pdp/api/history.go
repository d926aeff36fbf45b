package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/impact"
	"github.com/gatehouse-pdp/gatehouse/pdp/policydiff"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// historyRoutes serves a policy's history: its versions, one version, the
// diff of two, and rollback to one.
func (s *server) historyRoutes(v1 *gin.RouterGroup) {
	control := v1.Group("/control", s.authenticate, policyRoutes)
	control.GET("/policies/:name/versions", s.policyVersions)
	control.GET("/policies/:name/versions/:version", s.policyVersion)
	control.GET("/policies/:name/diff", s.policyDiff)
	control.POST("/policies/:name/rollback", s.rollbackPolicy)
	s.impactRoute(control, impact.New(s.st, s.eng, impact.WithClock(s.gov.now)))
}

// versionItem is one entry of GET /v1/control/policies/{name}/versions.
type versionItem struct {
	Version        int     `json:"version"`
	Action         string  `json:"action"`
	Enabled        bool    `json:"enabled"`
	CreatedAt      string  `json:"created_at"`
	Actor          *string `json:"actor"`
	RolledBackFrom *int    `json:"rolled_back_from"`
	ContentDigest  string  `json:"content_digest"`
}

func (s *server) policyVersions(c *gin.Context) {
	name, agentID := c.Param("name"), c.Query("agent_id")
	vs, err := s.reg.Versions(c.Request.Context(), tenant(c).ID, agentID, name)
	if err != nil {
		fail(c, historyError(err, name, agentID))
		return
	}
	items := make([]versionItem, len(vs))
	for i, v := range vs {
		items[i] = versionItem{
			Version: v.Policy.Version, Action: v.Action, Enabled: v.Policy.Enabled,
			CreatedAt: timestamp(v.CreatedAt()), Actor: agentPtr(v.Actor),
			ContentDigest: store.ContentDigest(v.Policy),
		}
		if v.RolledBackFrom > 0 {
			items[i].RolledBackFrom = &v.RolledBackFrom
		}
	}
	writeJSON(c, http.StatusOK, gin.H{"policy_name": name, "agent_id": agentPtr(agentID), "versions": items})
}

// versionParam parses a version number from the path or query.
func versionParam(field, s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, pdp.Invalid(field, "must be a positive integer")
	}
	return n, nil
}

func (s *server) policyVersion(c *gin.Context) {
	name, agentID := c.Param("name"), c.Query("agent_id")
	n, err := versionParam("version", c.Param("version"))
	if err != nil {
		fail(c, err)
		return
	}
	v, err := s.reg.Version(c.Request.Context(), tenant(c).ID, agentID, name, n)
	if err != nil {
		fail(c, historyError(err, name, agentID))
		return
	}
	writeJSON(c, http.StatusOK, customView(v.Policy))
}

func (s *server) policyDiff(c *gin.Context) {
	name, agentID := c.Param("name"), c.Query("agent_id")
	from, err1 := versionParam("from", c.Query("from"))
	to, err2 := versionParam("to", c.Query("to"))
	if err := errors.Join(err1, err2); err != nil {
		var es pdp.ValidationErrors
		for _, e := range []error{err1, err2} {
			var ve *pdp.ValidationError
			if errors.As(e, &ve) {
				es = append(es, ve)
			}
		}
		fail(c, es)
		return
	}
	ctx := c.Request.Context()
	a, err := s.reg.Version(ctx, tenant(c).ID, agentID, name, from)
	if err != nil {
		fail(c, historyError(err, name, agentID))
		return
	}
	b, err := s.reg.Version(ctx, tenant(c).ID, agentID, name, to)
	if err != nil {
		fail(c, historyError(err, name, agentID))
		return
	}
	d := policydiff.Compare(a.Policy, b.Policy)
	writeJSON(c, http.StatusOK, gin.H{
		"policy_name": name, "agent_id": agentPtr(agentID), "from": from, "to": to,
		"identical": d.Identical, "metadata": d.Metadata, "lists": d.Lists, "rules": d.Rules,
	})
}

// rollbackBody is POST /v1/control/policies/{name}/rollback's body.
type rollbackBody struct {
	Version *int    `json:"version"`
	AgentID *string `json:"agent_id"`
}

func (s *server) rollbackPolicy(c *gin.Context) {
	name := c.Param("name")
	body, err := readBody(c)
	if err != nil {
		fail(c, err)
		return
	}
	var b rollbackBody
	if err := decodeStrict(body, &b); err != nil {
		fail(c, err)
		return
	}
	if b.Version == nil || *b.Version < 1 {
		fail(c, pdp.Invalid("version", "required: a positive integer"))
		return
	}
	agentID := deref(b.AgentID)
	ctx := registry.WithActor(c.Request.Context(), s.keyID(c))
	w, err := s.reg.Rollback(ctx, tenant(c).ID, agentID, name, *b.Version)
	if err != nil {
		fail(c, historyError(err, name, agentID))
		return
	}
	writeJSON(c, http.StatusOK, result(w))
}

// historyError gives a missing version its contract code and a message;
// other errors as policyError.
func historyError(err error, name, agentID string) error {
	if errors.Is(err, registry.ErrPolicyVersionNotFound) {
		return &apiError{Status: http.StatusNotFound, Code: pdp.CodePolicyNotFound,
			Message: "Policy '" + truncate(name, 64) + "' has no such version", cause: err}
	}
	return policyError(err, name, agentID)
}
