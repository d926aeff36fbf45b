package store

import (
	"errors"
	"fmt"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// Errors every driver returns, wrapped with context; classify them with
// errors.Is and errors.As, never by message.
var (
	// ErrNotFound: the tenant, key, policy or action does not exist (or
	// belongs to another tenant). It is pdp.ErrNotFound, so layers that only
	// know the domain errors classify it too.
	ErrNotFound = pdp.ErrNotFound
	// ErrConflict: the write conflicts with what is stored. It is
	// pdp.ErrConflict.
	ErrConflict = pdp.ErrConflict
	// ErrDuplicate: a create named an ID or key hash that is taken. It
	// wraps ErrConflict.
	ErrDuplicate = fmt.Errorf("already exists: %w", pdp.ErrConflict)
	// ErrLimitExceeded: a policy write would pass the tenant's limit. The
	// error returned is a *LimitError, which wraps this.
	ErrLimitExceeded = errors.New("policy limit exceeded")
	// ErrSchemaTooNew: the database was migrated by a newer Gatehouse than
	// this binary; opening it would risk writing what that version cannot
	// read.
	ErrSchemaTooNew = errors.New("database schema is newer than this binary")
)

// LimitError refuses a policy write that would add an enabled policy when
// the tenant already has Current ≥ Limit of them.
type LimitError struct {
	Limit   int
	Current int
}

// Error returns "policy limit exceeded: <current> of <limit> enabled".
func (e *LimitError) Error() string {
	return fmt.Sprintf("%v: %d of %d enabled", ErrLimitExceeded, e.Current, e.Limit)
}

// Unwrap returns ErrLimitExceeded.
func (e *LimitError) Unwrap() error { return ErrLimitExceeded }
