package parity

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeShowsSidecarConfig: the README's sidecar configuration is
// examples/opa-sidecar/opa-config.yaml less its comments, and that file is
// the signed one TestOPAParity runs OPA with less its signature check, so
// neither the documented one nor the local variant can rot.
func TestReadmeShowsSidecarConfig(t *testing.T) {
	signed, err := os.ReadFile(sidecarConfig)
	if err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(filepath.Dir(sidecarConfig), "opa-config.yaml")
	file, err := os.ReadFile(local)
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
	// The signed file is the local one plus signing and keys.
	var signedLines []string
	for line := range strings.Lines(string(signed)) {
		if l := strings.TrimRight(line, "\n"); strings.TrimSpace(l) != "" && !strings.HasPrefix(strings.TrimSpace(l), "#") {
			signedLines = append(signedLines, l)
		}
	}
	s := strings.Join(signedLines, "\n")
	if !strings.HasPrefix(s, strings.Join(want, "\n")+"\n    signing:\n      keyid: gatehouse\nkeys:\n  gatehouse:\n    algorithm: RS256") {
		t.Errorf("%s is not %s plus the signature check:\n%s", sidecarConfig, local, s)
	}
}
