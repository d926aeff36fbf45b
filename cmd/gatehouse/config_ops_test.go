package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp/api"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

func TestOpsDefaults(t *testing.T) {
	c, err := loadServe(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := HTTPConfig{
		ReadHeaderTimeout: Duration(10 * time.Second), ReadTimeout: Duration(30 * time.Second),
		WriteTimeout: Duration(api.BundleMaxWait + 30*time.Second), IdleTimeout: Duration(2 * time.Minute),
	}
	if c.HTTP != want {
		t.Errorf("http: %+v, want %+v", c.HTTP, want)
	}
	if time.Duration(c.HTTP.WriteTimeout) <= api.BundleMaxWait {
		t.Errorf("write timeout %s does not outlast a bundle long poll (%s)", c.HTTP.WriteTimeout, api.BundleMaxWait)
	}
	if c.Engine.MaxConcurrentEvaluations != 0 || c.RateLimit != (RateLimitConfig{}) || c.Metrics.TenantLabels {
		t.Errorf("limits and metrics: %+v %+v %+v", c.Engine.MaxConcurrentEvaluations, c.RateLimit, c.Metrics)
	}
	if l := c.apiConfig().Defaults().Limits; len(l.RateLimits) != 0 {
		t.Errorf("api limits %+v: want no rate limits (contract A1: off by default)", l)
	}
	if n := c.Engine.engineConfig().Defaults().MaxConcurrent; n != engine.DefaultMaxConcurrent() {
		t.Errorf("engine max concurrent %d, want 4 × GOMAXPROCS", n)
	}
}

func TestRateSpec(t *testing.T) {
	for _, tc := range []struct {
		in     string
		want   RateSpec
		string string
	}{
		{"0", RateSpec{}, "0"},
		{"10", RateSpec{10, 10}, "10"},
		{"2.5", RateSpec{2.5, 3}, "2.5"},
		{"0.1", RateSpec{0.1, 1}, "0.1"},
		{"10:50", RateSpec{10, 50}, "10:50"},
		{" 10:10 ", RateSpec{10, 10}, "10"},
	} {
		got, err := parseRateSpec(tc.in)
		if err != nil || got != tc.want || got.String() != tc.string {
			t.Errorf("%q: %+v %q %v; want %+v %q", tc.in, got, got.String(), err, tc.want, tc.string)
		}
	}
	for _, bad := range []string{"", "fast", "10:", "10:x", ":5", "NaN", "Inf", "1e400"} {
		if got, err := parseRateSpec(bad); err == nil {
			t.Errorf("%q accepted as %+v", bad, got)
		}
	}
}

// TestOpsSettings: the operating settings come from the file (numbers or
// strings), the environment and flags like every other setting.
func TestOpsSettings(t *testing.T) {
	file := writeFile(t, "g.yaml", `
http:
  read_header_timeout: 2s
  write_timeout: 5m
rate_limit:
  free: 5
  starter: "10:20"
engine:
  max_concurrent_evaluations: 8
metrics:
  tenant_labels: true
`)
	c, err := loadServe(t, []string{"--config", file, "--max-concurrent-evaluations", "16", "--rate-limit-enterprise", "100:500"},
		map[string]string{"GATEHOUSE_RATE_LIMIT_PRO": "1:2", "GATEHOUSE_IDLE_TIMEOUT": "30s"})
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.ReadHeaderTimeout != Duration(2*time.Second) || c.HTTP.WriteTimeout != Duration(5*time.Minute) ||
		c.HTTP.IdleTimeout != Duration(30*time.Second) || c.HTTP.ReadTimeout != Duration(30*time.Second) {
		t.Errorf("http %+v", c.HTTP)
	}
	want := RateLimitConfig{Free: RateSpec{5, 5}, Starter: RateSpec{10, 20}, Pro: RateSpec{1, 2}, Enterprise: RateSpec{100, 500}}
	if c.RateLimit != want {
		t.Errorf("rate limits %+v, want %+v", c.RateLimit, want)
	}
	if c.Engine.engineConfig().MaxConcurrent != 16 || !c.Metrics.TenantLabels {
		t.Errorf("max concurrent %v, tenant labels %v", c.Engine.MaxConcurrentEvaluations, c.Metrics.TenantLabels)
	}
	l := c.apiLimits()
	if l.RateLimits[store.TierStarter] != (store.RateLimit{RequestsPerSecond: 10, Burst: 20}) || len(l.RateLimits) != 4 {
		t.Errorf("api limits %+v", l)
	}

	c, err = loadServe(t, []string{"--max-concurrent-evaluations", "auto"}, map[string]string{"GATEHOUSE_MAX_CONCURRENT_EVALUATIONS": "3"})
	if err != nil || c.Engine.MaxConcurrentEvaluations != 0 {
		t.Errorf("auto: %v %v", c.Engine.MaxConcurrentEvaluations, err)
	}
	c, err = loadServe(t, nil, map[string]string{"GATEHOUSE_MAX_CONCURRENT_EVALUATIONS": "-1"})
	if err != nil || c.Engine.engineConfig().MaxConcurrent != -1 {
		t.Errorf("-1: %v %v", c.Engine.MaxConcurrentEvaluations, err)
	}
}

func TestOpsProblems(t *testing.T) {
	_, err := loadServe(t, []string{
		"--read-timeout", "-1s", "--write-timeout", "2h", "--rate-limit-free", "-1", "--rate-limit-pro", "5:0",
		"--max-concurrent-evaluations", "-7",
	}, map[string]string{"GATEHOUSE_RATE_LIMIT_STARTER": "lots"})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"http.read_timeout -1s", "http.write_timeout 2h0m0s",
		"tier free: rate_limit.requests_per_second", "tier pro: rate_limit.burst", "engine max concurrent evaluations -7",
		"GATEHOUSE_RATE_LIMIT_STARTER"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	for name, content := range map[string]string{
		"rate as list":        "rate_limit:\n  free: [1]\n",
		"unknown tier":        "rate_limit:\n  gold: 1\n",
		"unknown http key":    "http:\n  timeout: 1s\n",
		"concurrency as word": "engine:\n  max_concurrent_evaluations: many\n",
	} {
		if _, err := loadServe(t, []string{"--config", writeFile(t, "g.yaml", content)}, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestServeOps runs serve in-process with a rate limit and checks what
// the wiring adds: GET /metrics with the engine's, the store's and the
// API's series, and 429 with Retry-After.
func TestServeOps(t *testing.T) {
	key := "nram_0123456789abcdef0123456789abcdef"
	cfg := Config{
		Addr: "127.0.0.1:0", Store: "sqlite://" + filepath.Join(t.TempDir(), "g.db"),
		BootstrapKey: key, ShutdownTimeout: Duration(5 * time.Second),
		RateLimit: RateLimitConfig{Enterprise: RateSpec{RequestsPerSecond: 0.01, Burst: 2}},
	}.Defaults()
	var stdout, stderr syncBuffer
	logger, err := newLogger(&stderr, "info")
	if err != nil {
		t.Fatal(err)
	}
	sigs := make(chan os.Signal, 2)
	done := make(chan error, 1)
	go func() {
		done <- serve(context.Background(), cfg, stdio{stdout: &stdout, stderr: &stderr, lookupEnv: env(nil)}, logger, sigs)
	}()
	var addr string
	for deadline := time.Now().Add(30 * time.Second); addr == ""; {
		if v, ok := logged(stderr.String(), "listening", "addr"); ok {
			addr, _ = v.(string)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no listening line:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	call := func(method, path, body string) (*http.Response, string) {
		req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	for range 2 {
		if resp, body := call(http.MethodPost, "/v1/actions", `{"action":"bank.transfer","params":{"amount":500000}}`); resp.StatusCode != 200 {
			t.Fatalf("%s %s", resp.Status, body)
		}
	}
	resp, body := call(http.MethodPost, "/v1/actions", `{"action":"calendar.read"}`)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, `"plan":"enterprise"`) {
		t.Errorf("third request: %s Retry-After %q %s", resp.Status, resp.Header.Get("Retry-After"), body)
	}
	_, metrics := call(http.MethodGet, "/metrics", "")
	for _, want := range []string{
		`gatehouse_decisions_total{status="blocked",trigger="builtin"} 2`,
		`gatehouse_requests_rejected_total{reason="rate_limited"} 1`,
		`http_requests_total{method="POST",route="/v1/actions",status="429"} 1`,
		// Compiled when the tenant was published (before serving), so
		// both decisions hit the cache.
		`gatehouse_engine_cache_hits_total 2`,
		`gatehouse_engine_cache_misses_total 0`,
		`gatehouse_compile_duration_seconds_count 1`,
		`gatehouse_store_operation_duration_seconds_count{op="InsertActionAudited"} 2`,
		`gatehouse_store_operation_duration_seconds_count{op="TenantByKeyHash"} 1`,
		"go_goroutines ", "process_cpu_seconds_total ",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	sigs <- syscall.SIGTERM
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
}
