package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// traceStore wraps a driver in store tracing, keeping the governance
// methods (audit chain, approvals, dashboard) visible when it has them.
func traceStore(s store.Store, tp trace.TracerProvider, opts ...store.TraceOption) store.Store {
	if g, ok := s.(store.GovernanceStore); ok {
		return store.TracedGovernance(g, tp, opts...)
	}
	return store.Traced(s, tp, opts...)
}

const auditUsage = `Usage: gatehouse audit verify --tenant T [flags]

Recomputes tenant T's audit chain (docs/api.md §A10) from the store, as GET
/v1/audit/verify does, and prints one JSON line on stdout:
  {"tenant_id":"T","valid":true,"entries":N,"first_bad_sequence":null,"timestamp":"..."}
The store may be in use by a running server.

Exit status: 0 the chain is intact; 1 it is broken (stderr names the first
bad sequence number) or the store could not be read; 2 a usage error or an
unknown tenant.

Flags:
  --tenant id
      the tenant whose chain to verify (required)
  --config file
      YAML config file whose store is used (env GATEHOUSE_CONFIG)
`

// auditReport is the line `audit verify` prints: GET /v1/audit/verify's
// fields plus the tenant.
type auditReport struct {
	TenantID         string `json:"tenant_id"`
	Valid            bool   `json:"valid"`
	Entries          int    `json:"entries"`
	FirstBadSequence *int64 `json:"first_bad_sequence"`
	Timestamp        string `json:"timestamp"`
	// RetainedFromSequence is where the retained chain starts (1 unless
	// retention pruned older entries).
	RetainedFromSequence int64 `json:"retained_from_sequence"`
	// Reason says what is wrong when the chain is not valid (the store's
	// Reason* sentences).
	Reason string `json:"reason,omitempty"`
}

// cmdAudit runs `gatehouse audit <subcommand>`.
func cmdAudit(ctx context.Context, args []string, s stdio) int {
	usage := func(w io.Writer) {
		fmt.Fprint(w, auditUsage)
		printSettings(w, []*setting{setStore})
	}
	if len(args) == 0 || args[0] != "verify" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			usage(s.stdout)
			return exitOK
		}
		usage(s.stderr)
		return exitUsage
	}
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cf := bindConfig(fs, setStore)
	tenantID := fs.String("tenant", "", "")
	if code, done := parseFlags(fs, args[1:], usage, s); done {
		return code
	}
	var problems []string
	if strings.TrimSpace(*tenantID) == "" {
		problems = append(problems, "--tenant is required")
	}
	cfg, err := cf.load(s.lookupEnv)
	if err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		fmt.Fprintf(s.stderr, "gatehouse audit verify: %s\n", strings.Join(problems, "\n"))
		return exitUsage
	}
	return auditVerify(ctx, cfg, *tenantID, s)
}

func auditVerify(ctx context.Context, cfg Config, tenantID string, s stdio) int {
	failf := func(code int, format string, args ...any) int {
		fmt.Fprintf(s.stderr, "gatehouse audit verify: "+format+"\n", args...)
		return code
	}
	// Verifying must not create a store: a mistyped path is an error, not
	// an empty, valid chain.
	if err := existingStore(cfg.Store); err != nil {
		return failf(exitUsage, "%v", err)
	}
	st, err := openStore(ctx, cfg.Store, noop.NewTracerProvider())
	if err != nil {
		return failf(exitFail, "%v", err)
	}
	defer func() {
		if cerr := st.Close(); cerr != nil {
			fmt.Fprintf(s.stderr, "gatehouse audit verify: close store: %v\n", cerr)
		}
	}()
	g, ok := st.(store.GovernanceStore)
	if !ok {
		return failf(exitFail, "the %s store keeps no audit chain", st.Backend())
	}
	if _, err := g.GetTenant(ctx, tenantID); errors.Is(err, store.ErrNotFound) {
		return failf(exitUsage, "tenant %q not found", tenantID)
	} else if err != nil {
		return failf(exitFail, "%v", err)
	}
	start := time.Now()
	v, err := g.VerifyAudit(ctx, tenantID)
	if err != nil {
		return failf(exitFail, "%v", err)
	}
	line, err := json.Marshal(auditReport{
		TenantID: tenantID, Valid: v.Valid, Entries: v.Entries, FirstBadSequence: v.FirstBadSequence,
		Timestamp: time.Now().UTC().Format("2006-01-02T15:04:05.000000Z"), Reason: v.Reason,
		RetainedFromSequence: max(v.RetainedFrom, 1),
	})
	if err != nil {
		return failf(exitFail, "%v", err)
	}
	fmt.Fprintf(s.stdout, "%s\n", line)
	switch {
	case !v.Valid && v.FirstBadSequence == nil && v.Cause != nil: // it could not be read
		return failf(exitFail, "tenant %q: %s: %v", tenantID, v.Reason, v.Cause)
	case !v.Valid && v.FirstBadSequence == nil: // every entry verified, a rollup did not
		return failf(exitFail, "tenant %q: the audit chain verifies (%d entries) but the store does not: %s",
			tenantID, v.Entries, v.Reason)
	case !v.Valid:
		return failf(exitFail, "tenant %q: the audit chain is broken at sequence %d (%d entries; entries 1-%d verify): %s",
			tenantID, *v.FirstBadSequence, v.Entries, v.LastSequence, v.Reason)
	}
	fmt.Fprintf(s.stderr, "gatehouse audit verify: tenant %q: %d entries verified in %s\n", tenantID, v.Entries, time.Since(start).Round(time.Millisecond))
	return exitOK
}
