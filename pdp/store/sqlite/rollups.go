package sqlite

import (
	"context"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// rollups adds up the dashboard's counts of inserted actions in Go, so a
// batch writes one upsert per bucket where the per-row triggers it
// replaces (migration 0005) wrote one per action and two more per
// violation. Updates and deletes of actions (a decision moves a count)
// are still kept by triggers: they are one row at a time anyway. Every
// code path that inserts actions adds them here and writes them in the
// same transaction.
type rollups struct {
	counts   map[countBucket]int64
	policies map[policyBucket]int64
	agents   map[agentBucket]int64
}

type countBucket struct {
	tenant string
	hour   int64
	status pdp.Status
}

type policyBucket struct {
	tenant   string
	day      int64
	policy   string
	severity pdp.Severity
}

type agentBucket struct {
	tenant, agent string
	day           int64
}

// The upserts of a rollup's buckets.
const (
	sqlCountUpsert = `INSERT INTO action_counts_hourly (tenant_id, hour, status, n) VALUES (?, ?, ?, ?)
ON CONFLICT DO UPDATE SET n = n + excluded.n`
	sqlPolicyUpsert = `INSERT INTO policy_violations_daily (tenant_id, day, policy, severity, n) VALUES (?, ?, ?, ?, ?)
ON CONFLICT DO UPDATE SET n = n + excluded.n`
	sqlAgentUpsert = `INSERT INTO agent_violations_daily (tenant_id, day, agent_id, n) VALUES (?, ?, ?, ?)
ON CONFLICT DO UPDATE SET n = n + excluded.n`
)

// add counts one inserted action.
func (r *rollups) add(a store.ActionRecord) {
	if r.counts == nil {
		r.counts, r.policies, r.agents = map[countBucket]int64{}, map[policyBucket]int64{}, map[agentBucket]int64{}
	}
	us := toMicros(a.CreatedAt) // buckets as the triggers had them: floor division

	r.counts[countBucket{a.TenantID, floorDiv(us, hourUS), a.Status}]++
	if a.ViolationCount > 0 {
		day := floorDiv(us, dayUS)
		r.policies[policyBucket{a.TenantID, day, a.TriggeredPolicy, a.Severity}]++
		r.agents[agentBucket{a.TenantID, a.AgentID, day}]++
	}
}

// write upserts the buckets through exec and empties r.
func (r *rollups) write(exec func(query string, args ...any) error) error {
	for k, n := range r.counts {
		if err := exec(sqlCountUpsert, k.tenant, k.hour, k.status, n); err != nil {
			return err
		}
	}
	for k, n := range r.policies {
		if err := exec(sqlPolicyUpsert, k.tenant, k.day, k.policy, k.severity, n); err != nil {
			return err
		}
	}
	for k, n := range r.agents {
		if err := exec(sqlAgentUpsert, k.tenant, k.day, k.agent, n); err != nil {
			return err
		}
	}
	*r = rollups{}
	return nil
}

// writeTo upserts r's buckets in a transaction of its own code path.
func (r *rollups) writeTo(ctx context.Context, e execer) error {
	return r.write(func(q string, args ...any) error {
		_, err := e.ExecContext(ctx, q, args...)
		return err
	})
}
