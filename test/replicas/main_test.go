package replicas

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/gatehouse-pdp/gatehouse/test/e2e"
)

// bin is the gatehouse binary under test (e2e.Binary, shared); "" with -short.
var bin string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // every test skips itself
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err == nil {
		bin, err = e2e.Binary(root)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "replicas:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}
