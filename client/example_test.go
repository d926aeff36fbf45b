package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/gatehouse-pdp/gatehouse/client"
)

// An agent's loop: write a policy, then ask before every action.
func Example() {
	ctx := context.Background()
	c, err := client.New(baseURL, apiKey) // e.g. "http://127.0.0.1:8181", "nram_..."
	if err != nil {
		log.Fatal(err)
	}
	w, err := c.PutPolicy(ctx, client.Policy{
		Name:  "no-drop-table",
		Rules: []client.Rule{{Match: `drop table \w+`, Severity: "critical", Reason: "Refusing {match}"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(w.Message)

	res, err := c.SubmitAction(ctx, client.Action{
		Action: "db.query",
		Params: map[string]any{"sql": "drop table users"},
	})
	if err != nil {
		log.Fatal(err) // not decided: treat as not allowed
	}
	fmt.Println(res.Status, res.Allowed(), *res.PolicyResult.TriggeredPolicy)
	fmt.Println(*res.PolicyResult.Reason)
	// Output:
	// Policy 'no-drop-table' created
	// blocked false no-drop-table
	// Refusing drop table users
}

// Errors carry the contract's code; branch on it with errors.As.
func ExampleError() {
	ctx := context.Background()
	c, err := client.New(baseURL, apiKey)
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.GetPolicy(ctx, "no-such-policy", "")
	var apiErr *client.Error
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.Status, apiErr.Code)
	}
	fmt.Println(errors.Is(err, &client.Error{Code: client.CodePolicyNotFound}))
	// Output:
	// 404 novyx_ram.v1.control.policy_not_found
	// true
}

// A held action waits for a human; here the "human" denies it at once.
func ExampleClient_Decide() {
	ctx := context.Background()
	c, err := client.New(baseURL, apiKey)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.PutPolicy(ctx, client.Policy{
		Name:  "wire-review",
		Rules: []client.Rule{{Match: `wire_funds`, Severity: "high"}}, // high: require_approval
	}); err != nil {
		log.Fatal(err)
	}
	res, err := c.SubmitAction(ctx, client.Action{Action: "wire_funds_abroad"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Status)

	d, err := c.Decide(ctx, res.ActionID, client.Decision{Decision: "deny", Reason: "not today"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(d.Decision, d.Status)

	rec, err := c.WaitForDecision(ctx, res.ActionID, 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rec.Status, *rec.Reason)
	// Output:
	// pending_review
	// deny denied
	// denied not today
}
