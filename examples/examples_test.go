// Package examples_test runs the examples the way their READMEs say:
// the Python and Go agents against the real binary (started with the
// example config file), and the compose topology — two replicas on one
// PostgreSQL database and a stock OPA pulling the bundle — with the
// compose file's own commands and variables, since Docker has no engine in
// CI. One binary build serves every test of the package.
package examples_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/client"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/test/e2e"
)

// Deadlines: generous, because CI machines are loaded; every wait has one.
const (
	agentTimeout = 3 * time.Minute
	waitTimeout  = 60 * time.Second
)

var (
	root string // the repository
	// gatehouse is the shared build of the binary (e2e.Binary; not with -short).
	gatehouse string
)

func TestMain(m *testing.M) {
	flag.Parse()
	var err error
	root, err = filepath.Abs("..")
	if err == nil && !testing.Short() {
		gatehouse, err = e2e.Binary(root)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "examples:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// binary returns the gatehouse binary, skipping with -short.
func binary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the binary: skipped with -short")
	}
	return gatehouse
}

// opaBinary is the pinned opa CLI (the one `go tool opa` runs), for the
// tests that need it.
var opaBinary = sync.OnceValues(func() (string, error) { return e2e.OPABinary(root) })

// startWithExampleConfig starts `gatehouse serve --dev --config
// examples/gatehouse.yaml`, as a user following the examples would (the
// harness's own flags, address and store, win over the file).
func startWithExampleConfig(t *testing.T) *e2e.Server {
	t.Helper()
	s := e2e.Start(t, binary(t), e2e.Options{
		Dev:  true,
		Args: []string{"--config", filepath.Join(root, "examples", "gatehouse.yaml")},
		Env:  []string{"GATEHOUSE_ADMIN_TOKEN=" + adminToken},
	})
	if !strings.HasPrefix(s.Key, "nram_") {
		t.Fatalf("--dev printed no key:\n%s", s.Stdout)
	}
	// Team mode, where an approver other than the submitter decides at
	// once, so the "human" below needs neither a second approver nor
	// solo mode's wait.
	admin := &http.Client{Timeout: waitTimeout, Transport: e2e.NewSpecTransport(t, nil)}
	req, _ := http.NewRequestWithContext(e2e.WithTB(t.Context(), t), http.MethodPatch,
		s.URL+"/v1/admin/tenants/"+registry.BootstrapTenant, strings.NewReader(`{"approval_mode":"team"}`))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := admin.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PATCH approval_mode team: %d", resp.StatusCode)
	}
	return s
}

// adminToken enables the admin API of the agents' servers.
const adminToken = "examples-admin-token-0123456789"

// agent is a running example agent; its stdout lines arrive on lines.
type agent struct {
	cmd    *exec.Cmd
	lines  chan string
	mu     sync.Mutex
	out    []string
	done   chan struct{}
	stderr strings.Builder
	err    error
}

func startAgent(t *testing.T, s *e2e.Server, name string, args ...string) *agent {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), agentTimeout)
	t.Cleanup(cancel)
	a := &agent{lines: make(chan string, 64), done: make(chan struct{})}
	a.cmd = exec.CommandContext(ctx, name, args...)
	a.cmd.Dir = root
	a.cmd.Env = e2e.Env("GATEHOUSE_URL="+s.URL, "GATEHOUSE_API_KEY="+s.Key, "GATEHOUSE_APPROVAL_TIMEOUT="+approvalTimeout(name))
	a.cmd.Stderr = &a.stderr
	a.cmd.WaitDelay = 5 * time.Second
	stdout, err := a.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			a.mu.Lock()
			a.out = append(a.out, sc.Text())
			a.mu.Unlock()
			a.lines <- sc.Text()
		}
		close(a.lines)
		a.err = a.cmd.Wait()
		close(a.done)
	}()
	t.Cleanup(func() {
		<-a.done
		if t.Failed() {
			t.Logf("%s stdout:\n%s\nstderr:\n%s", name, strings.Join(a.output(), "\n"), a.stderr.String())
		}
	})
	return a
}

// approvalTimeout is GATEHOUSE_APPROVAL_TIMEOUT in each agent's unit.
func approvalTimeout(name string) string {
	if name == "python3" {
		return "90"
	}
	return "90s"
}

// playHuman runs an agent to its end, deciding its held action with
// decision with her own key, as a human at a console would, and returns the agent's output.
func playHuman(t *testing.T, s *e2e.Server, a *agent, decision, reason string) []string {
	t.Helper()
	var line string
	deadline := time.After(agentTimeout)
	for !strings.HasPrefix(line, "PENDING ") {
		select {
		case l, ok := <-a.lines:
			if !ok {
				t.Fatal("the agent ended without waiting for approval")
			}
			line = l
		case <-deadline:
			t.Fatal("the agent did not wait for approval in time")
		}
	}
	f := strings.Fields(line)
	id := f[len(f)-1]
	owner, err := client.New(s.URL, s.Key, client.WithHTTPClient(e2e.SpecClient(t)))
	if err != nil {
		t.Fatal(err)
	}
	// The human decides with her own key: the approver is its owner, and
	// the agent's key is the submitter team mode makes wait.
	k, err := owner.CreateKey(e2e.WithTB(t.Context(), t), client.NewKey{Name: "alice", Role: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(s.URL, k.APIKey, client.WithHTTPClient(e2e.SpecClient(t)))
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Decide(e2e.WithTB(t.Context(), t), id, client.Decision{Decision: decision, Reason: reason})
	if err != nil {
		t.Fatalf("decide %s: %v", id, err)
	}
	if want := map[string]client.Status{"approve": client.StatusApproved, "deny": client.StatusDenied}[decision]; res.Status != want {
		t.Fatalf("decision answered %s, want %s", res.Status, want)
	}
	select {
	case <-a.done:
	case <-time.After(agentTimeout):
		t.Fatal("the agent did not finish")
	}
	if a.err != nil {
		t.Fatalf("agent exited with %v\nstderr:\n%s", a.err, a.stderr.String())
	}
	return a.output()
}

// output returns the agent's stdout lines so far.
func (a *agent) output() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.out...)
}

func wantLines(t *testing.T, got []string, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("agent printed %d lines, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], w) {
			t.Errorf("line %d: %q, want it to start with %q", i+1, got[i], w)
		}
	}
}

// TestAgentPython runs examples/agent-python/agent.py (standard library
// only) against the binary: allowed, blocked with its reason, held until
// the "human" approves.
func TestAgentPython(t *testing.T) {
	s := startWithExampleConfig(t)
	a := startAgent(t, s, "python3", filepath.Join("examples", "agent-python", "agent.py"))
	got := playHuman(t, s, a, "approve", "release window")
	wantLines(t, got,
		"ALLOWED slack.send_message",
		"BLOCKED shell.exec: Refusing rm -rf",
		"PENDING ci.deploy act_",
		"APPROVED ci.deploy by alice")
}

// TestAgentGo builds examples/agent-go (the client package) and runs it
// against the binary: allowed, blocked, held until the "human" denies.
func TestAgentGo(t *testing.T) {
	s := startWithExampleConfig(t)
	bin := filepath.Join(t.TempDir(), "agent-go")
	build := exec.Command("go", "build", "-o", bin, "./examples/agent-go")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/agent-go: %v\n%s", err, out)
	}
	a := startAgent(t, s, bin)
	got := playHuman(t, s, a, "deny", "change freeze")
	wantLines(t, got,
		"ALLOWED slack.send_message",
		"BLOCKED shell.exec: Refusing rm -rf",
		"PENDING ci.deploy act_",
		"DENIED ci.deploy: change freeze")
}
