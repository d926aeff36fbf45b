package lifecycle_test

import (
	"encoding/json"
	"errors"
	"path/filepath"
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
	svc, err := lifecycle.New(lifecycle.Deps{Engine: eng, Store: db, Registry: reg, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, svc: svc, db: db, eng: eng, reg: reg, clk: clk, path: path}
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
	decide := func(raw string, mut func(*lifecycle.DecisionRequest)) (lifecycle.DecisionResult, error) {
		req := lifecycle.DecisionRequest{TenantID: tid, ApprovalID: id, Decision: ptr(raw), KeyID: keyID}
		if mut != nil {
			mut(&req)
		}
		return e.svc.Decide(t.Context(), req)
	}
	var tooEarly *approval.TooEarlyError
	if _, err := decide("approve", nil); !errors.As(err, &tooEarly) || tooEarly.RetryAfterSeconds() != 5 {
		t.Fatalf("at once: %v, want too early by 5 s", err)
	}
	e.clk.Advance(approval.SoloDelay)
	res, err := decide(" Approved ", func(r *lifecycle.DecisionRequest) { r.Reason = "ok\nfine" })
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != pdp.StatusApproved || res.ApproverID != keyID || res.Vote || res.DecidedAt == nil || !res.DecidedAt.Equal(e.clk.Now()) {
		t.Fatalf("result %+v", res)
	}
	var ade *store.AlreadyDecidedError
	if _, err := decide("deny", nil); !errors.As(err, &ade) || ade.Status != pdp.StatusApproved {
		t.Fatalf("second decision: %v", err)
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
	tid, submitter := e.tenant(store.TierPro) // team mode
	other, _, err := e.reg.CreateKey(t.Context(), tid)
	if err != nil {
		t.Fatal(err)
	}
	id := e.held(tid, submitter, "bot")
	var tooEarly *approval.TooEarlyError
	_, err = e.svc.Decide(t.Context(), lifecycle.DecisionRequest{TenantID: tid, ApprovalID: id, Decision: ptr("approve"), KeyID: submitter})
	if !errors.As(err, &tooEarly) || !tooEarly.Submitter {
		t.Fatalf("submitter's key: %v, want too early as submitter", err)
	}
	_, err = e.svc.Decide(t.Context(), lifecycle.DecisionRequest{TenantID: tid, ApprovalID: id, Decision: ptr("approve"), KeyID: other.ID, ApproverID: "bot"})
	if !errors.As(err, &tooEarly) {
		t.Fatalf("naming the submitting agent: %v, want too early", err)
	}
	res, err := e.svc.Decide(t.Context(), lifecycle.DecisionRequest{TenantID: tid, ApprovalID: id, Decision: ptr("deny"), KeyID: other.ID, Reason: "no", Confidential: true})
	if err != nil || res.Status != pdp.StatusDenied || res.ApproverID != other.ID {
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
	if !strings.HasSuffix(x.Summary, "It was denied by '"+other.ID+"'.") {
		t.Fatalf("summary %q", x.Summary)
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
	tid, keyID := e.tenant(store.TierEnterprise)
	id := e.held(tid, keyID, "bot")
	vote := func(approver string) (lifecycle.DecisionResult, error) {
		return e.svc.Decide(t.Context(), lifecycle.DecisionRequest{TenantID: tid, ApprovalID: id, Decision: ptr("approve"), ApproverID: approver})
	}
	res, err := vote("alice")
	if err != nil || !res.Vote || res.Status != pdp.StatusPendingReview || res.ApprovalsReceived != 1 || res.MinApprovals != approval.DefaultMinApprovals {
		t.Fatalf("first vote: %+v, %v", res, err)
	}
	if _, err := vote("alice"); !errors.Is(err, store.ErrAlreadyVoted) {
		t.Fatalf("second vote of alice: %v", err)
	}
	for i := 2; i <= approval.DefaultMinApprovals; i++ {
		if res, err = vote("approver-" + string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
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
		{"no decision", lifecycle.DecisionRequest{TenantID: tid, ApprovalID: held}, func(err error) bool { return errors.As(err, &invalid) && invalid.Raw == nil }},
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
