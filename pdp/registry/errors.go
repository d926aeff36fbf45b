package registry

import (
	"errors"
	"fmt"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// Errors of the registry; classify them with errors.Is. The not-found ones
// wrap pdp.ErrNotFound.
var (
	// ErrUnauthorized: a missing, unknown or revoked API key.
	ErrUnauthorized = errors.New("missing, unknown or revoked API key")
	// ErrPolicyNotFound: no custom policy of that name at that scope.
	ErrPolicyNotFound = fmt.Errorf("policy %w", pdp.ErrNotFound)
	// ErrTenantNotFound: no tenant with that ID.
	ErrTenantNotFound = fmt.Errorf("tenant %w", pdp.ErrNotFound)
	// ErrKeyNotFound: no API key with that ID.
	ErrKeyNotFound = fmt.Errorf("API key %w", pdp.ErrNotFound)
	// ErrCannotDeleteBuiltin: a delete named a built-in policy.
	ErrCannotDeleteBuiltin = errors.New("built-in policies cannot be deleted")
	// ErrTenantExists: a tenant was to be created with an ID already taken.
	ErrTenantExists = fmt.Errorf("tenant already exists: %w", pdp.ErrConflict)
)
