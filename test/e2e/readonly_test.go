package e2e

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReadOnlyCoverage: `serve --bundle` with a bundle built for a tenant
// the store lacks warns at start, naming it, and counts it on /health, as
// it does the store's tenants no bundle holds; once the tenant is created with the
// bundle's ID, its key decides with the bundle's policies.
func TestReadOnlyCoverage(t *testing.T) {
	t.Parallel()
	b := binary(t)
	bundle := filepath.Join(t.TempDir(), "acme.tar.gz")
	policies := filepath.Join("..", "..", "examples", "opa-test", "policies")
	if res := Run(t, b, nil, "bundle", "build", "--policies", policies, "--tenant", "acme", "--out", bundle); res.Code != 0 {
		t.Fatalf("bundle build: %d %s", res.Code, res.Stderr)
	}
	s, _ := startDev(t, Options{Args: []string{"--bundle", bundle}})

	for msg, tenant := range map[string]string{
		"read-only: bundles hold tenants the store does not have; no API key can reach them (create them with gatehouse tenant create --id)": "acme",
		"read-only: store tenants no bundle holds; their decisions fail closed (503)":                                                        "default",
	} {
		line, _, err := s.Stderr.Wait(0, logTimeout, LogMsg(msg))
		if err != nil {
			t.Errorf("no warning %q at start: %v", msg, err)
			continue
		}
		m, _ := LogEntry(line)
		if m["level"] != "WARN" || !strings.Contains(mustJSON(m["tenants"]), `"`+tenant+`"`) {
			t.Errorf("warning %s: want level WARN naming %s", line, tenant)
		}
	}
	health := func() map[string]any {
		return wantStatus(t, s.Client("").Do(t, "GET", "/health", nil), 200)
	}
	h := health()
	wantField(t, h, "ok", "status")
	wantField(t, h, true, "bundles", "read_only")
	wantField(t, h, 1.0, "bundles", "unservable_count")
	wantField(t, h, 1.0, "bundles", "tenants_without_bundle_count")
	if strings.Contains(mustJSON(h), "acme") {
		t.Errorf("/health, which has no authentication, names a tenant: %s", mustJSON(h))
	}

	res := Run(t, b, nil, "tenant", "create", "--id", "acme", "--tier", "pro", "--store", s.Store)
	var created struct {
		TenantID string `json:"tenant_id"`
		APIKey   string `json:"api_key"`
	}
	if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &created) != nil || created.TenantID != "acme" {
		t.Fatalf("tenant create --id acme: %d %q %s", res.Code, res.Stdout, res.Stderr)
	}
	if !eventually(30*time.Second, func() bool {
		return field(health(), "bundles", "unservable_count") == 0.0
	}) {
		t.Errorf("/health still reports acme unservable: %s", mustJSON(health()))
	}
	c := s.Client(created.APIKey)
	var d map[string]any
	if !eventually(30*time.Second, func() bool {
		r := c.Do(t, "POST", "/v1/actions", map[string]any{"action": "slack.send_message",
			"params": map[string]any{"text": "Customer email: alice@example.com"}, "agent_id": "billing-bot"})
		d = r.JSON(t)
		return r.Status == 200
	}) {
		t.Fatalf("acme's key never decided: %s", mustJSON(d))
	}
	wantField(t, d, "blocked", "status")
	wantField(t, d, "PII blocked for billing-bot: email", "policy_result", "reason")
}
