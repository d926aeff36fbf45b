package store

import (
	"context"
	"time"
)

// ActionWindow selects one page of a tenant's actions created in
// [Since, Until), newest first, for replaying them (impact analysis).
type ActionWindow struct {
	Since, Until time.Time
	// After, when not nil, is the last action of the previous page: the
	// page starts right after it in the newest-first order.
	After *ActionRecord
	// Limit is the page size (> 0).
	Limit int
}

// ActionWindows reads actions page by page without counting them, so a
// replay of many actions holds no transaction between pages.
type ActionWindows interface {
	// ActionsInWindow returns one page of the tenant's actions in w,
	// newest first (created_at, then insertion order), at most w.Limit.
	// An empty page is the end.
	ActionsInWindow(ctx context.Context, tenantID string, w ActionWindow) ([]ActionRecord, error)
}

// PolicyHits is how many shadow hits one policy had.
type PolicyHits struct {
	Policy string
	Count  int64
}

// ShadowHitCounter counts the hits of policies in shadow mode.
type ShadowHitCounter interface {
	// ShadowHitsByPolicy counts the entries of policy_result.shadow of the
	// tenant's actions created in [since, until), by policy name, most
	// first, then by name.
	ShadowHitsByPolicy(ctx context.Context, tenantID string, since, until time.Time) ([]PolicyHits, error)
}
