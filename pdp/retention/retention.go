// Package retention prunes tenants' audit chains past their tier's
// retention period (docs/api.md §A10, README "Audit retention"). It is off
// unless an operator turns it on: an audit chain is evidence, and
// deleting evidence is a decision a deployment makes, not a default.
package retention

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// DefaultPeriods are the retention periods per tier when retention is on
// and a period is not configured: Novyx's 7, 14, 30 and 90 days.
var DefaultPeriods = map[store.Tier]time.Duration{
	store.TierFree:       7 * 24 * time.Hour,
	store.TierStarter:    14 * 24 * time.Hour,
	store.TierPro:        30 * 24 * time.Hour,
	store.TierEnterprise: 90 * 24 * time.Hour,
}

// BatchEntries is how many entries one prune transaction removes at most,
// so a first prune of a large chain never holds the writer for long.
const BatchEntries = 10_000

// Pruner prunes every tenant's chain.
type Pruner struct {
	Store   store.GovernanceStore
	Archive store.AuditArchive
	// Periods is the retention period of each tier; a tier without one
	// (or with 0) is kept forever.
	Periods map[store.Tier]time.Duration
	Now     func() time.Time
	Log     *slog.Logger
}

// Once prunes every tenant once and returns how many entries it removed.
// A tenant whose chain refuses (ErrChainBroken: the range does not
// verify) is logged and skipped; other errors stop the pass.
func (p *Pruner) Once(ctx context.Context) (int, error) {
	tenants, err := p.Store.ListTenants(ctx)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, t := range tenants {
		period := p.Periods[t.Tier]
		if period <= 0 {
			continue
		}
		before := p.Now().Add(-period)
		for {
			cp, n, err := p.Archive.PruneAudit(ctx, t.ID, before, BatchEntries)
			if errors.Is(err, store.ErrChainBroken) {
				p.Log.ErrorContext(ctx, "audit retention: not pruning a chain that does not verify; run gatehouse audit verify",
					slog.String("tenant_id", t.ID), slog.Any("error", err))
				break
			}
			if err != nil {
				return total, err
			}
			total += n
			if n > 0 {
				p.Log.InfoContext(ctx, "audit retention: pruned", slog.String("tenant_id", t.ID), slog.Int("entries", n),
					slog.Int64("checkpoint_sequence", cp.Seq))
			}
			if n < BatchEntries {
				break
			}
		}
	}
	return total, nil
}

// Run prunes at once and then every interval until ctx ends.
func (p *Pruner) Run(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if _, err := p.Once(ctx); err != nil && ctx.Err() == nil {
			p.Log.ErrorContext(ctx, "audit retention: pass failed", slog.Any("error", err))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
