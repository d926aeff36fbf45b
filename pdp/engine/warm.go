package engine

import (
	"context"
	"fmt"
)

// Warm compiles the tenant's prepared queries at its current revision —
// the tenant-wide one and one per agent with agent-scoped overrides —
// unless they are cached already, so that no decision has to compile.
// A server warms every tenant before it reports ready, and the registry
// warms a tenant after publishing a write, before the write returns: a
// compile (tens of milliseconds at scale M) then never lands on a
// decision's latency. Warming does not count as cache misses; a compile
// failure is returned (the decisions it would have served fail closed).
func (e *Engine) Warm(ctx context.Context, tenant string) error {
	e.mu.RLock()
	st := e.tenants[tenant]
	e.mu.RUnlock()
	if st == nil {
		return fmt.Errorf("warm: %w %q", ErrUnknownTenant, tenant)
	}
	rev := st.policies.Revision
	keys := make([]key, 0, 1+len(st.overrides))
	keys = append(keys, key{tenant: tenant, revision: rev})
	for agent := range st.overrides {
		keys = append(keys, key{tenant: tenant, agent: agent, revision: rev})
	}
	for _, k := range keys {
		if e.cache.Contains(k) {
			continue
		}
		if _, err := e.compile(ctx, k, st); err != nil {
			return fmt.Errorf("warm tenant %q: %w", tenant, err)
		}
	}
	return nil
}
