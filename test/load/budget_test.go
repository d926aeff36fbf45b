package main

import "testing"

// TestClassify: a sample is charged to the innermost component on its
// stack, whatever middleware wraps it; unknown frames fall through.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		stack []string
		want  string
	}{
		{[]string{"runtime.mallocgc", "encoding/json.(*decodeState).object", "github.com/gatehouse-pdp/gatehouse/pdp/api.decodeParams",
			"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin.Middleware.func1"}, "JSON in/out"},
		{[]string{"runtime.gcAssistAlloc", "runtime.mallocgc", "github.com/open-policy-agent/opa/v1/topdown.(*eval).eval"}, "GC assist (paid by allocating code)"},
		{[]string{"ext4_sync_file", "modernc.org/libc.Xfsync", "database/sql.(*Tx).Commit.func1"}, "store: SQL, group commit, WAL, fsync"},
		{[]string{"github.com/open-policy-agent/opa/v1/ast.(*Term).Hash", "github.com/open-policy-agent/opa/v1/topdown.evalTree"}, "OPA evaluation"},
		{[]string{"github.com/open-policy-agent/opa/v1/ast.(*Compiler).Compile", "github.com/gatehouse-pdp/gatehouse/pdp/engine.(*Engine).Evaluate"}, "compile (engine prepare)"},
		{[]string{"runtime.scanobject", "runtime.gcBgMarkWorker"}, "GC (background mark/sweep)"},
		{[]string{"runtime.findRunnable", "runtime.schedule"}, otherComponent},
	} {
		if got := classify(tc.stack); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.stack, got, tc.want)
		}
	}
}
