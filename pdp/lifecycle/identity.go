package lifecycle

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// Agents cannot choose who they are (README "Who may do what"): a key
// bound to an agent submits as that agent, only with the step types it
// may use, and a tenant with require_agent_keys takes actions only from
// agent-bound keys.

// IdentityError refuses a submission whose agent or step type the key may
// not use.
type IdentityError struct {
	Field  string // agent_id or step_type
	Reason string
	// KeyAgent is the agent the key is bound to ("" for none).
	KeyAgent string
}

func (e *IdentityError) Error() string { return e.Reason }

// Extra is what the error envelope adds.
func (e *IdentityError) Extra() map[string]any {
	m := map[string]any{"field": e.Field}
	if e.KeyAgent != "" {
		m["key_agent_id"] = e.KeyAgent
	}
	return m
}

// bindIdentity applies the key's binding to sub: an absent agent_id
// becomes the key's agent; a different one, a step type the key may not
// use, or an unbound key where the tenant requires agent keys, is an
// *IdentityError. sub.StepType is already normalized.
func (sub *Submission) bindIdentity() error { return sub.BindIdentity() }

// BindIdentity is bindIdentity for callers that decide without recording
// (the Data API), so an agent-bound key asks as its agent there too.
func (sub *Submission) BindIdentity() error {
	k := sub.Key
	if k == nil {
		return nil
	}
	switch {
	case k.AgentID != "" && sub.AgentID == "":
		sub.AgentID = k.AgentID
	case k.AgentID != "" && sub.AgentID != k.AgentID:
		return &IdentityError{Field: "agent_id", KeyAgent: k.AgentID,
			Reason: fmt.Sprintf("This API key is bound to agent '%s' and submits only as that agent, not as '%s'", k.AgentID, shorten(sub.AgentID, 128))}
	case k.AgentID == "" && sub.RequireAgentKeys:
		return &IdentityError{Field: "agent_id",
			Reason: "This tenant takes actions only from keys bound to an agent (require_agent_keys); this API key is bound to none"}
	}
	if len(k.StepTypes) > 0 && !slices.Contains(k.StepTypes, sub.StepType) {
		return &IdentityError{Field: "step_type", KeyAgent: k.AgentID,
			Reason: fmt.Sprintf("This API key may submit only the step types %s, not %s", strings.Join(k.StepTypes, ", "), sub.StepType)}
	}
	return nil
}

// deciderOf is who decides with req: its key, or for callers that name
// only a key ID, an unnamed owner key of that ID.
func deciderOf(req DecisionRequest) store.APIKey {
	if req.Decider.ID != "" {
		return req.Decider
	}
	id := req.KeyID
	if id == "" {
		id = "tenant:" + req.TenantID
	}
	return store.OwnerKey(store.APIKey{ID: id, TenantID: req.TenantID})
}

// Decider is who decided an approval, from its decision's audit entry.
type Decider struct {
	ApproverID string // the deciding identity
	Role       string // its key's role ("" for decisions recorded before identities)
	IsManager  bool
	KeyID      string
	Label      string // the approver_id the request sent
	Mode       string
}

// WhoDecided returns who decided the tenant's action id (nil while it is
// undecided, or when it has no decision entry) and the votes cast on it,
// oldest first.
func (s *Service) WhoDecided(ctx context.Context, tenantID, id string) (*Decider, []store.ApprovalVote, error) {
	if s.gov == nil {
		return nil, []store.ApprovalVote{}, nil
	}
	votes, err := s.gov.ApprovalVotes(ctx, tenantID, id)
	if err != nil {
		return nil, nil, err
	}
	if votes == nil {
		votes = []store.ApprovalVote{}
	}
	trail, err := s.gov.AuditTrail(ctx, tenantID, id)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range slices.Backward(trail) {
		if e.Event != store.EventActionApproved && e.Event != store.EventActionDenied {
			continue
		}
		var m struct {
			ApproverID string `json:"approver_id"`
			Role       string `json:"approver_role"`
			IsManager  bool   `json:"is_manager"`
			KeyID      string `json:"key_id"`
			Label      string `json:"approver_label"`
			Mode       string `json:"mode"`
		}
		_ = json.Unmarshal(e.Metadata, &m) // written by Decide; anything else reads as unknown
		return &Decider{ApproverID: m.ApproverID, Role: m.Role, IsManager: m.IsManager, KeyID: m.KeyID, Label: m.Label, Mode: m.Mode}, votes, nil
	}
	return nil, votes, nil
}
