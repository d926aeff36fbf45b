// Package parity proves that a stock `opa run --server` pulling a tenant's
// bundle from Gatehouse decides exactly as Gatehouse does (docs/api.md §B3):
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

// The binaries under test (e2e.Binary, e2e.OPABinary: shared builds); "" with -short.
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
	gatehouseBin, err = e2e.Binary(root)
	if err == nil {
		opaBin, err = e2e.OPABinary(root)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "parity:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func binaries(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("parity test: skipped with -short")
	}
}
