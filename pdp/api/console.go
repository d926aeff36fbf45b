package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/console"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
	"github.com/gatehouse-pdp/gatehouse/pdp/lifecycle"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// maxDraftsRunning bounds the draft evaluations one server runs at once.
// Each compiles the library and the tenant's policies from scratch (tens
// of milliseconds of CPU, a few MB of heap), so past this bound a draft is
// refused at once (503, Retry-After) rather than queued.
const maxDraftsRunning = 2

// consoleRoutes serves the console (package console) at /console/ and the
// two routes it needs beyond the public API, both read-only and both
// behind the API key (so rate-limited per key like every other route):
//   - POST /v1/control/dry-run decides an action as POST /v1/actions
//     would, and optionally with an unsaved draft policy put in, without
//     recording anything (the playground);
//   - GET /v1/control/agents names every agent with agent-scoped policies,
//     so the policies page can show both scopes.
func (s *server) consoleRoutes(r *gin.Engine, v1 *gin.RouterGroup) {
	console.Register(r, func(c *gin.Context, message string) {
		fail(c, newError(http.StatusNotFound, pdp.CodeNotFound, "%s", message))
	})
	p := &playground{server: s, drafts: make(chan struct{}, maxDraftsRunning)}
	control := v1.Group("/control", s.authenticate, policyRoutes)
	control.POST("/dry-run", p.dryRun)
	control.GET("/agents", s.listAgents)
}

// playground holds what dry runs share: the bound on drafts compiling.
type playground struct {
	*server
	drafts chan struct{}
}

// dryRunBody is the body of POST /v1/control/dry-run: an action as POST
// /v1/actions takes it, plus an optional draft policy document as text
// (JSON or YAML, as the policy routes accept it) with its format.
type dryRunBody struct {
	actionBody
	Draft       *string `json:"draft"`
	DraftFormat *string `json:"draft_format"`
}

// dryRunDecision is one decision of a dry run: POST /v1/actions' response
// with action_id null, since nothing was recorded.
type dryRunDecision struct {
	ActionID     *string       `json:"action_id"`
	Action       string        `json:"action"`
	AgentID      *string       `json:"agent_id"`
	Status       pdp.Status    `json:"status"`
	PolicyResult *pdp.Decision `json:"policy_result"`
	Message      string        `json:"message"`
}

// dryRun answers {"recorded": false, "saved": <decision with the stored
// policies>, "draft": <decision with the draft put in>} ("draft" only when
// one was given). The saved decision is the one the engine makes for POST
// /v1/actions and the Data API, from the same prepared query; nothing is
// recorded, audited or decision-logged. A draft replaces the stored policy
// of its name and scope, or is added; it must pass the same tier gate and
// validation as saving it would (its problems name fields as "draft.<field>").
func (p *playground) dryRun(c *gin.Context) {
	ctx := c.Request.Context()
	body, err := readBody(c)
	if err != nil {
		fail(c, err)
		return
	}
	var b dryRunBody
	if err := decodeStrict(body, &b); err != nil {
		fail(c, err)
		return
	}
	a, err := dryRunAction(&b)
	if err != nil {
		fail(c, err)
		return
	}
	// An agent-bound key tries actions as its agent, as it submits them.
	if k := apiKey(c); k.AgentID != "" {
		sub := lifecycle.Submission{AgentID: a.AgentID, StepType: a.StepType, Key: &k}
		if err := sub.BindIdentity(); err != nil {
			fail(c, err)
			return
		}
		a.AgentID = sub.AgentID
	}
	t := tenant(c)
	a.TenantID = t.ID

	var draft *pdp.Policy
	if b.Draft != nil {
		if draft, err = p.draftPolicy(c, t, &b); err != nil {
			fail(c, err)
			return
		}
	}

	saved, err := p.eng.Evaluate(ctx, a)
	if err != nil {
		p.refuse(c, err)
		return
	}
	resp := gin.H{"recorded": false, "saved": dryRunView(a, saved)}
	if draft != nil {
		d, err := p.evaluateDraft(c, a, *draft)
		if err != nil {
			p.refuse(c, err)
			return
		}
		resp["draft"] = dryRunView(a, d)
	}
	writeJSON(c, http.StatusOK, resp)
}

// dryRunAction validates the action as POST /v1/actions does (docs/api.md §A7).
func dryRunAction(b *dryRunBody) (pdp.Action, error) {
	var es pdp.ValidationErrors
	a := pdp.Action{AgentID: deref(b.AgentID), StepType: deref(b.StepType)}
	switch {
	case b.Action == nil:
		es = append(es, &pdp.ValidationError{Field: "action", Reason: "is required"})
	case *b.Action == "":
		es = append(es, &pdp.ValidationError{Field: "action", Reason: "must not be empty"})
	case utf8.RuneCountInString(*b.Action) > lifecycle.MaxActionLen:
		es = append(es, &pdp.ValidationError{Field: "action", Reason: fmt.Sprintf("must be at most %d characters", lifecycle.MaxActionLen)})
	case strings.IndexByte(*b.Action, 0) >= 0:
		es = append(es, &pdp.ValidationError{Field: "action", Reason: "must not contain NUL bytes"})
	default:
		a.Name = *b.Action
	}
	params, err := paramsObject(b.Params, "params")
	if err != nil {
		return pdp.Action{}, err
	}
	a.Params = params
	addProblem(&es, registry.CheckAgentID("agent_id", a.AgentID))
	if a.StepType == "" {
		a.StepType = pdp.DefaultStepType
	} else if up := strings.ToUpper(a.StepType); slices.Contains(pdp.StepTypes, up) {
		a.StepType = up
	} else {
		es = append(es, &pdp.ValidationError{Field: "step_type", Reason: "must be one of thought, action, observation, output, error, policy_check"})
	}
	if b.DraftFormat != nil && b.Draft == nil {
		es = append(es, &pdp.ValidationError{Field: "draft_format", Reason: "is only allowed with draft"})
	}
	if err := es.Err(); err != nil {
		return pdp.Action{}, err
	}
	pj, err := encodeJSON(params)
	if err != nil {
		return pdp.Action{}, &pdp.ValidationError{Field: "params", Reason: "cannot be encoded as JSON"}
	}
	if len(pj) > lifecycle.MaxParamsBytes {
		return pdp.Action{}, newError(http.StatusRequestEntityTooLarge, pdp.CodePayloadTooLarge,
			"params: must be at most %d bytes as JSON (got %d)", lifecycle.MaxParamsBytes, len(pj))
	}
	return a, nil
}

// draftPolicy checks a draft as saving it would: the tier's feature first,
// then the document (docs/api.md §A1's order). The enabled-policy limit is not
// checked: a draft adds nothing.
func (p *playground) draftPolicy(c *gin.Context, t store.Tenant, b *dryRunBody) (*pdp.Policy, error) {
	format := adapter.FormatJSON
	switch f := strings.ToLower(deref(b.DraftFormat)); f {
	case "", "json":
	case "yaml":
		format = adapter.FormatYAML
	default:
		return nil, pdp.Invalid("draft_format", "must be json or yaml")
	}
	cur, err := p.reg.Tenant(c.Request.Context(), t.ID)
	if err != nil {
		return nil, err
	}
	text := []byte(*b.Draft)
	if err := registry.RequireFeature(cur.Tier, registry.PolicyWriteFeature(setsAgentID(text, format))); err != nil {
		return nil, err
	}
	doc, err := adapter.Decode(text, format)
	if err == nil {
		var pol pdp.Policy
		if pol, err = doc.Policy(); err == nil {
			return &pol, nil
		}
	}
	return nil, draftProblem(err)
}

// draftProblem renames the fields a draft's validation errors name to
// "draft.<field>", so they are not taken for the action's.
func draftProblem(err error) error {
	var es pdp.ValidationErrors
	var ve *pdp.ValidationError
	switch {
	case errors.As(err, &es):
	case errors.As(err, &ve):
		es = pdp.ValidationErrors{ve}
	default:
		return err
	}
	out := make(pdp.ValidationErrors, len(es))
	for i, e := range es {
		field := "draft"
		if e.Field != "" {
			field += "." + e.Field
		}
		out[i] = &pdp.ValidationError{Field: field, Reason: e.Reason}
	}
	return out
}

// evaluateDraft decides a with the tenant's stored policies and draft in
// place of its namesake, holding one of the server's draft slots.
func (p *playground) evaluateDraft(c *gin.Context, a pdp.Action, draft pdp.Policy) (*pdp.Decision, error) {
	select {
	case p.drafts <- struct{}{}:
		defer func() { <-p.drafts }()
	default:
		return nil, fmt.Errorf("%w: %w (%d drafts running)", pdp.ErrEvaluationFailed, engine.ErrOverloaded, cap(p.drafts))
	}
	ctx := c.Request.Context()
	tp, err := p.st.TenantPolicies(ctx, a.TenantID)
	if err != nil {
		return nil, fmt.Errorf("read policies for a draft: %w", err)
	}
	i := slices.IndexFunc(tp.Policies, func(q pdp.Policy) bool { return q.AgentID == draft.AgentID && q.Name == draft.Name })
	if i >= 0 {
		tp.Policies = slices.Clone(tp.Policies)
		tp.Policies[i] = draft
	} else {
		tp.Policies = append(slices.Clone(tp.Policies), draft)
	}
	return p.eng.EvaluateDraft(ctx, a, tp)
}

// refuse answers a failed dry run: overloaded or unavailable, never a
// decision.
func (p *playground) refuse(c *gin.Context, err error) {
	switch {
	case errors.Is(err, engine.ErrOverloaded):
		fail(c, err) // 503 with Retry-After (errors.go)
	case errors.Is(err, engine.ErrBundleTenant):
		fail(c, newError(http.StatusConflict, pdp.CodeReadOnly,
			"This server decides from bundles; drafts can be tried only against policies kept in its store"))
	default:
		fail(c, err) // 503 evaluation_unavailable, cause logged
	}
}

func dryRunView(a pdp.Action, d *pdp.Decision) dryRunDecision {
	lifecycle.NormalizeDecision(d)
	return dryRunDecision{
		Action:       a.Name,
		AgentID:      agentPtr(a.AgentID),
		Status:       d.Status,
		PolicyResult: d,
		Message:      lifecycle.Message(d.Status, d.Reason, "(none: dry run, not recorded)"),
	}
}

// agentView is one entry of GET /v1/control/agents.
type agentView struct {
	AgentID  string `json:"agent_id"`
	Policies int    `json:"policies"`
	Enabled  int    `json:"enabled"`
}

// listAgents is GET /v1/control/agents → {"agents": [...]}: each agent
// with agent-scoped policies (enabled or not), by agent id, with how many
// it has and how many are enabled. GET /v1/control/policies?agent_id=X
// lists them.
func (s *server) listAgents(c *gin.Context) {
	ps, err := s.st.ListPolicies(c.Request.Context(), tenant(c).ID, store.PolicyFilter{})
	if err != nil {
		fail(c, fmt.Errorf("list policies: %w", err))
		return
	}
	byAgent := map[string]*agentView{}
	agents := []*agentView{}
	for _, p := range ps {
		if p.AgentID == "" {
			continue
		}
		v := byAgent[p.AgentID]
		if v == nil {
			v = &agentView{AgentID: p.AgentID}
			byAgent[p.AgentID] = v
			agents = append(agents, v)
		}
		v.Policies++
		if p.Enabled {
			v.Enabled++
		}
	}
	slices.SortFunc(agents, func(x, y *agentView) int { return strings.Compare(x.AgentID, y.AgentID) })
	writeJSON(c, http.StatusOK, gin.H{"agents": agents})
}
