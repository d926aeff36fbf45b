package api_test

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-pdp/gatehouse/pdp/api"
)

var printScopeTable = flag.Bool("print-scope-table", false, "print the README's route × scope table")

// scopeTable renders api.RouteAccess as the README's table, routes in
// path order.
func scopeTable() string {
	routes := make([]string, 0, len(api.RouteAccess))
	for r := range api.RouteAccess {
		routes = append(routes, r)
	}
	slices.SortFunc(routes, func(a, b string) int {
		ma, pa, _ := strings.Cut(a, " ")
		mb, pb, _ := strings.Cut(b, " ")
		if c := strings.Compare(pa, pb); c != 0 {
			return c
		}
		return strings.Compare(ma, mb)
	})
	var b strings.Builder
	b.WriteString("| route | needs |\n|---|---|\n")
	for _, r := range routes {
		b.WriteString("| `" + r + "` | " + api.RouteAccess[r].String() + " |\n")
	}
	return b.String()
}

// TestReadmeScopeTable: the README's "Who may do what" lists every
// route's scope as the server enforces it.
func TestReadmeScopeTable(t *testing.T) {
	if *printScopeTable {
		t.Log("\n" + scopeTable())
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), scopeTable()) {
		t.Errorf("README.md lacks the current route × scope table; run go test ./pdp/api -run TestReadmeScopeTable -print-scope-table -v and paste it:\n%s", scopeTable())
	}
}
