package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// tenantLine is what `gatehouse tenant create` prints.
type tenantLine struct {
	TenantID string `json:"tenant_id"`
	Name     string `json:"name"`
	Tier     string `json:"tier"`
	APIKey   string `json:"api_key"`
}

// createTenant runs `gatehouse tenant create` on the store and returns
// what it printed.
func createTenant(t *testing.T, storeDSN, name, tier string, extra ...string) tenantLine {
	t.Helper()
	args := append([]string{"tenant", "create", "--name", name, "--tier", tier, "--store", storeDSN}, extra...)
	res := Run(t, binary(t), nil, args...)
	if res.Code != 0 {
		t.Fatalf("gatehouse %s: exit %d\n%s", strings.Join(args, " "), res.Code, res.Stderr)
	}
	var tl tenantLine
	dec := json.NewDecoder(strings.NewReader(res.Stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&tl); err != nil {
		t.Fatalf("tenant create printed %q: %v", res.Stdout, err)
	}
	return tl
}

// usable waits until a key created by another process authenticates (the
// server picks the tenant up from the shared store) and returns a client.
func usable(t *testing.T, s *Server, key string) *Client {
	t.Helper()
	c := s.Client(key)
	if !eventually(20*time.Second, func() bool {
		return c.Do(t, "GET", "/v1/control/policies", nil).Status == 200
	}) {
		t.Fatalf("key of a tenant created beside the running server never worked: %s",
			c.Do(t, "GET", "/v1/control/policies", nil).Body)
	}
	return c
}

// wantFeatureRequired checks a 403 feature_required body (docs/api.md §A1).
func wantFeatureRequired(t *testing.T, r *Response, feature, required, current string) {
	t.Helper()
	m := wantError(t, r, 403, "novyx_ram.v1.tier.feature_required")
	title := strings.ToUpper(required[:1]) + required[1:]
	wantField(t, m, fmt.Sprintf("Feature '%s' requires %s tier or higher", feature, title), "message")
	wantField(t, m, feature, "feature")
	wantField(t, m, required, "required_tier")
	wantField(t, m, current, "current_tier")
}

// wantLimitExceeded checks a 403 limit_exceeded body (docs/api.md §A1).
func wantLimitExceeded(t *testing.T, r *Response, tier string, limit int) {
	t.Helper()
	m := wantError(t, r, 403, "novyx_ram.v1.tier.limit_exceeded")
	wantField(t, m, fmt.Sprintf("Custom policy limit reached (%d) for tier '%s'", limit, tier), "message")
	wantField(t, m, limit, "limit")
	wantField(t, m, limit, "current")
}

// TestTierMatrix creates a tenant of every tier with `gatehouse tenant
// create` on the store of a running server and checks docs/api.md §A2.
func TestTierMatrix(t *testing.T) {
	t.Parallel()
	s := Start(t, binary(t), Options{BootstrapKey: NewKey()})
	tenants := map[string]*Client{}
	for _, tier := range []string{"free", "starter", "pro", "enterprise"} {
		tl := createTenant(t, s.Store, "acme-"+tier, tier)
		tenants[tier] = usable(t, s, tl.APIKey)
	}
	invalid := map[string]any{"name": "bad name!", "rules": []any{}}

	t.Run("approval modes by tier", func(t *testing.T) {
		for tier, want := range map[string][]string{
			"free":       {"solo"},
			"starter":    {"solo", "team"},
			"pro":        {"solo", "team"},
			"enterprise": {"solo", "team", "enterprise"},
		} {
			r := wantStatus(t, tenants[tier].Do(t, "GET", "/v1/control/policies", nil), 200)
			wantField(t, r, want, "approval_modes")
		}
	})

	t.Run("every tier submits actions and lists policies", func(t *testing.T) {
		for tier, c := range tenants {
			r := c.Do(t, "POST", "/v1/actions", map[string]any{"action": "github.create_issue"})
			if r.Status != 200 {
				t.Errorf("%s: POST /v1/actions %d %s", tier, r.Status, r.Body)
			}
			if r := c.Do(t, "GET", "/v1/approvals", nil); r.Status != 200 && r.Status != 404 {
				t.Errorf("%s: GET /v1/approvals %d %s", tier, r.Status, r.Body)
			}
		}
	})

	t.Run("free: no custom policies", func(t *testing.T) {
		c := tenants["free"]
		wantFeatureRequired(t, c.Do(t, "POST", "/v1/control/policies", warnPolicy("p", "x")), "draft_policies", "starter", "free")
		// The feature gate comes before validation.
		wantFeatureRequired(t, c.Do(t, "POST", "/v1/control/policies", invalid), "draft_policies", "starter", "free")
		// An agent-scoped write is told what would make it succeed: Pro.
		p := warnPolicy("p", "x")
		p["agent_id"] = "billing-bot"
		wantFeatureRequired(t, c.Do(t, "POST", "/v1/control/policies", p), "agent_scoped_policies", "pro", "free")
		// Auth comes before everything.
		wantError(t, s.Client("nram_unknownunknownunknown").Do(t, "POST", "/v1/control/policies", warnPolicy("p", "x")), 401, "UNAUTHORIZED")
	})

	t.Run("starter: five tenant-wide policies, no agent scope", func(t *testing.T) {
		c := tenants["starter"]
		p := warnPolicy("p", "x")
		p["agent_id"] = "billing-bot"
		wantFeatureRequired(t, c.Do(t, "POST", "/v1/control/policies", p), "agent_scoped_policies", "pro", "starter")
		// The seed document's exact error, step 2 of the curl tab.
		seed := `{"name":"pii_protection","description":"Block PII outright for billing-bot","agent_id":"billing-bot","rules":[{"match":"(email|phone|ssn|passport|routing)","severity":"critical","on_violation":"block","reason":"PII blocked for billing-bot: {match}"}]}`
		wantFeatureRequired(t, c.Do(t, "POST", "/v1/control/policies", seed), "agent_scoped_policies", "pro", "starter")

		for i := range 5 {
			wantStatus(t, c.Do(t, "POST", "/v1/control/policies", warnPolicy(fmt.Sprintf("p%d", i), "x")), 201)
		}
		wantLimitExceeded(t, c.Do(t, "POST", "/v1/control/policies", warnPolicy("p5", "x")), "starter", 5)
		// Validation comes before the limit.
		wantError(t, c.Do(t, "POST", "/v1/control/policies", invalid), 400, "novyx_ram.v1.control.invalid_policy")
		// Updating an enabled policy adds none: allowed at the limit.
		wantStatus(t, c.Do(t, "POST", "/v1/control/policies", warnPolicy("p0", "y")), 200)
		wantStatus(t, c.Do(t, "PUT", "/v1/control/policies/p1", warnPolicy("p1", "y")), 200)
		// A disabled policy does not count; re-enabling one does.
		wantStatus(t, c.Do(t, "DELETE", "/v1/control/policies/p4", nil), 200)
		wantStatus(t, c.Do(t, "POST", "/v1/control/policies", warnPolicy("p5", "x")), 201)
		wantLimitExceeded(t, c.Do(t, "POST", "/v1/control/policies", warnPolicy("p4", "x")), "starter", 5)
		g := wantStatus(t, c.Do(t, "GET", "/v1/control/policies/p4", nil), 200)
		wantField(t, g, false, "enabled")
		// Creating it disabled adds no enabled policy.
		off := warnPolicy("p6", "x")
		off["enabled"] = false
		wantStatus(t, c.Do(t, "POST", "/v1/control/policies", off), 201)
	})

	t.Run("pro: 25 across both scopes", func(t *testing.T) {
		c := tenants["pro"]
		for i := range 20 {
			wantStatus(t, c.Do(t, "POST", "/v1/control/policies", warnPolicy(fmt.Sprintf("t%02d", i), "x")), 201)
		}
		for i := range 5 {
			p := warnPolicy(fmt.Sprintf("t%02d", i), "y")
			p["agent_id"] = "billing-bot"
			wantStatus(t, c.Do(t, "POST", "/v1/control/policies", p), 201)
		}
		wantLimitExceeded(t, c.Do(t, "POST", "/v1/control/policies", warnPolicy("t20", "x")), "pro", 25)
		p := warnPolicy("a99", "y")
		p["agent_id"] = "support-bot"
		wantLimitExceeded(t, c.Do(t, "POST", "/v1/control/policies", p), "pro", 25)
	})

	t.Run("enterprise: unlimited", func(t *testing.T) {
		c := tenants["enterprise"]
		for i := range 30 {
			p := warnPolicy(fmt.Sprintf("e%02d", i), "x")
			if i%2 == 1 {
				p["agent_id"] = "billing-bot"
			}
			wantStatus(t, c.Do(t, "POST", "/v1/control/policies", p), 201)
		}
	})

	t.Run("dashboard needs starter", func(t *testing.T) {
		skipUnbuilt(t, tenants["enterprise"].Do(t, "GET", "/v1/control/dashboard", nil))
		wantFeatureRequired(t, tenants["free"].Do(t, "GET", "/v1/control/dashboard", nil), "governance_dashboard", "starter", "free")
		wantFeatureRequired(t, tenants["free"].Do(t, "GET", "/v1/control/agents/billing-bot/violations", nil), "governance_dashboard", "starter", "free")
		for _, tier := range []string{"starter", "pro", "enterprise"} {
			wantStatus(t, tenants[tier].Do(t, "GET", "/v1/control/dashboard", nil), 200)
		}
	})
}

// TestTenantCreatedWhileStopped: tenants created on a stopped server's
// store work after it starts.
func TestTenantCreatedWhileStopped(t *testing.T) {
	t.Parallel()
	storeDSN := SQLiteStore(t)
	tl := createTenant(t, storeDSN, "early", "starter", "--create-store")
	s := Start(t, binary(t), Options{Store: storeDSN})
	c := s.Client(tl.APIKey)
	wantStatus(t, c.Do(t, "POST", "/v1/control/policies", warnPolicy("p", "x")), 201)
	wantField(t, wantStatus(t, c.Do(t, "GET", "/v1/control/policies", nil), 200), []string{"solo", "team"}, "approval_modes")
}
