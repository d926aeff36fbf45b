package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/sqlite"
)

// tenantRevision reads a tenant's revision from a stopped server's SQLite
// file.
func tenantRevision(t *testing.T, storeDSN, tenantID string) uint64 {
	t.Helper()
	db, err := sqlite.Open(context.Background(), strings.TrimPrefix(storeDSN, "sqlite://"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tn, err := db.GetTenant(context.Background(), tenantID)
	if err != nil {
		t.Fatal(err)
	}
	return tn.Revision
}

// TestPersistenceAcrossRestart: policies, actions, keys and the revision
// survive SIGTERM and a restart on the same file.
func TestPersistenceAcrossRestart(t *testing.T) {
	t.Parallel()
	storeDSN := SQLiteStore(t)
	s1, c := startDev(t, Options{Store: storeDSN})
	key, tenantID := s1.Key, s1.TenantID
	if tenantID != registry.BootstrapTenant {
		t.Errorf("--dev created tenant %q, want %q", tenantID, registry.BootstrapTenant)
	}

	wantStatus(t, c.Do(t, "POST", "/v1/control/policies", warnPolicy("pii", "email")), 201)
	wantStatus(t, c.Do(t, "POST", "/v1/control/policies", blockPolicy("pii", "email", "billing-bot")), 201)
	wantStatus(t, c.Do(t, "POST", "/v1/control/policies", warnPolicy("pii", "phone")), 200) // version 2
	act := map[string]any{"action": "mail.send", "params": map[string]any{"email": "a@b.c"}, "agent_id": "billing-bot"}
	before := wantStatus(t, c.Do(t, "POST", "/v1/actions", act), 200)
	wantField(t, before, "blocked", "status")
	id := field(before, "action_id").(string)
	gotBefore := wantStatus(t, c.Do(t, "GET", "/v1/actions/"+id, nil), 200)
	listBefore := wantStatus(t, c.Do(t, "GET", "/v1/control/policies?agent_id=billing-bot", nil), 200)

	s1.Stop()
	rev1 := tenantRevision(t, storeDSN, tenantID)
	if rev1 < 4 { // created at 1, three policy writes
		t.Errorf("revision %d after three policy writes", rev1)
	}

	// --dev on a store with tenants prints no new key.
	s2 := Start(t, binary(t), Options{Store: storeDSN, Dev: true})
	if s2.Key != "" {
		t.Errorf("--dev printed a key on a store that has tenants: %s", s2.Stdout)
	}
	c = s2.Client(key)
	if got := wantStatus(t, c.Do(t, "GET", "/v1/actions/"+id, nil), 200); !jsonEqual(got, gotBefore) {
		t.Errorf("action after restart:\n%s\nbefore:\n%s", mustJSON(got), mustJSON(gotBefore))
	}
	if got := wantStatus(t, c.Do(t, "GET", "/v1/control/policies?agent_id=billing-bot", nil), 200); !jsonEqual(got, listBefore) {
		t.Errorf("policies after restart:\n%s\nbefore:\n%s", mustJSON(got), mustJSON(listBefore))
	}
	// Decisions use the stored policies at once.
	wantField(t, wantStatus(t, c.Do(t, "POST", "/v1/actions", act), 200), "blocked", "status")
	// Versions and the revision continue.
	r := wantStatus(t, c.Do(t, "POST", "/v1/control/policies", warnPolicy("pii", "fax")), 200)
	wantField(t, r, 3, "version")
	wantField(t, wantStatus(t, c.Do(t, "GET", "/v1/actions", nil), 200), 2, "total")
	s2.Stop()
	if rev2 := tenantRevision(t, storeDSN, tenantID); rev2 != rev1+1 {
		t.Errorf("revision %d after one more write, want %d", rev2, rev1+1)
	}
}

// TestTenantCreateOutput: `gatehouse tenant create` prints exactly one
// JSON line with the four fields, and refuses bad input without output.
func TestTenantCreateOutput(t *testing.T) {
	t.Parallel()
	b := binary(t)
	storeDSN := SQLiteStore(t)
	res := Run(t, b, nil, "tenant", "create", "--name", "Acme Corp", "--tier", "pro", "--store", storeDSN, "--create-store")
	if res.Code != 0 {
		t.Fatalf("exit %d: %s", res.Code, res.Stderr)
	}
	if !strings.HasSuffix(res.Stdout, "\n") || strings.Count(res.Stdout, "\n") != 1 {
		t.Fatalf("stdout %q: want exactly one line", res.Stdout)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(res.Stdout), &m); err != nil {
		t.Fatalf("stdout %q: %v", res.Stdout, err)
	}
	if len(m) != 4 {
		t.Errorf("fields %v: want tenant_id, name, tier, api_key", m)
	}
	hasKeys(t, m, "tenant_id", "name", "tier", "api_key")
	wantField(t, m, "Acme Corp", "name")
	wantField(t, m, "pro", "tier")
	if id, _ := m["tenant_id"].(string); id == "" {
		t.Errorf("empty tenant_id")
	}
	key, _ := m["api_key"].(string)
	if !strings.HasPrefix(key, "nram_") || len(key) < 30 {
		t.Errorf("api_key %q: want nram_<random>", key)
	}
	// A second tenant gets another ID and key.
	res2 := Run(t, b, nil, "tenant", "create", "--name", "Acme Corp", "--tier", "free", "--store", storeDSN)
	var m2 map[string]any
	if err := json.Unmarshal([]byte(res2.Stdout), &m2); err != nil || m2["tenant_id"] == m["tenant_id"] || m2["api_key"] == m["api_key"] {
		t.Errorf("second tenant %q (%v)", res2.Stdout, err)
	}
	// GATEHOUSE_STORE is read too.
	res3 := Run(t, b, []string{"GATEHOUSE_STORE=" + storeDSN}, "tenant", "create", "--name", "env", "--tier", "starter")
	if res3.Code != 0 || strings.Count(res3.Stdout, "\n") != 1 {
		t.Errorf("with GATEHOUSE_STORE: exit %d %q %s", res3.Code, res3.Stdout, res3.Stderr)
	}
	// The key works on a server over that store.
	s := Start(t, b, Options{Store: storeDSN})
	wantField(t, wantStatus(t, s.Client(key).Do(t, "GET", "/v1/control/policies", nil), 200), []string{"solo", "team"}, "approval_modes")

	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no name", []string{"--tier", "pro"}, 2, "--name"},
		{"no tier", []string{"--name", "x"}, 2, "--tier"},
		{"bad tier", []string{"--name", "x", "--tier", "platinum"}, 2, "platinum"},
		{"bad mode", []string{"--name", "x", "--tier", "pro", "--mode", "loud"}, 2, "loud"},
		{"unknown flag", []string{"--name", "x", "--tier", "pro", "--colour", "red"}, 2, "colour"},
		{"bad store", []string{"--name", "x", "--tier", "pro", "--store", "mysql://x"}, 2, "mysql"},
		{"unreachable postgres", []string{"--name", "x", "--tier", "pro", "--store", "postgres://u@127.0.0.1:1/db"}, 1, "open store"},
		{"approval mode the tier lacks", []string{"--name", "x", "--tier", "free", "--approval-mode", "enterprise"}, 1, "enterprise"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"tenant", "create"}, tc.args...)
			if !strings.Contains(strings.Join(tc.args, " "), "--store") {
				args = append(args, "--store", SQLiteStore(t), "--create-store")
			}
			res := Run(t, b, nil, args...)
			if res.Code != tc.code || res.Stdout != "" || !strings.Contains(res.Stderr, tc.msg) {
				t.Errorf("exit %d (want %d), stdout %q, stderr %q (want it to mention %q)", res.Code, tc.code, res.Stdout, res.Stderr, tc.msg)
			}
		})
	}
}

// TestShutdownFinishesInFlight: SIGTERM while a request is in flight — the
// server stops accepting, the request completes, then the process exits 0.
func TestShutdownFinishesInFlight(t *testing.T) {
	t.Parallel()
	s, c := startDev(t, Options{})
	wantStatus(t, c.Do(t, "POST", "/v1/control/policies", blockPolicy("pii", "email", "")), 201)

	// Send the headers with Expect: 100-continue, so the request is in
	// flight: the server answers "100 Continue" when the handler starts
	// reading the body, which proves it has the request (no sleep needed).
	body := `{"action":"mail.send","params":{"email":"a@b.c"}}`
	conn, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(requestTimeout))
	fmt.Fprintf(conn, "POST /v1/actions HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n",
		s.Addr, s.Key, len(body))
	br := bufio.NewReader(conn)
	if line, err := br.ReadString('\n'); err != nil || !strings.Contains(line, " 100 ") {
		t.Fatalf("want 100 Continue, got %q %v", line, err)
	}
	if blank, err := br.ReadString('\n'); err != nil || blank != "\r\n" {
		t.Fatalf("after 100 Continue: %q %v", blank, err)
	}
	fmt.Fprint(conn, body[:10])

	s.Signal(syscall.SIGTERM)
	if _, _, err := s.Stderr.Wait(0, 10*time.Second, LogMsg("shutting down")); err != nil {
		t.Fatalf("no \"shutting down\" log: %v", err)
	}
	// New connections are refused once the listener is closed.
	if !eventually(5*time.Second, func() bool {
		c2, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err != nil {
			return true
		}
		c2.Close()
		return false
	}) {
		t.Error("still accepting connections after SIGTERM")
	}
	select {
	case <-s.exited:
		t.Fatal("exited with a request in flight")
	default:
	}

	// Finish the request: it completes with its decision.
	fmt.Fprint(conn, body[10:])
	status, err := br.ReadString('\n')
	if err != nil || !strings.Contains(status, " 200 ") {
		t.Fatalf("in-flight request: %q %v", status, err)
	}
	var rest strings.Builder
	_, _ = br.WriteTo(&rest)
	if !strings.Contains(rest.String(), `"blocked"`) {
		t.Errorf("in-flight response: %s", rest.String())
	}

	code, err := s.Wait(stopTimeout)
	if err != nil || code != 0 {
		t.Fatalf("exit %d, %v; want 0", code, err)
	}
	// Each step of the shutdown is logged, in order.
	from := 0
	for _, msg := range []string{"shutting down", "http server stopped", "store closed", "stopped"} {
		_, i, err := s.Stderr.Wait(from, time.Second, LogMsg(msg))
		if err != nil {
			t.Errorf("log %q after line %d: %v", msg, from, err)
			continue
		}
		from = i + 1
	}
}

// TestDevBootstrap: --dev on an empty store prints the key once, as one
// JSON line on stdout and a human line on stderr.
func TestDevBootstrap(t *testing.T) {
	t.Parallel()
	s, c := startDev(t, Options{})
	out := s.Stdout.All()
	if len(out) != 1 {
		t.Fatalf("stdout %q: want one line", out)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out[0]), &m); err != nil || len(m) != 2 {
		t.Fatalf("stdout %q: want {\"tenant_id\",\"api_key\"}", out[0])
	}
	wantField(t, m, registry.BootstrapTenant, "tenant_id")
	if !strings.Contains(s.Stderr.String(), s.Key) {
		t.Errorf("no human line with the key on stderr")
	}
	// The default tenant is enterprise.
	wantField(t, wantStatus(t, c.Do(t, "GET", "/v1/control/policies", nil), 200), []string{"solo", "team", "enterprise"}, "approval_modes")

	// --bootstrap-key on an empty store prints nothing; the key works.
	key := NewKey()
	s2 := Start(t, binary(t), Options{BootstrapKey: key, Dev: true})
	if got := s2.Stdout.All(); len(got) != 0 {
		t.Errorf("--bootstrap-key printed %q", got)
	}
	wantStatus(t, s2.Client(key).Do(t, "GET", "/v1/control/policies", nil), 200)
	if strings.Contains(s2.Stderr.String(), key) {
		t.Errorf("the bootstrap key was logged")
	}
}

// TestCLI covers version, healthcheck, help and configuration errors.
func TestCLI(t *testing.T) {
	t.Parallel()
	b := binary(t)

	t.Run("version", func(t *testing.T) {
		res := Run(t, b, nil, "version")
		if res.Code != 0 || !strings.Contains(res.Stdout, Version) || !strings.Contains(res.Stdout, "go1.") || !strings.Contains(res.Stdout, "opa") {
			t.Errorf("version: %d %q", res.Code, res.Stdout)
		}
	})

	t.Run("help", func(t *testing.T) {
		for _, args := range [][]string{{"help"}, {"--help"}} {
			res := Run(t, b, nil, args...)
			if res.Code != 0 || !strings.Contains(res.Stdout, "gatehouse serve") {
				t.Errorf("%v: %d %q", args, res.Code, res.Stdout)
			}
		}
		res := Run(t, b, nil, "serve", "--help")
		if res.Code != 0 {
			t.Fatalf("serve --help: %d %s", res.Code, res.Stderr)
		}
		for _, want := range []string{"--addr", "GATEHOUSE_ADDR", "--store", "GATEHOUSE_STORE", "--admin-token", "GATEHOUSE_ADMIN_TOKEN", "--bootstrap-key", "GATEHOUSE_BOOTSTRAP_KEY", "--dev", "--config"} {
			if !strings.Contains(res.Stdout, want) {
				t.Errorf("serve --help lacks %s", want)
			}
		}
		if res := Run(t, b, nil, "frobnicate"); res.Code != 2 {
			t.Errorf("unknown command: exit %d", res.Code)
		}
	})

	t.Run("healthcheck", func(t *testing.T) {
		s := Start(t, b, Options{})
		// A new store without --dev or a bootstrap key is worth a warning
		// naming the file: the server may have started in the wrong folder.
		line, _, err := s.Stderr.Wait(0, logTimeout, LogMsg("created a new, empty SQLite store: is --store (or GATEHOUSE_STORE, or the folder) the one you meant?"))
		if m, _ := LogEntry(line); err != nil || m["level"] != "WARN" || "sqlite://"+fmt.Sprint(m["path"]) != s.Store {
			t.Errorf("no warning naming the new store %s: %v %s", s.Store, err, line)
		}
		if res := Run(t, b, nil, "healthcheck", "--addr", s.Addr); res.Code != 0 {
			t.Errorf("healthcheck of a running server: %d %s", res.Code, res.Stderr)
		}
		_, port, _ := net.SplitHostPort(s.Addr)
		if res := Run(t, b, []string{"GATEHOUSE_ADDR=0.0.0.0:" + port}, "healthcheck"); res.Code != 0 {
			t.Errorf("healthcheck via GATEHOUSE_ADDR on 0.0.0.0: %d %s", res.Code, res.Stderr)
		}
		if res := Run(t, b, nil, "healthcheck", "--addr", freeAddr(t), "--timeout", "2s"); res.Code != 1 {
			t.Errorf("healthcheck of nothing: exit %d, want 1", res.Code)
		}
	})

	t.Run("invalid configuration lists every problem", func(t *testing.T) {
		res := Run(t, b, []string{"GATEHOUSE_LOG_LEVEL=chatty"}, "serve", "--addr", "nowhere", "--store", "mysql://x",
			"--shutdown-timeout", "-1s", "--engine-cache-size", "-5", "--bootstrap-key", "sk_123")
		if res.Code != 2 {
			t.Fatalf("exit %d, want 2\n%s", res.Code, res.Stderr)
		}
		for _, want := range []string{"addr", "store", "log_level", "shutdown_timeout", "cache size", "bootstrap_key"} {
			if !strings.Contains(res.Stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, res.Stderr)
			}
		}
	})

	t.Run("unreachable postgres", func(t *testing.T) {
		res := Run(t, b, nil, "serve", "--addr", "127.0.0.1:0", "--store", "postgres://gh:secret@127.0.0.1:1/db")
		if res.Code != 1 || !strings.Contains(res.Stderr, "open store") {
			t.Errorf("exit %d\n%s", res.Code, res.Stderr)
		}
		if strings.Contains(res.Stderr, "secret") {
			t.Errorf("the password was logged:\n%s", res.Stderr)
		}
	})

	t.Run("address in use", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		res := Run(t, b, nil, "serve", "--addr", ln.Addr().String(), "--store", SQLiteStore(t))
		if res.Code != 1 || !strings.Contains(res.Stderr, "listen") {
			t.Errorf("exit %d\n%s", res.Code, res.Stderr)
		}
	})

	t.Run("config file, env and flags in order of precedence", func(t *testing.T) {
		dir := t.TempDir()
		cfg := filepath.Join(dir, "gatehouse.yaml")
		yaml := fmt.Sprintf("addr: 127.0.0.1:1\nstore: sqlite://%s/file.db\nmax_body_bytes: 200000\nengine:\n  eval_timeout: 80ms\n", dir)
		if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		// The flag (from Start) beats GATEHOUSE_ADDR, which beats the
		// file's addr; GATEHOUSE_MAX_BODY_BYTES beats the file's limit.
		s := Start(t, b, Options{Store: "sqlite://" + dir + "/file.db", Dev: true,
			Args: []string{"--config", cfg}, Env: []string{"GATEHOUSE_MAX_BODY_BYTES=131072", "GATEHOUSE_ADDR=127.0.0.1:2"}})
		c := s.Client(s.Key)
		wantError(t, c.Do(t, "POST", "/v1/actions", `{"action":"x","params":{"a":"`+strings.Repeat("a", 140000)+`"}}`), 413, "PAYLOAD_TOO_LARGE")
		wantStatus(t, c.Do(t, "POST", "/v1/actions", `{"action":"x"}`), 200)

		bad := filepath.Join(dir, "bad.yaml")
		if err := os.WriteFile(bad, []byte("adr: 127.0.0.1:1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		res := Run(t, b, nil, "serve", "--config", bad)
		if res.Code != 2 || !strings.Contains(res.Stderr, "adr") {
			t.Errorf("unknown key: exit %d\n%s", res.Code, res.Stderr)
		}
	})
}
