package store

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// TracedGovernance is Traced for a GovernanceStore: the Store methods as
// Traced traces them, and a span "store.<Method>" around each governance
// method, observed like the others when opts include WithOpObserver.
// Refusals of a decision or vote (ErrAlreadyDecided, ErrAlreadyVoted) are
// answers, recorded as events like misses. Wire it instead of Traced when
// the store is a GovernanceStore: Traced's wrapper hides these methods.
func TracedGovernance(s GovernanceStore, tp trace.TracerProvider, opts ...TraceOption) GovernanceStore {
	return &tracedGovernance{traced: newTraced(s, tp, opts...), g: s}
}

type tracedGovernance struct {
	*traced
	g GovernanceStore
}

func endGovernance(span opSpan, err error) {
	if err != nil && span.IsRecording() && (errors.Is(err, ErrAlreadyDecided) || errors.Is(err, ErrAlreadyVoted)) {
		span.AddEvent(err.Error())
		span.End()
		return
	}
	end(span, err)
}

func actionAttrs(tenantID, actionID string) []attribute.KeyValue {
	return []attribute.KeyValue{tenantAttr(tenantID), attribute.String("action_id", actionID)}
}

func (t *tracedGovernance) AppendAudit(ctx context.Context, tenantID string, events ...AuditEvent) (_ []AuditEntry, err error) {
	ctx, span := t.start(ctx, "AppendAudit", tenantAttr(tenantID), attribute.Int("events", len(events)))
	defer func() { endGovernance(span, err) }()
	return t.g.AppendAudit(ctx, tenantID, events...)
}

func (t *tracedGovernance) ListAudit(ctx context.Context, tenantID string, q AuditQuery) (_ []AuditEntry, _ int, err error) {
	ctx, span := t.start(ctx, "ListAudit", tenantAttr(tenantID), attribute.String("event", q.EventType))
	defer func() { endGovernance(span, err) }()
	return t.g.ListAudit(ctx, tenantID, q)
}

func (t *tracedGovernance) AuditTrail(ctx context.Context, tenantID, actionID string) (_ []AuditEntry, err error) {
	ctx, span := t.start(ctx, "AuditTrail", actionAttrs(tenantID, actionID)...)
	defer func() { endGovernance(span, err) }()
	return t.g.AuditTrail(ctx, tenantID, actionID)
}

func (t *tracedGovernance) VerifyAudit(ctx context.Context, tenantID string) (_ AuditVerification, err error) {
	ctx, span := t.start(ctx, "VerifyAudit", tenantAttr(tenantID))
	defer func() { endGovernance(span, err) }()
	return t.g.VerifyAudit(ctx, tenantID)
}

func (t *tracedGovernance) FlushAudit(ctx context.Context) (err error) {
	ctx, span := t.start(ctx, "FlushAudit")
	defer func() { endGovernance(span, err) }()
	return t.g.FlushAudit(ctx)
}

func (t *tracedGovernance) InsertActionAudited(ctx context.Context, a ActionRecord, ev AuditEvent) (_ ActionRecord, _ AuditEntry, err error) {
	ctx, span := t.start(ctx, "InsertActionAudited", tenantAttr(a.TenantID), attribute.String("action_id", a.ID), attribute.String("agent_id", a.AgentID))
	defer func() { endGovernance(span, err) }()
	return t.g.InsertActionAudited(ctx, a, ev)
}

func (t *tracedGovernance) PutPolicyAudited(ctx context.Context, req PutPolicyRequest, ev AuditEvent) (_ PolicyWrite, _ AuditEntry, err error) {
	ctx, span := t.start(ctx, "PutPolicyAudited", keyAttrs(PolicyKey{req.TenantID, req.Policy.AgentID, req.Policy.Name})...)
	defer func() { endGovernance(span, err) }()
	return t.g.PutPolicyAudited(ctx, req, ev)
}

func (t *tracedGovernance) DisablePolicyAudited(ctx context.Context, key PolicyKey, ev AuditEvent) (_ PolicyWrite, _ AuditEntry, err error) {
	ctx, span := t.start(ctx, "DisablePolicyAudited", keyAttrs(key)...)
	defer func() { endGovernance(span, err) }()
	return t.g.DisablePolicyAudited(ctx, key, ev)
}

func (t *tracedGovernance) ListApprovals(ctx context.Context, tenantID string, q ApprovalQuery) (_ []Approval, _ int, err error) {
	ctx, span := t.start(ctx, "ListApprovals", tenantAttr(tenantID), attribute.String("status", string(q.Status)))
	defer func() { endGovernance(span, err) }()
	return t.g.ListApprovals(ctx, tenantID, q)
}

func (t *tracedGovernance) ApprovalVotes(ctx context.Context, tenantID, actionID string) (_ []ApprovalVote, err error) {
	ctx, span := t.start(ctx, "ApprovalVotes", actionAttrs(tenantID, actionID)...)
	defer func() { endGovernance(span, err) }()
	return t.g.ApprovalVotes(ctx, tenantID, actionID)
}

func (t *tracedGovernance) RecordApprovalVote(ctx context.Context, req VoteRequest) (_ VoteResult, err error) {
	ctx, span := t.start(ctx, "RecordApprovalVote", append(actionAttrs(req.Vote.TenantID, req.Vote.ActionID),
		attribute.String("approver_id", req.Vote.ApproverID), attribute.String("decision", string(req.Vote.Decision)))...)
	defer func() { endGovernance(span, err) }()
	return t.g.RecordApprovalVote(ctx, req)
}

func (t *tracedGovernance) DecideAction(ctx context.Context, req DecideRequest) (_ ActionRecord, _ AuditEntry, err error) {
	ctx, span := t.start(ctx, "DecideAction", append(actionAttrs(req.TenantID, req.ActionID),
		attribute.String("approver_id", req.ApproverID), attribute.String("status", string(req.Status)))...)
	defer func() { endGovernance(span, err) }()
	return t.g.DecideAction(ctx, req)
}

func (t *tracedGovernance) Dashboard(ctx context.Context, tenantID string, q DashboardQuery) (_ DashboardReport, err error) {
	ctx, span := t.start(ctx, "Dashboard", tenantAttr(tenantID), attribute.String("bucket", string(q.Bucket)))
	defer func() { endGovernance(span, err) }()
	return t.g.Dashboard(ctx, tenantID, q)
}

func (t *tracedGovernance) AgentViolations(ctx context.Context, tenantID, agentID string, q ViolationQuery) (_ []AgentViolation, _ int, err error) {
	ctx, span := t.start(ctx, "AgentViolations", tenantAttr(tenantID), attribute.String("agent_id", agentID))
	defer func() { endGovernance(span, err) }()
	return t.g.AgentViolations(ctx, tenantID, agentID, q)
}
