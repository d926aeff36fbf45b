package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServerLogKeepsStderr: with -server-log, a server's stderr lines are
// copied to DIR/<target>.<replica>.log; without it, nothing is written.
func TestServerLogKeepsStderr(t *testing.T) {
	if serverLogPath(options{}, "gatehouse", 0) != "" {
		t.Fatal("no -server-log: want no log path")
	}
	dir := filepath.Join(t.TempDir(), "logs")
	path := serverLogPath(options{serverLog: dir}, "baseline", 1)
	if want := filepath.Join(dir, "baseline.1.log"); path != want {
		t.Fatalf("log path %q, want %q", path, want)
	}
	srv, _, err := start("", "/bin/sh", []string{"-c", "echo one >&2; echo 'gc 1 @0.1s' >&2"}, nil, nil, path)
	if err != nil {
		t.Fatal(err)
	}
	// Wait first, as stop does: the lines must survive the process's exit
	// (with cmd.StderrPipe, Wait closed the pipe before they were read).
	_ = srv.cmd.Wait()
	select {
	case <-srv.logged:
	case <-time.After(30 * time.Second):
		t.Fatal("stderr not read to its end within 30s of the process's exit")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "one\ngc 1 @0.1s\n" {
		t.Fatalf("log %q, want both stderr lines", strings.TrimSpace(string(b)))
	}
}
