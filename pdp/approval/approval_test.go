package approval_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/approval"
)

// t0 is when every test's action was submitted.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func held(action, agent, key string) approval.Held {
	return approval.Held{ActionID: "act_1", Action: action, AgentID: agent, SubmitterKey: key, SubmittedAt: t0}
}

func TestCheck(t *testing.T) {
	enterprise := func(s approval.Settings) approval.Policy {
		return approval.Policy{Mode: approval.Enterprise, Settings: s}
	}
	solo := approval.Policy{Mode: approval.Solo}
	team := approval.Policy{Mode: approval.Team}
	payment := held("stripe.payment", "payer-bot", "key_agent")
	dropTable := held("db.drop_table", "ops-bot", "key_agent")

	cases := []struct {
		name  string
		pol   approval.Policy
		held  approval.Held
		req   approval.Request
		after time.Duration // since submission
		// want: "" admitted; else the error class.
		want      error
		retry     int // retry_after_seconds when too early
		submitter bool
		vote      bool
		min       int
	}{
		// solo
		{name: "solo: refused at once", pol: solo, held: payment, req: approval.Request{Decision: approval.Approve, ApproverID: "alice"}, after: 0, want: approval.ErrTooEarly, retry: 5},
		{name: "solo: refused 4.2 s in, retry in 1 s", pol: solo, held: payment, req: approval.Request{Decision: approval.Approve, ApproverID: "alice"}, after: 4200 * time.Millisecond, want: approval.ErrTooEarly, retry: 1},
		{name: "solo: 1 ns early is still early", pol: solo, held: payment, req: approval.Request{Decision: approval.Approve, ApproverID: "alice"}, after: 5*time.Second - 1, want: approval.ErrTooEarly, retry: 1},
		{name: "solo: accepted at 5 s", pol: solo, held: payment, req: approval.Request{Decision: approval.Approve, ApproverID: "alice"}, after: 5 * time.Second},
		{name: "solo: an approval waits", pol: solo, held: payment, req: approval.Request{Decision: approval.Approve}, after: time.Second, want: approval.ErrTooEarly, retry: 4},
		{name: "solo: a deny applies at once", pol: solo, held: payment, req: approval.Request{Decision: approval.Deny}, after: 0},
		{name: "solo: the submitter may decide after 5 s", pol: solo, held: payment, req: approval.Request{Decision: approval.Approve, ApproverID: "payer-bot"}, after: 6 * time.Second},
		{name: "solo: destructive approve needs ROLLBACK", pol: solo, held: dropTable, req: approval.Request{Decision: approval.Approve}, after: time.Minute, want: approval.ErrConfirmationRequired},
		{name: "solo: wrong confirmation", pol: solo, held: dropTable, req: approval.Request{Decision: approval.Approve, Confirmation: "rollback"}, after: time.Minute, want: approval.ErrConfirmationRequired},
		{name: "solo: confirmation before timing", pol: solo, held: dropTable, req: approval.Request{Decision: approval.Approve}, after: 0, want: approval.ErrConfirmationRequired},
		{name: "solo: confirmed, still early", pol: solo, held: dropTable, req: approval.Request{Decision: approval.Approve, Confirmation: "ROLLBACK"}, after: 2 * time.Second, want: approval.ErrTooEarly, retry: 3},
		{name: "solo: confirmed destructive approve", pol: solo, held: dropTable, req: approval.Request{Decision: approval.Approve, Confirmation: "ROLLBACK"}, after: 5 * time.Second},
		{name: "solo: destructive deny needs no confirmation", pol: solo, held: dropTable, req: approval.Request{Decision: approval.Deny}, after: 5 * time.Second},

		// team
		{name: "team: another approver at once", pol: team, held: payment, req: approval.Request{Decision: approval.Approve, ApproverID: "alice"}, after: 0},
		{name: "team: another key at once", pol: team, held: payment, req: approval.Request{Decision: approval.Deny, ApproverID: "key_human"}, after: 0},
		{name: "team: the agent waits 10 min", pol: team, held: payment, req: approval.Request{Decision: approval.Approve, ApproverID: "payer-bot"}, after: 0, want: approval.ErrTooEarly, retry: 600, submitter: true},
		{name: "team: the submitting key waits", pol: team, held: payment, req: approval.Request{Decision: approval.Approve, ApproverID: "key_agent"}, after: 9*time.Minute + 30*time.Second, want: approval.ErrTooEarly, retry: 30, submitter: true},
		{name: "team: the submitter denies at once", pol: team, held: payment, req: approval.Request{Decision: approval.Deny, ApproverID: "payer-bot"}, after: time.Minute},
		{name: "team: the submitting identity approves only after 10 min", pol: team, held: approval.Held{ActionID: "act_1", Action: "stripe.payment", Submitter: "alice", SubmittedAt: payment.SubmittedAt}, req: approval.Request{Decision: approval.Approve, ApproverID: "alice"}, after: time.Minute, want: approval.ErrTooEarly, retry: 540, submitter: true},
		{name: "team: the submitter at 10 min", pol: team, held: payment, req: approval.Request{Decision: approval.Approve, ApproverID: "payer-bot"}, after: 10 * time.Minute},
		{name: "team: destructive needs no confirmation", pol: team, held: dropTable, req: approval.Request{Decision: approval.Approve, ApproverID: "alice"}, after: 0},
		{name: "team: no agent, no key: nobody is the submitter", pol: team, held: held("stripe.payment", "", ""), req: approval.Request{Decision: approval.Approve, ApproverID: "alice"}, after: 0},

		// enterprise
		{name: "enterprise: a vote, default 2", pol: enterprise(approval.Settings{}), held: payment, req: approval.Request{Decision: approval.Approve, ApproverID: "alice"}, vote: true, min: 2},
		{name: "enterprise: min_approvals 3", pol: enterprise(approval.Settings{MinApprovals: 3}), held: payment, req: approval.Request{Decision: approval.Deny, ApproverID: "alice"}, vote: true, min: 3},
		{name: "enterprise: no waiting, even for the submitter", pol: enterprise(approval.Settings{}), held: payment, req: approval.Request{Decision: approval.Approve, ApproverID: "payer-bot"}, vote: true, min: 2},
		{name: "enterprise: role allowed", pol: enterprise(approval.Settings{AllowedRoles: []string{"security", "finance"}}), held: payment, req: approval.Request{Decision: approval.Approve, ApproverID: "alice", Role: "Finance"}, vote: true, min: 2},
		{name: "enterprise: role not allowed", pol: enterprise(approval.Settings{AllowedRoles: []string{"security"}}), held: payment, req: approval.Request{Decision: approval.Approve, ApproverID: "alice", Role: "intern"}, want: approval.ErrNotEligible},
		{name: "enterprise: no role when roles are required", pol: enterprise(approval.Settings{AllowedRoles: []string{"security"}}), held: payment, req: approval.Request{Decision: approval.Deny, ApproverID: "alice"}, want: approval.ErrNotEligible},
		{name: "enterprise: manager required", pol: enterprise(approval.Settings{RequireManager: true}), held: payment, req: approval.Request{Decision: approval.Approve, ApproverID: "alice"}, want: approval.ErrNotEligible},
		{name: "enterprise: manager", pol: enterprise(approval.Settings{RequireManager: true}), held: payment, req: approval.Request{Decision: approval.Approve, ApproverID: "alice", IsManager: true}, vote: true, min: 2},
		{name: "enterprise: destructive needs no confirmation", pol: enterprise(approval.Settings{MinApprovals: 1}), held: dropTable, req: approval.Request{Decision: approval.Approve, ApproverID: "alice"}, vote: true, min: 1},

		// the caller's bugs
		{name: "unknown mode", pol: approval.Policy{Mode: "anarchy"}, held: payment, req: approval.Request{Decision: approval.Approve}, want: approval.ErrUnknownMode},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := t0.Add(tc.after)
			rules := approval.New(func() time.Time { return now })
			v, err := rules.Check(tc.pol, tc.held, tc.req)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Check: %v, want admitted", err)
				}
				if v.Vote != tc.vote || v.MinApprovals != tc.min {
					t.Errorf("verdict %+v, want vote %v min %d", v, tc.vote, tc.min)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Check: %v, want %v", err, tc.want)
			}
			var te *approval.TooEarlyError
			if errors.As(err, &te) {
				if got := te.RetryAfterSeconds(); got != tc.retry {
					t.Errorf("retry after %d s, want %d (%v)", got, tc.retry, te.RetryAfter)
				}
				if te.Submitter != tc.submitter {
					t.Errorf("submitter %v, want %v", te.Submitter, tc.submitter)
				}
				if !te.NotBefore.After(now) {
					t.Errorf("not before %v, not after now %v", te.NotBefore, now)
				}
				if msg := te.Error(); !strings.Contains(msg, "Retry in") {
					t.Errorf("message %q", msg)
				}
			} else if tc.want == approval.ErrTooEarly {
				t.Errorf("%v is not a *TooEarlyError", err)
			}
			var ne *approval.NotEligibleError
			if errors.Is(err, approval.ErrNotEligible) && !errors.As(err, &ne) {
				t.Errorf("%v is not a *NotEligibleError", err)
			}
		})
	}
}

// TestTooEarlyThenAdmitted waits exactly what the error says, on a moving
// clock, and is then admitted: retry_after_seconds is never too short.
func TestTooEarlyThenAdmitted(t *testing.T) {
	for _, tc := range []struct {
		pol   approval.Policy
		agent string
		start time.Duration
	}{
		{approval.Policy{Mode: approval.Solo}, "alice", 0},
		{approval.Policy{Mode: approval.Solo}, "alice", 4999 * time.Millisecond},
		{approval.Policy{Mode: approval.Team}, "bot", 123 * time.Millisecond},
	} {
		now := t0.Add(tc.start)
		rules := approval.New(func() time.Time { return now })
		h := held("stripe.payment", "bot", "")
		_, err := rules.Check(tc.pol, h, approval.Request{Decision: approval.Approve, ApproverID: tc.agent})
		var te *approval.TooEarlyError
		if !errors.As(err, &te) {
			t.Fatalf("%s at %v: %v, want too early", tc.pol.Mode, tc.start, err)
		}
		now = now.Add(time.Duration(te.RetryAfterSeconds()) * time.Second)
		if _, err := rules.Check(tc.pol, h, approval.Request{Decision: approval.Approve, ApproverID: tc.agent}); err != nil {
			t.Errorf("%s: after waiting %d s: %v", tc.pol.Mode, te.RetryAfterSeconds(), err)
		}
	}
}

func TestCounts(t *testing.T) {
	rules := approval.New(func() time.Time { return t0 })
	v, err := rules.Check(approval.Policy{Mode: approval.Enterprise, Settings: approval.Settings{AllowedRoles: []string{"security"}, RequireManager: true}},
		held("x", "", ""), approval.Request{Decision: approval.Approve, ApproverID: "a", Role: "security", IsManager: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		role    string
		manager bool
		want    bool
	}{{"security", true, true}, {"SECURITY", true, true}, {"security", false, false}, {"finance", true, false}, {"", true, false}} {
		if got := v.Counts(c.role, c.manager); got != c.want {
			t.Errorf("Counts(%q, %v) = %v, want %v", c.role, c.manager, got, c.want)
		}
	}
}

func TestParseDecision(t *testing.T) {
	for in, want := range map[string]approval.Decision{
		"approve": approval.Approve, "approved": approval.Approve, " APPROVE ": approval.Approve,
		"deny": approval.Deny, "denied": approval.Deny, "reject": approval.Deny, "Rejected": approval.Deny,
	} {
		if got, ok := approval.ParseDecision(in); !ok || got != want {
			t.Errorf("ParseDecision(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "yes", "ok", "approves", "accept", "block"} {
		if got, ok := approval.ParseDecision(in); ok {
			t.Errorf("ParseDecision(%q) = %q, want refused", in, got)
		}
	}
	if approval.Approve.Status() != pdp.StatusApproved || approval.Deny.Status() != pdp.StatusDenied {
		t.Error("Status")
	}
}

func TestDestructive(t *testing.T) {
	for name, want := range map[string]bool{
		"db.drop_table": true, "github.repos.delete": true, "k8s.Destroy": true, "fs.remove": true, "sql.TRUNCATE": true,
		"deploy.rollback": true, "iam.revoke_token": true, "stripe.payment": false, "slack.send_message": false, "": false,
	} {
		if got := approval.Destructive(name); got != want {
			t.Errorf("Destructive(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestParseSettings(t *testing.T) {
	ok := []struct {
		raw  string
		want approval.Settings
	}{
		{"", approval.Settings{MinApprovals: 2}},
		{"null", approval.Settings{MinApprovals: 2}},
		{"{}", approval.Settings{MinApprovals: 2}},
		{`{"min_approvals":3}`, approval.Settings{MinApprovals: 3}},
		{`{"min_approvals":null,"require_manager":true}`, approval.Settings{MinApprovals: 2, RequireManager: true}},
		{`{"allowed_roles":[" security ","finance"]}`, approval.Settings{MinApprovals: 2, AllowedRoles: []string{"security", "finance"}}},
		{`{"min_approvals":1,"allowed_roles":[],"require_manager":false}`, approval.Settings{MinApprovals: 1}},
	}
	for _, c := range ok {
		got, err := approval.ParseSettings(json.RawMessage(c.raw))
		if err != nil {
			t.Errorf("ParseSettings(%s): %v", c.raw, err)
			continue
		}
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(c.want)
		if string(g) != string(w) {
			t.Errorf("ParseSettings(%s) = %s, want %s", c.raw, g, w)
		}
	}
	bad := map[string]string{
		`[1]`:                          "approval_settings: must be a JSON object or null",
		`{"min_approvals":0}`:          "approval_settings.min_approvals: must be an integer from 1 to 100",
		`{"min_approvals":101}`:        "approval_settings.min_approvals: must be an integer from 1 to 100",
		`{"min_approvals":2.5}`:        "approval_settings.min_approvals: must be an integer from 1 to 100",
		`{"min_approvals":"2"}`:        "approval_settings.min_approvals: must be an integer from 1 to 100",
		`{"allowed_roles":"security"}`: "approval_settings.allowed_roles: must be an array of strings",
		`{"allowed_roles":[""]}`:       "approval_settings.allowed_roles[0]: must be 1-64 characters without control characters",
		`{"require_manager":"yes"}`:    "approval_settings.require_manager: must be a boolean",
		`{"min_aprovals":2}`:           "approval_settings.min_aprovals: unknown setting (known: min_approvals, allowed_roles, require_manager)",
		`{"z":1,"min_approvals":0}`:    "approval_settings.min_approvals: must be an integer from 1 to 100; approval_settings.z: unknown setting (known: min_approvals, allowed_roles, require_manager)",
	}
	for raw, want := range bad {
		_, err := approval.ParseSettings(json.RawMessage(raw))
		if err == nil || err.Error() != want {
			t.Errorf("ParseSettings(%s) = %v, want %q", raw, err, want)
		}
		var ve *pdp.ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("ParseSettings(%s): %T is not a validation error", raw, err)
		}
	}
}
