package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/sqlite"
	"github.com/gatehouse-pdp/gatehouse/test/scale"
)

// TestCompileBudgetRefusesWrite: through the binary, a policy write after
// which compiling the tenant would cost more than --engine-compile-budget
// is a 400 naming the budget; the policy is not stored and the tenant
// keeps deciding with what it had. (Each policy of 20 rules costs ~830
// units of rules data, so the fourth write is refused.)
func TestCompileBudgetRefusesWrite(t *testing.T) {
	t.Parallel()
	_, c := startDev(t, Options{Args: []string{"--engine-compile-budget", "3000"}})
	policy := func(name, agent string) map[string]any {
		rules := make([]any, 20)
		for i := range rules {
			rules[i] = map[string]any{"match": fmt.Sprintf("secret%02d", i), "severity": "low", "on_violation": "warn"}
		}
		return map[string]any{"name": name, "agent_id": agent, "rules": rules}
	}
	var refused *Response
	accepted := 0
	for i := range 10 {
		r := c.Do(t, "POST", "/v1/control/policies", policy(fmt.Sprintf("p%d", i), fmt.Sprintf("bot-%d", i)))
		if r.Status != http.StatusCreated {
			refused = r
			break
		}
		accepted++
	}
	if refused == nil || accepted == 0 {
		t.Fatalf("%d writes accepted, none refused: the budget was never reached", accepted)
	}
	m := wantStatus(t, refused, http.StatusBadRequest)
	msg := fmt.Sprint(m["message"], m["detail"], m["error"], string(refused.Body))
	if !strings.Contains(msg, "compile budget of 3000") {
		t.Errorf("400 does not name the compile budget: %s", refused.Body)
	}
	name := fmt.Sprintf("p%d", accepted)
	wantStatus(t, c.Do(t, "GET", "/v1/control/policies/"+name+"?agent_id="+fmt.Sprintf("bot-%d", accepted), nil), http.StatusNotFound)
	// The tenant still decides with the policies it had.
	r := wantStatus(t, c.Do(t, "POST", "/v1/actions", map[string]any{
		"action": "http.post", "agent_id": "bot-0", "params": map[string]any{"q": "secret03"},
	}), http.StatusOK)
	wantField(t, r, "p0", "policy_result", "triggered_policy")
}

// seedStore writes tenants (with an API key each, key returned for the
// first) straight into a new SQLite store, as a server restarted on it
// finds them.
func seedStore(t testing.TB, path string, s *scale.Scale) string {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	first := ""
	for _, tp := range s.Tenants {
		key := NewKey()
		if first == "" {
			first = key
		}
		if _, err := db.CreateTenant(ctx, store.Tenant{ID: tp.TenantID, Name: tp.TenantID, Tier: store.TierEnterprise, Mode: pdp.ModeEnforcement, ApprovalMode: "enterprise"},
			store.OwnerKey(store.APIKey{ID: "key_" + tp.TenantID, Hash: store.HashAPIKey(key), Prefix: store.KeyPrefix(key)})); err != nil {
			t.Fatal(err)
		}
		for _, p := range tp.Policies {
			if _, err := db.PutPolicy(ctx, store.PutPolicyRequest{TenantID: tp.TenantID, Policy: p, Limit: store.Unlimited}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return first
}

// healthPoll is one GET /health.
type healthPoll struct {
	status int
	body   map[string]any
}

// pollUntilReady GETs /health until it answers 200, returning every answer.
func pollUntilReady(t *testing.T, url string, timeout time.Duration) []healthPoll {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(timeout)
	var polls []healthPoll
	for time.Now().Before(deadline) {
		resp, err := client.Get(url + "/health")
		if err != nil {
			t.Fatalf("GET /health: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		p := healthPoll{status: resp.StatusCode}
		if err := json.Unmarshal(b, &p.body); err != nil {
			t.Fatalf("/health %d: %s", resp.StatusCode, b)
		}
		polls = append(polls, p)
		if resp.StatusCode == http.StatusOK {
			return polls
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("/health not 200 within %s; last %+v", timeout, polls[len(polls)-1])
	return nil
}

// TestServeWarmsBeforeReady: a server restarted on a store of tenants
// listens at once, answers /health 503 {"status":"warming"} with its
// progress while it compiles them in its pool, logs the progress, and
// answers 200 only once every tenant is compiled.
func TestServeWarmsBeforeReady(t *testing.T) {
	t.Parallel()
	bin := binary(t)
	path := filepath.Join(t.TempDir(), "warm.db")
	const tenants = 16
	seedStore(t, path, scale.Generate("warm", tenants, 1, 25, 3, 0, 0))
	s := Launch(t, bin, Options{Store: "sqlite://" + path})
	line, _, err := s.Stderr.Wait(0, startTimeout, LogMsg("listening"))
	if err != nil {
		t.Fatalf("no listening line: %v", err)
	}
	m, _ := LogEntry(line)
	url := fmt.Sprintf("http://%s", m["addr"])
	polls := pollUntilReady(t, url, 5*time.Minute)
	warming := 0
	for _, p := range polls[:len(polls)-1] {
		if p.status != http.StatusServiceUnavailable || p.body["status"] != "warming" {
			t.Fatalf("before ready: %d %v; want 503 warming", p.status, p.body)
		}
		if n, _ := p.body["tenants"].(float64); n != tenants {
			t.Errorf("warming tenants = %v, want %d", p.body["tenants"], tenants)
		}
		if n, _ := p.body["tenants_compiled"].(float64); n < 0 || n > tenants {
			t.Errorf("tenants_compiled = %v", p.body["tenants_compiled"])
		}
		warming++
	}
	if warming == 0 {
		t.Error("/health never said warming before ready")
	}
	if last := polls[len(polls)-1]; last.body["status"] != "ok" {
		t.Errorf("ready: %v", last.body)
	}
	// The log: warming started with the count, and ended before ready.
	if _, _, err := s.Stderr.Wait(0, logTimeout, func(l string) bool {
		e, ok := LogEntry(l)
		return ok && e["msg"] == "warming: compiling every tenant before reporting ready" && e["tenants"] == float64(tenants)
	}); err != nil {
		t.Errorf("no warming start line: %v", err)
	}
	done, _, err := s.Stderr.Wait(0, logTimeout, LogMsg("engine warm"))
	if err != nil {
		t.Fatalf("no engine warm line: %v", err)
	}
	e, _ := LogEntry(done)
	if e["tenants"] != float64(tenants) || e["prepared_queries"] != float64(tenants) {
		t.Errorf("engine warm: %v; want %d tenants, %d prepared queries", done, tenants, tenants)
	}
	t.Logf("%d polls said warming; %s", warming, done)
}

// TestWarmupAtScale measures the time from `gatehouse serve` starting to
// /health answering 200 on a store holding scale M (100 tenants × 10
// agents, 5 tenant-wide policies of 3 rules, 20% of agents with 2
// overrides). It takes a while to seed, so it runs only when asked:
//
//	GATEHOUSE_E2E_SCALE=1 go test ./test/e2e -run WarmupAtScale -v
func TestWarmupAtScale(t *testing.T) {
	if os.Getenv("GATEHOUSE_E2E_SCALE") == "" {
		t.Skip("set GATEHOUSE_E2E_SCALE=1 to measure start to ready at scale M")
	}
	bin := binary(t)
	path := filepath.Join(t.TempDir(), "m.db")
	seedStore(t, path, scale.M())
	for run := range 3 {
		start := time.Now()
		s := Launch(t, bin, Options{Store: "sqlite://" + path})
		line, _, err := s.Stderr.Wait(0, startTimeout, LogMsg("listening"))
		if err != nil {
			t.Fatal(err)
		}
		listening := time.Since(start)
		m, _ := LogEntry(line)
		pollUntilReady(t, fmt.Sprintf("http://%s", m["addr"]), 5*time.Minute)
		ready := time.Since(start)
		done, _, _ := s.Stderr.Wait(0, logTimeout, LogMsg("engine warm"))
		t.Logf("run %d: start → listening %s, start → ready %s; %s", run, listening.Round(time.Millisecond), ready.Round(time.Millisecond), done)
		s.Stop()
	}
}
