package main

import (
	"os"
	"path/filepath"
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
