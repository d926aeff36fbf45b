package store

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
)

func (t *tracedGovernance) ListAPIKeys(ctx context.Context, tenantID string) (_ []APIKey, err error) {
	ctx, span := t.start(ctx, "ListAPIKeys", tenantAttr(tenantID))
	defer func() { end(span, err) }()
	return t.g.ListAPIKeys(ctx, tenantID)
}

func (t *tracedGovernance) CreateAPIKeyAudited(ctx context.Context, k APIKey, ev AuditEvent) (_ APIKey, _ AuditEntry, err error) {
	ctx, span := t.start(ctx, "CreateAPIKeyAudited", tenantAttr(k.TenantID), attribute.String("key_id", k.ID))
	defer func() { end(span, err) }()
	return t.g.CreateAPIKeyAudited(ctx, k, ev)
}

func (t *tracedGovernance) RevokeAPIKeyAudited(ctx context.Context, tenantID, id string, ev AuditEvent) (_ APIKey, _ AuditEntry, err error) {
	ctx, span := t.start(ctx, "RevokeAPIKeyAudited", tenantAttr(tenantID), attribute.String("key_id", id))
	defer func() { end(span, err) }()
	return t.g.RevokeAPIKeyAudited(ctx, tenantID, id, ev)
}

func (t *tracedGovernance) RotateAPIKeyAudited(ctx context.Context, tenantID, oldID string, next APIKey, oldExpires time.Time, ev AuditEvent) (_ APIKey, _ AuditEntry, err error) {
	ctx, span := t.start(ctx, "RotateAPIKeyAudited", tenantAttr(tenantID), attribute.String("key_id", oldID))
	defer func() { end(span, err) }()
	return t.g.RotateAPIKeyAudited(ctx, tenantID, oldID, next, oldExpires, ev)
}

func (t *tracedGovernance) DecisionsByApprover(ctx context.Context, tenantID string, since, until time.Time) (_ []ApproverDecisions, err error) {
	ctx, span := t.start(ctx, "DecisionsByApprover", tenantAttr(tenantID))
	defer func() { end(span, err) }()
	return t.g.DecisionsByApprover(ctx, tenantID, since, until)
}
