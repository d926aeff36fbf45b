// Package e2e tests Gatehouse the way users run it: through the real
// binary, built once for every package that needs it (Binary), serving on
// 127.0.0.1 port 0, spoken to over HTTP and the command line only.
//
// Every wait is bounded. A server is stopped with SIGTERM when its test
// ends and must exit 0 within the shutdown timeout; its log is printed
// when the test failed.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Deadlines of the harness. Generous, because CI machines are slow, but
// every wait has one.
const (
	buildTimeout   = 15 * time.Minute // a cold build of OPA on a loaded machine
	startTimeout   = 60 * time.Second
	stopTimeout    = 30 * time.Second
	requestTimeout = 30 * time.Second
	cliTimeout     = 60 * time.Second
	// logTimeout bounds the wait for a log line the server has written
	// (or must have written) by the time the test looks: stdout and
	// stderr are read by their own goroutines, so a line can still be on
	// its way after the event that follows it (ready, an exit). Waits for
	// a line's absence use 0.
	logTimeout = 30 * time.Second
	// shutdownTimeout is the --shutdown-timeout servers run with; it must
	// stay below stopTimeout.
	shutdownTimeout = 10 * time.Second
)

// Version is what the binary under test reports as its version: the one
// Build stamps, or $GATEHOUSE_BIN's (see Binary).
var Version = "v0.0.0-e2e"

// Build compiles ./cmd/gatehouse of the module rooted at root into dir,
// with the version stamped as the Makefile does, and returns the binary's
// path. It builds with the go command's defaults otherwise (no -trimpath,
// cgo as the environment says), so it reuses every package `go vet` and
// `go test` compiled already instead of compiling OPA again: the release
// flags are test/image's business, which builds with the Dockerfile's.
func Build(root, dir string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	bin := filepath.Join(dir, "gatehouse")
	cmd := exec.CommandContext(ctx, "go", "build",
		"-ldflags", "-X github.com/gatehouse-pdp/gatehouse/pdp.Version="+Version,
		"-o", bin, "./cmd/gatehouse")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/gatehouse: %w\n%s", err, out)
	}
	return bin, nil
}

// Env returns the environment for the binary: the test process's, minus
// every GATEHOUSE_* and OTEL_* variable (a developer's shell must not
// change what is tested), plus extra.
func Env(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "GATEHOUSE_") || strings.HasPrefix(kv, "OTEL_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// NewKey returns a fresh API key in the contract's format.
func NewKey() string {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	return "nram_" + hex.EncodeToString(b)
}

// SQLiteStore returns a store DSN for a new SQLite file in a temporary
// directory of t.
func SQLiteStore(t testing.TB) string {
	return "sqlite://" + filepath.Join(t.TempDir(), "g.db")
}

// Lines collects a stream's lines and lets tests wait for one.
type Lines struct {
	mu      sync.Mutex
	lines   []string
	partial []byte
	changed chan struct{} // closed and replaced on every new line
	closed  bool
}

func newLines() *Lines { return &Lines{changed: make(chan struct{})} }

// Write splits p into lines.
func (l *Lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	added := false
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, string(l.partial[:i]))
		l.partial = l.partial[i+1:]
		added = true
	}
	if added {
		close(l.changed)
		l.changed = make(chan struct{})
	}
	return len(p), nil
}

// finish records the end of the stream.
func (l *Lines) finish() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.partial) > 0 {
		l.lines = append(l.lines, string(l.partial))
		l.partial = nil
	}
	l.closed = true
	close(l.changed)
	l.changed = make(chan struct{})
}

// All returns the lines so far.
func (l *Lines) All() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// String returns the lines so far, joined.
func (l *Lines) String() string { return strings.Join(l.All(), "\n") }

// Wait returns the first line, from index from on, for which match is
// true, and its index. It fails when the stream ends or timeout passes
// first; with a timeout ≤ 0 it only looks at the lines already there.
func (l *Lines) Wait(from int, timeout time.Duration, match func(string) bool) (string, int, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		for i := from; i < len(l.lines); i++ {
			if match(l.lines[i]) {
				line := l.lines[i]
				l.mu.Unlock()
				return line, i, nil
			}
		}
		from = max(from, len(l.lines))
		closed, changed := l.closed, l.changed
		l.mu.Unlock()
		if closed {
			return "", 0, errors.New("stream ended before the line appeared")
		}
		if timeout <= 0 {
			return "", 0, errors.New("no such line yet")
		}
		select {
		case <-changed:
		case <-deadline.C:
			return "", 0, fmt.Errorf("no such line within %s", timeout)
		}
	}
}

// LogEntry decodes a JSON log line; ok is false for other lines.
func LogEntry(line string) (map[string]any, bool) {
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		return nil, false
	}
	return m, true
}

// LogMsg matches JSON log lines whose msg is msg.
func LogMsg(msg string) func(string) bool {
	return func(line string) bool {
		m, ok := LogEntry(line)
		return ok && m["msg"] == msg
	}
}

// Options configure Start.
type Options struct {
	// Store is the --store DSN; default a new SQLite file.
	Store string
	// Dev passes --dev.
	Dev bool
	// BootstrapKey passes --bootstrap-key.
	BootstrapKey string
	// Args are more arguments for serve.
	Args []string
	// Env are more environment variables (KEY=VALUE).
	Env []string
}

// Server is one running `gatehouse serve`.
type Server struct {
	t *testing.T
	// Addr is the address the server listens on, from its log; URL is
	// http://Addr.
	Addr, URL string
	// Store is the --store it runs on.
	Store string
	// Key is the API key of tenant "default": the bootstrap key, or the
	// one --dev printed.
	Key string
	// TenantID is the tenant --dev reported ("" otherwise).
	TenantID string
	// Stdout and Stderr are the process's output.
	Stdout, Stderr *Lines

	cmd    *exec.Cmd
	dev    bool // --dev without a bootstrap key: a key is printed
	exited chan struct{}
	err    error // cmd.Wait's, once exited is closed
	once   sync.Once
}

// Start runs `gatehouse serve` on 127.0.0.1:0, learns its port from the
// "listening" log line, waits until GET /health answers 200, and stops it
// at the end of the test (see Stop).
func Start(t *testing.T, bin string, o Options) *Server {
	t.Helper()
	s := Launch(t, bin, o)
	s.WaitReady()
	return s
}

// Launch starts `gatehouse serve` as Start does but returns at once,
// before the server is ready, so that several can start together; call
// WaitReady on each before using it.
func Launch(t *testing.T, bin string, o Options) *Server {
	t.Helper()
	if o.Store == "" {
		o.Store = SQLiteStore(t)
	}
	// A generous evaluation timeout: CI runs test packages in parallel on
	// two cores, and the 50 ms default would fail closed (503) under that
	// load. Tests of the timeout itself pass their own, later flag.
	args := []string{"serve", "--addr", "127.0.0.1:0", "--store", o.Store,
		"--shutdown-timeout", shutdownTimeout.String(), "--log-level", "debug",
		"--engine-eval-timeout", "5s"}
	if o.Dev {
		args = append(args, "--dev")
	}
	if o.BootstrapKey != "" {
		args = append(args, "--bootstrap-key", o.BootstrapKey)
	}
	args = append(args, o.Args...)
	s := &Server{
		t: t, Store: o.Store, Key: o.BootstrapKey,
		Stdout: newLines(), Stderr: newLines(),
		exited: make(chan struct{}),
	}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = Env(o.Env...)
	s.cmd.Stdout = s.Stdout
	s.cmd.Stderr = s.Stderr
	s.cmd.WaitDelay = 5 * time.Second
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start gatehouse: %v", err)
	}
	go func() {
		s.err = s.cmd.Wait()
		s.Stdout.finish()
		s.Stderr.finish()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("gatehouse %s stderr:\n%s\nstdout:\n%s", strings.Join(args, " "), s.Stderr, s.Stdout)
		}
	})
	s.dev = o.Dev && o.BootstrapKey == ""
	return s
}

// WaitReady learns the port of a launched server from its "listening" log
// line (and with --dev its key), and waits until GET /health answers 200.
func (s *Server) WaitReady() {
	t := s.t
	t.Helper()
	line, _, err := s.Stderr.Wait(0, startTimeout, LogMsg("listening"))
	if err != nil {
		s.kill()
		t.Fatalf("gatehouse did not log \"listening\": %v\nstderr:\n%s", err, s.Stderr)
	}
	m, _ := LogEntry(line)
	s.Addr, _ = m["addr"].(string)
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil || host != "127.0.0.1" {
		s.kill()
		t.Fatalf("listening line %s: want addr 127.0.0.1:<port>", line)
	}
	s.URL = "http://" + s.Addr
	if s.dev {
		s.readDevKey()
	}
	s.waitHealthy()
}

// readDevKey reads the {"tenant_id","api_key"} line --dev prints on an
// empty store. On a store that has tenants there is none, and Key keeps
// what the test set. The process writes that line before it logs
// "listening", but stdout and stderr are read by separate goroutines, so
// the line may still be on its way: when stderr says a key was made, wait
// for it.
func (s *Server) readDevKey() {
	s.t.Helper()
	made := func(line string) bool { return strings.Contains(line, "dev mode: created tenant") }
	if _, _, err := s.Stderr.Wait(0, 0, made); err != nil {
		return
	}
	var v struct {
		TenantID string `json:"tenant_id"`
		APIKey   string `json:"api_key"`
	}
	_, _, err := s.Stdout.Wait(0, startTimeout, func(line string) bool {
		return json.Unmarshal([]byte(line), &v) == nil && v.APIKey != ""
	})
	if err != nil {
		s.t.Fatalf("--dev made a key but printed none on stdout: %v", err)
	}
	s.Key, s.TenantID = v.APIKey, v.TenantID
}

// waitHealthy polls GET /health until it answers 200.
func (s *Server) waitHealthy() {
	s.t.Helper()
	deadline := time.Now().Add(startTimeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := client.Get(s.URL + "/health")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-s.exited:
			s.t.Fatalf("gatehouse exited before /health answered 200: %v", s.err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.kill()
			s.t.Fatalf("GET /health did not answer 200 within %s (last error %v)", startTimeout, err)
		}
	}
}

// Signal sends sig to the server.
func (s *Server) Signal(sig os.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Errorf("signal %v: %v", sig, err)
	}
}

// Wait waits up to timeout for the process to exit and returns its exit
// code.
func (s *Server) Wait(timeout time.Duration) (int, error) {
	select {
	case <-s.exited:
	case <-time.After(timeout):
		return -1, fmt.Errorf("gatehouse still running %s after SIGTERM", timeout)
	}
	var ee *exec.ExitError
	switch {
	case s.err == nil:
		return 0, nil
	case errors.As(s.err, &ee):
		return ee.ExitCode(), nil
	}
	return -1, s.err
}

// Stop sends SIGTERM and fails the test unless the server exits 0 within
// stopTimeout. It is safe to call more than once.
func (s *Server) Stop() {
	s.t.Helper()
	s.once.Do(func() {
		select {
		case <-s.exited:
		default:
			s.Signal(syscall.SIGTERM)
		}
		code, err := s.Wait(stopTimeout)
		if err != nil {
			s.kill()
			s.t.Errorf("stop: %v", err)
			return
		}
		if code != 0 {
			s.t.Errorf("gatehouse exited %d after SIGTERM, want 0", code)
		}
	})
}

// Kill ends the server with SIGKILL, as a crash or an OOM kill would, and
// waits for it to exit; the test's end then expects nothing more of it.
func (s *Server) Kill() {
	s.t.Helper()
	s.once.Do(s.kill)
	select {
	case <-s.exited:
	default:
		s.t.Fatalf("gatehouse still running %s after SIGKILL", stopTimeout)
	}
}

// kill ends a server that failed to start or to stop.
func (s *Server) kill() {
	_ = s.cmd.Process.Kill()
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
	}
}

// Response is an HTTP answer, read whole.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body as a JSON object, failing the test otherwise.
func (r *Response) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("response %d is not a JSON object: %v\n%s", r.Status, err, r.Body)
	}
	return m
}

// Client speaks HTTP to a server as one API key.
type Client struct {
	URL     string
	Key     string // "" sends no Authorization header
	Headers http.Header
	hc      *http.Client
}

// Client returns a client for the server authenticating with key.
func (s *Server) Client(key string) *Client {
	// Every exchange is checked against docs/openapi.yaml (openapi.go).
	return &Client{URL: s.URL, Key: key, hc: SpecClient(s.t)}
}

// Do sends a request. body is sent as is when it is a string, []byte or
// io.Reader, JSON-encoded otherwise, and not at all when nil; a body gets
// Content-Type application/json unless hdr sets one. hdr are header
// name/value pairs.
func (c *Client) Do(t testing.TB, method, path string, body any, hdr ...string) *Response {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	case io.Reader:
		r = b
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("encode body: %v", err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(WithTB(context.Background(), t), method, c.URL+path, r)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Key != "" {
		req.Header.Set("Authorization", "Bearer "+c.Key)
	}
	for k, vs := range c.Headers {
		req.Header[k] = vs
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// CLIResult is the outcome of one gatehouse command.
type CLIResult struct {
	Code           int
	Stdout, Stderr string
}

// Run runs the binary with args and env (see Env), bounded by cliTimeout.
func Run(t testing.TB, bin string, env []string, args ...string) CLIResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = Env(env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := CLIResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ctx.Err() == nil:
		res.Code = ee.ExitCode()
	default:
		t.Fatalf("gatehouse %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return res
}

// scanLines splits s into its lines, without the final empty one.
func scanLines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}
