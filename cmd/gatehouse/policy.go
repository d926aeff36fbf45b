package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/gatehouse-pdp/gatehouse/client"
)

// policyImpactUsage is the help text of `gatehouse policy impact`.
const policyImpactUsage = `Usage: gatehouse policy impact (--policy FILE | --disable NAME | --rollback NAME@VERSION)
           [--agent-id ID] [--since 7d] [--until TIME] [--limit N] [--time-budget 10s]
           [--url URL] [--api-key KEY] [--fail-on-change]

Asks a running server what a policy change would have done to the actions
it recorded: they are replayed through the tenant's current policies and
through the policies with the change applied (POST
/v1/control/policies/impact), and nothing is recorded. The change is a
policy document to create or replace (JSON or YAML, as the API takes it),
a policy to disable, or a rollback to an earlier version; --agent-id
names the agent-scoped copy for --disable and --rollback (a document names
its own). --since and --until take a duration before now (7d, 36h) or an
RFC 3339 time. The result is printed as JSON on stdout and summarised on
stderr.

Exit status: 0 done; 1 the request failed, or --fail-on-change and some
action's status would change (or the replay was cut short by its time
budget); 2 usage.

Flags:
`

// cmdPolicy runs `gatehouse policy <subcommand>`.
func cmdPolicy(ctx context.Context, args []string, s stdio) int {
	if len(args) == 0 || args[0] != "impact" {
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
			fmt.Fprint(s.stdout, policyImpactUsage)
			return exitOK
		}
		fmt.Fprint(s.stderr, "Usage: gatehouse policy impact [flags] (gatehouse policy impact --help)\n")
		return exitUsage
	}
	return cmdPolicyImpact(ctx, args[1:], s)
}

func cmdPolicyImpact(ctx context.Context, args []string, s stdio) int {
	fs := flag.NewFlagSet("policy impact", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	policyFile := fs.String("policy", "", "a policy document to create or replace (JSON or YAML)")
	disable := fs.String("disable", "", "a policy to disable")
	rollback := fs.String("rollback", "", "NAME@VERSION: a rollback to that version")
	agentID := fs.String("agent-id", "", "the agent-scoped copy, for --disable and --rollback")
	since := fs.String("since", "7d", "the window's start: a duration before now (7d, 36h) or an RFC 3339 time")
	until := fs.String("until", "", "the window's end (default now): a duration before now or an RFC 3339 time")
	limit := fs.Int("limit", 0, "the most recent actions to replay (server default 10000, at most 100000)")
	budget := fs.Duration("time-budget", 0, "how long the replay may take (server default 10s, at most 30s)")
	baseURL := fs.String("url", "", "the server's URL (env GATEHOUSE_URL; default http://localhost:8080)")
	apiKey := fs.String("api-key", "", "the tenant's API key (env GATEHOUSE_API_KEY)")
	failOnChange := fs.Bool("fail-on-change", false, "exit 1 when some action's status would change")
	usage := func(w io.Writer) {
		fmt.Fprint(w, policyImpactUsage)
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	if code, done := parseFlags(fs, args, usage, s); done {
		return code
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(s.stderr, "gatehouse policy impact: "+format+"\n", a...)
		return code
	}
	now := time.Now()
	var req client.ImpactRequest
	changes := 0
	if *policyFile != "" {
		changes++
		doc, err := readPolicyFile(*policyFile)
		if err != nil {
			return fail(exitUsage, "%v", err)
		}
		req.Policy = doc
		if *agentID != "" {
			return fail(exitUsage, "--agent-id goes with --disable or --rollback; a policy document names its own agent_id")
		}
	}
	if *disable != "" {
		changes++
		req.Disable, req.AgentID = *disable, *agentID
	}
	if *rollback != "" {
		changes++
		name, v, ok := strings.Cut(*rollback, "@")
		n, err := strconv.Atoi(v)
		if !ok || name == "" || err != nil || n < 1 {
			return fail(exitUsage, "--rollback %q: want NAME@VERSION", *rollback)
		}
		req.Rollback = &client.ImpactRollback{Name: name, Version: n, AgentID: *agentID}
	}
	if changes != 1 {
		return fail(exitUsage, "give exactly one of --policy, --disable and --rollback")
	}
	var err error
	if req.Since, err = windowTime(*since, now); err != nil {
		return fail(exitUsage, "--since: %v", err)
	}
	if req.Until, err = windowTime(*until, now); err != nil {
		return fail(exitUsage, "--until: %v", err)
	}
	req.Limit = *limit
	req.TimeBudgetMS = int(budget.Milliseconds())
	url := firstOf(*baseURL, envOf(s, "GATEHOUSE_URL"), "http://localhost:8080")
	key := firstOf(*apiKey, envOf(s, "GATEHOUSE_API_KEY"))
	if key == "" {
		return fail(exitUsage, "an API key is required (--api-key or GATEHOUSE_API_KEY)")
	}
	c, err := client.New(url, key)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	res, err := c.PolicyImpact(ctx, req)
	if err != nil {
		var ce *client.Error
		if errors.As(err, &ce) {
			return fail(exitFail, "%s (%d %s)", ce.Message, ce.Status, ce.Code)
		}
		return fail(exitFail, "%v", err)
	}
	out, _ := json.MarshalIndent(res, "", "  ")
	fmt.Fprintln(s.stdout, string(out))
	fmt.Fprintf(s.stderr, "%d actions replayed (%s … %s): %d would change", res.Evaluated,
		res.Window.Since.Format(time.RFC3339), res.Window.Until.Format(time.RFC3339), res.Changed)
	for tr, n := range res.Transitions {
		fmt.Fprintf(s.stderr, ", %s %d", tr, n)
	}
	switch {
	case res.Partial:
		fmt.Fprintf(s.stderr, "; PARTIAL: the time budget ran out")
	case res.Truncated:
		fmt.Fprintf(s.stderr, "; the window holds more actions than the limit")
	}
	fmt.Fprintln(s.stderr)
	if *failOnChange && (res.Changed > 0 || res.Partial) {
		return exitFail
	}
	return exitOK
}

// readPolicyFile reads a policy document, JSON or YAML, as JSON.
func readPolicyFile(path string) (json.RawMessage, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if json.Valid(b) {
		return b, nil
	}
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, fmt.Errorf("%s: neither JSON nor YAML: %v", path, err)
	}
	return j, nil
}

// windowTime reads "" (nil), a duration before now (7d, 36h) or an RFC
// 3339 time.
func windowTime(v string, now time.Time) (*time.Time, error) {
	if v == "" {
		return nil, nil
	}
	if d, ok := strings.CutSuffix(v, "d"); ok {
		if n, err := strconv.Atoi(d); err == nil && n >= 0 {
			t := now.Add(-time.Duration(n) * 24 * time.Hour)
			return &t, nil
		}
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		t := now.Add(-d)
		return &t, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return nil, fmt.Errorf("%q is neither a duration (7d, 36h) nor an RFC 3339 time", v)
	}
	return &t, nil
}

func envOf(s stdio, name string) string {
	v, _ := s.lookupEnv(name)
	return v
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
