package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/lifecycle"
)

// dataRoutes serves a subset of OPA's Data API (docs/api.md §B3), so OPA
// clients can query Gatehouse as they would a sidecar OPA serving the
// tenant's bundle:
//   - POST /v1/data/gatehouse/decision/result {"input": {...}} →
//     {"result": {...}}, or {} when undefined. The tenant is the key's:
//     input.tenant_id is overwritten, never trusted.
//   - GET /v1/data/gatehouse/tenants/{tenant}[/path...] → {"result": ...}:
//     the key's own tenant's data document (mode, policies' step types,
//     whitelists, guards), or a part of it; {} when the path is undefined.
//     Anything else under /v1/data is 404, another tenant's included.
//
// Unlike /v1/actions, a Data API decision is not recorded: it is a query,
// as it is on OPA. It is decision-logged, as on OPA, when a decision log
// is configured; the response then carries its decision_id.
func (s *server) dataRoutes(v1 *gin.RouterGroup) {
	data := v1.Group("/data", s.authenticate)
	data.POST("/gatehouse/decision/result", s.dataDecision)
	data.GET("/*path", s.dataRead)
}

func (s *server) dataDecision(c *gin.Context) {
	body, err := readBody(c)
	if err != nil {
		fail(c, err)
		return
	}
	var req struct {
		Input json.RawMessage `json:"input"`
	}
	if len(bytes.TrimSpace(body)) > 0 {
		// Other top-level keys are allowed, as OPA allows them.
		dec := json.NewDecoder(bytes.NewReader(body))
		if err := dec.Decode(&req); err != nil {
			fail(c, jsonProblem(err))
			return
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			fail(c, &pdp.ValidationError{Reason: "unexpected data after the JSON object"})
			return
		}
	}
	var input map[string]any
	if len(req.Input) > 0 && !bytes.Equal(bytes.TrimSpace(req.Input), []byte("null")) {
		dec := json.NewDecoder(bytes.NewReader(req.Input))
		dec.UseNumber() // numbers keep their text, as in /v1/actions
		if err := dec.Decode(&input); err != nil || input == nil {
			fail(c, pdp.Invalid("input", "must be a JSON object"))
			return
		}
	}
	if err := lifecycle.CheckActionText(input["action"], input["params"]); err != nil {
		fail(c, err)
		return
	}
	// An agent-bound key asks as its agent, as it submits (identity.go).
	if k := apiKey(c); k.AgentID != "" {
		if input == nil {
			input = map[string]any{}
		}
		agent, _ := input["agent_id"].(string)
		step, _ := input["step_type"].(string)
		sub := lifecycle.Submission{AgentID: agent, StepType: strings.ToUpper(step), Key: &k}
		if sub.StepType == "" {
			sub.StepType = pdp.DefaultStepType
		}
		if _, isString := input["agent_id"].(string); input["agent_id"] != nil && !isString {
			sub.AgentID = "(not a string)"
		}
		if err := sub.BindIdentity(); err != nil {
			fail(c, err)
			return
		}
		input["agent_id"] = sub.AgentID
	}
	result, defined, err := s.eng.Query(c.Request.Context(), tenant(c).ID, input)
	if err != nil {
		fail(c, err) // 503 evaluation_unavailable
		return
	}
	// With a decision log, the response names the logged decision, as
	// OPA's does (decisionlog.go).
	resp := map[string]any{}
	if id := s.logQuery(c, tenant(c).ID, input, result, defined); id != "" {
		resp["decision_id"] = id
	}
	if defined {
		resp["result"] = result
	}
	writeJSON(c, http.StatusOK, resp)
}

func (s *server) dataRead(c *gin.Context) {
	t := tenant(c)
	segs := strings.Split(strings.Trim(c.Param("path"), "/"), "/")
	if len(segs) < 3 || segs[0] != adapter.Root || segs[1] != "tenants" || segs[2] != t.ID {
		fail(c, newError(http.StatusNotFound, pdp.CodeNotFound,
			"Only this key's tenant data can be read: GET /v1/data/%s/tenants/%s[/...]", adapter.Root, t.ID))
		return
	}
	doc, ok := s.eng.TenantData(t.ID)
	if !ok {
		writeJSON(c, http.StatusOK, struct{}{}) // undefined, as on OPA
		return
	}
	var v any = doc
	for _, seg := range segs[3:] {
		switch x := v.(type) {
		case map[string]any:
			v, ok = x[seg]
		case []any:
			i, err := strconv.Atoi(seg)
			ok = err == nil && i >= 0 && i < len(x)
			if ok {
				v = x[i]
			}
		default:
			ok = false
		}
		if !ok {
			writeJSON(c, http.StatusOK, struct{}{})
			return
		}
	}
	writeJSON(c, http.StatusOK, map[string]any{"result": v})
}
