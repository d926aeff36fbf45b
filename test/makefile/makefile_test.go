// Package makefile tests the Makefile's targets where a target could pass
// while the thing it runs failed: each runs on a scratch copy of the
// repository, so breaking the copy cannot touch the real tree.
package makefile

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// root is the repository root, two levels up.
func root(t *testing.T) string {
	t.Helper()
	r, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// scratch copies what `make test-rego` reads (the Makefile, the module
// files, rego/) into a temporary directory.
func scratch(t *testing.T) string {
	t.Helper()
	src, dir := root(t), t.TempDir()
	for _, f := range []string{"Makefile", "go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.CopyFS(filepath.Join(dir, "rego"), os.DirFS(filepath.Join(src, "rego"))); err != nil {
		t.Fatal(err)
	}
	return dir
}

// makeTarget runs make target in dir and returns its exit code and output.
func makeTarget(t *testing.T, dir, target string) (int, string) {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "--no-print-directory", target)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("make %s: %v\n%s", target, ctx.Err(), out)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		t.Fatalf("make %s: %v\n%s", target, err, out)
	}
	return 0, string(out)
}

// TestRegoTargetFails: `make test-rego` exits non-zero when one Rego test
// fails, and 0 on the library as it is (so the failure is the test's).
// It once piped `opa test` into `tail`, which swallowed the status.
func TestRegoTargetFails(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pinned opa CLI through make: skipped with -short")
	}
	dir := scratch(t)
	if code, out := makeTarget(t, dir, "test-rego"); code != 0 {
		t.Fatalf("make test-rego on an unchanged copy exited %d, want 0:\n%s", code, out)
	}
	failing := "package gatehouse.scratch_test\n\ntest_fails_on_purpose if {\n\tcount([1]) == 2\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "rego", "gatehouse", "scratch_test.rego"), []byte(failing), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out := makeTarget(t, dir, "test-rego")
	if code == 0 {
		t.Fatalf("make test-rego exited 0 with a failing Rego test:\n%s", out)
	}
	if !strings.Contains(out, "test_fails_on_purpose") || !strings.Contains(out, "FAIL") {
		t.Errorf("make test-rego failed, but not naming the failing test:\n%s", out)
	}
}
