package bundles_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/sdk"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/bundles"
	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
)

// TestStockOPABundlePlugin runs OPA's own bundle plugin (the SDK, as `opa
// run` configures it) against the handler: signed bundle, bearer key, long
// polling. It decides like the engine, and a write reaches it within a
// second although its polling delay is a minute.
func TestStockOPABundlePlugin(t *testing.T) {
	ks := testKeys(t)
	sk, err := bundles.NewSigningKey("RS256", ks["RS256"].private, "")
	if err != nil {
		t.Fatal(err)
	}
	cache := bundles.NewCache(engineConfig.ConfigData(), bundles.WithSigningKey(sk))
	srv, ts := newBundleServer(t, cache, 30*time.Second, "acme")

	cfg, _ := json.Marshal(map[string]any{
		"services": map[string]any{"gatehouse": map[string]any{
			"url":         srv.URL + "/v1",
			"credentials": map[string]any{"bearer": map[string]any{"token": "key-acme"}},
		}},
		"bundles": map[string]any{"acme": map[string]any{
			"service":  "gatehouse",
			"resource": "bundles/acme.tar.gz",
			"polling":  map[string]any{"min_delay_seconds": 60, "max_delay_seconds": 120, "long_polling_timeout_seconds": 10},
			"signing":  map[string]any{"keyid": bundles.DefaultKeyID},
		}},
		"keys": map[string]any{bundles.DefaultKeyID: map[string]any{"key": string(ks["RS256"].public), "algorithm": "RS256"}},
	})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	opa, err := sdk.New(ctx, sdk.Options{ID: "parity", Config: bytes.NewReader(cfg)})
	if err != nil {
		t.Fatal(err)
	}
	defer opa.Stop(context.Background())

	decide := func(a pdp.Action) *pdp.Decision {
		t.Helper()
		res, err := opa.Decision(ctx, sdk.DecisionOptions{Path: "/gatehouse/decision/result", Input: engine.Input(a)})
		if err != nil {
			t.Fatalf("%+v: %v", a, err)
		}
		return decisionFromResult(t, res.Result)
	}
	check := func(tp pdp.TenantPolicies) {
		t.Helper()
		actions := sampleActions("acme")
		want := engineDecisions(t, []pdp.TenantPolicies{tp}, actions)
		for i, a := range actions {
			if d := diffJSON(decide(a), want[i]); d != "" {
				t.Errorf("revision %d, action %d %s agent %q:%s", tp.Revision, i, a.Name, a.AgentID, d)
			}
		}
	}
	tp, _ := ts.snapshot(ctx, "acme")
	check(tp)

	// The tenant-wide pii_protection warns on this action; the write below
	// disables it.
	probe := pdp.Action{TenantID: "acme", Name: "slack.send_message", Params: map[string]any{"channel": "#external", "text": "email me"}}
	if d := decide(probe); len(d.Warnings) == 0 {
		t.Fatalf("probe not warned: %+v", d)
	}
	// Whether the plugin's long poll is already held or about to start, it
	// gets the new bundle at once: a held poll is woken by the write, a new
	// one carries the old ETag. Without long polling it would take the
	// polling delay, a minute or more; 30 s tells the two apart on any
	// machine.
	start := time.Now()
	ts.write("acme")
	for len(decide(probe).Warnings) != 0 {
		if time.Since(start) > 30*time.Second {
			t.Fatal("OPA did not pick up the write within 30s: long polling did not work")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("stock OPA saw the write after %v", time.Since(start))
	tp, _ = ts.snapshot(ctx, "acme")
	check(tp)
}

// TestOPACLIEval evaluates a built bundle with the pinned opa CLI, exactly
// as a user would: opa eval -b bundle.tar.gz -i input.json.
func TestOPACLIEval(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go not on PATH:", err)
	}
	if testing.Short() {
		t.Skip("runs the opa CLI")
	}
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Skip("go env GOMOD:", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))

	tp := sampleTenant(t, "acme", 4, pdp.ModeEnforcement)
	dir := t.TempDir()
	bundlePath := filepath.Join(dir, "bundle.tar.gz")
	if err := os.WriteFile(bundlePath, mustBuild(t, tp).Bytes, 0o644); err != nil {
		t.Fatal(err)
	}
	email := map[string]any{"channel": "#external", "text": "Customer email: alice@example.com"}
	actions := []pdp.Action{
		{TenantID: "acme", Name: "slack.send_message", Params: email},                         // tenant-wide warning
		{TenantID: "acme", AgentID: "billing-bot", Name: "slack.send_message", Params: email}, // agent-scoped block
		{TenantID: "acme", AgentID: "ops:team@x.io", Name: "shell.exec", Params: map[string]any{"cmd": "rm -rf /"}},
		{TenantID: "acme", Name: "payments.transfer", Params: map[string]any{"amount": json.Number("150000")}},
		{TenantID: "acme", AgentID: "support-bot", Name: "billing.refund", Params: map[string]any{"ssn": "123-45-6789"}},
		{TenantID: "acme", Name: "http.get", Params: map[string]any{"url": "https://api.example.com/v1"}, StepType: "thought"},
	}
	want := engineDecisions(t, []pdp.TenantPolicies{tp}, actions)
	for i, a := range actions {
		input, _ := json.Marshal(engine.Input(a))
		inputPath := filepath.Join(dir, "input.json")
		if err := os.WriteFile(inputPath, input, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("go", "tool", "opa", "eval", "--format", "json", "-b", bundlePath, "-i", inputPath, adapter.DecisionQuery)
		cmd.Dir = root
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("opa eval: %v\n%s", err, stderr.String())
		}
		var res struct {
			Result []struct {
				Expressions []struct {
					Value any `json:"value"`
				} `json:"expressions"`
			} `json:"result"`
		}
		if err := json.Unmarshal(out, &res); err != nil || len(res.Result) != 1 || len(res.Result[0].Expressions) != 1 {
			t.Fatalf("opa eval output %s: %v", out, err)
		}
		got := decisionFromResult(t, res.Result[0].Expressions[0].Value)
		if d := diffJSON(got, want[i]); d != "" {
			t.Errorf("%s agent %q:%s", a.Name, a.AgentID, d)
		}
		t.Logf("%s agent %q: %s, %d violations", a.Name, a.AgentID, got.Status, len(got.Violations))
	}
}
