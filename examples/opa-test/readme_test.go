// Package opatest checks that examples/opa-test/README.md works as
// written: it runs every `gatehouse` and `opa` command of the README's sh
// blocks, in order, in a copy of this directory, with the gatehouse binary
// and the pinned opa CLI built from this repository.
package opatest

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/test/e2e"
)

func TestReadmeCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gatehouse and opa: skipped with -short")
	}
	cmds := readmeCommands(t, "README.md")
	if len(cmds) < 2 || !strings.HasPrefix(cmds[0], "gatehouse bundle build ") || !strings.HasPrefix(cmds[len(cmds)-1], "opa test ") {
		t.Fatalf("README shows %q; want `gatehouse bundle build ...` then `opa test ...`", cmds)
	}
	// The builds every test package shares: usually made already.
	gatehouse, opa := e2e.Tools(t, filepath.Join("..", ".."))
	work := t.TempDir()
	if err := os.CopyFS(work, os.DirFS(".")); err != nil {
		t.Fatal(err)
	}
	for _, line := range cmds {
		args := strings.Fields(line)
		switch args[0] {
		case "gatehouse":
			args[0] = gatehouse
		case "opa":
			args[0] = opa
		}
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Dir = work
		cmd.Env = e2e.Env()
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("%s: %v\n%s", line, err, out)
		}
		t.Logf("$ %s\n%s", line, out)
		if strings.HasPrefix(line, "opa test ") && !strings.Contains(string(out), "PASS: 4/4") {
			t.Errorf("%s: want PASS: 4/4 (every test of tests/ ran and passed)", line)
		}
	}
}

// readmeCommands returns the gatehouse and opa command lines of the sh
// code blocks of a Markdown file.
func readmeCommands(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cmds []string
	inSh := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "```"):
			inSh = !inSh && line == "```sh"
		case inSh && (strings.HasPrefix(line, "gatehouse ") || strings.HasPrefix(line, "opa ")):
			cmds = append(cmds, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cmds
}
