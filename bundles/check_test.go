package bundles_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-pdp/gatehouse/bundles"
	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// TestCheckBuilt: what Build writes passes the checks a read-only server
// runs on load.
func TestCheckBuilt(t *testing.T) {
	if err := bundles.Check(mustBuild(t, sampleTenant(t, "acme", 1, pdp.ModeEnforcement))); err != nil {
		t.Fatal(err)
	}
}

// TestSourceTenants: a source configured for some tenants refuses a bundle
// that defines another; unrestricted, it takes it.
func TestSourceTenants(t *testing.T) {
	path := filepath.Join(t.TempDir(), "acme.tar.gz")
	if err := os.WriteFile(path, mustBuild(t, sampleTenant(t, "acme", 1, pdp.ModeEnforcement)).Bytes, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tenants []string
		ok      bool
	}{{nil, true}, {[]string{"acme"}, true}, {[]string{"globex", "acme"}, true}, {[]string{"globex"}, false}, {[]string{}, false}} {
		src, err := bundles.NewSource(bundles.SourceConfig{Location: path, Tenants: c.tenants})
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = src.Fetch(t.Context())
		if c.ok != (err == nil) || (!c.ok && (!errors.Is(err, bundles.ErrUnexpectedTenant) || !strings.Contains(err.Error(), `"acme"`))) {
			t.Errorf("tenants %q: Fetch = %v", c.tenants, err)
		}
	}
}

// TestCapabilitiesLeaveOutNetworkBuiltins: the restricted capabilities
// hold no http.send, net.* or opa.runtime, and keep the rest.
func TestCapabilitiesLeaveOutNetworkBuiltins(t *testing.T) {
	names := map[string]bool{}
	for _, b := range bundles.Capabilities().Builtins {
		names[b.Name] = true
	}
	for name := range names {
		if name == "http.send" || name == "opa.runtime" || strings.HasPrefix(name, "net.") {
			t.Errorf("capabilities keep %s", name)
		}
	}
	for _, keep := range []string{"regex.match", "json.marshal", "strings.replace_n", "walk", "to_number"} {
		if !names[keep] {
			t.Errorf("capabilities lack %s", keep)
		}
	}
}
