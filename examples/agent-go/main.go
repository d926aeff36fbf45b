// Command agent-go is an example agent that asks Gatehouse before every
// action, with the Go client package (github.com/gatehouse-pdp/gatehouse/client).
// It does what examples/agent-python does: allowed actions go ahead,
// blocked ones are skipped with their reason, held ones wait (bounded) for
// a human's decision, and any error means "not allowed" (fail closed).
//
// Environment: GATEHOUSE_URL (default http://127.0.0.1:8181),
// GATEHOUSE_API_KEY (required), GATEHOUSE_APPROVAL_TIMEOUT (default 2m),
// GATEHOUSE_AGENT_ID (default demo-agent).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/gatehouse-pdp/gatehouse/client"
)

// demoPolicy is the policy the demo relies on. A real agent's operators
// write policies; the agent only asks. Writing it again just updates it.
var demoPolicy = client.Policy{
	Name:        "agent-demo",
	Description: "Example agent: no recursive deletes; production deploys need a human",
	Rules: []client.Rule{
		{Match: `rm\s+-rf`, Severity: "critical", Reason: "Refusing {match}"},
		{Match: `deploy.*production`, Severity: "high", Reason: "Production deploys need a human"},
	},
}

// plan is what the agent wants to do, in order.
var plan = []client.Action{
	{Action: "slack.send_message", Params: map[string]any{"channel": "#ops", "text": "starting maintenance"}},
	{Action: "shell.exec", Params: map[string]any{"cmd": "rm -rf /var/lib/app"}},
	{Action: "ci.deploy", Params: map[string]any{"target": "production", "ref": "main"}},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "agent-go:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	base := envOr("GATEHOUSE_URL", "http://127.0.0.1:8181")
	key := os.Getenv("GATEHOUSE_API_KEY")
	if key == "" {
		return errors.New("set GATEHOUSE_API_KEY (make run prints one)")
	}
	wait, err := time.ParseDuration(envOr("GATEHOUSE_APPROVAL_TIMEOUT", "2m"))
	if err != nil {
		return fmt.Errorf("GATEHOUSE_APPROVAL_TIMEOUT: %w", err)
	}
	c, err := client.New(base, key, client.WithUserAgent("gatehouse-agent-go"))
	if err != nil {
		return err
	}
	if _, err := c.PutPolicy(ctx, demoPolicy); err != nil {
		return fmt.Errorf("write the demo policy: %w", err)
	}
	agent := envOr("GATEHOUSE_AGENT_ID", "demo-agent")
	for _, a := range plan {
		a.AgentID = agent
		step(ctx, c, a, wait)
	}
	return nil
}

// step asks about one action and acts on the answer.
func step(ctx context.Context, c *client.Client, a client.Action, wait time.Duration) {
	res, err := c.SubmitAction(ctx, a)
	var apiErr *client.Error
	switch {
	case errors.As(err, &apiErr) && apiErr.Code == client.CodeEvaluationUnavailable:
		fmt.Println("ERROR", a.Action, "not evaluated, so not allowed; retry after", apiErr.RetryAfter)
		return
	case err != nil:
		fmt.Println("ERROR", a.Action, err) // not decided is not allowed
		return
	}
	switch res.Status {
	case client.StatusAllowed:
		fmt.Println("ALLOWED", a.Action) // ... and here the agent would do it
	case client.StatusBlocked:
		fmt.Println("BLOCKED", a.Action+":", deref(res.PolicyResult.Reason))
	case client.StatusPendingReview:
		fmt.Println("PENDING", a.Action, res.ActionID)
		wctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		rec, err := c.WaitForDecision(wctx, res.ActionID, 500*time.Millisecond)
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			fmt.Println("TIMEOUT", a.Action)
		case err != nil:
			fmt.Println("ERROR", a.Action, err)
		case rec.Status == client.StatusApproved:
			fmt.Println("APPROVED", a.Action, "by", deref(rec.ApproverID)) // ... now it may do it
		default:
			fmt.Println("DENIED", a.Action+":", deref(rec.Reason))
		}
	default:
		fmt.Println("ERROR", a.Action, "unknown status", res.Status)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
