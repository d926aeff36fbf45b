package store

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
)

func (t *traced) PolicyVersions(ctx context.Context, key PolicyKey) (_ []PolicyVersion, err error) {
	ctx, span := t.start(ctx, "PolicyVersions", keyAttrs(key)...)
	defer func() { end(span, err) }()
	return t.s.PolicyVersions(ctx, key)
}

func (t *traced) PolicyVersion(ctx context.Context, key PolicyKey, version int) (_ PolicyVersion, err error) {
	ctx, span := t.start(ctx, "PolicyVersion", append(keyAttrs(key), attribute.Int("version", version))...)
	defer func() { end(span, err) }()
	return t.s.PolicyVersion(ctx, key, version)
}

func (t *traced) ActionsInWindow(ctx context.Context, tenantID string, w ActionWindow) (_ []ActionRecord, err error) {
	ctx, span := t.start(ctx, "ActionsInWindow", tenantAttr(tenantID), attribute.Int("limit", w.Limit))
	defer func() { end(span, err) }()
	return t.s.ActionsInWindow(ctx, tenantID, w)
}

func (t *traced) ShadowHitsByPolicy(ctx context.Context, tenantID string, since, until time.Time) (_ []PolicyHits, err error) {
	ctx, span := t.start(ctx, "ShadowHitsByPolicy", tenantAttr(tenantID))
	defer func() { end(span, err) }()
	return t.s.ShadowHitsByPolicy(ctx, tenantID, since, until)
}
