package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BuildOPA compiles the opa CLI pinned in the module rooted at root (the
// version `go tool opa` runs) into dir and returns its path.
func BuildOPA(root, dir string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	bin := filepath.Join(dir, "opa")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/open-policy-agent/opa")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build opa: %w\n%s", err, out)
	}
	return bin, nil
}

// OPA is one running `opa run --server` on 127.0.0.1.
type OPA struct {
	// URL is http://127.0.0.1:<port>.
	URL string
	// Log is the process's output (stdout and stderr), JSON lines.
	Log *Lines

	cmd    *exec.Cmd
	exited chan struct{}
}

// StartOPA runs `opa run --server` on a free 127.0.0.1 port with args
// (e.g. --config-file) and env (see Env), waits until GET /health answers
// 200 and stops it with SIGTERM at the end of the test.
func StartOPA(t *testing.T, bin string, env []string, args ...string) *OPA {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	o := &OPA{URL: "http://" + addr, Log: newLines(), exited: make(chan struct{})}
	all := append([]string{"run", "--server", "--addr", addr, "--log-format", "json", "--log-level", "debug",
		"--disable-telemetry", "--shutdown-grace-period", "5"}, args...)
	o.cmd = exec.Command(bin, all...)
	o.cmd.Env = Env(env...)
	o.cmd.Stdout, o.cmd.Stderr = o.Log, o.Log
	o.cmd.WaitDelay = 5 * time.Second
	if err := o.cmd.Start(); err != nil {
		t.Fatalf("start opa: %v", err)
	}
	go func() {
		_ = o.cmd.Wait()
		o.Log.finish()
		close(o.exited)
	}()
	t.Cleanup(func() {
		_ = o.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-o.exited:
		case <-time.After(stopTimeout):
			_ = o.cmd.Process.Kill()
			<-o.exited
		}
		if t.Failed() {
			t.Logf("opa %s log:\n%s", strings.Join(all, " "), o.Log)
		}
	})
	if !o.WaitHealth(t, "", startTimeout) {
		t.Fatalf("opa: GET /health did not answer 200 within %s\n%s", startTimeout, o.Log)
	}
	return o
}

// Health returns the status of GET /health<query>, e.g. query "?bundles";
// 0 when the request failed.
func (o *OPA) Health(query string) int {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(o.URL + "/health" + query)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// WaitHealth polls GET /health<query> until it answers 200, at most
// timeout, and reports whether it did.
func (o *OPA) WaitHealth(t testing.TB, query string, timeout time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if o.Health(query) == http.StatusOK {
			return true
		}
		select {
		case <-o.exited:
			t.Fatalf("opa exited:\n%s", o.Log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// Client returns a client for OPA's REST API (no credentials).
func (o *OPA) Client() *Client {
	return &Client{URL: o.URL, hc: &http.Client{Timeout: requestTimeout}}
}
