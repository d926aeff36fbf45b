package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPolicyHistoryAndImpact: history, diff and rollback through the
// binary, surviving a restart; then `gatehouse policy impact` against the
// running server.
func TestPolicyHistoryAndImpact(t *testing.T) {
	t.Parallel()
	storeDSN, key := SQLiteStore(t), NewKey()
	s := govServer(t, storeDSN, key)
	c := s.Client(key)

	v1 := warnPolicy("pii_protection", "(email|phone)")
	v1["agent_id"] = "billing-bot"
	v2 := blockPolicy("pii_protection", "(email|phone|ssn)", "billing-bot")
	wantStatus(t, c.Do(t, "POST", "/v1/control/policies", v1), 201)
	wantStatus(t, c.Do(t, "POST", "/v1/control/policies", v2), 200)
	wantStatus(t, c.Do(t, "DELETE", "/v1/control/policies/pii_protection?agent_id=billing-bot", nil), 200)
	r := wantStatus(t, c.Do(t, "POST", "/v1/control/policies/pii_protection/rollback", map[string]any{"version": 2, "agent_id": "billing-bot"}), 200)
	wantField(t, r, "rolled_back", "action")
	wantField(t, r, 4, "version")
	action := map[string]any{"action": "slack.send_message", "params": map[string]any{"text": "email alice@example.com"}, "agent_id": "billing-bot"}
	govSubmit(t, c, action, "blocked")

	// A restart keeps the history.
	s.Stop()
	s = govServer(t, storeDSN, key)
	c = s.Client(key)
	h := wantStatus(t, c.Do(t, "GET", "/v1/control/policies/pii_protection/versions?agent_id=billing-bot", nil), 200)
	var acts []string
	for _, v := range asSlice(h["versions"]) {
		acts = append(acts, field(v, "action").(string))
	}
	if strings.Join(acts, " ") != "rolled_back disabled updated created" {
		t.Errorf("history after restart: %v", acts)
	}
	wantField(t, h, 2, "versions", 0, "rolled_back_from")
	one := wantStatus(t, c.Do(t, "GET", "/v1/control/policies/pii_protection/versions/1?agent_id=billing-bot", nil), 200)
	wantField(t, one, "medium", "config", "rules", 0, "severity")
	d := wantStatus(t, c.Do(t, "GET", "/v1/control/policies/pii_protection/diff?from=1&to=4&agent_id=billing-bot", nil), 200)
	wantField(t, d, false, "identical")
	wantField(t, d, "(email|phone|ssn)", "rules", "added", 0, "rule", "match")
	wantField(t, d, "(email|phone)", "rules", "removed", 0, "rule", "match")
	audit := wantStatus(t, c.Do(t, "GET", "/v1/audit?event_type=policy_rolled_back", nil), 200)
	wantField(t, audit, 1, "total")
	wantField(t, audit, 2, "entries", 0, "metadata", "rolled_back_from")

	// Roll back to version 1 (warn): the action is allowed again.
	wantStatus(t, c.Do(t, "POST", "/v1/control/policies/pii_protection/rollback", map[string]any{"version": 1, "agent_id": "billing-bot"}), 200)
	govSubmit(t, c, action, "allowed")
	for range 3 {
		govSubmit(t, c, map[string]any{"action": "slack.send_message", "params": map[string]any{"text": "call my phone"}, "agent_id": "billing-bot"}, "allowed")
		govSubmit(t, c, map[string]any{"action": "slack.send_message", "params": map[string]any{"text": "all fine"}, "agent_id": "support-bot"}, "allowed")
	}

	// What would version 2's content (block) have done? From the CLI, with
	// the document as YAML, as a GitOps review would run it.
	doc := filepath.Join(t.TempDir(), "pii.yaml")
	yamlDoc := "name: pii_protection\nagent_id: billing-bot\nrules:\n  - match: (email|phone|ssn)\n    severity: critical\n    reason: \"blocked: {match}\"\n"
	if err := os.WriteFile(doc, []byte(yamlDoc), 0o600); err != nil {
		t.Fatal(err)
	}
	res := Run(t, binary(t), nil, "policy", "impact", "--policy", doc, "--since", "7d", "--url", s.URL, "--api-key", key)
	if res.Code != 0 {
		t.Fatalf("policy impact: exit %d\n%s", res.Code, res.Stderr)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(res.Stdout), &out); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, res.Stdout)
	}
	// 8 actions, replayed through today's warn-only copy and the block:
	// the two e-mail and three phone ones would be blocked, support-bot's
	// are untouched.
	wantField(t, out, 8, "evaluated")
	wantField(t, out, 5, "changed")
	wantField(t, out, map[string]any{"allowed→blocked": 5}, "transitions")
	wantField(t, out, false, "recorded")
	if !strings.Contains(res.Stderr, "8 actions replayed") || !strings.Contains(res.Stderr, "5 would change") {
		t.Errorf("summary: %s", res.Stderr)
	}
	res = Run(t, binary(t), nil, "policy", "impact", "--rollback", "pii_protection@1", "--agent-id", "billing-bot",
		"--url", s.URL, "--api-key", key, "--fail-on-change")
	if res.Code != 0 {
		t.Errorf("rollback to the current content with --fail-on-change: exit %d\n%s", res.Code, res.Stderr)
	}
	res = Run(t, binary(t), nil, "policy", "impact", "--rollback", "pii_protection@2", "--agent-id", "billing-bot",
		"--url", s.URL, "--api-key", key, "--fail-on-change")
	if res.Code != 1 {
		t.Errorf("a changing rollback with --fail-on-change: exit %d\n%s", res.Code, res.Stderr)
	}
	if res = Run(t, binary(t), nil, "policy", "impact", "--disable", "x", "--rollback", "y@1", "--api-key", key); res.Code != 2 {
		t.Errorf("two changes: exit %d", res.Code)
	}
	// Nothing of that was recorded.
	wantField(t, wantStatus(t, c.Do(t, "GET", "/v1/actions?limit=1", nil), 200), 8, "total")
}
