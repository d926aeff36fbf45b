package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestCgroupMemoryLimit(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	old := cgroupMemoryFiles
	t.Cleanup(func() { cgroupMemoryFiles = old })
	for _, tc := range []struct {
		name  string
		files []string
		want  int64
		ok    bool
	}{
		{"v2 limit", []string{file("v2", "1073741824\n")}, 1 << 30, true},
		{"v2 max", []string{file("v2max", "max\n"), file("v1", "536870912\n")}, 0, false},
		{"v1 limit", []string{filepath.Join(dir, "absent"), file("v1b", "536870912\n")}, 512 << 20, true},
		{"v1 unlimited", []string{file("v1u", "9223372036854771712\n")}, 0, false},
		{"none", []string{filepath.Join(dir, "absent")}, 0, false},
	} {
		cgroupMemoryFiles = tc.files
		got, ok := cgroupMemoryLimit()
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: got %d, %v; want %d, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

// TestTuneGC: serve sets its collector defaults only where the
// environment sets nothing: GOGC (any value) keeps the runtime's
// percentage, GOMEMLIMIT keeps the runtime's limit, and without either the
// defaults apply (the memory limit only under a cgroup limit).
func TestTuneGC(t *testing.T) {
	const sentinelPercent = 137
	const sentinelLimit = int64(3 << 30)
	oldPercent := debug.SetGCPercent(sentinelPercent)
	oldLimit := debug.SetMemoryLimit(-1)
	oldFiles := cgroupMemoryFiles
	t.Cleanup(func() {
		debug.SetGCPercent(oldPercent)
		debug.SetMemoryLimit(oldLimit)
		cgroupMemoryFiles = oldFiles
	})
	dir := t.TempDir()
	limited := filepath.Join(dir, "memory.max")
	if err := os.WriteFile(limited, []byte("1073741824\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		env         map[string]string
		cgroup      string
		wantPercent int
		wantLimit   int64
		wantLog     string
	}{
		{"defaults, no cgroup limit", nil, filepath.Join(dir, "absent"), defaultGOGC, sentinelLimit, "gogc=\"400 (default)\" memory_limit=none"},
		{"defaults under a cgroup limit", nil, limited, defaultGOGC, 858993459 /* 80% of 1 GiB */, "80% of the cgroup"},
		{"GOGC set", map[string]string{"GOGC": "100"}, filepath.Join(dir, "absent"), sentinelPercent, sentinelLimit, "gogc=100"},
		{"GOGC off", map[string]string{"GOGC": "off"}, filepath.Join(dir, "absent"), sentinelPercent, sentinelLimit, "gogc=off"},
		{"GOMEMLIMIT set under a cgroup limit", map[string]string{"GOMEMLIMIT": "3GiB"}, limited, defaultGOGC, sentinelLimit, "memory_limit=3GiB"},
		{"both set", map[string]string{"GOGC": "50", "GOMEMLIMIT": "1GiB"}, limited, sentinelPercent, sentinelLimit, "gogc=50 memory_limit=1GiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetGCPercent(sentinelPercent)
			debug.SetMemoryLimit(sentinelLimit)
			cgroupMemoryFiles = []string{tc.cgroup}
			var log strings.Builder
			tuneGC(func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }, slog.New(slog.NewTextHandler(&log, nil)))
			if got := debug.SetGCPercent(sentinelPercent); got != tc.wantPercent {
				t.Errorf("GC percent %d, want %d", got, tc.wantPercent)
			}
			if got := debug.SetMemoryLimit(-1); got != tc.wantLimit {
				t.Errorf("memory limit %d, want %d", got, tc.wantLimit)
			}
			if !strings.Contains(log.String(), tc.wantLog) {
				t.Errorf("log %q does not say %q", log.String(), tc.wantLog)
			}
		})
	}
}
