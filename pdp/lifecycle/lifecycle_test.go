package lifecycle_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/approval"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
	"github.com/gatehouse-pdp/gatehouse/pdp/lifecycle"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/sqlite"
)

// clock is the injected time: approval modes' waits are tested by moving
// it, never by sleeping.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a service on a real SQLite file, a real engine and registry.
type env struct {
	t    *testing.T
	svc  *lifecycle.Service
	db   *sqlite.DB
	eng  *engine.Engine
	reg  *registry.Registry
	clk  *clock
	path string

	mu    sync.Mutex
	slept []time.Duration // what Decide held early solo approvals for
}

// sleep is the service's Sleep: it moves the clock instead of waiting,
// unless ctx is done.
func (e *env) sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e.mu.Lock()
	e.slept = append(e.slept, d)
	e.mu.Unlock()
	e.clk.Advance(d)
	return nil
}

func (e *env) holds() []time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.slept)
}

func newEnv(t *testing.T) *env {
	t.Helper()
	clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	db, err := sqlite.Open(t.Context(), path, sqlite.WithNowFunc(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	eng, err := engine.New(engine.Config{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(db, eng)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, db: db, eng: eng, reg: reg, clk: clk, path: path}
	svc, err := lifecycle.New(lifecycle.Deps{Engine: eng, Store: db, Registry: reg, Now: clk.Now, Sleep: e.sleep})
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	return e
}

// tenantIn creates a tenant of tier in approval mode and returns it with
// its first key as the registry identifies it.
func (e *env) tenantIn(tier store.Tier, mode string) (string, store.APIKey) {
	e.t.Helper()
	tn, secret, err := e.reg.CreateTenant(e.t.Context(), registry.NewTenant{Name: "t-" + string(tier), Tier: tier, ApprovalMode: mode})
	if err != nil {
		e.t.Fatal(err)
	}
	id, err := e.reg.Identify(e.t.Context(), secret)
	if err != nil {
		e.t.Fatal(err)
	}
	return tn.ID, id.Key
}

// key creates a key of the tenant with creator's rights and returns it.
func (e *env) key(creator store.APIKey, nk registry.NewKey) store.APIKey {
	e.t.Helper()
	k, _, err := e.reg.CreateTenantKey(e.t.Context(), creator, nk)
	if err != nil {
		e.t.Fatal(err)
	}
	return k
}

// tenant creates a tenant of tier and returns its ID and first key's ID.
func (e *env) tenant(tier store.Tier) (id, keyID string) {
	e.t.Helper()
	tn, key, err := e.reg.CreateTenant(e.t.Context(), registry.NewTenant{Name: "t-" + string(tier), Tier: tier})
	if err != nil {
		e.t.Fatal(err)
	}
	if keyID, err = e.reg.KeyID(e.t.Context(), key); err != nil {
		e.t.Fatal(err)
	}
	return tn.ID, keyID
}

func (e *env) submit(sub lifecycle.Submission, want pdp.Status) lifecycle.Result {
	e.t.Helper()
	res, err := e.svc.Submit(e.t.Context(), sub)
	if err != nil {
		e.t.Fatalf("Submit(%s): %v", sub.Name, err)
	}
	if res.Decision.Status != want {
		e.t.Fatalf("Submit(%s): status %s, want %s", sub.Name, res.Decision.Status, want)
	}
	return res
}

// held submits an action the built-in FinancialSafety holds for approval.
func (e *env) held(tenantID, keyID, agent string) string {
	e.t.Helper()
	return e.submit(lifecycle.Submission{TenantID: tenantID, KeyID: keyID, Name: "stripe.payment", AgentID: agent,
		Params: map[string]any{"amount": json.Number("50000")}}, pdp.StatusPendingReview).ActionID
}

func ptr(s string) *string { return &s }

func TestSubmitRecordsDurablyWithItsEntry(t *testing.T) {
	e := newEnv(t)
	tid, keyID := e.tenant(store.TierPro)
	res := e.submit(lifecycle.Submission{TenantID: tid, KeyID: keyID, Name: "slack.send_message", AgentID: "bot-1",
		StepType: "action", Params: map[string]any{"text": "<hello> & bye", "n": json.Number("1.50")}}, pdp.StatusAllowed)
	if !strings.HasPrefix(res.ActionID, "act_") || len(res.TraceID) != 32 || res.Message != "Action permitted by policy evaluation" {
		t.Fatalf("result %+v", res)
	}
	if res.Decision.ActionID != res.ActionID || res.Decision.Violations == nil || res.Decision.Warnings == nil {
		t.Fatalf("decision not normalized: %+v", res.Decision)
	}

	// Acknowledged means on disk: a fresh connection to the file sees it.
	if err := e.db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(t.Context(), e.path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rec, err := db.GetAction(t.Context(), tid, res.ActionID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Connector != "slack" || rec.Operation != "send_message" || rec.StepType != "ACTION" || rec.Status != pdp.StatusAllowed ||
		rec.TraceID != res.TraceID || !rec.CreatedAt.Equal(e.clk.Now()) {
		t.Fatalf("record %+v", rec)
	}
	if got := string(rec.Params); got != `{"n":1.50,"text":"<hello> & bye"}` {
		t.Fatalf("params stored as %s: numbers keep their text, nothing HTML-escaped", got)
	}
	trail, err := db.AuditTrail(t.Context(), tid, res.ActionID)
	if err != nil {
		t.Fatal(err)
	}
	if len(trail) != 1 || trail[0].Event != store.EventActionExecuted || !strings.Contains(string(trail[0].Metadata), `"key_id":"`+keyID+`"`) {
		t.Fatalf("trail %+v", trail)
	}
}

// TestActionIDsGrowWithTime: an action ID is "act_", the clock's Unix
// milliseconds in 12 hex digits, and 12 random ones; IDs of one
// millisecond differ, and a later millisecond's sort after.
func TestActionIDsGrowWithTime(t *testing.T) {
	e := newEnv(t)
	tid, keyID := e.tenant(store.TierPro)
	sub := lifecycle.Submission{TenantID: tid, KeyID: keyID, Name: "slack.send_message", AgentID: "bot-1"}
	var ids []string
	for i := range 3 {
		if i == 2 {
			e.clk.Advance(time.Millisecond)
		}
		ids = append(ids, e.submit(sub, pdp.StatusAllowed).ActionID)
	}
	for i, id := range ids {
		if len(id) != 28 || !strings.HasPrefix(id, "act_") || strings.Trim(id[4:], "0123456789abcdef") != "" {
			t.Fatalf("ID %q: want act_ and 24 hex digits", id)
		}
		at := e.clk.Now()
		if i < 2 {
			at = at.Add(-time.Millisecond)
		}
		if want := fmt.Sprintf("%012x", at.UnixMilli()); id[4:16] != want {
			t.Errorf("ID %q: time part %s, want %s", id, id[4:16], want)
		}
	}
	if ids[0] == ids[1] || ids[2] <= ids[0] || ids[2] <= ids[1] {
		t.Errorf("IDs %q: want distinct, the later millisecond's last", ids)
	}
}

func TestSubmitValidation(t *testing.T) {
	e := newEnv(t)
	tid, _ := e.tenant(store.TierPro)
	cases := []struct {
		name   string
		sub    lifecycle.Submission
		fields []string
	}{
		{"empty action", lifecycle.Submission{}, []string{"action"}},
		{"long action", lifecycle.Submission{Name: strings.Repeat("é", lifecycle.MaxActionLen+1)}, []string{"action"}},
		{"NUL in action", lifecycle.Submission{Name: "a\x00b"}, []string{"action"}},
		{"bad step type", lifecycle.Submission{Name: "a.b", StepType: "dance"}, []string{"step_type"}},
		{"bad agent", lifecycle.Submission{Name: "a.b", AgentID: strings.Repeat("x", 1000)}, []string{"agent_id"}},
		// A connector path with %FF decodes to invalid UTF-8: refused
		// before deciding on every driver, not stored raw by one and
		// refused after deciding by another.
		{"invalid UTF-8 in a connector path", lifecycle.Submission{Name: "github/repos/\xff/merge"}, []string{"action", "operation"}},
		{"invalid UTF-8 in raw params", lifecycle.Submission{Name: "a.b", Params: map[string]any{"x": "y"},
			ParamsJSON: []byte("{\"x\":\"\xff\"}")}, []string{"params"}},
		{"decoding problems come first, all at once", lifecycle.Submission{Name: "a.b", StepType: "dance",
			Problems: pdp.ValidationErrors{{Field: "agent_id", Reason: "must be a string"}}}, []string{"agent_id", "step_type"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.sub.TenantID = tid
			_, err := e.svc.Submit(t.Context(), tc.sub)
			var ves pdp.ValidationErrors
			if !errors.As(err, &ves) {
				var ve *pdp.ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("err %v, want validation errors", err)
				}
				ves = pdp.ValidationErrors{ve}
			}
			var got []string
			for _, ve := range ves {
				got = append(got, ve.Field)
			}
			if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
				t.Fatalf("fields %v, want %v (%v)", got, tc.fields, err)
			}
		})
	}
	_, err := e.svc.Submit(t.Context(), lifecycle.Submission{TenantID: tid, Name: "a.b",
		Params: map[string]any{"blob": strings.Repeat("x", lifecycle.MaxParamsBytes)}})
	var tooLarge *lifecycle.ParamsTooLargeError
	if !errors.As(err, &tooLarge) {
		t.Fatalf("oversized params: %v", err)
	}
	if _, n, err := e.db.ListActions(t.Context(), tid, store.ActionQuery{}); err != nil || n != 0 {
		t.Fatalf("refused actions were recorded: %d, %v", n, err)
	}
}

func TestSubmitFailsClosed(t *testing.T) {
	e := newEnv(t)
	tid, _ := e.tenant(store.TierPro)
	e.eng.RemoveTenant(tid) // every evaluation of the tenant now fails
	_, err := e.svc.Submit(t.Context(), lifecycle.Submission{TenantID: tid, Name: "db.read"})
	var ue *lifecycle.UnavailableError
	if !errors.As(err, &ue) || !errors.Is(err, pdp.ErrEvaluationFailed) {
		t.Fatalf("err %v, want *UnavailableError wrapping ErrEvaluationFailed", err)
	}
	rec, err := e.db.GetAction(t.Context(), tid, ue.ActionID)
	if err != nil {
		t.Fatal(err)
	}
	d := lifecycle.ReadDecision(rec)
	if rec.Status != pdp.StatusBlocked || d.Reason == nil || *d.Reason != lifecycle.ReasonUnavailable || rec.TraceID != ue.TraceID {
		t.Fatalf("failed evaluation recorded as %+v / %+v", rec, d)
	}
	x, err := e.svc.Explain(t.Context(), store.Tenant{ID: tid}, ue.ActionID)
	if err != nil || x.Summary != "Action 'db.read' was not allowed: policy evaluation was unavailable." {
		t.Fatalf("explain: %q, %v", x.Summary, err)
	}
}

func TestDecideSolo(t *testing.T) {
	e := newEnv(t)
	tid, keyID := e.tenant(store.TierFree) // solo mode
	id := e.held(tid, keyID, "bot")
	submitted := e.clk.Now()
	decide := func(raw *string, mut func(*lifecycle.DecisionRequest)) (lifecycle.DecisionResult, error) {
		req := lifecycle.DecisionRequest{TenantID: tid, ApprovalID: id, Decision: raw, KeyID: keyID}
		if mut != nil {
			mut(&req)
		}
		return e.svc.Decide(t.Context(), req)
	}
	// An approval at once is held until 5 s after submission, then
	// applied; without a decision it is an approval.
	res, err := decide(nil, func(r *lifecycle.DecisionRequest) { r.Reason = "ok\nfine" })
	if err != nil {
		t.Fatal(err)
	}
	if got := e.holds(); len(got) != 1 || got[0] != approval.SoloDelay {
		t.Fatalf("held for %v, want [5s]", got)
	}
	if res.Status != pdp.StatusApproved || res.ApproverID != keyID || res.Vote || res.DecidedAt == nil || !res.DecidedAt.Equal(submitted.Add(approval.SoloDelay)) {
		t.Fatalf("result %+v", res)
	}
	var ade *store.AlreadyDecidedError
	if _, err := decide(ptr("deny"), nil); !errors.As(err, &ade) || ade.Status != pdp.StatusApproved {
		t.Fatalf("second decision: %v", err)
	}

	// A deny applies at once, unheld.
	denied := e.held(tid, keyID, "bot")
	res, err = e.svc.Decide(t.Context(), lifecycle.DecisionRequest{TenantID: tid, ApprovalID: denied, Decision: ptr("deny"), KeyID: keyID})
	if err != nil || res.Status != pdp.StatusDenied || len(e.holds()) != 1 {
		t.Fatalf("deny at once: %+v, %v (holds %v)", res, err, e.holds())
	}

	// A caller that gives up while held applies nothing.
	gaveUp := e.held(tid, keyID, "bot")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := e.svc.Decide(ctx, lifecycle.DecisionRequest{TenantID: tid, ApprovalID: gaveUp, Decision: ptr("approve"), KeyID: keyID}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled while held: %v", err)
	}
	if rec, err := e.svc.Action(t.Context(), tid, gaveUp); err != nil || rec.Status != pdp.StatusPendingReview {
		t.Fatalf("after a cancelled decision: %s, %v", rec.Status, err)
	}

	// A destructive action needs the confirmation, in solo mode only.
	del := e.submit(lifecycle.Submission{TenantID: tid, Name: "stripe.payment_delete", Params: map[string]any{"amount": json.Number("50000")}},
		pdp.StatusPendingReview).ActionID
	e.clk.Advance(approval.SoloDelay)
	_, err = e.svc.Decide(t.Context(), lifecycle.DecisionRequest{TenantID: tid, ApprovalID: del, Decision: ptr("approve")})
	var ce *lifecycle.ConfirmationError
	if !errors.As(err, &ce) || !errors.Is(err, approval.ErrConfirmationRequired) || ce.Action != "stripe.payment_delete" {
		t.Fatalf("destructive without confirmation: %v", err)
	}
	res, err = e.svc.Decide(t.Context(), lifecycle.DecisionRequest{TenantID: tid, ApprovalID: del, Decision: ptr("approve"), Confirmation: approval.Confirmation})
	if err != nil || res.ApproverID != "tenant:"+tid {
		t.Fatalf("with confirmation: %+v, %v", res, err)
	}
}

func TestDecideTeamRecognizesTheSubmitter(t *testing.T) {
	e := newEnv(t)
	tid, owner := e.tenantIn(store.TierPro, approval.Team)
	submitter := e.key(owner, registry.NewKey{Name: "alice", Role: pdp.RoleMember})
	alsoAlice := e.key(owner, registry.NewKey{Name: "alice", Role: pdp.RoleMember}) // the same person's second key
	other := e.key(owner, registry.NewKey{Name: "bob", Role: pdp.RoleMember})
	id := e.submit(lifecycle.Submission{TenantID: tid, KeyID: submitter.ID, Key: &submitter, Name: "stripe.payment", AgentID: "bot",
		Params: map[string]any{"amount": json.Number("50000")}}, pdp.StatusPendingReview).ActionID
	decide := func(k store.APIKey, decision, label string) (lifecycle.DecisionResult, error) {
		return e.svc.Decide(t.Context(), lifecycle.DecisionRequest{TenantID: tid, ApprovalID: id, Decision: ptr(decision), KeyID: k.ID, Decider: k, ApproverID: label, Reason: "no", Confidential: true})
	}
	var tooEarly *approval.TooEarlyError
	for _, k := range []store.APIKey{submitter, alsoAlice} {
		// Whatever approver_id the body names, the submitting identity
		// waits 10 minutes to approve.
		if _, err := decide(k, "approve", "someone-else"); !errors.As(err, &tooEarly) || !tooEarly.Submitter {
			t.Fatalf("submitter's key %s: %v, want too early as submitter", k.ID, err)
		}
	}
	res, err := decide(other, "deny", "Bob B.")
	if err != nil || res.Status != pdp.StatusDenied || res.ApproverID != "bob" || res.Label != "Bob B." {
		t.Fatalf("other key: %+v, %v", res, err)
	}
	x, err := e.svc.Explain(t.Context(), mustTenant(t, e, tid), id)
	if err != nil {
		t.Fatal(err)
	}
	last := x.Trail[len(x.Trail)-1]
	if x.Review == nil || x.Review.Mode != approval.Team || last.Event != store.EventActionDenied ||
		strings.Contains(string(last.Metadata), `"reason"`) || !strings.Contains(string(last.Metadata), `"confidential":true`) {
		t.Fatalf("explain %+v, last entry %s", x.Review, last.Metadata)
	}
	if !strings.HasSuffix(x.Summary, "It was denied by 'bob'.") {
		t.Fatalf("summary %q", x.Summary)
	}
	d, _, err := e.svc.WhoDecided(t.Context(), tid, id)
	if err != nil || d == nil || d.ApproverID != "bob" || d.Role != "member" || d.KeyID != other.ID || d.Label != "Bob B." {
		t.Fatalf("who decided: %+v, %v", d, err)
	}

	// The submitter denies at once.
	id2 := e.submit(lifecycle.Submission{TenantID: tid, KeyID: submitter.ID, Key: &submitter, Name: "stripe.payment",
		Params: map[string]any{"amount": json.Number("50000")}}, pdp.StatusPendingReview).ActionID
	res, err = e.svc.Decide(t.Context(), lifecycle.DecisionRequest{TenantID: tid, ApprovalID: id2, Decision: ptr("deny"), KeyID: submitter.ID, Decider: submitter})
	if err != nil || res.Status != pdp.StatusDenied {
		t.Fatalf("the submitter's deny: %+v, %v", res, err)
	}
}

func TestDecideAgentKeyNeverDecidesItsAgent(t *testing.T) {
	e := newEnv(t)
	tid, owner := e.tenantIn(store.TierFree, approval.Solo)
	bot := e.key(owner, registry.NewKey{Name: "payer-bot", Role: pdp.RoleMember, AgentID: "payer-bot",
		Scopes: []pdp.KeyScope{pdp.ScopeActionsSubmit, pdp.ScopeApprovalsDecide}})
	// The bound key submits as its agent, whatever it leaves out.
	res := e.submit(lifecycle.Submission{TenantID: tid, KeyID: bot.ID, Key: &bot, Name: "stripe.payment",
		Params: map[string]any{"amount": json.Number("50000")}}, pdp.StatusPendingReview)
	if res.AgentID != "payer-bot" {
		t.Fatalf("agent of a bound key's action: %q", res.AgentID)
	}
	e.clk.Advance(time.Hour)
	var ne *approval.NotEligibleError
	_, err := e.svc.Decide(t.Context(), lifecycle.DecisionRequest{TenantID: tid, ApprovalID: res.ActionID, KeyID: bot.ID, Decider: bot, ApproverID: "alice"})
	if !errors.As(err, &ne) {
		t.Fatalf("the agent's key approving its own action: %v", err)
	}
	// Another agent, a step type, a tenant requiring agent keys.
	var ide *lifecycle.IdentityError
	_, err = e.svc.Submit(t.Context(), lifecycle.Submission{TenantID: tid, Key: &bot, Name: "db.read", AgentID: "other-bot"})
	if !errors.As(err, &ide) || ide.Field != "agent_id" {
		t.Fatalf("another agent: %v", err)
	}
	limited := e.key(owner, registry.NewKey{Name: "thinker", AgentID: "thinker", StepTypes: []string{"action"}})
	_, err = e.svc.Submit(t.Context(), lifecycle.Submission{TenantID: tid, Key: &limited, Name: "db.read", StepType: "thought"})
	if !errors.As(err, &ide) || ide.Field != "step_type" {
		t.Fatalf("a step type the key may not use: %v", err)
	}
	_, err = e.svc.Submit(t.Context(), lifecycle.Submission{TenantID: tid, Key: &owner, Name: "db.read", RequireAgentKeys: true})
	if !errors.As(err, &ide) || ide.Field != "agent_id" {
		t.Fatalf("an unbound key where agent keys are required: %v", err)
	}
}

func mustTenant(t *testing.T, e *env, id string) store.Tenant {
	t.Helper()
	tn, err := e.reg.Tenant(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

func TestDecideEnterpriseCountsVotes(t *testing.T) {
	e := newEnv(t)
	tid, owner := e.tenantIn(store.TierEnterprise, approval.Enterprise)
	alice := e.key(owner, registry.NewKey{Name: "alice", Role: pdp.RoleAdmin})
	id := e.held(tid, owner.ID, "bot")
	vote := func(k store.APIKey, decision, label string) (lifecycle.DecisionResult, error) {
		return e.svc.Decide(t.Context(), lifecycle.DecisionRequest{TenantID: tid, ApprovalID: id, Decision: ptr(decision), ApproverID: label, KeyID: k.ID, Decider: k})
	}
	res, err := vote(alice, "approve", "alice")
	if err != nil || !res.Vote || res.Status != pdp.StatusPendingReview || res.ApprovalsReceived != 1 || res.MinApprovals != approval.DefaultMinApprovals {
		t.Fatalf("first vote: %+v, %v", res, err)
	}
	// The same key naming other approvers is still alice: the same vote,
	// answered with the current state and nothing written.
	for _, label := range []string{"alice", "bob", "carol"} {
		res, err = vote(alice, "approve", label)
		if err != nil || !res.Repeated || res.Status != pdp.StatusPendingReview || res.ApprovalsReceived != 1 {
			t.Fatalf("alice again as %q: %+v, %v", label, res, err)
		}
	}
	if _, err := vote(alice, "deny", "alice"); !errors.Is(err, store.ErrAlreadyVoted) {
		t.Fatalf("alice changing her vote: %v", err)
	}
	votes, err := e.db.ApprovalVotes(t.Context(), tid, id)
	if err != nil || len(votes) != 1 || votes[0].ApproverID != "alice" || votes[0].Role != "admin" {
		t.Fatalf("votes: %+v, %v", votes, err)
	}
	if res, err = vote(owner, "approve", ""); err != nil {
		t.Fatal(err)
	}
	if res.Status != pdp.StatusApproved || res.ApprovalsReceived != approval.DefaultMinApprovals {
		t.Fatalf("last vote: %+v", res)
	}
	x, err := e.svc.Explain(t.Context(), mustTenant(t, e, tid), id)
	if err != nil || x.Review == nil || len(x.Review.Votes) != approval.DefaultMinApprovals || x.Review.Counted != approval.DefaultMinApprovals {
		t.Fatalf("explain: %+v, %v", x.Review, err)
	}
}

func TestDecideErrors(t *testing.T) {
	e := newEnv(t)
	tid, keyID := e.tenant(store.TierFree)
	allowed := e.submit(lifecycle.Submission{TenantID: tid, Name: "db.read"}, pdp.StatusAllowed).ActionID
	held := e.held(tid, keyID, "")
	otherTenant, _ := e.tenant(store.TierFree)
	var invalid *lifecycle.InvalidDecisionError
	cases := []struct {
		name string
		req  lifecycle.DecisionRequest
		ok   func(error) bool
	}{
		{"an empty decision", lifecycle.DecisionRequest{TenantID: tid, ApprovalID: held, Decision: ptr("")}, func(err error) bool { return errors.As(err, &invalid) && *invalid.Raw == "" }},
		{"invalid decision before a missing approval", lifecycle.DecisionRequest{TenantID: tid, ApprovalID: "act_nope", Decision: ptr("maybe")},
			func(err error) bool { return errors.As(err, &invalid) }},
		{"field problems before a missing approval", lifecycle.DecisionRequest{TenantID: tid, ApprovalID: "act_nope", Decision: ptr("deny"), ApproverRole: "a\x01"},
			func(err error) bool {
				var ve *pdp.ValidationError
				return errors.As(err, &ve) && ve.Field == "approver_role"
			}},
		{"missing", lifecycle.DecisionRequest{TenantID: tid, ApprovalID: "act_nope", Decision: ptr("deny")},
			func(err error) bool { return errors.Is(err, lifecycle.ErrApprovalNotFound) }},
		{"never held", lifecycle.DecisionRequest{TenantID: tid, ApprovalID: allowed, Decision: ptr("deny")},
			func(err error) bool { return errors.Is(err, lifecycle.ErrApprovalNotFound) }},
		{"another tenant's", lifecycle.DecisionRequest{TenantID: otherTenant, ApprovalID: held, Decision: ptr("deny")},
			func(err error) bool { return errors.Is(err, lifecycle.ErrApprovalNotFound) }},
		{"too long an id", lifecycle.DecisionRequest{TenantID: tid, ApprovalID: strings.Repeat("a", 65), Decision: ptr("deny")},
			func(err error) bool { return errors.Is(err, lifecycle.ErrApprovalNotFound) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.svc.Decide(t.Context(), tc.req); !tc.ok(err) {
				t.Fatalf("err %v", err)
			}
		})
	}
	if _, err := e.svc.Action(t.Context(), otherTenant, held); !errors.Is(err, lifecycle.ErrActionNotFound) {
		t.Fatalf("another tenant's action: %v", err)
	}
}

// TestConcurrentSubmitsKeepTheirOwnBytes: a Result and its record own
// their bytes. Submit writes params, the policy_result and the audit
// metadata into a pooled scratch buffer and keeps one copy of them; were
// any of the three left in the buffer, a later submission reusing it
// would rewrite the earlier one's, which this checks only after every
// submission returned.
func TestConcurrentSubmitsKeepTheirOwnBytes(t *testing.T) {
	e := newEnv(t)
	tid, keyID := e.tenant(store.TierPro)
	const workers, each = 6, 15
	type sent struct {
		name, text string
		res        lifecycle.Result
	}
	results := make([][]sent, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				s := sent{name: fmt.Sprintf("conn%d.op_%d", w, i), text: strings.Repeat(string(rune('a'+w)), 1+(i*131+w*577)%3900)}
				res, err := e.svc.Submit(t.Context(), lifecycle.Submission{TenantID: tid, KeyID: keyID, Name: s.name, AgentID: "bot-1",
					Params: map[string]any{"text": s.text, "i": json.Number(fmt.Sprint(i))}})
				if err != nil {
					t.Errorf("Submit(%s): %v", s.name, err)
					return
				}
				s.res = res
				results[w] = append(results[w], s)
			}
		})
	}
	wg.Wait()
	for _, rs := range results {
		for _, s := range rs {
			var d struct {
				ActionID string `json:"action_id"`
			}
			if err := json.Unmarshal(s.res.DecisionJSON, &d); err != nil || d.ActionID != s.res.ActionID {
				t.Fatalf("%s: DecisionJSON %.200s (%v)", s.name, s.res.DecisionJSON, err)
			}
			rec, err := e.db.GetAction(t.Context(), tid, s.res.ActionID)
			if err != nil {
				t.Fatal(err)
			}
			var p struct {
				Text string `json:"text"`
			}
			if err := json.Unmarshal(rec.Params, &p); err != nil || p.Text != s.text || rec.Action != s.name || string(rec.Decision) != string(s.res.DecisionJSON) {
				t.Fatalf("%s: record %+v", s.name, rec)
			}
			trail, err := e.db.AuditTrail(t.Context(), tid, s.res.ActionID)
			if err != nil || len(trail) != 1 || !strings.Contains(string(trail[0].Metadata), `"action":"`+s.name+`"`) {
				t.Fatalf("%s: trail %+v (%v)", s.name, trail, err)
			}
		}
	}
}

// TestSubmitDecidesOnTheParamsNotTheCallersText: a caller's ParamsJSON
// that is not Submit's own encoding (here with an escaped "1") is never
// the text the rules match, even for params decoded from JSON: the
// decision is the one of the params themselves, as without ParamsJSON.
func TestSubmitDecidesOnTheParamsNotTheCallersText(t *testing.T) {
	e := newEnv(t)
	tid, keyID := e.tenant(store.TierPro)
	params := func() map[string]any { return map[string]any{"note": "key AKIA1234567890ABCDEF"} }
	ref, err := e.svc.Submit(t.Context(), lifecycle.Submission{TenantID: tid, KeyID: keyID, Name: "crm.update", Params: params()})
	if err != nil {
		t.Fatal(err)
	}
	if len(ref.Decision.Violations) == 0 {
		t.Fatalf("the AWS key is not found: %+v (the test tests nothing)", ref.Decision)
	}
	for _, sub := range []lifecycle.Submission{
		{ParamsJSON: []byte(`{"note":"key AKIA\u0031234567890ABCDEF"}`), ParamsDecoded: true},
		{ParamsJSON: []byte(`{"note":"key AKIA1234567890ABCDEF"}`), ParamsEncoded: true, ParamsDecoded: true},
		{ParamsDecoded: true},
	} {
		sub.TenantID, sub.KeyID, sub.Name, sub.Params = tid, keyID, "crm.update", params()
		res, err := e.svc.Submit(t.Context(), sub)
		if err != nil {
			t.Fatal(err)
		}
		if res.Decision.Status != ref.Decision.Status || len(res.Decision.Violations) != len(ref.Decision.Violations) {
			t.Fatalf("ParamsJSON %s: %+v, want %+v", sub.ParamsJSON, res.Decision, ref.Decision)
		}
	}
}
