package replicas

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/gatehouse-pdp/gatehouse/test/e2e"
)

// bin is the gatehouse binary TestMain built; "" with -short.
var bin string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // every test skips itself
	}
	dir, err := os.MkdirTemp("", "gatehouse-replicas-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err == nil {
		bin, err = e2e.Build(root, dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "replicas:", err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}
