package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The tests that run the binary (test/e2e, test/parity, test/replicas,
// examples/...) share one build of it rather than linking their own:
// linking gatehouse costs tens of seconds of CPU on a loaded machine,
// once per package per run. The first one to need it builds it into a
// directory named by the hash of everything the build reads, under a file
// lock; every other package, in the same `go test ./...` or a later one,
// waits for that build and reuses it until a source file changes.
//
// GATEHOUSE_BIN and GATEHOUSE_OPA_BIN name binaries to use instead (e.g.
// one `make build` made); nothing is built then.
const (
	envBin    = "GATEHOUSE_BIN"
	envOPABin = "GATEHOUSE_OPA_BIN"
	// cacheDirName is the cache's directory under os.TempDir.
	cacheDirName = "gatehouse-test-bin"
	// cacheKeep is how long an unused build is kept: a day covers a
	// developer's branches; anything older is removed when a new build is
	// made, so the directory does not grow without bound.
	cacheKeep = 24 * time.Hour
)

// Binary returns the gatehouse binary to test for the module rooted at
// root: $GATEHOUSE_BIN when set (Version then becomes what it reports),
// else the shared build of ./cmd/gatehouse, made with Build's flags when
// the sources changed since the last one.
func Binary(root string) (string, error) {
	if bin := os.Getenv(envBin); bin != "" {
		return givenBinary(bin)
	}
	key, err := sourceKey(root)
	if err != nil {
		return "", err
	}
	return cached(key, "gatehouse", func(dir string) (string, error) { return Build(root, dir) })
}

// OPABinary returns the opa CLI pinned in root's go.mod: $GATEHOUSE_OPA_BIN
// when set, else the executable `go tool opa` runs, which the go command
// caches (`make tools` built it already; `go tool -n` builds it if not).
func OPABinary(root string) (string, error) {
	if bin := os.Getenv(envOPABin); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("%s: %w", envOPABin, err)
		}
		return filepath.Abs(bin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "tool", "-n", "opa")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go tool -n opa: %w\n%s", err, stderr.String())
	}
	bin := strings.TrimSpace(string(out))
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("go tool -n opa: %w", err)
	}
	return bin, nil
}

// givenBinary checks $GATEHOUSE_BIN and learns its version, which the
// tests compare with what the server reports.
func givenBinary(bin string) (string, error) {
	abs, err := filepath.Abs(bin)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, abs, "version").Output()
	if err != nil {
		return "", fmt.Errorf("%s=%s: gatehouse version: %w", envBin, bin, err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	v, ok := strings.CutPrefix(first, "gatehouse ")
	if !ok || v == "" {
		return "", fmt.Errorf("%s=%s: gatehouse version printed %q", envBin, bin, first)
	}
	Version = v
	return abs, nil
}

// sourceKey hashes what a build of ./cmd/gatehouse reads from the module:
// every Go and embedded file of the module's packages it depends on,
// go.mod and go.sum (which pin everything else), the Go version and the
// build's flags.
func sourceKey(root string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "list", "-deps", "-f",
		`{{if .Module}}{{if .Module.Main}}{{.Dir}}|{{join .GoFiles ","}}|{{join .EmbedFiles ","}}{{end}}{{end}}`,
		"./cmd/gatehouse")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list ./cmd/gatehouse: %w\n%s", err, stderr.String())
	}
	h := sha256.New()
	fmt.Fprintf(h, "gatehouse\x00%s\x00%s\x00", goVersion(root), Version)
	for _, f := range []string{"go.mod", "go.sum"} {
		if err := hashFile(h, filepath.Join(root, f)); err != nil {
			return "", err
		}
	}
	for line := range strings.Lines(string(out)) {
		parts := strings.Split(strings.TrimSpace(line), "|")
		if len(parts) != 3 {
			continue
		}
		for _, list := range parts[1:] {
			for f := range strings.SplitSeq(list, ",") {
				if f == "" {
					continue
				}
				p := filepath.Join(parts[0], f)
				rel, _ := filepath.Rel(root, p)
				fmt.Fprintf(h, "%s\x00", rel)
				if err := hashFile(h, p); err != nil {
					return "", err
				}
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:20], nil
}

func hashFile(h io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(h, f)
	fmt.Fprint(h, "\x00")
	return err
}

// goVersion is the go command's version, target and the settings that
// change what it builds, part of the key.
func goVersion(root string) string {
	cmd := exec.Command("go", "env", "GOVERSION", "GOOS", "GOARCH", "CGO_ENABLED", "GOFLAGS")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(out)), "/")
}

// cached returns <cache>/<key>/<name>, running build into a fresh
// directory first when it is not there. An exclusive flock on
// <cache>/<key>.lock makes concurrent callers — test packages run in
// parallel, other checkouts on the machine — wait for one build instead
// of each making its own; the directory appears by rename, whole or not
// at all, so an interrupted build leaves nothing half-written behind.
func cached(key, name string, build func(dir string) (string, error)) (string, error) {
	base := filepath.Join(os.TempDir(), cacheDirName)
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(base, key+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock the build cache: %w", err)
	}
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }()

	dir := filepath.Join(base, key)
	bin := filepath.Join(dir, name)
	if _, err := os.Stat(bin); err == nil {
		now := time.Now()
		_ = os.Chtimes(dir, now, now) // in use: keep it
		return bin, nil
	}
	tmp, err := os.MkdirTemp(base, key+".tmp-")
	if err != nil {
		return "", err
	}
	built, err := build(tmp)
	if err == nil && filepath.Base(built) != name {
		err = fmt.Errorf("built %s, want %s", built, name)
	}
	if err == nil {
		_ = os.RemoveAll(dir)
		if err = os.Chmod(tmp, 0o755); err == nil {
			err = os.Rename(tmp, dir)
		}
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
		return "", err
	}
	prune(base, key)
	return bin, nil
}

// prune removes builds (and their locks) unused for cacheKeep, but never
// key's. A build in use has a fresh modification time (cached touches
// it), so only abandoned ones go.
func prune(base, key string) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), key) {
			continue
		}
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < cacheKeep {
			continue
		}
		if err := os.RemoveAll(filepath.Join(base, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			continue
		}
	}
}

// Tools returns the gatehouse binary and the opa CLI of the repository at
// root, relative paths resolved from the test's directory (Binary and
// OPABinary), failing t when either cannot be had: the pair the README
// tests put on a PATH.
func Tools(t testing.TB, root string) (gatehouse, opa string) {
	t.Helper()
	root, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	if gatehouse, err = Binary(root); err != nil {
		t.Fatal(err)
	}
	if opa, err = OPABinary(root); err != nil {
		t.Fatal(err)
	}
	return gatehouse, opa
}
