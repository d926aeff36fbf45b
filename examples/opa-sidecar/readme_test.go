// Package opasidecar checks that examples/opa-sidecar/README.md works as
// written: it runs the README's two sh blocks with bash, verbatim but for
// the API key and the ports, against the real gatehouse binary and the
// pinned opa CLI, from a copy of this folder inside a scratch "repository"
// whose root holds the store, with HOME pointing at a scratch directory.
package opasidecar

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/test/e2e"
)

// scriptTimeout bounds one block: a few process starts and a bundle
// download, on a loaded machine.
const scriptTimeout = 3 * time.Minute

func TestReadmeCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("runs gatehouse and opa: skipped with -short")
	}
	for _, tool := range []string{"bash", "curl", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	blocks := shBlocks(t, "README.md")
	if len(blocks) != 2 || !strings.Contains(blocks[0], "--config-file opa-config.yaml") || !strings.Contains(blocks[1], "--config-file opa-config-signed.yaml") {
		t.Fatalf("README.md has %d sh blocks; want the local one (opa-config.yaml), then the signed one", len(blocks))
	}
	gatehouse, opa := e2e.Tools(t, filepath.Join("..", ".."))
	// The PATH `make install` and `make install-opa` give.
	bin := t.TempDir()
	for name, target := range map[string]string{"gatehouse": gatehouse, "opa": opa} {
		if err := os.Symlink(target, filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	repo, home := t.TempDir(), t.TempDir()
	dir := filepath.Join(repo, "examples", "opa-sidecar")
	if err := os.CopyFS(dir, os.DirFS(".")); err != nil {
		t.Fatal(err)
	}

	// make run: serve --dev on the store at the repository's root; then the
	// seed walkthrough's two policies.
	s := e2e.Start(t, gatehouse, e2e.Options{Store: "sqlite://" + filepath.Join(repo, "gatehouse.db"), Dev: true})
	c := s.Client(s.Key)
	for _, p := range []map[string]any{
		{"name": "pii_protection", "description": "Warn on PII patterns", "rules": []any{map[string]any{
			"match": "(email|phone)", "context_requires": "(external|public)", "severity": "medium", "on_violation": "warn"}}},
		{"name": "pii_protection", "description": "Block PII outright for billing-bot", "agent_id": "billing-bot", "rules": []any{map[string]any{
			"match": "(email|phone|ssn|passport|routing)", "severity": "critical", "on_violation": "block", "reason": "PII blocked for billing-bot: {match}"}}},
	} {
		if r := c.Do(t, "POST", "/v1/control/policies", p); r.Status != 201 {
			t.Fatalf("seed policy: %d %s", r.Status, r.Body)
		}
	}

	opaAddr := freeAddr(t)
	subst := strings.NewReplacer("nram_...", s.Key, "127.0.0.1:8181", s.Addr, "127.0.0.1:8282", opaAddr).Replace
	env := e2e.Env("PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "HOME="+home)
	const blocked = `"reason":"PII blocked for billing-bot: email"`

	local := subst(blocks[0])
	out := runScript(t, dir, env, local)
	if !strings.Contains(out, blocked) || !strings.Contains(out, `"status":"blocked"`) {
		t.Fatalf("local block: the decision is not billing-bot's block:\n%s", out)
	}

	// Production: make run stopped; the same store and port, the reader's
	// shell still holding the exports of the first block.
	s.Stop()
	exports := strings.SplitN(local, "\n", 2)[0]
	if !strings.HasPrefix(exports, "export GATEHOUSE_URL=") {
		t.Fatalf("the local block does not start with its exports: %q", exports)
	}
	out = runScript(t, dir, append(env, "GATEHOUSE_ADDR="+s.Addr), exports+"\n"+subst(blocks[1]))
	if !strings.Contains(out, blocked) || !strings.Contains(out, `"status":"blocked"`) {
		t.Fatalf("signed block: the decision is not billing-bot's block:\n%s", out)
	}
	if !strings.Contains(out, "bundles are signed") {
		t.Errorf("signed block: gatehouse did not log that it signs bundles:\n%s", out)
	}
	// The private key is outside the repository, readable by its owner only.
	key := filepath.Join(home, ".config", "gatehouse", "bundle-signing.pem")
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("private key %s: %v, mode %v; want 0600", key, err, fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if name := e.Name(); name != "README.md" && name != "readme_test.go" && !strings.HasPrefix(name, "opa-config") {
			t.Errorf("the commands left %s in the folder", name)
		}
	}
}

// runScript runs script with bash -e in dir, stopping the servers it put
// in the background when it ends, and returns its output. The script runs
// in its own process group, killed whole if it outlives scriptTimeout.
func runScript(t *testing.T, dir string, env []string, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), scriptTimeout)
	defer cancel()
	wrapped := "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n" + script + "\n"
	cmd := exec.CommandContext(ctx, "bash", "-c", wrapped)
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // anything left behind
	}
	t.Logf("$ %s\n%s", script, out)
	if err != nil {
		t.Fatalf("the block failed: %v", err)
	}
	return string(out)
}

// freeAddr returns a 127.0.0.1 address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// shBlocks returns the text of each ```sh code block of a Markdown file.
func shBlocks(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		blocks []string
		cur    []string
		inSh   bool
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "```") && inSh:
			blocks = append(blocks, strings.Join(cur, "\n"))
			cur, inSh = nil, false
		case line == "```sh":
			inSh = true
		case inSh:
			cur = append(cur, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return blocks
}
