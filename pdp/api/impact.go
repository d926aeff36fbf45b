package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
	"github.com/gatehouse-pdp/gatehouse/pdp/impact"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
)

// impactBody is POST /v1/control/policies/impact's body: one draft change
// (policy, disable or rollback) and the window to replay.
type impactBody struct {
	Policy       json.RawMessage `json:"policy"`
	Disable      *string         `json:"disable"`
	AgentID      *string         `json:"agent_id"`
	Rollback     *rollbackRef    `json:"rollback"`
	Since        *string         `json:"since"`
	Until        *string         `json:"until"`
	Limit        *int            `json:"limit"`
	TimeBudgetMS *int            `json:"time_budget_ms"`
}

type rollbackRef struct {
	Name    *string `json:"name"`
	Version *int    `json:"version"`
	AgentID *string `json:"agent_id"`
}

// impactRoute serves POST /v1/control/policies/impact with svc.
func (s *server) impactRoute(control *gin.RouterGroup, svc *impact.Service) {
	control.POST("/policies/impact", func(c *gin.Context) { s.policyImpact(c, svc) })
}

func (s *server) policyImpact(c *gin.Context, svc *impact.Service) {
	ctx := c.Request.Context()
	body, err := readBody(c)
	if err != nil {
		fail(c, err)
		return
	}
	var b impactBody
	if err := decodeStrict(body, &b); err != nil {
		fail(c, err)
		return
	}
	t, err := s.reg.Tenant(ctx, tenant(c).ID)
	if err != nil {
		fail(c, err)
		return
	}
	req := impact.Request{TenantID: t.ID}
	var es pdp.ValidationErrors
	problem := func(field, reason string) { es = append(es, &pdp.ValidationError{Field: field, Reason: reason}) }
	when := func(field string, v *string) time.Time {
		if v == nil {
			return time.Time{}
		}
		ts, err := time.Parse(time.RFC3339Nano, *v)
		if err != nil {
			problem(field, "must be an RFC 3339 timestamp")
		}
		return ts
	}
	req.Since, req.Until = when("since", b.Since), when("until", b.Until)
	if b.Limit != nil {
		if req.Limit = *b.Limit; req.Limit < 1 {
			problem("limit", fmt.Sprintf("must be between 1 and %d", impact.MaxLimit))
			req.Limit = 0
		}
	}
	if b.TimeBudgetMS != nil {
		if *b.TimeBudgetMS < 1 {
			problem("time_budget_ms", fmt.Sprintf("must be between 1 and %d", impact.MaxBudget.Milliseconds()))
		} else {
			req.Budget = time.Duration(*b.TimeBudgetMS) * time.Millisecond
		}
	}
	if b.AgentID != nil && b.Disable == nil {
		problem("agent_id", "is only allowed with disable (a policy or rollback names its own)")
	}
	switch {
	case len(b.Policy) > 0 && string(b.Policy) != "null":
		doc, err := adapter.Decode(b.Policy, adapter.FormatJSON)
		if err == nil {
			if err = registry.RequireFeature(t.Tier, registry.PolicyWriteFeature(doc.AgentID != nil && *doc.AgentID != "")); err != nil {
				fail(c, err)
				return
			}
			var p pdp.Policy
			if p, err = doc.Policy(); err == nil {
				req.Change.Policy = &p
			}
		}
		if err != nil {
			var ves pdp.ValidationErrors
			if errors.As(draftProblem(err), &ves) {
				for _, ve := range ves {
					es = append(es, &pdp.ValidationError{Field: "policy" + ve.Field[len("draft"):], Reason: ve.Reason})
				}
			} else {
				fail(c, err)
				return
			}
		}
	}
	if b.Disable != nil {
		ref := &impact.Ref{Name: *b.Disable, AgentID: deref(b.AgentID)}
		addProblem(&es, registry.CheckAgentID("agent_id", ref.AgentID))
		req.Change.Disable = ref
	}
	if b.Rollback != nil {
		ref := &impact.Ref{Name: deref(b.Rollback.Name), AgentID: deref(b.Rollback.AgentID)}
		if ref.Name == "" {
			problem("rollback.name", "is required")
		}
		if b.Rollback.Version == nil || *b.Rollback.Version < 1 {
			problem("rollback.version", "required: a positive integer")
		} else {
			ref.Version = *b.Rollback.Version
		}
		addProblem(&es, registry.CheckAgentID("rollback.agent_id", ref.AgentID))
		req.Change.Rollback = ref
	}
	if err := svc.Normalize(&req); err != nil {
		var ves pdp.ValidationErrors
		if errors.As(err, &ves) {
			es = append(es, ves...)
		}
	}
	if err := es.Err(); err != nil {
		fail(c, err)
		return
	}
	res, err := svc.Run(ctx, req)
	var rl *impact.RateLimitedError
	switch {
	case err == nil:
	case errors.As(err, &rl):
		retry := max(1, int(math.Ceil(rl.Result.RetryAfter.Seconds())))
		c.Header("Retry-After", strconv.Itoa(retry))
		fail(c, &apiError{Status: http.StatusTooManyRequests, Code: pdp.CodeRateLimited,
			Message: fmt.Sprintf("Impact analyses are limited to %d at once and one every %d s per tenant; retry in %d s",
				impact.DefaultRate.Burst, int(1/impact.DefaultRate.RequestsPerSecond), retry),
			Extra: map[string]any{"usage": map[string]any{
				"current": rl.Result.Current, "limit": rl.Result.Limit, "plan": string(t.Tier), "resets_at": timestamp(rl.Result.ResetAt),
			}}, cause: err})
		return
	case errors.Is(err, impact.ErrTenantBusy):
		fail(c, &apiError{Status: http.StatusConflict, Code: pdp.CodeConflict, Message: "An impact analysis of this tenant is already running", cause: err})
		return
	case errors.Is(err, impact.ErrServerBusy):
		c.Header("Retry-After", "1")
		fail(c, &apiError{Status: http.StatusServiceUnavailable, Code: pdp.CodeEvaluationUnavailable, Message: "This server runs as many impact analyses as it may; retry shortly", cause: err})
		return
	case errors.Is(err, impact.ErrPolicyNotFound):
		name := ""
		if r := req.Change.Disable; r != nil {
			name = r.Name
		} else if r := req.Change.Rollback; r != nil {
			name = r.Name
		}
		fail(c, &apiError{Status: http.StatusNotFound, Code: pdp.CodePolicyNotFound, Message: "Policy '" + truncate(name, 64) + "' (or that version of it) not found", cause: err})
		return
	case errors.Is(err, engine.ErrBundleTenant):
		fail(c, newError(http.StatusConflict, pdp.CodeReadOnly, "This server decides from bundles; impact can be analysed only against policies kept in its store"))
		return
	default:
		fail(c, err)
		return
	}
	writeJSON(c, http.StatusOK, impactView(res))
}

func impactView(r *impact.Result) gin.H {
	examples := make([]gin.H, len(r.Examples))
	for i, e := range r.Examples {
		examples[i] = gin.H{"action_id": e.ActionID, "agent_id": agentPtr(e.AgentID), "action": e.Action,
			"created_at": timestamp(e.CreatedAt), "before": e.Before, "after": e.After, "reason": e.Reason}
	}
	agents := make([]gin.H, len(r.ByAgent))
	for i, a := range r.ByAgent {
		agents[i] = gin.H{"agent_id": agentPtr(a.AgentID), "evaluated": a.Evaluated, "changed": a.Changed, "transitions": a.Transitions}
	}
	return gin.H{
		"recorded": false, "evaluated": r.Evaluated, "changed": r.Changed, "failed": r.Failed,
		"transitions": r.Transitions, "by_agent": agents, "by_policy": r.ByPolicy, "examples": examples,
		"partial": r.Partial, "truncated": r.Truncated,
		"window":     gin.H{"since": timestamp(r.Window.Since), "until": timestamp(r.Window.Until), "limit": r.Window.Limit, "time_budget_ms": r.Window.BudgetMS},
		"compile_ms": r.CompileMS, "first_result_ms": r.FirstResultMS, "duration_ms": r.DurationMS,
	}
}
