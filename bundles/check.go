package bundles

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/gatehouse-pdp/gatehouse/bundles/loaded"
)

// The checks a loaded bundle must pass live in package loaded, which the
// engine imports without importing this package; these names keep them
// where callers of package bundles look for them.

// ErrRefusedBuiltin is returned for a bundle whose Rego calls a network or
// runtime built-in.
var ErrRefusedBuiltin = loaded.ErrRefusedBuiltin

// ErrUnexpectedTenant is returned for a bundle that defines a tenant its
// source is not configured for.
var ErrUnexpectedTenant = loaded.ErrUnexpectedTenant

// Capabilities returns the capabilities bundles are compiled with: this
// OPA's, less the refused built-ins (loaded.Capabilities).
func Capabilities() *ast.Capabilities { return loaded.Capabilities() }

// Compile compiles a loaded bundle's modules (loaded.Compile).
func Compile(l *Loaded) (*ast.Compiler, error) { return loaded.Compile(l) }

// CheckTenants refuses a bundle that defines a tenant outside allowed
// (loaded.CheckTenants).
func CheckTenants(l *Loaded, allowed []string) error { return loaded.CheckTenants(l, allowed) }

// CheckRegexes re-validates a bundle's constant patterns
// (loaded.CheckRegexes).
func CheckRegexes(l *Loaded) (map[string]error, error) { return loaded.CheckRegexes(l) }

// CheckRules checks that every rule of a bundle's tenants can fire
// (loaded.CheckRules).
func CheckRules(l *Loaded) map[string]error { return loaded.CheckRules(l) }

// Check reads a built bundle back and checks it as a read-only server
// will load it: its tenant only, every pattern valid, compiled with
// Capabilities. `gatehouse bundle build` runs it before writing the file,
// so a bundle it writes is never refused on load.
func Check(b *Built) error {
	ob, err := Load(bytes.NewReader(b.Bytes), nil)
	if err != nil {
		return err
	}
	l, err := FromBundle(ob)
	if err != nil {
		return err
	}
	if err := CheckTenants(l, []string{b.TenantID}); err != nil {
		return err
	}
	problems, err := CheckRegexes(l)
	if err != nil {
		return err
	}
	for id, p := range CheckRules(l) {
		problems[id] = errors.Join(problems[id], p)
	}
	for id, p := range problems {
		return fmt.Errorf("tenant %q: %w", id, p)
	}
	_, err = Compile(l)
	return err
}
