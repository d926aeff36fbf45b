-- 0003: the audit chain, approval votes, and the dashboard's rollups
-- (docs/api.md §A8–A10).
--
-- Functions are created with SET search_path FROM CURRENT: table names in
-- their bodies resolve in the schema they were migrated into, whatever
-- search_path the session that fires them has.

-- One row per entry of a tenant's chain. metadata is the canonical JSON
-- that was hashed, byte for byte, so text rather than json (which would
-- accept it too, but checks what is already checked); action_id repeats
-- metadata.action_id for the explain trail.
CREATE TABLE audit_log (
    tenant_id  text COLLATE "C" NOT NULL REFERENCES tenants (id),
    seq        bigint           NOT NULL CHECK (seq > 0),
    ts         timestamptz      NOT NULL,
    event      text             NOT NULL,
    metadata   text             NOT NULL,
    action_id  text COLLATE "C",
    prev_hash  text             NOT NULL,
    entry_hash text             NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);

CREATE INDEX audit_log_action ON audit_log (tenant_id, action_id, seq) WHERE action_id IS NOT NULL;
CREATE INDEX audit_log_event ON audit_log (tenant_id, event, seq);
CREATE INDEX audit_log_ts ON audit_log (tenant_id, ts, seq);

-- Each tenant's head: the last entry its chain has had, written by every
-- append in the same transaction. It is also the chain's lock: an append,
-- from whichever replica, first locks the tenant's head row FOR UPDATE and
-- numbers its entries after what it finds there, so chains have no gaps
-- and no forks across processes. Entries deleted from the end of a chain
-- still verify among themselves but no longer reach the head, and appends
-- continue from the head, so a truncated chain shows a gap rather than
-- reusing the deleted numbers. A row exists from the tenant's creation
-- (seq 0, the genesis hash), so there is always a row to lock.
CREATE TABLE audit_heads (
    tenant_id  text COLLATE "C" PRIMARY KEY REFERENCES tenants (id),
    seq        bigint NOT NULL CHECK (seq >= 0),
    entry_hash text   NOT NULL
);

CREATE FUNCTION gatehouse_audit_head() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO audit_heads (tenant_id, seq, entry_hash)
    VALUES (NEW.id, 0, '0000000000000000000000000000000000000000000000000000000000000000');
    RETURN NULL;
END
$$;

CREATE TRIGGER tenants_audit_head AFTER INSERT ON tenants
    FOR EACH ROW EXECUTE FUNCTION gatehouse_audit_head();

INSERT INTO audit_heads (tenant_id, seq, entry_hash)
SELECT id, 0, '0000000000000000000000000000000000000000000000000000000000000000' FROM tenants;

-- The sequence number of the action's evaluation entry (NULL for actions
-- recorded without one): the order of the approvals queue, and the
-- audit_chain_index of an agent's violations.
ALTER TABLE actions ADD COLUMN audit_seq bigint;

-- The approvals queue: one status, in audit order, actions without an
-- entry first. Partial: only held actions are approvals. Queries repeat
-- the predicate so generic plans can use it.
CREATE INDEX actions_approvals ON actions (tenant_id, status, audit_seq NULLS FIRST, seq)
    WHERE status IN ('pending_review', 'approved', 'denied');

-- An agent's violations, newest first.
CREATE INDEX actions_agent_violations ON actions (tenant_id, agent_id, created_at DESC, seq DESC)
    WHERE violation_count > 0;

-- The dashboard's exact scans of the partial days at a window's edges.
CREATE INDEX actions_violations ON actions (tenant_id, created_at) INCLUDE (triggered_policy, severity, agent_id)
    WHERE violation_count > 0;

-- Enterprise-mode votes: one per approver and approval.
CREATE TABLE approval_votes (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   text COLLATE "C" NOT NULL REFERENCES tenants (id),
    action_id   text COLLATE "C" NOT NULL REFERENCES actions (id),
    approver_id text COLLATE "C" NOT NULL,
    role        text             NOT NULL,
    is_manager  boolean          NOT NULL,
    decision    text             NOT NULL CHECK (decision IN ('approved', 'denied')),
    reason      text             NOT NULL,
    voted_at    timestamptz      NOT NULL,
    UNIQUE (tenant_id, action_id, approver_id)
);

-- Dashboard rollups, kept by the statement triggers below in the
-- transaction of every insert, update and delete of actions, whichever
-- code path wrote them (COPY included): one aggregate per statement, not
-- one upsert per row. A dashboard sums the rollups over the whole hours
-- (days) inside its window and scans the actions of the partial hours
-- (days) at its edges, so its cost depends on the window's length, not on
-- how many actions it holds. Buckets are truncated in UTC. Counts that
-- fall to 0 are kept; readers skip them.
CREATE TABLE action_counts_hourly (
    tenant_id text COLLATE "C" NOT NULL,
    hour      timestamptz      NOT NULL,
    status    text             NOT NULL,
    n         bigint           NOT NULL,
    PRIMARY KEY (tenant_id, hour, status)
);

CREATE TABLE policy_violations_daily (
    tenant_id text COLLATE "C" NOT NULL,
    day       timestamptz      NOT NULL,
    policy    text COLLATE "C" NOT NULL,
    severity  text             NOT NULL,
    n         bigint           NOT NULL,
    PRIMARY KEY (tenant_id, day, policy, severity)
);

CREATE TABLE agent_violations_daily (
    tenant_id text COLLATE "C" NOT NULL,
    day       timestamptz      NOT NULL,
    agent_id  text COLLATE "C" NOT NULL,
    n         bigint           NOT NULL,
    PRIMARY KEY (tenant_id, day, agent_id)
);

-- Every writer of a tenant's rollups first locks the tenant's audit head,
-- in tenant order. Appending writers hold it already (they lock it before
-- anything else); for the others — a plain InsertAction, a bulk load — it
-- is what keeps two transactions from taking rollup rows in opposite
-- orders and deadlocking. The rows are one per tenant, so this serializes
-- only writers of the same tenant, which the chain serializes anyway.
CREATE FUNCTION gatehouse_lock_heads(tenants text[]) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM FROM audit_heads WHERE tenant_id = ANY (tenants) ORDER BY tenant_id FOR UPDATE;
END
$$;

CREATE FUNCTION gatehouse_actions_inserted() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM gatehouse_lock_heads(ARRAY(SELECT DISTINCT tenant_id FROM new_rows));
    WITH c AS (
        INSERT INTO action_counts_hourly AS r (tenant_id, hour, status, n)
        SELECT tenant_id, date_trunc('hour', created_at, 'UTC'), status, count(*)
        FROM new_rows GROUP BY 1, 2, 3
        ON CONFLICT (tenant_id, hour, status) DO UPDATE SET n = r.n + excluded.n
    ), p AS (
        INSERT INTO policy_violations_daily AS r (tenant_id, day, policy, severity, n)
        SELECT tenant_id, date_trunc('day', created_at, 'UTC'), triggered_policy, severity, count(*)
        FROM new_rows WHERE violation_count > 0 GROUP BY 1, 2, 3, 4
        ON CONFLICT (tenant_id, day, policy, severity) DO UPDATE SET n = r.n + excluded.n
    )
    INSERT INTO agent_violations_daily AS r (tenant_id, day, agent_id, n)
    SELECT tenant_id, date_trunc('day', created_at, 'UTC'), agent_id, count(*)
    FROM new_rows WHERE violation_count > 0 GROUP BY 1, 2, 3
    ON CONFLICT (tenant_id, day, agent_id) DO UPDATE SET n = r.n + excluded.n;
    RETURN NULL;
END
$$;

CREATE FUNCTION gatehouse_actions_deleted() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM gatehouse_lock_heads(ARRAY(SELECT DISTINCT tenant_id FROM old_rows));
    WITH c AS (
        INSERT INTO action_counts_hourly AS r (tenant_id, hour, status, n)
        SELECT tenant_id, date_trunc('hour', created_at, 'UTC'), status, -count(*)
        FROM old_rows GROUP BY 1, 2, 3
        ON CONFLICT (tenant_id, hour, status) DO UPDATE SET n = r.n + excluded.n
    ), p AS (
        INSERT INTO policy_violations_daily AS r (tenant_id, day, policy, severity, n)
        SELECT tenant_id, date_trunc('day', created_at, 'UTC'), triggered_policy, severity, -count(*)
        FROM old_rows WHERE violation_count > 0 GROUP BY 1, 2, 3, 4
        ON CONFLICT (tenant_id, day, policy, severity) DO UPDATE SET n = r.n + excluded.n
    )
    INSERT INTO agent_violations_daily AS r (tenant_id, day, agent_id, n)
    SELECT tenant_id, date_trunc('day', created_at, 'UTC'), agent_id, -count(*)
    FROM old_rows WHERE violation_count > 0 GROUP BY 1, 2, 3
    ON CONFLICT (tenant_id, day, agent_id) DO UPDATE SET n = r.n + excluded.n;
    RETURN NULL;
END
$$;

-- An update moves each changed row from its old buckets to its new ones;
-- groups whose old and new rows cancel out (a decision changes the status,
-- not the violation) are not written at all.
CREATE FUNCTION gatehouse_actions_updated() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM gatehouse_lock_heads(ARRAY(SELECT tenant_id FROM old_rows UNION SELECT tenant_id FROM new_rows));
    WITH d AS (
        SELECT tenant_id, created_at, status, violation_count, triggered_policy, severity, agent_id, -1 AS n FROM old_rows
        UNION ALL
        SELECT tenant_id, created_at, status, violation_count, triggered_policy, severity, agent_id, 1 FROM new_rows
    ), c AS (
        INSERT INTO action_counts_hourly AS r (tenant_id, hour, status, n)
        SELECT tenant_id, date_trunc('hour', created_at, 'UTC'), status, sum(n)
        FROM d GROUP BY 1, 2, 3 HAVING sum(n) <> 0
        ON CONFLICT (tenant_id, hour, status) DO UPDATE SET n = r.n + excluded.n
    ), p AS (
        INSERT INTO policy_violations_daily AS r (tenant_id, day, policy, severity, n)
        SELECT tenant_id, date_trunc('day', created_at, 'UTC'), triggered_policy, severity, sum(n)
        FROM d WHERE violation_count > 0 GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0
        ON CONFLICT (tenant_id, day, policy, severity) DO UPDATE SET n = r.n + excluded.n
    )
    INSERT INTO agent_violations_daily AS r (tenant_id, day, agent_id, n)
    SELECT tenant_id, date_trunc('day', created_at, 'UTC'), agent_id, sum(n)
    FROM d WHERE violation_count > 0 GROUP BY 1, 2, 3 HAVING sum(n) <> 0
    ON CONFLICT (tenant_id, day, agent_id) DO UPDATE SET n = r.n + excluded.n;
    RETURN NULL;
END
$$;

CREATE TRIGGER actions_rollups_insert AFTER INSERT ON actions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gatehouse_actions_inserted();
CREATE TRIGGER actions_rollups_delete AFTER DELETE ON actions
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION gatehouse_actions_deleted();
CREATE TRIGGER actions_rollups_update AFTER UPDATE ON actions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gatehouse_actions_updated();

-- Actions recorded before this migration.
INSERT INTO action_counts_hourly (tenant_id, hour, status, n)
SELECT tenant_id, date_trunc('hour', created_at, 'UTC'), status, count(*) FROM actions GROUP BY 1, 2, 3;

INSERT INTO policy_violations_daily (tenant_id, day, policy, severity, n)
SELECT tenant_id, date_trunc('day', created_at, 'UTC'), triggered_policy, severity, count(*)
FROM actions WHERE violation_count > 0 GROUP BY 1, 2, 3, 4;

INSERT INTO agent_violations_daily (tenant_id, day, agent_id, n)
SELECT tenant_id, date_trunc('day', created_at, 'UTC'), agent_id, count(*)
FROM actions WHERE violation_count > 0 GROUP BY 1, 2, 3;
