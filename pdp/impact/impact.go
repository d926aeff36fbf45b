// Package impact answers "what would this policy change have done to the
// traffic we recorded?": it replays a tenant's recorded actions through
// its current policy set and through the set with one change applied — a
// policy created or replaced, one disabled, or one rolled back — with the
// real engine, and counts the actions whose status changes. It records
// nothing: no action, audit entry, decision log or decision metric.
//
// Each side is compiled once per analysis (engine.PrepareDraft). The
// replay runs within a time budget (a result cut short says so), one
// analysis per tenant at a time, a few per server, and each tenant may
// start only so many per minute.
package impact

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
	"github.com/gatehouse-pdp/gatehouse/pdp/ratelimit"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// Bounds of a request.
const (
	DefaultLimit   = 10_000
	MaxLimit       = 100_000
	DefaultWindow  = 7 * 24 * time.Hour
	DefaultBudget  = 10 * time.Second
	MaxBudget      = 30 * time.Second
	MaxExamples    = 20
	pageSize       = 1000
	chunkSize      = 64
	maxServerRuns  = 2
	overloadTries  = 200
	overloadPause  = 2 * time.Millisecond
	defaultWorkers = 4
)

// DefaultRate is how often a tenant may start an analysis: bursts of 3,
// then one every 20 seconds.
var DefaultRate = ratelimit.Limit{RequestsPerSecond: 1.0 / 20, Burst: 3}

// Errors of Run; classify them with errors.Is / errors.As.
var (
	// ErrTenantBusy: the tenant already has an analysis running.
	ErrTenantBusy = errors.New("an impact analysis of this tenant is already running")
	// ErrServerBusy: the server runs as many analyses as it may.
	ErrServerBusy = errors.New("this server runs as many impact analyses as it may")
	// ErrPolicyNotFound: the change names a policy (to disable or roll
	// back) that does not exist at that scope, or a version it lacks.
	ErrPolicyNotFound = fmt.Errorf("policy %w", pdp.ErrNotFound)
)

// RateLimitedError: the tenant started too many analyses lately.
type RateLimitedError struct{ Result ratelimit.Result }

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("too many impact analyses; retry in %s", e.Result.RetryAfter.Round(time.Second))
}

// Ref names a policy at one scope, and for a rollback its version.
type Ref struct {
	Name    string
	AgentID string
	Version int
}

// Change is the draft change: exactly one field is set.
type Change struct {
	// Policy is created or replaces its namesake at its scope; it must
	// have been validated as a write would (a disabled one removes it).
	Policy *pdp.Policy
	// Disable removes a policy from the set.
	Disable *Ref
	// Rollback puts an earlier version's content in its place.
	Rollback *Ref
}

// Request is one analysis.
type Request struct {
	TenantID     string
	Change       Change
	Since, Until time.Time     // [Since, Until) of created_at
	Limit        int           // the most recent Limit actions of the window
	Budget       time.Duration // 0: DefaultBudget
}

// Store is what an analysis reads.
type Store interface {
	store.ActionWindows
	TenantPolicies(ctx context.Context, tenantID string) (pdp.TenantPolicies, error)
	GetPolicy(ctx context.Context, key store.PolicyKey) (pdp.Policy, error)
	PolicyVersion(ctx context.Context, key store.PolicyKey, version int) (store.PolicyVersion, error)
}

// Result is what an analysis found.
type Result struct {
	Evaluated   int            `json:"evaluated"`
	Changed     int            `json:"changed"`
	Failed      int            `json:"failed"`
	Transitions map[string]int `json:"transitions"`
	ByAgent     []AgentCount   `json:"by_agent"`
	ByPolicy    []PolicyCount  `json:"by_policy"`
	Examples    []Example      `json:"examples"`
	// Partial: the time budget ran out before every action in the window
	// (up to the limit) was replayed; the counts are of those replayed.
	Partial bool `json:"partial"`
	// Truncated: the window holds more actions than the limit; the most
	// recent ones were replayed.
	Truncated bool   `json:"truncated"`
	Window    Window `json:"window"`
	// CompileMS is the time to compile both policy sets, FirstResultMS to
	// the first action decided both ways (compiles included), DurationMS
	// the whole analysis.
	CompileMS     float64 `json:"compile_ms"`
	FirstResultMS float64 `json:"first_result_ms"`
	DurationMS    float64 `json:"duration_ms"`
}

// Window is the replayed window as applied.
type Window struct {
	Since    time.Time `json:"since"`
	Until    time.Time `json:"until"`
	Limit    int       `json:"limit"`
	BudgetMS int64     `json:"time_budget_ms"`
}

// AgentCount is the changes of one agent ("" for actions without one).
type AgentCount struct {
	AgentID     string         `json:"agent_id"`
	Evaluated   int            `json:"evaluated"`
	Changed     int            `json:"changed"`
	Transitions map[string]int `json:"transitions"`
}

// PolicyCount is the changed actions a policy decides: the policy that
// triggers after the change, or before it when none does after.
type PolicyCount struct {
	Policy      string         `json:"policy"`
	Changed     int            `json:"changed"`
	Transitions map[string]int `json:"transitions"`
}

// Example is one changed action.
type Example struct {
	ActionID  string     `json:"action_id"`
	AgentID   string     `json:"agent_id"`
	Action    string     `json:"action"`
	CreatedAt time.Time  `json:"created_at"`
	Before    pdp.Status `json:"before"`
	After     pdp.Status `json:"after"`
	// Reason is the decision's reason after the change, or before it when
	// the action is allowed after.
	Reason string `json:"reason"`
}

// Transition names a status change as the result counts it.
func Transition(before, after pdp.Status) string { return string(before) + "→" + string(after) }

// Service runs analyses. It is safe for concurrent use.
type Service struct {
	st      Store
	eng     *engine.Engine
	now     func() time.Time
	rate    ratelimit.Limit
	limiter *ratelimit.Limiter
	workers int
	server  chan struct{}

	mu      sync.Mutex
	running map[string]bool
}

// Option configures a Service.
type Option func(*Service)

// WithClock sets the clock budgets and windows are measured with.
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithRate sets how often a tenant may start an analysis (an unlimited
// Limit turns the check off).
func WithRate(l ratelimit.Limit) Option { return func(s *Service) { s.rate = l } }

// WithWorkers sets how many actions are decided at once (default
// min(GOMAXPROCS, 4)); each holds one of the engine's evaluation slots.
func WithWorkers(n int) Option { return func(s *Service) { s.workers = max(1, n) } }

// New returns a Service.
func New(st Store, eng *engine.Engine, opts ...Option) *Service {
	s := &Service{
		st: st, eng: eng, now: time.Now, rate: DefaultRate, limiter: ratelimit.New(0),
		workers: min(runtime.GOMAXPROCS(0), defaultWorkers), server: make(chan struct{}, maxServerRuns),
		running: map[string]bool{},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Normalize fills in a request's defaults and checks its bounds.
func (s *Service) Normalize(req *Request) error {
	var es pdp.ValidationErrors
	if req.Until.IsZero() {
		req.Until = s.now()
	}
	if req.Since.IsZero() {
		req.Since = req.Until.Add(-DefaultWindow)
	}
	req.Since, req.Until = req.Since.UTC(), req.Until.UTC()
	if !req.Since.Before(req.Until) {
		es = append(es, &pdp.ValidationError{Field: "since", Reason: "must be before until"})
	}
	switch {
	case req.Limit == 0:
		req.Limit = DefaultLimit
	case req.Limit < 0 || req.Limit > MaxLimit:
		es = append(es, &pdp.ValidationError{Field: "limit", Reason: fmt.Sprintf("must be between 1 and %d", MaxLimit)})
	}
	switch {
	case req.Budget == 0:
		req.Budget = DefaultBudget
	case req.Budget < time.Millisecond || req.Budget > MaxBudget:
		es = append(es, &pdp.ValidationError{Field: "time_budget_ms", Reason: fmt.Sprintf("must be between 1 and %d", MaxBudget.Milliseconds())})
	}
	n := 0
	for _, set := range []bool{req.Change.Policy != nil, req.Change.Disable != nil, req.Change.Rollback != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		es = append(es, &pdp.ValidationError{Field: "policy", Reason: "exactly one of policy, disable and rollback is required"})
	}
	return es.Err()
}

// admit takes the tenant's rate token and its running slot and one of
// the server's; release gives the slots back.
func (s *Service) admit(tenantID string) (release func(), err error) {
	if !s.rate.Unlimited() {
		if r := s.limiter.Allow(tenantID, s.rate, s.now()); !r.Allowed {
			return nil, &RateLimitedError{Result: r}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running[tenantID] {
		return nil, ErrTenantBusy
	}
	select {
	case s.server <- struct{}{}:
	default:
		return nil, fmt.Errorf("%w (%d)", ErrServerBusy, maxServerRuns)
	}
	s.running[tenantID] = true
	return func() {
		s.mu.Lock()
		delete(s.running, tenantID)
		s.mu.Unlock()
		<-s.server
	}, nil
}

// Sets returns the tenant's current policy set and the set with the
// change applied.
func (s *Service) Sets(ctx context.Context, req Request) (before, after pdp.TenantPolicies, err error) {
	before, err = s.st.TenantPolicies(ctx, req.TenantID)
	if err != nil {
		return before, after, fmt.Errorf("read policies: %w", err)
	}
	after = before
	after.Policies = slices.Clone(before.Policies)
	put := func(p pdp.Policy) {
		after.Policies = slices.DeleteFunc(after.Policies, func(q pdp.Policy) bool { return q.AgentID == p.AgentID && q.Name == p.Name })
		if p.Enabled {
			after.Policies = append(after.Policies, p)
		}
	}
	c := req.Change
	switch {
	case c.Policy != nil:
		put(*c.Policy)
	case c.Disable != nil:
		p, err := s.st.GetPolicy(ctx, store.PolicyKey{TenantID: req.TenantID, AgentID: c.Disable.AgentID, Name: c.Disable.Name})
		if errors.Is(err, store.ErrNotFound) {
			return before, after, fmt.Errorf("%w: %q", ErrPolicyNotFound, c.Disable.Name)
		}
		if err != nil {
			return before, after, err
		}
		p.Enabled = false
		put(p)
	case c.Rollback != nil:
		v, err := s.st.PolicyVersion(ctx, store.PolicyKey{TenantID: req.TenantID, AgentID: c.Rollback.AgentID, Name: c.Rollback.Name}, c.Rollback.Version)
		if errors.Is(err, store.ErrNotFound) {
			return before, after, fmt.Errorf("%w: %q version %d", ErrPolicyNotFound, c.Rollback.Name, c.Rollback.Version)
		}
		if err != nil {
			return before, after, err
		}
		put(v.Policy)
	}
	return before, after, nil
}

// outcome is one action decided both ways.
type outcome struct {
	before, after *pdp.Decision
	failed        bool
}

// Run replays the request's window. req must have been Normalized.
func (s *Service) Run(ctx context.Context, req Request) (*Result, error) {
	release, err := s.admit(req.TenantID)
	if err != nil {
		return nil, err
	}
	defer release()
	start := s.now()
	deadline := start.Add(req.Budget)

	beforeSet, afterSet, err := s.Sets(ctx, req)
	if err != nil {
		return nil, err
	}
	before, err := s.eng.PrepareDraft(ctx, beforeSet)
	if err != nil {
		return nil, err
	}
	after, err := s.eng.PrepareDraft(ctx, afterSet)
	if err != nil {
		return nil, err
	}
	res := newResult(req)
	res.CompileMS = ms(s.now().Sub(start))
	agg := newAggregate(res)

	w := store.ActionWindow{Since: req.Since, Until: req.Until, Limit: min(pageSize, req.Limit)}
	for res.Evaluated+res.Failed < req.Limit && !res.Partial {
		w.Limit = min(pageSize, req.Limit-res.Evaluated-res.Failed)
		page, err := s.st.ActionsInWindow(ctx, req.TenantID, w)
		if err != nil {
			return nil, fmt.Errorf("read actions: %w", err)
		}
		if len(page) == 0 {
			break
		}
		w.After = &page[len(page)-1]
		for i := 0; i < len(page); {
			if !s.now().Before(deadline) {
				res.Partial = true
				break
			}
			// A first chunk as small as the workers, so the first result
			// comes soon after the compiles.
			size := chunkSize
			if res.Evaluated+res.Failed == 0 {
				size = s.workers
			}
			chunk := page[i:min(i+size, len(page))]
			i += len(chunk)
			outs, err := s.decide(ctx, req.TenantID, before, after, chunk)
			if err != nil {
				return nil, err
			}
			for j, o := range outs {
				agg.add(chunk[j], o)
			}
			if res.FirstResultMS == 0 && res.Evaluated > 0 {
				res.FirstResultMS = ms(s.now().Sub(start))
			}
		}
	}
	if !res.Partial && res.Evaluated+res.Failed == req.Limit {
		more, err := s.st.ActionsInWindow(ctx, req.TenantID, store.ActionWindow{Since: req.Since, Until: req.Until, After: w.After, Limit: 1})
		if err != nil {
			return nil, fmt.Errorf("read actions: %w", err)
		}
		res.Truncated = len(more) > 0
	}
	agg.finish()
	res.DurationMS = ms(s.now().Sub(start))
	return res, nil
}

// decide evaluates a chunk of actions both ways on the service's workers.
// Only the caller's cancellation aborts it.
func (s *Service) decide(ctx context.Context, tenantID string, before, after *engine.Draft, chunk []store.ActionRecord) ([]outcome, error) {
	outs := make([]outcome, len(chunk))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(s.workers, len(chunk)) {
		wg.Go(func() {
			for i := range next {
				outs[i] = decideOne(ctx, tenantID, before, after, chunk[i])
			}
		})
	}
	for i := range chunk {
		next <- i
	}
	close(next)
	wg.Wait()
	return outs, ctx.Err()
}

func decideOne(ctx context.Context, tenantID string, before, after *engine.Draft, r store.ActionRecord) outcome {
	a := pdp.Action{TenantID: tenantID, AgentID: r.AgentID, Name: r.Action, StepType: r.StepType}
	if a.StepType == "" {
		a.StepType = pdp.DefaultStepType
	}
	if len(r.Params) > 0 {
		if err := json.Unmarshal(r.Params, &a.Params); err != nil {
			return outcome{failed: true}
		}
	}
	if a.Params == nil {
		a.Params = map[string]any{}
	}
	b, err1 := evaluate(ctx, before, a)
	af, err2 := evaluate(ctx, after, a)
	if err1 != nil || err2 != nil {
		return outcome{failed: true}
	}
	return outcome{before: b, after: af}
}

// evaluate retries an evaluation refused for want of a free slot: live
// decisions take precedence over a replay, which waits its turn.
func evaluate(ctx context.Context, d *engine.Draft, a pdp.Action) (*pdp.Decision, error) {
	for try := 0; ; try++ {
		dec, err := d.Evaluate(ctx, a)
		if err == nil || !errors.Is(err, engine.ErrOverloaded) || try == overloadTries {
			return dec, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(overloadPause):
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func newResult(req Request) *Result {
	return &Result{
		Transitions: map[string]int{}, ByAgent: []AgentCount{}, ByPolicy: []PolicyCount{}, Examples: []Example{},
		Window: Window{Since: req.Since, Until: req.Until, Limit: req.Limit, BudgetMS: req.Budget.Milliseconds()},
	}
}

// Effective is the status a decision enforces: in a tenant in shadow
// mode, the one its policies would enforce (shadow_status).
func Effective(d *pdp.Decision) pdp.Status {
	if d.ShadowStatus != "" {
		return d.ShadowStatus
	}
	return d.Status
}

type aggregate struct {
	res      *Result
	agents   map[string]*AgentCount
	policies map[string]*PolicyCount
}

func newAggregate(res *Result) *aggregate {
	return &aggregate{res: res, agents: map[string]*AgentCount{}, policies: map[string]*PolicyCount{}}
}

func (g *aggregate) add(r store.ActionRecord, o outcome) {
	if o.failed {
		g.res.Failed++
		return
	}
	g.res.Evaluated++
	ac := g.agents[r.AgentID]
	if ac == nil {
		ac = &AgentCount{AgentID: r.AgentID, Transitions: map[string]int{}}
		g.agents[r.AgentID] = ac
	}
	ac.Evaluated++
	b, a := Effective(o.before), Effective(o.after)
	if a == b {
		return
	}
	tr := Transition(b, a)
	g.res.Changed++
	g.res.Transitions[tr]++
	ac.Changed++
	ac.Transitions[tr]++
	decider := o.after
	if decider.TriggeredPolicy == nil {
		decider = o.before
	}
	name := ""
	if decider.TriggeredPolicy != nil {
		name = *decider.TriggeredPolicy
	}
	pc := g.policies[name]
	if pc == nil {
		pc = &PolicyCount{Policy: name, Transitions: map[string]int{}}
		g.policies[name] = pc
	}
	pc.Changed++
	pc.Transitions[tr]++
	if len(g.res.Examples) < MaxExamples {
		reason := ""
		if decider.Reason != nil {
			reason = *decider.Reason
		}
		g.res.Examples = append(g.res.Examples, Example{
			ActionID: r.ID, AgentID: r.AgentID, Action: r.Action, CreatedAt: r.CreatedAt, Before: b, After: a, Reason: reason,
		})
	}
}

// finish orders the groups: most changed first, then by name.
func (g *aggregate) finish() {
	for _, a := range g.agents {
		g.res.ByAgent = append(g.res.ByAgent, *a)
	}
	slices.SortFunc(g.res.ByAgent, func(x, y AgentCount) int {
		if x.Changed != y.Changed {
			return y.Changed - x.Changed
		}
		return strings.Compare(x.AgentID, y.AgentID)
	})
	for _, p := range g.policies {
		g.res.ByPolicy = append(g.res.ByPolicy, *p)
	}
	slices.SortFunc(g.res.ByPolicy, func(x, y PolicyCount) int {
		if x.Changed != y.Changed {
			return y.Changed - x.Changed
		}
		return strings.Compare(x.Policy, y.Policy)
	})
}
