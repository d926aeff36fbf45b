package parity

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeShowsSidecarConfig: the README's sidecar configuration is
// examples/opa-sidecar/opa-config.yaml (the file TestOPAParity runs OPA
// with) less its comments, so the documented one cannot rot.
func TestReadmeShowsSidecarConfig(t *testing.T) {
	file, err := os.ReadFile(sidecarConfig)
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for line := range strings.Lines(string(file)) {
		if l := strings.TrimRight(line, "\n"); strings.TrimSpace(l) != "" && !strings.HasPrefix(strings.TrimSpace(l), "#") {
			want = append(want, l)
		}
	}
	block := "```yaml\n" + strings.Join(want, "\n") + "\n```"
	if !strings.Contains(string(readme), block) {
		t.Errorf("README.md does not show the sidecar configuration; want this block:\n%s", block)
	}
}
