package store

import (
	"context"
	"fmt"
	"time"
)

// AuditArchive streams a tenant's chain out and prunes its old entries
// (docs/api.md §A10). Both are optional capabilities of a GovernanceStore
// driver; the SQLite and PostgreSQL drivers have them.
type AuditArchive interface {
	// ExportAudit calls fn with every entry of the tenant matching q
	// (Limit, Offset and NewestFirst ignored), in chain order, from one
	// snapshot, holding one entry at a time: memory does not grow with
	// the chain. An error from fn stops the export and is returned.
	ExportAudit(ctx context.Context, tenantID string, q AuditQuery, fn func(AuditEntry) error) error
	// PruneAudit removes the tenant's oldest entries: every entry before
	// the first one stamped at or after before, at most maxEntries of them
	// (≤ 0: no bound), in one transaction that also records the last
	// removed entry as the chain's checkpoint, so the retained chain still
	// verifies (VerifyAudit starts at the checkpoint). It refuses, with
	// ErrChainBroken and removing nothing, a range that does not verify:
	// pruning never erases the evidence of a tamper. It returns the
	// checkpoint after the call (nil when nothing was ever pruned) and how
	// many entries it removed.
	PruneAudit(ctx context.Context, tenantID string, before time.Time, maxEntries int) (*AuditCheckpoint, int, error)
}

// AuditCheckpoint is where a pruned chain's retained part starts: the
// last removed entry's sequence number and entry_hash, which the first
// retained entry's prev_hash must equal.
type AuditCheckpoint struct {
	Seq      int64
	Hash     string
	PrunedAt time.Time
}

// Head is the checkpoint as the head of the removed part.
func (c *AuditCheckpoint) Head() *ChainHead {
	if c == nil {
		return nil
	}
	return &ChainHead{Seq: c.Seq, Hash: c.Hash}
}

// PruneUpTo is the highest sequence number a prune may remove: every
// entry before first (the first entry stamped at or after the cutoff; 0
// when none is, then every entry up to top), past the checkpoint cp, at
// most maxEntries of them. 0 or less means nothing to prune.
func PruneUpTo(cp *AuditCheckpoint, first, top int64, maxEntries int) int64 {
	from := int64(0)
	if cp != nil {
		from = cp.Seq
	}
	upTo := top
	if first > 0 {
		upTo = first - 1
	}
	if maxEntries > 0 && upTo > from+int64(maxEntries) {
		upTo = from + int64(maxEntries)
	}
	if upTo <= from {
		return 0
	}
	return upTo
}

// CheckPruned checks the segment of the entries a prune removes (from
// just after the checkpoint cp to upTo) and returns the new checkpoint:
// the segment must follow cp (or start the chain), check out, and end at
// upTo. Anything else is ErrChainBroken.
func CheckPruned(tenantID string, cp *AuditCheckpoint, seg ChainSegment, upTo int64, at time.Time) (AuditCheckpoint, error) {
	next, prev := int64(1), GenesisHash
	if cp != nil {
		next, prev = cp.Seq+1, cp.Hash
	}
	v := JoinSegmentsFrom(nil, &ChainHead{Seq: next - 1, Hash: prev}, seg)
	if v.FirstBadSequence != nil && *v.FirstBadSequence <= upTo || seg.LastSeq != upTo {
		return AuditCheckpoint{}, fmt.Errorf("tenant %q: the entries to prune (%d to %d) do not verify (%s): %w", tenantID, next, upTo, v.Reason, ErrChainBroken)
	}
	return AuditCheckpoint{Seq: upTo, Hash: seg.LastHash, PrunedAt: at.UTC().Truncate(TimePrecision)}, nil
}
