// Command gatehouse is the Gatehouse policy decision point: `gatehouse
// serve` runs the Novyx Control API, and the other subcommands manage
// tenants and check on a running server.
//
// main owns the process: it reads the configuration (flags, GATEHOUSE_*
// environment, YAML file), sets up logging and OpenTelemetry, wires the
// store, engine, registry and API together, and handles signals. No other
// package reads the environment or holds process-wide state.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"

	opaversion "github.com/open-policy-agent/opa/v1/version"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // the command failed
	exitUsage = 2 // the command line or configuration is wrong
)

// stdio is what a subcommand may touch of the process, passed explicitly
// so tests can run commands in-process.
type stdio struct {
	stdout, stderr io.Writer
	lookupEnv      func(string) (string, bool)
}

const usage = `Gatehouse — a policy decision point for AI-agent actions that speaks the
Novyx Control API.

Usage:
  gatehouse serve [flags]                       run the server
  gatehouse tenant create --id ID --tier T      create a tenant, print its API key
  gatehouse bundle build --policies DIR --tenant T --out FILE
                                                build a tenant's OPA bundle (GitOps)
  gatehouse audit verify --tenant T             recompute a tenant's audit chain
  gatehouse policy impact --policy FILE --since 7d
                                                what a policy change would have done to
                                                recorded actions (asks a running server)
  gatehouse healthcheck [--addr host:port]      exit 0 when a server answers /health
  gatehouse version                             print the versions
  gatehouse help [command]                      this text, or a command's flags

Settings come from flags, GATEHOUSE_* environment variables or a YAML file
(--config), in that order of precedence; "gatehouse serve --help" lists them.
`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], stdio{stdout: os.Stdout, stderr: os.Stderr, lookupEnv: os.LookupEnv}))
}

// run dispatches to a subcommand and returns the exit code.
func run(ctx context.Context, args []string, s stdio) int {
	if len(args) == 0 {
		fmt.Fprint(s.stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return cmdServe(ctx, rest, s)
	case "tenant":
		return cmdTenant(ctx, rest, s)
	case "bundle":
		return cmdBundle(ctx, rest, s)
	case "audit":
		return cmdAudit(ctx, rest, s)
	case "policy":
		return cmdPolicy(ctx, rest, s)
	case "healthcheck":
		return cmdHealthcheck(ctx, rest, s)
	case "version", "--version":
		return cmdVersion(rest, s)
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 && rest[0] != "help" {
			return run(ctx, []string{rest[0], "--help"}, s)
		}
		fmt.Fprint(s.stdout, usage)
		return exitOK
	}
	fmt.Fprintf(s.stderr, "gatehouse: unknown command %q\n\n%s", cmd, usage)
	return exitUsage
}

// parseFlags parses args into fs. done is true when the command should
// stop with code: after --help (usage on stdout, 0) or a bad flag or a
// stray argument (the error and usage on stderr, 2).
func parseFlags(fs *flag.FlagSet, args []string, usage func(io.Writer), s stdio) (code int, done bool) {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		usage(s.stdout)
		return exitOK, true
	case err != nil:
		fmt.Fprintf(s.stderr, "gatehouse %s: %v\n\n", fs.Name(), err)
		usage(s.stderr)
		return exitUsage, true
	case fs.NArg() > 0:
		fmt.Fprintf(s.stderr, "gatehouse %s: unexpected argument %q\n\n", fs.Name(), fs.Arg(0))
		usage(s.stderr)
		return exitUsage, true
	}
	return 0, false
}

// cmdVersion prints Gatehouse's, Go's and OPA's versions.
func cmdVersion(args []string, s stdio) int {
	if len(args) > 0 {
		fmt.Fprintln(s.stderr, "Usage: gatehouse version")
		return exitUsage
	}
	fmt.Fprintf(s.stdout, "gatehouse %s\n", pdp.Version)
	if rev := vcsRevision(); rev != "" {
		fmt.Fprintf(s.stdout, "commit    %s\n", rev)
	}
	fmt.Fprintf(s.stdout, "go        %s\n", runtime.Version())
	fmt.Fprintf(s.stdout, "opa       %s\n", opaversion.Version)
	fmt.Fprintf(s.stdout, "platform  %s/%s\n", runtime.GOOS, runtime.GOARCH)
	return exitOK
}

// vcsRevision returns the commit the binary was built from, when the
// build recorded it.
func vcsRevision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev == "" {
		return ""
	}
	return rev + dirty
}
