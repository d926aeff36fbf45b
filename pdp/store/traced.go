package store

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// Traced wraps s so every call is a span named "store.<Method>" with the
// tenant_id, agent_id or action_id it concerns, from tp's tracer. It wraps
// the interface rather than living in each driver, so every driver is
// traced the same way. Misses (ErrNotFound) and refusals (*LimitError) are
// answers, not failures: they are recorded as events and leave the span's
// status unset. With WithOpObserver, it also reports each call's duration.
// With a no-op provider (tracing off) it starts no span at all, and costs
// a call no allocation; durations are still reported.
func Traced(s Store, tp trace.TracerProvider, opts ...TraceOption) Store {
	return newTraced(s, tp, opts...)
}

type traced struct {
	s   Store
	tr  trace.Tracer
	off bool       // tr records nothing (a no-op provider): no span is started
	obs OpObserver // nil: durations are not reported
}

// noSpan is the span of a call when tracing is off.
var noSpan = trace.SpanFromContext(context.Background())

// opSpan is one call's span and, with an observer, its start: End reports
// the duration, then ends the span. It is a value, so a call allocates
// nothing for it when tracing is off.
type opSpan struct {
	trace.Span
	op    string
	began time.Time
	obs   OpObserver
}

// End reports the call's duration (with an observer), then ends the span.
func (s opSpan) End(opts ...trace.SpanEndOption) {
	if s.obs != nil {
		s.obs.ObserveStoreOp(s.op, time.Since(s.began))
	}
	s.Span.End(opts...)
}

// start begins the span of the call op. When tracing is off it starts no
// span and leaves ctx as it is (a no-op tracer's span carries nothing a
// store reads), so a call costs the wrapper no allocation: attrs are only
// read, never kept, so the callers' attribute lists stay on their stacks.
func (t *traced) start(ctx context.Context, op string, attrs ...attribute.KeyValue) (context.Context, opSpan) {
	span := opSpan{Span: noSpan, op: op, obs: t.obs}
	if t.obs != nil {
		span.began = time.Now()
	}
	if t.off {
		return ctx, span
	}
	all := make([]attribute.KeyValue, 0, len(attrs)+1)
	all = append(append(all, attrs...), attribute.String("db.system.name", t.s.Backend()))
	ctx, span.Span = t.tr.Start(ctx, "store."+op, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(all...))
	return ctx, span
}

func end(span opSpan, err error) {
	switch {
	case err == nil:
	case !span.IsRecording(): // nothing to add the error to
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrLimitExceeded):
		span.AddEvent(err.Error())
	default:
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

func tenantAttr(id string) attribute.KeyValue { return attribute.String("tenant_id", id) }

func keyAttrs(k PolicyKey) []attribute.KeyValue {
	return []attribute.KeyValue{tenantAttr(k.TenantID), attribute.String("agent_id", k.AgentID), attribute.String("policy", k.Name)}
}

func (t *traced) Backend() string { return t.s.Backend() }

func (t *traced) Ping(ctx context.Context) (err error) {
	ctx, span := t.start(ctx, "Ping")
	defer func() { end(span, err) }()
	return t.s.Ping(ctx)
}

func (t *traced) Close() error { return t.s.Close() }

func (t *traced) CreateTenant(ctx context.Context, tn Tenant, keys ...APIKey) (_ Tenant, err error) {
	ctx, span := t.start(ctx, "CreateTenant", tenantAttr(tn.ID))
	defer func() { end(span, err) }()
	return t.s.CreateTenant(ctx, tn, keys...)
}

func (t *traced) GetTenant(ctx context.Context, id string) (_ Tenant, err error) {
	ctx, span := t.start(ctx, "GetTenant", tenantAttr(id))
	defer func() { end(span, err) }()
	return t.s.GetTenant(ctx, id)
}

func (t *traced) ListTenants(ctx context.Context) (_ []Tenant, err error) {
	ctx, span := t.start(ctx, "ListTenants")
	defer func() { end(span, err) }()
	return t.s.ListTenants(ctx)
}

func (t *traced) UpdateTenant(ctx context.Context, id string, u TenantUpdate) (_ Tenant, err error) {
	ctx, span := t.start(ctx, "UpdateTenant", tenantAttr(id))
	defer func() { end(span, err) }()
	return t.s.UpdateTenant(ctx, id, u)
}

func (t *traced) CountTenants(ctx context.Context) (_ int, err error) {
	ctx, span := t.start(ctx, "CountTenants")
	defer func() { end(span, err) }()
	return t.s.CountTenants(ctx)
}

func (t *traced) CreateAPIKey(ctx context.Context, k APIKey) (_ APIKey, err error) {
	ctx, span := t.start(ctx, "CreateAPIKey", tenantAttr(k.TenantID), attribute.String("key_id", k.ID))
	defer func() { end(span, err) }()
	return t.s.CreateAPIKey(ctx, k)
}

func (t *traced) TenantByKeyHash(ctx context.Context, hash string) (_ Tenant, _ APIKey, err error) {
	ctx, span := t.start(ctx, "TenantByKeyHash") // never the hash: it stands for a secret
	defer func() { end(span, err) }()
	return t.s.TenantByKeyHash(ctx, hash)
}

func (t *traced) RevokeAPIKey(ctx context.Context, id string) (err error) {
	ctx, span := t.start(ctx, "RevokeAPIKey", attribute.String("key_id", id))
	defer func() { end(span, err) }()
	return t.s.RevokeAPIKey(ctx, id)
}

func (t *traced) PutPolicy(ctx context.Context, req PutPolicyRequest) (_ PolicyWrite, err error) {
	ctx, span := t.start(ctx, "PutPolicy", keyAttrs(PolicyKey{req.TenantID, req.Policy.AgentID, req.Policy.Name})...)
	defer func() { end(span, err) }()
	return t.s.PutPolicy(ctx, req)
}

func (t *traced) DisablePolicy(ctx context.Context, key PolicyKey) (_ PolicyWrite, err error) {
	ctx, span := t.start(ctx, "DisablePolicy", keyAttrs(key)...)
	defer func() { end(span, err) }()
	return t.s.DisablePolicy(ctx, key)
}

func (t *traced) GetPolicy(ctx context.Context, key PolicyKey) (_ pdp.Policy, err error) {
	ctx, span := t.start(ctx, "GetPolicy", keyAttrs(key)...)
	defer func() { end(span, err) }()
	return t.s.GetPolicy(ctx, key)
}

func (t *traced) ListPolicies(ctx context.Context, tenantID string, f PolicyFilter) (_ []pdp.Policy, err error) {
	attrs := []attribute.KeyValue{tenantAttr(tenantID)}
	if f.AgentID != nil {
		attrs = append(attrs, attribute.String("agent_id", *f.AgentID))
	}
	ctx, span := t.start(ctx, "ListPolicies", attrs...)
	defer func() { end(span, err) }()
	return t.s.ListPolicies(ctx, tenantID, f)
}

func (t *traced) CountEnabledPolicies(ctx context.Context, tenantID string) (_ int, err error) {
	ctx, span := t.start(ctx, "CountEnabledPolicies", tenantAttr(tenantID))
	defer func() { end(span, err) }()
	return t.s.CountEnabledPolicies(ctx, tenantID)
}

func (t *traced) TenantPolicies(ctx context.Context, tenantID string) (_ pdp.TenantPolicies, err error) {
	ctx, span := t.start(ctx, "TenantPolicies", tenantAttr(tenantID))
	defer func() { end(span, err) }()
	return t.s.TenantPolicies(ctx, tenantID)
}

func (t *traced) InsertAction(ctx context.Context, a ActionRecord) (_ ActionRecord, err error) {
	ctx, span := t.start(ctx, "InsertAction", tenantAttr(a.TenantID), attribute.String("agent_id", a.AgentID), attribute.String("action_id", a.ID))
	defer func() { end(span, err) }()
	return t.s.InsertAction(ctx, a)
}

func (t *traced) GetAction(ctx context.Context, tenantID, id string) (_ ActionRecord, err error) {
	ctx, span := t.start(ctx, "GetAction", tenantAttr(tenantID), attribute.String("action_id", id))
	defer func() { end(span, err) }()
	return t.s.GetAction(ctx, tenantID, id)
}

func (t *traced) ListActions(ctx context.Context, tenantID string, q ActionQuery) (_ []ActionRecord, _ int, err error) {
	ctx, span := t.start(ctx, "ListActions", tenantAttr(tenantID), attribute.String("status", string(q.Status)))
	defer func() { end(span, err) }()
	return t.s.ListActions(ctx, tenantID, q)
}
