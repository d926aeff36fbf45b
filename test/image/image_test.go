// Package image tests the container image without Docker: it builds the
// binary with the Dockerfile's own go build command into an empty
// directory, and runs it as the image does — the Dockerfile's CMD and
// HEALTHCHECK, as the image's non-root user, with nothing beside the
// binary but the data volume's directory. What it cannot check without a
// container runtime (the base image, the volume's ownership inside it) the
// Dockerfile's shape test pins down instead.
package image

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	buildTimeout = 10 * time.Minute
	startTimeout = 60 * time.Second
	stopTimeout  = 30 * time.Second
	version      = "v0.0.0-image"
)

// repoRoot is the module's root: the directory above with go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// syncBuffer collects a process's output while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestImage builds and runs the image's binary the way the image would.
func TestImage(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the image is linux; running it as another user needs linux credentials")
	}
	root := repoRoot(t)
	d := readDockerfile(t, root)
	uid, gid := imageUser(t, d.user)
	asRoot := os.Geteuid() == 0
	if !asRoot && os.Geteuid() != uid {
		t.Logf("not root: running as uid %d instead of the image's %d (still not root)", os.Geteuid(), uid)
	}

	// The image's root directory: empty but for the binary and the volume.
	imageRoot := t.TempDir()
	entry := d.entrypoint[0]
	bin := filepath.Join(imageRoot, filepath.Base(entry))
	build := dockerBuild(t, d, version, runtime.GOOS, runtime.GOARCH)
	args, outPath := withoutOutput(build.args)
	if outPath == "" {
		t.Fatal("the Dockerfile's go build has no -o")
	}
	// The same arguments, -o pointing here instead.
	for i, a := range build.args {
		if a == "-o" {
			args = append(append(append([]string{}, build.args[:i+1]...), bin), build.args[i+2:]...)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), buildTimeout)
	defer cancel()
	gocmd := exec.CommandContext(ctx, "go", append([]string{"build"}, args...)...)
	gocmd.Dir = root
	gocmd.Env = os.Environ()
	for k, v := range build.env {
		gocmd.Env = append(gocmd.Env, k+"="+v)
	}
	if out, err := gocmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", gocmd, err, out)
	}
	if entries, _ := os.ReadDir(imageRoot); len(entries) != 1 {
		t.Fatalf("the image directory holds %d entries, want the binary alone", len(entries))
	}
	checkStatic(t, bin)

	if len(d.volumes) != 1 {
		t.Fatalf("VOLUME %q: want one", d.volumes)
	}
	volume := d.volumes[0]
	data := filepath.Join(imageRoot, volume)
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	// What the image sets up: the binary readable and executable by
	// everyone, the volume owned by the user.
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if asRoot {
		if err := os.Chown(data, uid, gid); err != nil {
			t.Fatal(err)
		}
		// t.TempDir's directories are 0700 root: let the user through.
		for _, dir := range []string{imageRoot, filepath.Dir(imageRoot)} {
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	command := func(ctx context.Context, args ...string) *exec.Cmd {
		c := exec.CommandContext(ctx, bin, args...)
		c.Dir = imageRoot
		c.Env = []string{} // the image sets no variables
		if asRoot {
			c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		}
		return c
	}

	out, err := command(t.Context(), "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "gatehouse "+version+"\n") {
		t.Fatalf("version: %v\n%s", err, out)
	}

	// CMD, adapted: a free loopback port, the volume where it is here.
	serveArgs := adapt(t, d.cmd, map[string]string{"--addr": "127.0.0.1:0"}, volume, data)
	srvCtx, stopSrv := context.WithCancel(context.WithoutCancel(t.Context()))
	defer stopSrv()
	srv := command(srvCtx, serveArgs...)
	var logs syncBuffer
	srv.Stdout, srv.Stderr = &logs, &logs
	srv.Cancel = func() error { return srv.Process.Kill() } // only if the test gives up
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	defer func() {
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	}()

	addr := waitListening(t, &logs, exited)
	waitHealthy(t, addr, exited)
	if asRoot {
		if got := processUID(t, srv.Process.Pid); got != uid {
			t.Errorf("server runs as uid %d, want %d", got, uid)
		}
	}
	if fi, err := os.Stat(filepath.Join(data, "gatehouse.db")); err != nil {
		t.Errorf("no database in the volume: %v", err)
	} else if st, ok := fi.Sys().(*syscall.Stat_t); ok && asRoot && int(st.Uid) != uid {
		t.Errorf("database owned by uid %d, want %d", st.Uid, uid)
	}

	// HEALTHCHECK, adapted: this binary, the real port.
	if d.health[0] != entry {
		t.Fatalf("HEALTHCHECK runs %q, not the ENTRYPOINT %q", d.health[0], entry)
	}
	_, port, _ := strings.Cut(addr, ":")
	health := adapt(t, d.health[1:], map[string]string{"--addr": "127.0.0.1:" + port}, volume, data)
	if out, err := command(t.Context(), health...).CombinedOutput(); err != nil {
		t.Errorf("HEALTHCHECK %q: %v\n%s", health, err, out)
	}

	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(stopTimeout):
		t.Fatalf("no exit %s after SIGTERM", stopTimeout)
	}
	// With the server gone the health check fails, as it must.
	if err := command(t.Context(), health...).Run(); err == nil {
		t.Error("HEALTHCHECK succeeded with no server")
	}
}

// imageUser reads USER uid:gid; the image's user must not be root.
func imageUser(t *testing.T, user string) (uid, gid int) {
	t.Helper()
	u, g, ok := strings.Cut(user, ":")
	uid, err1 := strconv.Atoi(u)
	gid, err2 := strconv.Atoi(g)
	if !ok || errors.Join(err1, err2) != nil || uid == 0 || gid == 0 {
		t.Fatalf("USER %q: want a numeric, non-root uid:gid", user)
	}
	return uid, gid
}

// adapt returns args with the values of the flags in set replaced, and the
// volume's path replaced by where the volume is here.
func adapt(t *testing.T, args []string, set map[string]string, volume, here string) []string {
	t.Helper()
	out := make([]string, len(args))
	copy(out, args)
	for flag, v := range set {
		i := strings.Index(strings.Join(out, "\x00")+"\x00", flag+"\x00")
		n := 0
		for j, a := range out {
			if a == flag && j+1 < len(out) {
				out[j+1] = v
				n++
			}
		}
		if i < 0 || n != 1 {
			t.Fatalf("%q: want %s once", args, flag)
		}
	}
	for i, a := range out {
		if j := strings.Index(a, volume+"/"); j >= 0 {
			out[i] = a[:j] + here + a[j+len(volume):]
		}
	}
	return out
}

// checkStatic fails unless bin is a static executable: distroless/static
// has no dynamic loader or libc.
func checkStatic(t *testing.T, bin string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary asks for a dynamic loader (PT_INTERP): it would not start on distroless/static")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %q", libs)
	}
}

// waitListening returns the address of the server's "listening" log line.
func waitListening(t *testing.T, logs *syncBuffer, exited <-chan error) string {
	t.Helper()
	deadline := time.After(startTimeout)
	for {
		for line := range strings.SplitSeq(logs.String(), "\n") {
			var m struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &m) == nil && m.Msg == "listening" && m.Addr != "" {
				return m.Addr
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("server exited before listening: %v", err)
		case <-deadline:
			t.Fatalf("no listening line within %s", startTimeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitHealthy polls GET /health until it answers 200.
func waitHealthy(t *testing.T, addr string, exited <-chan error) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.After(startTimeout)
	for {
		resp, err := client.Get("http://" + addr + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("server exited: %v", err)
		case <-deadline:
			t.Fatalf("/health not 200 within %s", startTimeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// processUID is the effective uid of a running process.
func processUID(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 2 {
				n, _ := strconv.Atoi(f[1])
				return n
			}
		}
	}
	t.Fatalf("no Uid in /proc/%d/status", pid)
	return -1
}
