package registry

import (
	"errors"
	"strings"
)

// ErrReadOnly is what every policy write returns on a read-only registry
// (`gatehouse serve --bundle`); the error is a *ReadOnlyError.
var ErrReadOnly = errors.New("read-only: policies come from bundles")

// ReadOnlyError says where a read-only server's policies come from.
type ReadOnlyError struct {
	// Sources are the bundles' files or URLs.
	Sources []string
}

// Error returns the sentence the API sends with 409 read_only.
func (e *ReadOnlyError) Error() string {
	return "Policies come from bundle " + strings.Join(e.Sources, ", ") + "; this server is read-only"
}

// Is reports ErrReadOnly.
func (e *ReadOnlyError) Is(target error) bool { return target == ErrReadOnly }

// WithReadOnly makes the registry read-only: policy writes (Put, Replace,
// Disable) fail with a *ReadOnlyError naming sources before any other
// check, and the registry never publishes to the engine, whose tenants come
// from bundles (engine.LoadBundle). Tenants and keys are still managed in
// the store.
func WithReadOnly(sources ...string) Option {
	return func(o *options) error {
		if len(sources) == 0 {
			return errors.New("registry: read-only needs the bundle sources")
		}
		o.readOnly = &ReadOnlyError{Sources: append([]string(nil), sources...)}
		return nil
	}
}

// WithPublishHook calls f after each tenant snapshot the registry hands to
// the engine — every policy write, tenant update, and change picked up from
// another process — once it is visible to decisions and to
// store.TenantPolicies. The bundle server uses it to wake long polls
// (bundles.Cache.Notify). f runs with the tenant's publish lock held, so
// it must be quick and must not call the registry.
func WithPublishHook(f func(tenantID string, revision uint64)) Option {
	return func(o *options) error {
		if f == nil {
			return errors.New("registry: nil publish hook")
		}
		o.onPublish = f
		return nil
	}
}

// checkWritable returns the read-only error, or nil.
func (r *Registry) checkWritable() error {
	if r.readOnly != nil {
		return r.readOnly
	}
	return nil
}
