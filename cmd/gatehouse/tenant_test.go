package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTenantCreate(t *testing.T) {
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "g.db")
	code, out, errOut := runCmd(t, nil, "tenant", "create", "--name", "Acme", "--tier", "starter", "--store", dsn, "--create-store")
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
	if code, _, errOut := runCmd(t, nil, "tenant", "create", "--id", "first", "--tier", "pro", "--store", dsn, "--create-store"); code != 0 {
		t.Fatalf("create the store: %d %s", code, errOut)
	}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--tier", "pro"}, exitUsage, "--id (or --name) is required"},
		{[]string{"--name", " ", "--tier", "pro"}, exitUsage, "--id (or --name) is required"},
		{[]string{"--id", "has space", "--tier", "pro"}, exitFail, "id: must be 1-64 letters"},
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

// TestTenantCreateID: --id is the tenant's ID (and, without --name, its
// name); an ID that exists is refused and leaves the first tenant alone.
func TestTenantCreateID(t *testing.T) {
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "g.db")
	code, out, errOut := runCmd(t, nil, "tenant", "create", "--id", "acme", "--tier", "pro", "--store", dsn, "--create-store")
	var m map[string]string
	if code != 0 || json.Unmarshal([]byte(out), &m) != nil || m["tenant_id"] != "acme" || m["name"] != "acme" {
		t.Fatalf("exit %d, printed %q %s: want tenant_id and name acme", code, out, errOut)
	}
	code, out, errOut = runCmd(t, nil, "tenant", "create", "--id", "acme", "--name", "Acme Two", "--tier", "free", "--store", dsn)
	if code != exitFail || out != "" || !strings.Contains(errOut, `tenant "acme": tenant already exists`) {
		t.Errorf("duplicate id: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, _ = runCmd(t, nil, "tenant", "create", "--id", "beta", "--name", "Beta Corp", "--tier", "free", "--store", dsn)
	if code != 0 || !strings.Contains(out, `"tenant_id":"beta","name":"Beta Corp"`) {
		t.Errorf("--id with --name: exit %d %q", code, out)
	}
}

// TestCommandsRefuseMissingStore: a command given a SQLite store that does
// not exist (run from the wrong folder, a typo) says so, naming the file,
// and creates nothing.
func TestCommandsRefuseMissingStore(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, args := range [][]string{
		{"tenant", "create", "--id", "acme", "--tier", "pro"},
		{"audit", "verify", "--tenant", "acme"},
	} {
		code, out, errOut := runCmd(t, nil, args...)
		want := "no store at " + filepath.Join(dir, "gatehouse.db") + " (--store sqlite://./gatehouse.db)"
		if code != exitUsage || out != "" || !strings.Contains(errOut, want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and %q", args, code, out, errOut, want)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("%v left %d files in the folder", args, len(entries))
		}
	}
}
