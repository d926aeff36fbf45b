package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// ActionMix describes a generated population of actions.
type ActionMix struct {
	TenantID     string
	N            int       // how many actions
	Since, Until time.Time // CreatedAt spread evenly over [Since, Until), in order
	Agents       int       // agents agent-000 …; one action in ten has no agent
	Policies     int       // custom policies P00 …, beside the two built-ins
	Seed         uint64
	IDPrefix     string // action IDs are IDPrefix + a 24-digit hex counter; default "act_"
}

// DefaultMix is N actions over the 30 days before until, 50 agents, 12
// custom policies: the dashboard benchmark's population.
func DefaultMix(tenantID string, n int, until time.Time) ActionMix {
	return ActionMix{TenantID: tenantID, N: n, Since: until.Add(-30 * 24 * time.Hour), Until: until, Agents: 50, Policies: 12, Seed: 1}
}

// outcome is one row of the generated status mix, in percent.
var outcomes = []struct {
	pct      int
	status   pdp.Status
	hit      bool
	severity []pdp.Severity
}{
	{70, pdp.StatusAllowed, false, nil},
	{8, pdp.StatusAllowed, true, []pdp.Severity{pdp.SeverityMedium, pdp.SeverityLow}},
	{10, pdp.StatusBlocked, true, []pdp.Severity{pdp.SeverityCritical}},
	{4, pdp.StatusPendingReview, true, []pdp.Severity{pdp.SeverityHigh}},
	{5, pdp.StatusApproved, true, []pdp.Severity{pdp.SeverityHigh}},
	{3, pdp.StatusDenied, true, []pdp.Severity{pdp.SeverityHigh}},
}

var genActions = []string{"slack.send_message", "github.repos.delete", "stripe.payment", "http.get", "crm.export", "email.send"}

// GenerateActions yields m.N action records in CreatedAt order,
// deterministic for m.Seed: 70% allowed without hits, 8% allowed with warn
// hits, 10% blocked, 4% pending_review, 5% approved and 3% denied, each
// with a policy_result like the API's, small params, and the flat fields
// the dashboard reads. Load them with store.BulkActions; the API and load
// tools share it so they measure the same data.
func GenerateActions(m ActionMix) iter.Seq[store.ActionRecord] {
	prefix := m.IDPrefix
	if prefix == "" {
		prefix = "act_"
	}
	return func(yield func(store.ActionRecord) bool) {
		r := rand.New(rand.NewPCG(m.Seed, 0x9e3779b97f4a7c15))
		step := m.Until.Sub(m.Since) / time.Duration(max(m.N, 1))
		for i := range m.N {
			at := m.Since.Add(time.Duration(i)*step + time.Duration(r.Int64N(int64(max(step, 1)))))
			a := store.ActionRecord{
				ID:        fmt.Sprintf("%s%024x", prefix, i),
				TenantID:  m.TenantID,
				Action:    genActions[r.IntN(len(genActions))],
				StepType:  pdp.DefaultStepType,
				Params:    json.RawMessage(fmt.Sprintf(`{"amount":%d,"channel":"#ops-%d","note":"generated"}`, r.IntN(50000), r.IntN(100))),
				TraceID:   fmt.Sprintf("%032x", r.Uint64()),
				CreatedAt: at,
			}
			a.Connector, a.Operation = a.Action[:indexDot(a.Action)], a.Action[indexDot(a.Action)+1:]
			if m.Agents > 0 && r.IntN(10) != 0 {
				a.AgentID = fmt.Sprintf("agent-%03d", r.IntN(m.Agents))
			}
			roll, o := r.IntN(100), outcomes[0]
			for _, x := range outcomes {
				if roll < x.pct {
					o = x
					break
				}
				roll -= x.pct
			}
			a.Status = o.status
			var reason *string
			if o.hit {
				a.Severity = o.severity[r.IntN(len(o.severity))]
				a.TriggeredPolicy = genPolicy(r, m.Policies)
				a.ViolationCount = 1 + r.IntN(3)
				a.RiskScore = float64(int(a.Severity.Weight()*85+0.5)) / 100
				s := fmt.Sprintf("%s matched %q", a.TriggeredPolicy, "generated")
				reason = &s
			}
			if a.Status == pdp.StatusApproved || a.Status == pdp.StatusDenied {
				d := at.Add(time.Duration(1+r.IntN(600)) * time.Second)
				a.DecidedAt, a.ApproverID, a.DecisionReason = &d, "approver-1", "generated decision"
			}
			a.Decision = genDecision(a, reason)
			if !yield(a) {
				return
			}
		}
	}
}

func indexDot(s string) int {
	for i := range len(s) {
		if s[i] == '.' {
			return i
		}
	}
	return 0
}

func genPolicy(r *rand.Rand, policies int) string {
	switch n := r.IntN(policies + 2); n {
	case policies:
		return "FinancialSafety"
	case policies + 1:
		return "DataExfiltration"
	default:
		return fmt.Sprintf("P%02d", n)
	}
}

// genDecision is the policy_result the API would have stored.
func genDecision(a store.ActionRecord, reason *string) json.RawMessage {
	d := pdp.Decision{
		ActionID: a.ID, Status: a.Status, RiskScore: a.RiskScore, EvaluationTimeMS: 0.42,
		PoliciesEvaluated: []string{"FinancialSafety", "DataExfiltration"},
		Reason:            reason, Violations: []pdp.Violation{}, Warnings: []pdp.Violation{},
	}
	if d.Status == pdp.StatusApproved || d.Status == pdp.StatusDenied {
		d.Status = pdp.StatusPendingReview // decisions are the evaluation's
	}
	if a.TriggeredPolicy != "" {
		d.TriggeredPolicy, d.Severity = &a.TriggeredPolicy, &a.Severity
	}
	for i := range a.ViolationCount {
		v := pdp.Violation{Policy: a.TriggeredPolicy, Scope: pdp.ScopeTenant, Rule: i, Severity: a.Severity,
			OnViolation: a.Severity.DefaultOutcome(), Reason: *reason, Match: "generated", Confidence: pdp.DefaultConfidence}
		d.Violations = append(d.Violations, v)
		if v.OnViolation == pdp.OutcomeWarn {
			d.Warnings = append(d.Warnings, v)
		}
	}
	b, _ := json.Marshal(d) // a Decision always encodes
	return b
}

// InsertConcurrently records recs (with empty audit events) from writers
// goroutines, each taking the next action not yet taken, as concurrent
// requests do, and returns once all are done. A failed insert is
// reported with tb.Error and ends its goroutine.
func InsertConcurrently(ctx context.Context, tb testing.TB, s store.AuditedWrites, recs []store.ActionRecord, writers int) {
	var (
		wg   sync.WaitGroup
		next atomic.Int64
	)
	for range writers {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(recs)); i = next.Add(1) - 1 {
				if _, _, err := s.InsertActionAudited(ctx, recs[i], store.AuditEvent{}); err != nil {
					tb.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
