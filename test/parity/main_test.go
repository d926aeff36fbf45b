// Package parity proves that a stock `opa run --server` pulling a tenant's
// bundle from Gatehouse decides exactly as Gatehouse does (CONTRACT B3):
// the real gatehouse binary and the pinned opa CLI, both on 127.0.0.1,
// a generated corpus decided by POST /v1/actions, by Gatehouse's Data API
// and by OPA's, compared field by field; then how fast a policy write
// reaches the long-polling OPA, and that OPA refuses a tampered bundle.
package parity

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/gatehouse-pdp/gatehouse/test/e2e"
)

// Binaries built by TestMain; "" with -short.
var gatehouseBin, opaBin string

// root is the module root.
var root string

func TestMain(m *testing.M) {
	flag.Parse()
	var err error
	if root, err = filepath.Abs(filepath.Join("..", "..")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if testing.Short() {
		os.Exit(m.Run()) // every test skips itself
	}
	dir, err := os.MkdirTemp("", "gatehouse-parity-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gatehouseBin, err = e2e.Build(root, dir)
	if err == nil {
		opaBin, err = e2e.BuildOPA(root, dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "parity:", err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func binaries(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("parity test: skipped with -short")
	}
}
