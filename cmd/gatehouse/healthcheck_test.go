package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestDialAddr(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8181": "127.0.0.1:8181",
		"0.0.0.0:8181":   "127.0.0.1:8181",
		":8181":          "127.0.0.1:8181",
		"[::]:8181":      "[::1]:8181",
		"gh.local:80":    "gh.local:80",
	} {
		if got, err := dialAddr(in); err != nil || got != want {
			t.Errorf("dialAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"127.0.0.1:0", "nowhere", "127.0.0.1:99999"} {
		if _, err := dialAddr(bad); err == nil {
			t.Errorf("dialAddr(%q) accepted", bad)
		}
	}
}

func TestHealthcheck(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	s := stdio{stdout: &strings.Builder{}, stderr: &strings.Builder{}, lookupEnv: env(nil)}
	if code := cmdHealthcheck(t.Context(), []string{"--addr", addr}, s); code != exitOK {
		t.Errorf("healthy server: exit %d (%s)", code, s.stderr)
	}
	status = http.StatusServiceUnavailable
	if code := cmdHealthcheck(t.Context(), []string{"--addr", addr}, s); code != exitFail {
		t.Errorf("unhealthy server: exit %d", code)
	}
	// GATEHOUSE_ADDR is read when --addr is not given.
	status = http.StatusOK
	s.lookupEnv = env(map[string]string{"GATEHOUSE_ADDR": addr})
	if code := cmdHealthcheck(t.Context(), nil, s); code != exitOK {
		t.Errorf("via GATEHOUSE_ADDR: exit %d (%s)", code, s.stderr)
	}
	srv.Close()
	if err := healthcheck(t.Context(), addr, time.Second); err == nil {
		t.Error("closed server reported healthy")
	}
	if code := cmdHealthcheck(t.Context(), []string{"--addr", addr, "extra"}, s); code != exitUsage {
		t.Errorf("stray argument: exit %d", code)
	}
}
