package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// exampleConfig is the documented example config file.
var exampleConfig = filepath.Join("..", "..", "examples", "gatehouse.yaml")

// TestExampleConfigLoads loads examples/gatehouse.yaml through serve's
// real loader (file, then environment, then flags) and checks that its
// values are the ones taken, that the flags still win over it, and that
// it documents every setting of serve, so the example cannot fall behind
// a new setting.
func TestExampleConfigLoads(t *testing.T) {
	c, err := loadServe(t, []string{"--config", exampleConfig}, nil)
	if err != nil {
		t.Fatalf("serve --config %s: %v", exampleConfig, err)
	}
	if c.Addr != "127.0.0.1:8181" || c.Store != "sqlite://./gatehouse.db" || c.LogLevel != "info" {
		t.Errorf("addr/store/log_level: %q %q %q", c.Addr, c.Store, c.LogLevel)
	}
	// Values the example changes from the defaults are read.
	if time.Duration(c.Engine.EvalTimeout) != 250*time.Millisecond {
		t.Errorf("engine.eval_timeout = %s, want the example's 250ms", time.Duration(c.Engine.EvalTimeout))
	}
	if !slices.Equal(c.DecisionLog.Mask, []string{"/input/params/password"}) {
		t.Errorf("decision_log.mask = %v", c.DecisionLog.Mask)
	}
	if lim := c.apiLimits().RateLimits; lim["free"].RequestsPerSecond != 5 || lim["free"].Burst != 10 {
		t.Errorf("rate_limit.free = %+v, want 5 rps, burst 10", lim["free"])
	}

	// Flags and the environment still win over the file.
	c, err = loadServe(t, []string{"--config", exampleConfig, "--addr", "127.0.0.1:0"},
		map[string]string{"GATEHOUSE_LOG_LEVEL": "debug"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:0" || c.LogLevel != "debug" {
		t.Errorf("precedence: addr %q log_level %q", c.Addr, c.LogLevel)
	}

	// Every setting is documented in the example.
	b, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				walk(prefix+k+".", sub)
				continue
			}
			keys[prefix+k] = true
		}
	}
	walk("", doc)
	for _, s := range serveSettings {
		if !keys[s.key] {
			t.Errorf("examples/gatehouse.yaml does not document %s (--%s)", s.key, s.flag)
		}
		delete(keys, s.key)
	}
	for k := range keys {
		t.Errorf("examples/gatehouse.yaml sets %s, which is no setting of serve", k)
	}
	if !strings.Contains(string(b), "gatehouse serve --config examples/gatehouse.yaml") {
		t.Error("the example does not say how to use it")
	}
}
