package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// logged returns the value of key in the first log line whose msg is msg.
func logged(log, msg, key string) (any, bool) {
	for line := range strings.SplitSeq(log, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			v, ok := m[key]
			return v, ok || key == ""
		}
	}
	return nil, false
}

// TestServeLifecycle runs serve in-process: it bootstraps, listens on a
// free port, answers, and on a signal shuts down in order.
func TestServeLifecycle(t *testing.T) {
	key := "nram_0123456789abcdef0123456789abcdef"
	cfg := Config{
		Addr: "127.0.0.1:0", Store: "sqlite://" + filepath.Join(t.TempDir(), "g.db"),
		BootstrapKey: key, ShutdownTimeout: Duration(5 * time.Second),
	}.Defaults()
	var stdout, stderr syncBuffer
	logger, err := newLogger(&stderr, "debug")
	if err != nil {
		t.Fatal(err)
	}
	sigs := make(chan os.Signal, 2)
	done := make(chan error, 1)
	go func() {
		done <- serve(context.Background(), cfg, stdio{stdout: &stdout, stderr: &stderr, lookupEnv: env(nil)}, logger, sigs)
	}()

	var addr string
	deadline := time.Now().Add(30 * time.Second)
	for addr == "" {
		if v, ok := logged(stderr.String(), "listening", "addr"); ok {
			addr, _ = v.(string)
		}
		select {
		case err := <-done:
			t.Fatalf("serve returned early: %v\n%s", err, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no listening line:\n%s", stderr.String())
		}
	}
	if host, port, _ := net.SplitHostPort(addr); host != "127.0.0.1" || port == "0" {
		t.Fatalf("listening on %q: want the real bound address", addr)
	}

	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/control/policies", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("bootstrap key: %s", resp.Status)
	}
	if err := healthcheck(t.Context(), addr, time.Second); err != nil {
		t.Errorf("healthcheck: %v", err)
	}

	sigs <- syscall.SIGTERM
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not return after the signal")
	}
	if stdout.String() != "" {
		t.Errorf("stdout %q: a configured bootstrap key must not be printed", stdout.String())
	}
	if strings.Contains(stderr.String(), key) {
		t.Errorf("the bootstrap key was logged")
	}
	log := stderr.String()
	last := -1
	for _, msg := range []string{"starting", "store open", "listening", "shutting down", "http server stopped", "background work stopped", "store closed", "telemetry flushed"} {
		i := strings.Index(log, `"msg":"`+msg+`"`)
		if i < 0 || i < last {
			t.Errorf("log %q missing or out of order:\n%s", msg, log)
		}
		last = i
	}
	if v, _ := logged(log, "shutting down", "signal"); v != "terminated" {
		t.Errorf("shutting down signal = %v", v)
	}
}

// TestShutdownWaitsForInFlight: shutdown lets a running request finish,
// but gives up at the timeout or on a second signal.
func TestShutdownWaitsForInFlight(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	start := func(t *testing.T, release <-chan struct{}) (*http.Server, string, chan struct{}) {
		t.Helper()
		entered := make(chan struct{})
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			<-release
			_, _ = io.WriteString(w, "done")
		})}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = srv.Serve(ln) }()
		return srv, "http://" + ln.Addr().String(), entered
	}
	get := func(url string, out chan<- error) {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "done" {
				err = errors.New("body " + string(b))
			}
		}
		out <- err
	}

	t.Run("completes", func(t *testing.T) {
		release := make(chan struct{})
		srv, url, entered := start(t, release)
		res := make(chan error, 1)
		go get(url, res)
		<-entered
		shutting := make(chan struct{})
		srv.RegisterOnShutdown(func() { close(shutting) })
		shut := make(chan error, 1)
		go func() { shut <- shutdown(srv, time.Minute, make(chan os.Signal), logger) }()
		<-shutting // Shutdown has begun, with the request still in flight
		close(release)
		if err := <-res; err != nil {
			t.Errorf("in-flight request: %v", err)
		}
		if err := <-shut; err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	t.Run("times out", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		srv, url, entered := start(t, release)
		go get(url, make(chan error, 1))
		<-entered
		if err := shutdown(srv, 100*time.Millisecond, make(chan os.Signal), logger); err == nil {
			t.Error("shutdown with a stuck request returned nil")
		}
	})
	t.Run("second signal", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		srv, url, entered := start(t, release)
		go get(url, make(chan error, 1))
		<-entered
		sigs := make(chan os.Signal, 1)
		sigs <- syscall.SIGINT
		began := time.Now()
		if err := shutdown(srv, time.Minute, sigs, logger); err == nil || time.Since(began) > 10*time.Second {
			t.Errorf("second signal: %v after %s", err, time.Since(began))
		}
	})
}

func TestOpenStore(t *testing.T) {
	if _, err := openStore(t.Context(), "postgres://u:pw@127.0.0.1:1/db", nil); err == nil || !strings.Contains(err.Error(), "open store") {
		t.Errorf("postgres: %v", err)
	}
	if got := redactDSN("postgres://u:pw@127.0.0.1:1/db"); strings.Contains(got, "pw") {
		t.Errorf("redactDSN kept the password: %s", got)
	}
	if got := redactDSN("sqlite://./g.db"); got != "sqlite://./g.db" {
		t.Errorf("redactDSN(sqlite) = %s", got)
	}
}
