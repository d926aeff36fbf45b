package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"slices"
	"strings"
)

// The CPU budget by component: the -perf samples of a gatehouse target,
// each charged to the innermost component on its call stack (middleware
// frames sit above everything they wrap, so the leaf decides), times the
// target's median CPU per request.

// components, checked in this order for each frame from the leaf up.
var components = []struct {
	name     string
	patterns []string
}{
	{"GC assist (paid by allocating code)", []string{"runtime.gcAssistAlloc"}},
	{"GC (background mark/sweep)", []string{"runtime.gcBgMarkWorker", "runtime.bgsweep", "runtime.bgscavenge"}},
	{"compile (engine prepare)", []string{"ast.(*Compiler)", "PrepareForEval", "engine.(*Engine).prepare", "engine.(*Engine).unitFor"}},
	{"store: SQL, group commit, WAL, fsync", []string{"modernc.org/sqlite", "modernc.org/libc", "pdp/store", "jackc/pgx", "database/sql"}},
	{"decision log", []string{"pdp/decisionlog"}},
	{"OPA evaluation", []string{"topdown.", "rego.PreparedEvalQuery", "rego.(*Rego).eval", "engine.(*Engine).Evaluate", "engine.inputValue", "engine.decode"}},
	{"auth + rate limit", []string{"registry.(*Registry).Identify", "registry.(*Registry).Authenticate", "registry.(*Registry).KeyID", "ratelimit"}},
	{"JSON in/out", []string{"encoding/json", "lifecycle.appendDecision", "lifecycle.(*Result).AppendJSON"}},
	{"OTel", []string{"go.opentelemetry.io"}},
	{"metrics", []string{"prometheus", "pdp/metrics"}},
	{"HTTP server, gin, API and lifecycle code", []string{"net/http.", "github.com/gin-gonic", "pdp/api", "pdp/lifecycle", "internal/poll", "bufio."}},
}

const otherComponent = "runtime: scheduler, netpoll, other"

// budget reads perf files with `perf script` and returns each component's
// share of the samples, largest first.
func budget(files []string) ([]share, int, error) {
	counts := map[string]int{}
	total := 0
	for _, f := range files {
		out, err := exec.Command("perf", "script", "-i", f).Output()
		if err != nil {
			return nil, 0, fmt.Errorf("perf script %s: %w", f, err)
		}
		var stack []string
		flush := func() {
			if len(stack) == 0 {
				return
			}
			total++
			counts[classify(stack)]++
			stack = stack[:0]
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.TrimSpace(line) == "":
				flush()
			case line[0] == ' ' || line[0] == '\t':
				stack = append(stack, line)
			}
		}
		flush()
	}
	var shares []share
	for name, n := range counts {
		shares = append(shares, share{name, float64(n) / float64(total)})
	}
	slices.SortFunc(shares, func(a, b share) int {
		if a.fraction > b.fraction {
			return -1
		}
		if a.fraction < b.fraction {
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	return shares, total, nil
}

type share struct {
	name     string
	fraction float64
}

func classify(stack []string) string {
	for _, frame := range stack {
		for _, c := range components {
			for _, p := range c.patterns {
				if strings.Contains(frame, p) {
					return c.name
				}
			}
		}
	}
	return otherComponent
}

// printBudget prints the budget of a target whose median CPU per request
// is cpuPerReq µs.
func printBudget(target string, files []string, cpuPerReq float64) error {
	shares, total, err := budget(files)
	if err != nil {
		return err
	}
	fmt.Printf("\nCPU budget of %s per request (%d perf samples, %.0f µs/request):\n", target, total, cpuPerReq)
	for _, s := range shares {
		fmt.Printf("  %5.1f%%  %5.0f µs  %s\n", s.fraction*100, s.fraction*cpuPerReq, s.name)
	}
	return nil
}
