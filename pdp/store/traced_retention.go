package store

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
)

// errNoArchive: the wrapped store has no AuditArchive.
var errNoArchive = errors.New("store: the store cannot export or prune its audit chain")

// Archive returns s's AuditArchive, seeing through the traced wrapper,
// and whether it has one.
func Archive(s GovernanceStore) (AuditArchive, bool) {
	if t, ok := s.(*tracedGovernance); ok {
		if _, ok := t.g.(AuditArchive); !ok {
			return nil, false
		}
		return t, true
	}
	a, ok := s.(AuditArchive)
	return a, ok
}

func (t *tracedGovernance) ExportAudit(ctx context.Context, tenantID string, q AuditQuery, fn func(AuditEntry) error) (err error) {
	a, ok := t.g.(AuditArchive)
	if !ok {
		return errNoArchive
	}
	ctx, span := t.start(ctx, "ExportAudit", tenantAttr(tenantID))
	defer func() { endGovernance(span, err) }()
	return a.ExportAudit(ctx, tenantID, q, fn)
}

func (t *tracedGovernance) PruneAudit(ctx context.Context, tenantID string, before time.Time, maxEntries int) (_ *AuditCheckpoint, n int, err error) {
	a, ok := t.g.(AuditArchive)
	if !ok {
		return nil, 0, errNoArchive
	}
	ctx, span := t.start(ctx, "PruneAudit", tenantAttr(tenantID), attribute.Int("max_entries", maxEntries))
	defer func() {
		span.SetAttributes(attribute.Int("removed", n))
		endGovernance(span, err)
	}()
	return a.PruneAudit(ctx, tenantID, before, maxEntries)
}
