package store

import (
	"context"
	"iter"
)

// GovernanceStore is a Store that also keeps the audit chain, approvals
// and the dashboard's queries (docs/api.md §A8–A10). It is a separate
// interface so drivers can adopt it one at a time; main asserts it of the
// Store it opens.
type GovernanceStore interface {
	Store
	AuditLog
	AuditedWrites
	Approvals
	Dashboards
	KeyManagement
	ApproverStats
}

// BulkActions loads actions in bulk, for benchmarks, load tests and
// imports: no audit entries, no per-action durability, as fast as the
// backend allows. It is an optional capability.
type BulkActions interface {
	// BulkInsertActions inserts every record of recs in one transaction and
	// returns how many it inserted; on an error it inserts none. Records
	// are validated as InsertAction validates them; a zero CreatedAt is set
	// to now.
	BulkInsertActions(ctx context.Context, recs iter.Seq[ActionRecord]) (int, error)
}
