package docs

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestAPICitationsResolve: every "docs/api.md §X" the repository cites
// names a section api.md has (an anchor id="x"), so a renumbered section
// cannot leave the code pointing nowhere.
func TestAPICitationsResolve(t *testing.T) {
	doc, err := os.ReadFile("api.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, m := range regexp.MustCompile(`<a id="([a-z0-9]+)"></a>`).FindAllStringSubmatch(string(doc), -1) {
		anchors[m[1]] = true
	}
	cite := regexp.MustCompile(`docs/api\.md §([AB][0-9]+)`)
	n := 0
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name == ".git" || name == "node_modules" || name == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".go", ".rego", ".md", ".yaml", ".sql":
		default:
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range cite.FindAllStringSubmatch(string(b), -1) {
			n++
			if !anchors[strings.ToLower(m[1])] {
				t.Errorf("%s cites docs/api.md §%s, which api.md does not have", path, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 50 {
		t.Errorf("found only %d citations of docs/api.md; is the walk looking in the repository?", n)
	}
}
