// Package rego embeds Gatehouse's Rego library: the decision query
// (data.gatehouse.decision.result), the action text, and the built-in
// policies. Engine and bundles load exactly these files.
package rego

import (
	"embed"
	"io/fs"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
)

//go:embed gatehouse
var files embed.FS

// Sources returns the library modules (tests excluded) as bundle path →
// source, e.g. "gatehouse/decision.rego".
func Sources() map[string]string {
	return collect(func(p string) bool { return !strings.HasSuffix(p, "_test.rego") })
}

// Tests returns the library's _test.rego files as path → source.
func Tests() map[string]string {
	return collect(func(p string) bool { return strings.HasSuffix(p, "_test.rego") })
}

func collect(keep func(string) bool) map[string]string {
	out := map[string]string{}
	err := fs.WalkDir(files, "gatehouse", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".rego") || !keep(p) {
			return err
		}
		b, err := files.ReadFile(p)
		out[p] = string(b)
		return err
	})
	if err != nil {
		panic(err) // embedded files: cannot fail at run time
	}
	return out
}

var (
	parseOnce sync.Once
	parsed    map[string]*ast.Module
	parseErr  error
)

// Parsed returns the library modules parsed once, with annotations. The
// compiler copies modules, so the result is shared read-only.
func Parsed() (map[string]*ast.Module, error) {
	parseOnce.Do(func() {
		parsed = map[string]*ast.Module{}
		for p, src := range Sources() {
			m, err := ast.ParseModuleWithOpts(p, src, ast.ParserOptions{ProcessAnnotation: true, RegoVersion: ast.RegoV1})
			if err != nil {
				parseErr = err
				return
			}
			parsed[p] = m
		}
	})
	return parsed, parseErr
}
