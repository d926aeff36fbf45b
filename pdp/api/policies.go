package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	library "github.com/gatehouse-pdp/gatehouse/rego"
)

// connectors are the connectors the Control API advertises (docs/api.md §A6).
var connectors = []string{"github", "slack", "linear", "pagerduty", "http"}

// builtinModules are the library files holding each built-in's Rego.
var builtinModules = map[string]string{
	pdp.BuiltinFinancialSafety:  "gatehouse/builtins/financial_safety.rego",
	pdp.BuiltinDataExfiltration: "gatehouse/builtins/data_exfiltration.rego",
}

const (
	sourceBuiltin = "builtin"
	sourceCustom  = "custom"
)

// policyItem is one entry of GET /v1/control/policies. Built-ins carry the
// first five fields only.
type policyItem struct {
	Name        string  `json:"name"`
	Enabled     bool    `json:"enabled"`
	Description string  `json:"description"`
	Source      string  `json:"source"`
	AgentID     *string `json:"agent_id"`
	Scope       string  `json:"scope,omitempty"`
	Version     int     `json:"version,omitempty"`
	CreatedAt   string  `json:"created_at,omitempty"`
	UpdatedAt   string  `json:"updated_at,omitempty"`
	Effective   *bool   `json:"effective,omitempty"`
	Mode        string  `json:"mode,omitempty"`
}

type policyConfig struct {
	Name               string     `json:"name"`
	Description        string     `json:"description"`
	Rules              []pdp.Rule `json:"rules"`
	StepTypes          []string   `json:"step_types"`
	WhitelistedDomains []string   `json:"whitelisted_domains"`
}

// policyView is GET /v1/control/policies/{name}.
type policyView struct {
	Name        string       `json:"name"`
	Description string       `json:"description"`
	Source      string       `json:"source"`
	AgentID     *string      `json:"agent_id"`
	Scope       string       `json:"scope"`
	Enabled     bool         `json:"enabled"`
	Version     int          `json:"version"`
	Mode        string       `json:"mode,omitempty"`
	Config      policyConfig `json:"config"`
	CreatedAt   any          `json:"created_at"`
	UpdatedAt   any          `json:"updated_at"`
}

// writeResult is the answer of POST, PUT and DELETE.
type writeResult struct {
	PolicyName string  `json:"policy_name"`
	AgentID    *string `json:"agent_id"`
	Scope      string  `json:"scope"`
	Action     string  `json:"action"`
	Version    int     `json:"version"`
	Message    string  `json:"message"`
}

func agentPtr(id string) *string {
	if id == "" {
		return nil
	}
	return &id
}

func (s *server) listPolicies(c *gin.Context) {
	t := tenant(c)
	agentID := c.Query("agent_id")
	ps, err := s.reg.Policies(c.Request.Context(), t.ID, agentID)
	if err != nil {
		fail(c, err)
		return
	}
	// An enabled agent-scoped policy shadows the tenant-wide one of its
	// name for that agent (docs/api.md §A4) when it enforces; a disabled
	// one, or one in shadow mode, overrides nothing.
	shadowed := map[string]bool{}
	for _, p := range ps {
		if p.AgentID != "" && p.Enabled && !p.Shadow() {
			shadowed[p.Name] = true
		}
	}
	items := make([]policyItem, 0, len(pdp.Builtins)+len(ps))
	for _, b := range pdp.Builtins {
		items = append(items, policyItem{Name: b.Name, Enabled: true, Description: b.Description, Source: sourceBuiltin})
	}
	for _, p := range ps {
		it := policyItem{
			Name:        p.Name,
			Enabled:     p.Enabled,
			Description: p.Description,
			Source:      sourceCustom,
			AgentID:     agentPtr(p.AgentID),
			Scope:       string(p.Scope()),
			Version:     p.Version,
			CreatedAt:   timestamp(p.CreatedAt),
			UpdatedAt:   timestamp(p.UpdatedAt),
			Mode:        p.ModeName(),
		}
		if agentID != "" {
			eff := p.Enabled && (p.AgentID != "" || !shadowed[p.Name])
			it.Effective = &eff
		}
		items = append(items, it)
	}
	writeJSON(c, http.StatusOK, gin.H{
		"policies":       items,
		"mode":           t.Mode,
		"connectors":     connectors,
		"approval_modes": registry.ApprovalModes(t.Tier),
	})
}

func (s *server) getPolicy(c *gin.Context) {
	name := c.Param("name")
	if b, ok := registry.Builtin(name); ok {
		writeJSON(c, http.StatusOK, policyView{
			Name:        b.Name,
			Description: b.Description,
			Source:      sourceBuiltin,
			Scope:       string(pdp.ScopeBuiltin),
			Enabled:     true,
			Version:     1,
			Config: policyConfig{Name: b.Name, Description: b.Description,
				Rules: []pdp.Rule{}, StepTypes: []string{}, WhitelistedDomains: []string{}},
		})
		return
	}
	agentID := c.Query("agent_id")
	p, err := s.reg.Policy(c.Request.Context(), tenant(c).ID, agentID, name)
	if err != nil {
		fail(c, policyError(err, name, agentID))
		return
	}
	writeJSON(c, http.StatusOK, customView(p))
}

// customView is GET /v1/control/policies/{name}'s view of a custom policy
// (also of one of its versions).
func customView(p pdp.Policy) policyView {
	return policyView{
		Name:        p.Name,
		Description: p.Description,
		Source:      sourceCustom,
		AgentID:     agentPtr(p.AgentID),
		Scope:       string(p.Scope()),
		Enabled:     p.Enabled,
		Version:     p.Version,
		Mode:        p.ModeName(),
		Config: policyConfig{Name: p.Name, Description: p.Description,
			Rules: p.Rules, StepTypes: p.StepTypes, WhitelistedDomains: p.WhitelistedDomains},
		CreatedAt: timestamp(p.CreatedAt),
		UpdatedAt: timestamp(p.UpdatedAt),
	}
}

// policyRego serves the Rego a policy is enforced with: the generated
// module of a custom policy, the library module of a built-in.
func (s *server) policyRego(c *gin.Context) {
	name := c.Param("name")
	if b, ok := registry.Builtin(name); ok {
		src, ok := library.Sources()[builtinModules[b.Name]]
		if !ok {
			fail(c, errors.New("built-in module missing from the library: "+b.Name))
			return
		}
		c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte(src))
		return
	}
	t := tenant(c)
	agentID := c.Query("agent_id")
	p, err := s.reg.Policy(c.Request.Context(), t.ID, agentID, name)
	if err != nil {
		fail(c, policyError(err, name, agentID))
		return
	}
	m, err := adapter.PolicyModule(t.ID, &p)
	if err != nil {
		fail(c, err)
		return
	}
	c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte(m.Text))
}

func (s *server) createPolicy(c *gin.Context) {
	s.writePolicy(c, "")
}

func (s *server) replacePolicy(c *gin.Context) {
	s.writePolicy(c, c.Param("name"))
}

// writePolicy is POST (pathName "") and PUT. Checks run in the contract's
// order (A1): auth (middleware), the tier's feature — decided from the
// tenant's current tier and whether the body sets agent_id, before the
// document is validated — then the document, then the limit (registry).
func (s *server) writePolicy(c *gin.Context, pathName string) {
	ctx := registry.WithActor(c.Request.Context(), s.keyID(c))
	body, err := readBody(c)
	if err != nil {
		fail(c, err)
		return
	}
	t, err := s.reg.Tenant(ctx, tenant(c).ID)
	if err != nil {
		fail(c, err)
		return
	}
	format := adapter.FormatFromContentType(c.GetHeader("Content-Type"))
	// The scope may also be named in the query, as on GET and DELETE
	// (docs/api.md §A6): PUT …/policies/{name}?agent_id=X targets X's copy.
	queryAgent := c.Query("agent_id")
	if err := registry.RequireFeature(t.Tier, registry.PolicyWriteFeature(queryAgent != "" || setsAgentID(body, format))); err != nil {
		fail(c, err)
		return
	}
	doc, err := adapter.Decode(body, format)
	if err != nil {
		fail(c, err)
		return
	}
	if queryAgent != "" {
		switch {
		case doc.AgentID == nil || *doc.AgentID == "":
			doc.AgentID = &queryAgent
		case *doc.AgentID != queryAgent:
			fail(c, &pdp.ValidationError{Field: "agent_id", Reason: fmt.Sprintf("the body's %q conflicts with the query's %q; name the scope once, or the same in both",
				truncate(*doc.AgentID, 64), truncate(queryAgent, 64))})
			return
		}
	}
	var w registry.Write
	if pathName == "" {
		w, err = s.reg.Put(ctx, t.ID, doc)
	} else {
		w, err = s.reg.Replace(ctx, t.ID, pathName, doc)
	}
	if err != nil {
		fail(c, policyError(err, pathName, agentOf(doc)))
		return
	}
	status := http.StatusOK
	if w.Action == registry.ActionCreated {
		status = http.StatusCreated
	}
	writeJSON(c, status, result(w))
}

func (s *server) deletePolicy(c *gin.Context) {
	name, agentID := c.Param("name"), c.Query("agent_id")
	ctx := registry.WithActor(c.Request.Context(), s.keyID(c))
	w, err := s.reg.Disable(ctx, tenant(c).ID, agentID, name)
	if err != nil {
		fail(c, policyError(err, name, agentID))
		return
	}
	writeJSON(c, http.StatusOK, result(w))
}

func result(w registry.Write) writeResult {
	return writeResult{
		PolicyName: w.Policy.Name,
		AgentID:    agentPtr(w.Policy.AgentID),
		Scope:      string(w.Policy.Scope()),
		Action:     w.Action,
		Version:    w.Policy.Version,
		Message:    "Policy '" + w.Policy.Name + "' " + w.Action,
	}
}

// policyError gives a missing policy its contract code and a message
// naming it and its scope; other errors pass through.
func policyError(err error, name, agentID string) error {
	if !errors.Is(err, registry.ErrPolicyNotFound) {
		return err
	}
	msg := "Policy '" + truncate(name, 64) + "' not found"
	if agentID != "" {
		msg += " for agent '" + truncate(agentID, 128) + "'"
	}
	return &apiError{Status: http.StatusNotFound, Code: pdp.CodePolicyNotFound, Message: msg, cause: err}
}

func agentOf(doc *adapter.Document) string {
	if doc == nil || doc.AgentID == nil {
		return ""
	}
	return *doc.AgentID
}

// setsAgentID reports whether a policy document sets a non-empty agent_id,
// read leniently: the feature gate runs before validation, so a document
// that will fail validation is still gated by what it asks for. A body
// that does not parse at all sets nothing (and fails validation next).
func setsAgentID(body []byte, f adapter.Format) bool {
	var m map[string]any
	var err error
	if f == adapter.FormatYAML {
		err = yaml.Unmarshal(body, &m)
	} else {
		err = json.Unmarshal(body, &m)
	}
	if err != nil {
		return false
	}
	id, _ := m["agent_id"].(string)
	return id != ""
}
