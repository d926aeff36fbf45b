package engine

import (
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// TestWhitelistFailsClosed is issue 10's attacker list through the engine:
// a whitelisted policy is skipped only when every destination in params is
// a recognised hostname under a whitelisted domain. Naming the whitelisted
// domain elsewhere in params never skips it for another destination.
func TestWhitelistFailsClosed(t *testing.T) {
	e := newEngine(t, Config{Timeout: 10 * time.Second})
	e.SetTenant(pdp.TenantPolicies{TenantID: "acme", Revision: 1, Mode: pdp.ModeEnforcement, Policies: []pdp.Policy{{
		Name: "outbound", Enabled: true, Version: 1, StepTypes: []string{"ACTION"}, WhitelistedDomains: []string{"trusted.com"},
		Rules: []pdp.Rule{{Match: "https?://|@|\\.", Severity: pdp.SeverityCritical, OnViolation: pdp.OutcomeBlock, Confidence: 0.85}},
	}}})
	for _, c := range []struct {
		dest    string
		skipped bool
	}{
		{"https://trusted.com/x", true},
		{"https://api.Trusted.COM:8443/v1", true},
		{"ops@mail.trusted.com", true},
		{"http://10.0.0.1/", false},
		{"http://2130706433/", false},
		{"http://0x7f.0.0.1/", false},
		{"169.254.169.254", false},
		{"http://localhost/", false},
		{"localhost:6379", false},
		{"http://[::1]:8080/", false},
		{"[::1]", false},
		{"http://intranet/", false},
		{"https://ｅｖｉｌ.com/", false},
		{"ｅｖｉｌ.com", false},
		{"https://ｔｒｕｓｔｅｄ.com/", false},
		{"evil。com", false},
		{"evil．com", false},
		{"evil｡com", false},
		{"https://xn--80ak6aa92e.com/", false},
		{"https://trusted.com.evil.com/", false},
		{"https://trusted.com@evil.com/", false},
		{"https://evil.com\\@trusted.com/", false},
		{"https://evil%2ecom/", false},
		{"https://trusted.com./", false},
		{"a@evil.com@trusted.com", false},
		{"https://ev\u00adil.com/", false},
		{"https://trusted.\u212aom/", false},
	} {
		d := evaluate(t, e, pdp.Action{TenantID: "acme", Name: "http.get", Params: map[string]any{"url": c.dest, "note": "trusted.com"}})
		if skipped := d.Status == pdp.StatusAllowed; skipped != c.skipped {
			t.Errorf("%q: status %s, want skipped=%v", c.dest, d.Status, c.skipped)
		}
	}
}
