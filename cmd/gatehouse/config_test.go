package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// env returns a lookupEnv over m.
func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// loadServe parses args as serve's flags and loads the config.
func loadServe(t *testing.T, args []string, vars map[string]string) (Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cf := bindConfig(fs, serveSettings...)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	return cf.load(env(vars))
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigDefaults(t *testing.T) {
	c, err := loadServe(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:8181" || c.Store != "sqlite://./gatehouse.db" || c.LogLevel != "info" ||
		time.Duration(c.ShutdownTimeout) != 15*time.Second || c.MaxBodyBytes != 1<<20 || c.Dev {
		t.Errorf("defaults: %+v", c)
	}
	if time.Duration(c.Engine.EvalTimeout) != 50*time.Millisecond || c.Engine.CacheSize != 10000 ||
		c.Engine.FinancialHardLimit != 100000 || c.Engine.FinancialApprovalThreshold != 10000 {
		t.Errorf("engine defaults: %+v", c.Engine)
	}
}

// TestConfigPrecedence: flag > env > file > default (docs/api.md §B1), for
// every kind of setting.
func TestConfigPrecedence(t *testing.T) {
	file := writeFile(t, "g.yaml", `
addr: 127.0.0.1:1001
store: sqlite://./file.db
log_level: warn
shutdown_timeout: 20s
dev: true
engine:
  eval_timeout: 70ms
  cache_size: 11
  financial_hard_limit: 5000
  financial_approval_threshold: 500
`)
	tests := []struct {
		name  string
		args  []string
		vars  map[string]string
		check func(t *testing.T, c Config)
	}{
		{"file over defaults", []string{"--config", file}, nil, func(t *testing.T, c Config) {
			if c.Addr != "127.0.0.1:1001" || c.Store != "sqlite://./file.db" || c.LogLevel != "warn" || !c.Dev ||
				time.Duration(c.ShutdownTimeout) != 20*time.Second || c.Engine.CacheSize != 11 ||
				time.Duration(c.Engine.EvalTimeout) != 70*time.Millisecond || c.Engine.FinancialHardLimit != 5000 {
				t.Errorf("%+v", c)
			}
			if c.MaxBodyBytes != 1<<20 {
				t.Errorf("unset key lost its default: %d", c.MaxBodyBytes)
			}
		}},
		{"env over file", []string{"--config", file}, map[string]string{
			"GATEHOUSE_ADDR": "127.0.0.1:1002", "GATEHOUSE_DEV": "false", "GATEHOUSE_SHUTDOWN_TIMEOUT": "3s",
			"GATEHOUSE_ENGINE_CACHE_SIZE": "12", "GATEHOUSE_FINANCIAL_HARD_LIMIT": "6000",
		}, func(t *testing.T, c Config) {
			if c.Addr != "127.0.0.1:1002" || c.Dev || time.Duration(c.ShutdownTimeout) != 3*time.Second ||
				c.Engine.CacheSize != 12 || c.Engine.FinancialHardLimit != 6000 {
				t.Errorf("%+v", c)
			}
			if c.Store != "sqlite://./file.db" {
				t.Errorf("store %q: the file's value was lost", c.Store)
			}
		}},
		{"flag over env", []string{"--config", file, "--addr", "127.0.0.1:1003", "--dev=true", "--engine-cache-size", "13"},
			map[string]string{"GATEHOUSE_ADDR": "127.0.0.1:1002", "GATEHOUSE_DEV": "false", "GATEHOUSE_ENGINE_CACHE_SIZE": "12"},
			func(t *testing.T, c Config) {
				if c.Addr != "127.0.0.1:1003" || !c.Dev || c.Engine.CacheSize != 13 {
					t.Errorf("%+v", c)
				}
			}},
		{"GATEHOUSE_CONFIG names the file", nil, map[string]string{"GATEHOUSE_CONFIG": file}, func(t *testing.T, c Config) {
			if c.Addr != "127.0.0.1:1001" {
				t.Errorf("addr %q", c.Addr)
			}
		}},
		{"an empty variable is unset", []string{"--config", file}, map[string]string{"GATEHOUSE_ADDR": ""}, func(t *testing.T, c Config) {
			if c.Addr != "127.0.0.1:1001" {
				t.Errorf("addr %q", c.Addr)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadServe(t, tc.args, tc.vars)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

// TestConfigReportsEveryProblem: Validate (and the loader) report all
// problems at once, each naming its setting.
func TestConfigReportsEveryProblem(t *testing.T) {
	_, err := loadServe(t, []string{
		"--addr", "nowhere", "--store", "mysql://x", "--log-level", "chatty", "--shutdown-timeout", "-1s",
		"--max-body-bytes", "10", "--engine-cache-size", "-1", "--engine-eval-timeout", "2m",
		"--financial-hard-limit", "10", "--financial-approval-threshold", "20", "--admin-token", "short",
		"--bootstrap-key", "sk_1",
	}, map[string]string{"GATEHOUSE_ENGINE_REGEX_CACHE_SIZE": "lots"})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"addr", "store", "log_level", "shutdown_timeout", "max body bytes", "cache size",
		"timeout 2m0s", "approval threshold 20 exceeds hard limit 10", "admin token", "bootstrap_key",
		"GATEHOUSE_ENGINE_REGEX_CACHE_SIZE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestConfigFileIsStrict(t *testing.T) {
	for name, content := range map[string]string{
		"unknown key":        "adr: 127.0.0.1:1\n",
		"unknown nested key": "engine:\n  cache_sise: 3\n",
		"duplicate key":      "addr: 127.0.0.1:1\naddr: 127.0.0.1:2\n",
		"duration as number": "shutdown_timeout: 15\n",
		"bad duration":       "shutdown_timeout: soon\n",
		"wrong type":         "dev: maybe\n",
		"not YAML":           "addr: [\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := loadServe(t, []string{"--config", writeFile(t, "g.yaml", content)}, nil)
			if err == nil {
				t.Errorf("%q accepted", content)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		if _, err := loadServe(t, []string{"--config", filepath.Join(t.TempDir(), "none.yaml")}, nil); err == nil {
			t.Error("missing file accepted")
		}
	})
	t.Run("every problem at once, in YAML terms", func(t *testing.T) {
		content := "adr: 1\nstore: sqlite://x.db\nengine:\n  cache_sise: 3\n  eval_timeout: 5\n" +
			"max_body_bytes: big\nshutdown_timeout: forever\naddr: a\naddr: b\nrate_limit: 5\nbundle:\n  sources: x\n"
		_, err := loadServe(t, []string{"--config", writeFile(t, "g.yaml", content)}, nil)
		if err == nil {
			t.Fatal("accepted")
		}
		for _, want := range []string{
			"line 1: adr: unknown key (did you mean addr?)",
			"line 4: engine.cache_sise: unknown key (did you mean cache_size?)",
			`line 5: engine.eval_timeout: want a duration string such as "15s", got 5`,
			`line 6: max_body_bytes: want a whole number, got the string "big"`,
			`line 7: shutdown_timeout: time: invalid duration "forever"`,
			"line 9: addr: given twice (first on line 8)",
			"line 10: rate_limit: want a mapping of keys to values, got the number 5",
			`line 12: bundle.sources: want a list of strings, got the string "x"`,
		} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q:\n%v", want, err)
			}
		}
		if strings.Contains(err.Error(), "JSON") || strings.Contains(err.Error(), "json") {
			t.Errorf("a YAML file's errors talk about JSON:\n%v", err)
		}
	})
	t.Run("JSON is YAML", func(t *testing.T) {
		c, err := loadServe(t, []string{"--config", writeFile(t, "g.json", `{"addr":"127.0.0.1:9","engine":{"eval_timeout":"10ms"}}`)}, nil)
		if err != nil || c.Addr != "127.0.0.1:9" {
			t.Errorf("%v %+v", err, c)
		}
	})
}

// TestBadFlagValues: a flag that does not parse is refused by the flag
// package, naming the flag.
func TestBadFlagValues(t *testing.T) {
	for _, args := range [][]string{
		{"--engine-cache-size", "ten"}, {"--shutdown-timeout", "15"}, {"--dev=perhaps"}, {"--financial-hard-limit", "1e"},
	} {
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		bindConfig(fs, serveSettings...)
		if err := fs.Parse(args); err == nil || !strings.Contains(err.Error(), strings.TrimLeft(strings.SplitN(args[0], "=", 2)[0], "-")) {
			t.Errorf("%v: %v", args, err)
		}
	}
}

// TestSettingsTable: every setting has a unique flag, env var and file
// key, the env var is the flag's GATEHOUSE_ spelling, and the file key is
// one the config file really has.
func TestSettingsTable(t *testing.T) {
	b, err := yaml.Marshal(Config{}.Defaults())
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, s := range serveSettings {
		for _, n := range []string{"flag:" + s.flag, "env:" + s.env, "key:" + s.key} {
			if seen[n] {
				t.Errorf("duplicate %s", n)
			}
			seen[n] = true
		}
		if want := "GATEHOUSE_" + strings.ToUpper(strings.ReplaceAll(s.flag, "-", "_")); s.env != want {
			t.Errorf("%s: env %s, want %s", s.flag, s.env, want)
		}
		var v any = doc
		for part := range strings.SplitSeq(s.key, ".") {
			m, _ := v.(map[string]any)
			var ok bool
			if v, ok = m[part]; !ok {
				t.Errorf("%s: file key %s is not in the config file", s.flag, s.key)
				break
			}
		}
		// Setting the default's text gives the default back.
		def := Config{}.Defaults()
		c := def
		if err := s.set(&c, s.display(def)); err != nil || s.display(c) != s.display(def) {
			t.Errorf("%s: default %q does not round-trip: %v", s.flag, s.display(def), err)
		}
	}
}

// TestServeHelp: serve --help names each flag with its env var.
func TestServeHelp(t *testing.T) {
	var out, errOut strings.Builder
	code := run(t.Context(), []string{"serve", "--help"}, stdio{stdout: &out, stderr: &errOut, lookupEnv: env(nil)})
	if code != 0 || errOut.Len() != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	help := out.String()
	for _, s := range serveSettings {
		i := strings.Index(help, "--"+s.flag)
		if i < 0 {
			t.Errorf("help lacks --%s", s.flag)
			continue
		}
		// The env var is on the setting's own entry.
		entry := help[i:]
		if j := strings.Index(entry[2:], "\n  --"); j >= 0 {
			entry = entry[:j+2]
		}
		if !strings.Contains(entry, "env "+s.env+" ") || !strings.Contains(entry, "file "+s.key+" ") {
			t.Errorf("entry of --%s lacks its env var or file key:\n%s", s.flag, entry)
		}
	}
	for _, want := range []string{"--config", "GATEHOUSE_CONFIG", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %s", want)
		}
	}
}
