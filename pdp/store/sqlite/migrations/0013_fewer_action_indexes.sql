-- 0013: two fewer indexes on actions, so recording an action writes two
-- fewer B-tree leaves inside its group commit. Every index keyed by tenant
-- first takes each action on a leaf of that tenant's part of it, and with
-- many tenants the actions of a batch rarely share one: about one WAL page
-- per index per action (BenchmarkActionWALPages attributes them).
--
-- actions_tenant_status goes. actions_tenant_created, which every action
-- is in anyway, carries status and audit_seq after its key instead, so
-- what read the status index reads it, filtering on the index entry and
-- reading a row only when it matches: ListActions with a status (its page
-- bounded by the hourly rollups to the hours it lies in, its total summed
-- from them: see actions.go), the dashboard's partial hours (covering),
-- and VerifyAudit's pass over undecided actions (a bulk-loaded action,
-- audit_seq NULL, is still skipped on its index entry).
DROP INDEX actions_tenant_status;
DROP INDEX actions_tenant_created;
CREATE INDEX actions_tenant_created ON actions (tenant_id, created_at DESC, seq DESC, status, audit_seq);

-- actions_violations (the dashboard's partial days, covering) goes too:
-- actions_agent_violations carries triggered_policy and severity after its
-- key and serves both. A partial day is read agent by agent, for the
-- agents agent_violations_daily counts on that day (every violation is
-- counted there, in the transaction that records it), each a range of
-- this index (see dashboard.go).
DROP INDEX actions_violations;
DROP INDEX actions_agent_violations;
CREATE INDEX actions_agent_violations ON actions (tenant_id, agent_id, created_at DESC, seq DESC, triggered_policy, severity)
    WHERE violation_count > 0;
