package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// Refresh publishes every tenant whose stored revision is ahead of the
// engine's, and picks up tenant settings changed elsewhere: what another
// replica or process wrote to the same database. It reads every tenant in
// one query, whatever their number, and reads a tenant's policies only
// when its revision moved.
func (r *Registry) Refresh(ctx context.Context) error {
	ts, err := r.st.ListTenants(ctx)
	if err != nil {
		return fmt.Errorf("refresh tenants: %w", err)
	}
	var errs []error
	for _, t := range ts {
		r.remember(t)
		if cur, ok := r.eng.Revision(t.ID); ok && cur >= t.Revision {
			continue
		}
		if err := r.publish(ctx, t.ID, t.Revision); err != nil {
			errs = append(errs, fmt.Errorf("refresh tenant %q: %w", t.ID, err))
			continue
		}
		r.warming.Go(func() { r.warm(ctx, t.ID) })
	}
	return errors.Join(errs...)
}

// Watch keeps the engine in step with what other processes write to the
// store (other replicas, `gatehouse tenant create`) until ctx is done,
// logging failures. Run it in its own goroutine.
//
// Two mechanisms, so that the bound holds when either works:
//
//   - When the store is a store.RevisionNotifier (PostgreSQL), Watch
//     subscribes to revision changes and publishes a tenant as soon as a
//     revision newer than the engine's is notified: a write on another
//     replica is enforced here a few milliseconds after it commits.
//   - Every interval it calls Refresh, which compares every tenant's
//     stored revision with the engine's. That is the only mechanism on
//     SQLite, and the fallback for notifications lost while the
//     subscription reconnects.
//
// So a write committed on any replica is enforced by this one within
// max(notification latency, interval + one Refresh): within 1 s with the
// 500 ms interval `gatehouse serve` uses (docs/api.md §A4). Key revocations
// ride on the same revisions (the PostgreSQL store bumps the tenant's
// revision when it revokes a key, and any revision advance drops the
// tenant's cached key lookups), so a key revoked on another replica stops
// working here within the same bound; on SQLite, a key revoked by another
// process stops working within the auth cache TTL.
func (r *Registry) Watch(ctx context.Context, interval time.Duration) {
	defer r.warming.Wait()
	if n, ok := store.RevisionsOf(r.st); ok {
		var wg sync.WaitGroup
		wg.Go(func() { r.follow(ctx, n) })
		defer wg.Wait()
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := r.Refresh(ctx); err != nil && ctx.Err() == nil {
				r.log.WarnContext(ctx, "registry refresh failed", slog.Any("error", err))
			}
		}
	}
}

// follow applies the store's revision notifications until ctx is done. A
// Resync (the subscription is live again, and may have missed changes
// while it was not) runs a full Refresh.
func (r *Registry) follow(ctx context.Context, n store.RevisionNotifier) {
	changes, err := n.SubscribeRevisions(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.log.WarnContext(ctx, "revision notifications unavailable; other replicas' writes are seen by the periodic refresh only", slog.Any("error", err))
		}
		return
	}
	first, down := true, false
	for c := range changes {
		switch {
		case c.Err != nil:
			if !down {
				r.log.WarnContext(ctx, "revision notifications interrupted; relying on the periodic refresh while reconnecting", slog.Any("error", c.Err))
			}
			down = true
		case c.Resync:
			switch {
			case first:
				r.log.InfoContext(ctx, "revision notifications on")
			case down:
				r.log.InfoContext(ctx, "revision notifications restored")
			}
			first, down = false, false
			if err := r.Refresh(ctx); err != nil && ctx.Err() == nil {
				r.log.WarnContext(ctx, "registry refresh failed", slog.Any("error", err))
			}
		default:
			if err := r.refreshTenant(ctx, c.TenantID, c.Revision); err != nil && ctx.Err() == nil {
				r.log.WarnContext(ctx, "applying a revision notification failed; the periodic refresh retries",
					slog.String("tenant_id", c.TenantID), slog.Uint64("revision", c.Revision), slog.Any("error", err))
			}
		}
	}
}

// refreshTenant publishes the tenant at revision rev or later unless the
// engine has it already, and picks up its settings (tier, mode) as stored.
// Notifications of this server's own writes end at the first check.
func (r *Registry) refreshTenant(ctx context.Context, tenantID string, rev uint64) error {
	if cur, ok := r.eng.Revision(tenantID); ok && cur >= rev {
		return nil
	}
	t, err := r.st.GetTenant(ctx, tenantID)
	if err != nil {
		return fmt.Errorf("refresh tenant %q: %w", tenantID, err)
	}
	r.remember(t)
	if err := r.publish(ctx, tenantID, rev); err != nil {
		return err
	}
	r.warming.Go(func() { r.warm(ctx, tenantID) })
	return nil
}
