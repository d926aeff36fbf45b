package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func TestTenantCreate(t *testing.T) {
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "g.db")
	code, out, errOut := runCmd(t, nil, "tenant", "create", "--name", "Acme", "--tier", "starter", "--store", dsn)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Fatalf("stdout %q: want one line", out)
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatal(err)
	}
	if len(m) != 4 || m["tenant_id"] == "" || m["name"] != "Acme" || m["tier"] != "starter" || !strings.HasPrefix(m["api_key"], "nram_") {
		t.Errorf("printed %v", m)
	}
	// The store is found through GATEHOUSE_STORE and a config file too.
	code, out, errOut = runCmd(t, map[string]string{"GATEHOUSE_STORE": dsn}, "tenant", "create", "--name", "B", "--tier", "free")
	if code != 0 || !strings.Contains(out, `"tier":"free"`) {
		t.Errorf("via env: %d %q %s", code, out, errOut)
	}
	cfg := writeFile(t, "g.yaml", "store: "+dsn+"\n")
	code, out, errOut = runCmd(t, nil, "tenant", "create", "--name", "C", "--tier", "pro", "--config", cfg)
	if code != 0 || !strings.Contains(out, `"tier":"pro"`) {
		t.Errorf("via config file: %d %q %s", code, out, errOut)
	}
}

func TestTenantCreateRefuses(t *testing.T) {
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "g.db")
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--tier", "pro"}, exitUsage, "--name is required"},
		{[]string{"--name", " ", "--tier", "pro"}, exitUsage, "--name is required"},
		{[]string{"--name", "x"}, exitUsage, "--tier is required"},
		{[]string{"--name", "x", "--tier", "gold"}, exitUsage, `--tier "gold"`},
		{[]string{"--name", "x", "--tier", "pro", "--mode", "quiet"}, exitUsage, `--mode "quiet"`},
		{[]string{"--name", "x", "--tier", "pro", "--store", "postgres://u@127.0.0.1:1/d"}, exitFail, "open store"},
		{[]string{"--name", "x", "--tier", "pro", "--store", "redis://x"}, exitUsage, "redis"},
	} {
		args := append([]string{"tenant", "create"}, tc.args...)
		if !strings.Contains(strings.Join(tc.args, " "), "--store") {
			args = append(args, "--store", dsn)
		}
		code, out, errOut := runCmd(t, nil, args...)
		if code != tc.code || out != "" || !strings.Contains(errOut, tc.msg) {
			t.Errorf("%v: exit %d (want %d), stdout %q, stderr %q (want %q)", tc.args, code, tc.code, out, errOut, tc.msg)
		}
	}
}
