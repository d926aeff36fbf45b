package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp/decisionlog"
)

func TestDecisionLogDefaults(t *testing.T) {
	c, err := loadServe(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := DecisionLogConfig{Sink: "none", MaxSizeMB: 100, MaxFiles: 5, BatchSize: 100,
		FlushInterval: Duration(time.Second), BufferSize: 10000}
	if !equalDecisionLog(c.DecisionLog, want) {
		t.Errorf("decision_log defaults %+v, want %+v", c.DecisionLog, want)
	}
	if c.DecisionLog.config().Enabled() {
		t.Errorf("decision log enabled by default")
	}
}

func equalDecisionLog(a, b DecisionLogConfig) bool { return reflect.DeepEqual(a, b) }

// TestDecisionLogSettings: the decision-log settings come from the file,
// the environment and flags like every other setting; the mask is a list
// (repeated flag, commas, or a YAML list).
func TestDecisionLogSettings(t *testing.T) {
	file := writeFile(t, "g.yaml", `
decision_log:
  sink: file
  path: /var/log/gatehouse/decisions.log
  max_size_mb: 10
  max_files: 3
  batch_size: 50
  flush_interval: 250ms
  buffer_size: 500
  mask: [/input/params/password, /result/violations/*/match]
`)
	c, err := loadServe(t, []string{"--config", file}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := DecisionLogConfig{Sink: "file", Path: "/var/log/gatehouse/decisions.log", MaxSizeMB: 10, MaxFiles: 3,
		BatchSize: 50, FlushInterval: Duration(250 * time.Millisecond), BufferSize: 500,
		Mask: []string{"/input/params/password", "/result/violations/*/match"}}
	if !equalDecisionLog(c.DecisionLog, want) {
		t.Errorf("from the file: %+v\nwant %+v", c.DecisionLog, want)
	}

	c, err = loadServe(t,
		[]string{"--config", file, "--decision-log", "http", "--decision-log-mask", "/input/params/card/number", "--decision-log-mask", "/input/params/cvv"},
		map[string]string{"GATEHOUSE_DECISION_LOG_URL": "https://logs.example:8443/logs", "GATEHOUSE_DECISION_LOG_BATCH_SIZE": "7", "GATEHOUSE_DECISION_LOG_PATH": ""})
	if err != nil {
		t.Fatal(err)
	}
	if c.DecisionLog.Sink != "http" || c.DecisionLog.URL != "https://logs.example:8443/logs" || c.DecisionLog.BatchSize != 7 ||
		!slices.Equal(c.DecisionLog.Mask, []string{"/input/params/card/number", "/input/params/cvv"}) {
		t.Errorf("flags over env over file: %+v", c.DecisionLog)
	}
	c, err = loadServe(t, []string{"--decision-log", "console", "--decision-log-mask", "/input/a,/input/b"}, nil)
	if err != nil || !slices.Equal(c.DecisionLog.Mask, []string{"/input/a", "/input/b"}) {
		t.Errorf("comma-separated mask: %v %v", c.DecisionLog.Mask, err)
	}
	if cfg := c.DecisionLog.config().Defaults(); cfg.Path != decisionlog.Stdout {
		t.Errorf("console path %q, want stdout by default", cfg.Path)
	}
}

// TestDecisionLogInvalid: every invalid decision-log setting is reported
// at once, named as the config file names it.
func TestDecisionLogInvalid(t *testing.T) {
	_, err := loadServe(t, []string{"--decision-log", "file", "--decision-log-url", "http://x", "--decision-log-batch-size", "0",
		"--decision-log-buffer-size", "-1", "--decision-log-flush-interval", "1ns", "--decision-log-mask", "password",
		"--decision-log-max-files", "100000"}, nil)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"decision_log.path: required", "decision_log.url: applies to sink http only",
		"decision_log.buffer_size", "decision_log.flush_interval", "decision_log.mask[0]", "decision_log.max_files"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := loadServe(t, []string{"--decision-log", "kafka"}, nil); err == nil || !strings.Contains(err.Error(), "decision_log.sink") {
		t.Errorf("unknown sink: %v", err)
	}
	if _, err := loadServe(t, []string{"--decision-log", "http"}, nil); err == nil || !strings.Contains(err.Error(), "decision_log.url: required") {
		t.Errorf("http without url: %v", err)
	}
}

// TestServeDecisionLog runs serve in-process with the file sink: a decision
// is in the file once serve has returned, flushed after the HTTP server
// stopped and before the store closed.
func TestServeDecisionLog(t *testing.T) {
	key := "nram_0123456789abcdef0123456789abcdef"
	path := filepath.Join(t.TempDir(), "logs", "decisions.log")
	cfg := Config{
		Addr: "127.0.0.1:0", Store: "sqlite://" + filepath.Join(t.TempDir(), "g.db"),
		BootstrapKey: key, ShutdownTimeout: Duration(5 * time.Second),
		DecisionLog: DecisionLogConfig{Sink: "file", Path: path, Mask: []string{"/input/params/password"}},
	}.Defaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
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
	for deadline := time.Now().Add(30 * time.Second); addr == ""; {
		if v, ok := logged(stderr.String(), "listening", "addr"); ok {
			addr, _ = v.(string)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no listening line:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/actions",
		strings.NewReader(`{"action":"login","params":{"user":"ann","password":"hunter2hunter2"}}`))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var action struct {
		ActionID string `json:"action_id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&action)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	sigs <- syscall.SIGTERM
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not return after the signal")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ev decisionlog.Event
	if err := json.Unmarshal(b, &ev); err != nil || ev.DecisionID != action.ActionID || action.ActionID == "" {
		t.Fatalf("decision log %s (%v), want the event of %s", b, err, action.ActionID)
	}
	if strings.Contains(string(b), "hunter2hunter2") || !slices.Equal(ev.Erased, []string{"/input/params/password"}) {
		t.Errorf("mask not applied: %s", b)
	}
	log := stderr.String()
	last := -1
	for _, msg := range []string{"decision log enabled", "listening", "http server stopped", "decision log flushed", "store closed"} {
		i := strings.Index(log, `"msg":"`+msg+`"`)
		if i < 0 || i < last {
			t.Errorf("log %q missing or out of order:\n%s", msg, log)
		}
		last = i
	}
	if v, _ := logged(log, "decision log flushed", "shipped"); v != 1.0 {
		t.Errorf("decision log flushed: shipped %v, want 1", v)
	}
}
