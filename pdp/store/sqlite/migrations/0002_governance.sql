-- 0002: the audit chain, approval votes, and the dashboard's rollups.

-- One row per entry of a tenant's chain, clustered by (tenant, seq) so a
-- verification reads a chain front to back. metadata is the canonical
-- JSON that was hashed, byte for byte; action_id repeats metadata.action_id
-- for the explain trail.
CREATE TABLE audit_log (
    tenant_id  TEXT    NOT NULL REFERENCES tenants (id),
    seq        INTEGER NOT NULL CHECK (seq > 0),
    ts         INTEGER NOT NULL,
    event      TEXT    NOT NULL,
    metadata   TEXT    NOT NULL,
    action_id  TEXT,
    prev_hash  TEXT    NOT NULL,
    entry_hash TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, seq)
) STRICT, WITHOUT ROWID;

CREATE INDEX audit_log_action ON audit_log (tenant_id, action_id) WHERE action_id IS NOT NULL;
CREATE INDEX audit_log_event ON audit_log (tenant_id, event);
CREATE INDEX audit_log_ts ON audit_log (tenant_id, ts);

-- The head each append leaves, written in the same transaction: entries
-- deleted from the end of a chain still verify among themselves, but no
-- longer reach the head. Appends continue from the head, so a truncated
-- chain shows a gap rather than reusing the deleted numbers.
CREATE TABLE audit_heads (
    tenant_id  TEXT    PRIMARY KEY REFERENCES tenants (id),
    seq        INTEGER NOT NULL,
    entry_hash TEXT    NOT NULL
) STRICT, WITHOUT ROWID;

-- The sequence number of the action's evaluation entry (NULL for actions
-- recorded without one): the order of the approvals queue, and the
-- audit_chain_index of an agent's violations.
ALTER TABLE actions ADD COLUMN audit_seq INTEGER;

-- The approvals queue: one status, in audit order (rowid, i.e. seq, is the
-- index's implicit last column and breaks NULL ties).
CREATE INDEX actions_approvals ON actions (tenant_id, status, audit_seq);

-- An agent's violations, newest first.
CREATE INDEX actions_agent_violations ON actions (tenant_id, agent_id, created_at DESC, seq DESC)
    WHERE violation_count > 0;

-- The dashboard's exact scans of the partial days at a window's edges:
-- covering, so they never touch the table.
CREATE INDEX actions_violations ON actions (tenant_id, created_at, triggered_policy, severity, agent_id)
    WHERE violation_count > 0;

-- Enterprise-mode votes: one per approver and approval.
CREATE TABLE approval_votes (
    seq         INTEGER PRIMARY KEY,
    tenant_id   TEXT    NOT NULL REFERENCES tenants (id),
    action_id   TEXT    NOT NULL REFERENCES actions (id),
    approver_id TEXT    NOT NULL,
    role        TEXT    NOT NULL,
    is_manager  INTEGER NOT NULL CHECK (is_manager IN (0, 1)),
    decision    TEXT    NOT NULL CHECK (decision IN ('approved', 'denied')),
    reason      TEXT    NOT NULL,
    voted_at    INTEGER NOT NULL,
    UNIQUE (tenant_id, action_id, approver_id)
) STRICT;

-- Dashboard rollups, kept by the triggers below in the transaction of
-- every insert, update and delete of an action, whichever code path wrote
-- it (bulk loads included). A dashboard sums the rollups over the whole
-- hours (days) inside its window and scans the actions of the partial hours
-- (days) at its edges, so its cost depends on the window's length, not on
-- how many actions it holds. Hours and days are floor(created_at / length)
-- in Unix microseconds, UTC. Counts that fall to 0 are kept; readers skip
-- them.
CREATE TABLE action_counts_hourly (
    tenant_id TEXT    NOT NULL,
    hour      INTEGER NOT NULL,
    status    TEXT    NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, hour, status)
) STRICT, WITHOUT ROWID;

CREATE TABLE policy_violations_daily (
    tenant_id TEXT    NOT NULL,
    day       INTEGER NOT NULL,
    policy    TEXT    NOT NULL,
    severity  TEXT    NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, day, policy, severity)
) STRICT, WITHOUT ROWID;

CREATE TABLE agent_violations_daily (
    tenant_id TEXT    NOT NULL,
    day       INTEGER NOT NULL,
    agent_id  TEXT    NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, day, agent_id)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER actions_counts_insert AFTER INSERT ON actions BEGIN
    INSERT INTO action_counts_hourly (tenant_id, hour, status, n)
    VALUES (NEW.tenant_id, NEW.created_at / 3600000000 - (NEW.created_at % 3600000000 < 0), NEW.status, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER actions_counts_delete AFTER DELETE ON actions BEGIN
    UPDATE action_counts_hourly SET n = n - 1
    WHERE tenant_id = OLD.tenant_id AND hour = OLD.created_at / 3600000000 - (OLD.created_at % 3600000000 < 0)
      AND status = OLD.status;
END;

CREATE TRIGGER actions_counts_update AFTER UPDATE OF tenant_id, created_at, status ON actions BEGIN
    UPDATE action_counts_hourly SET n = n - 1
    WHERE tenant_id = OLD.tenant_id AND hour = OLD.created_at / 3600000000 - (OLD.created_at % 3600000000 < 0)
      AND status = OLD.status;
    INSERT INTO action_counts_hourly (tenant_id, hour, status, n)
    VALUES (NEW.tenant_id, NEW.created_at / 3600000000 - (NEW.created_at % 3600000000 < 0), NEW.status, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER actions_violations_insert AFTER INSERT ON actions WHEN NEW.violation_count > 0 BEGIN
    INSERT INTO policy_violations_daily (tenant_id, day, policy, severity, n)
    VALUES (NEW.tenant_id, NEW.created_at / 86400000000 - (NEW.created_at % 86400000000 < 0), NEW.triggered_policy, NEW.severity, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
    INSERT INTO agent_violations_daily (tenant_id, day, agent_id, n)
    VALUES (NEW.tenant_id, NEW.created_at / 86400000000 - (NEW.created_at % 86400000000 < 0), NEW.agent_id, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER actions_violations_delete AFTER DELETE ON actions WHEN OLD.violation_count > 0 BEGIN
    UPDATE policy_violations_daily SET n = n - 1
    WHERE tenant_id = OLD.tenant_id AND day = OLD.created_at / 86400000000 - (OLD.created_at % 86400000000 < 0)
      AND policy = OLD.triggered_policy AND severity = OLD.severity;
    UPDATE agent_violations_daily SET n = n - 1
    WHERE tenant_id = OLD.tenant_id AND day = OLD.created_at / 86400000000 - (OLD.created_at % 86400000000 < 0)
      AND agent_id = OLD.agent_id;
END;

CREATE TRIGGER actions_violations_update_old
AFTER UPDATE OF tenant_id, created_at, agent_id, triggered_policy, severity, violation_count ON actions
WHEN OLD.violation_count > 0 BEGIN
    UPDATE policy_violations_daily SET n = n - 1
    WHERE tenant_id = OLD.tenant_id AND day = OLD.created_at / 86400000000 - (OLD.created_at % 86400000000 < 0)
      AND policy = OLD.triggered_policy AND severity = OLD.severity;
    UPDATE agent_violations_daily SET n = n - 1
    WHERE tenant_id = OLD.tenant_id AND day = OLD.created_at / 86400000000 - (OLD.created_at % 86400000000 < 0)
      AND agent_id = OLD.agent_id;
END;

CREATE TRIGGER actions_violations_update_new
AFTER UPDATE OF tenant_id, created_at, agent_id, triggered_policy, severity, violation_count ON actions
WHEN NEW.violation_count > 0 BEGIN
    INSERT INTO policy_violations_daily (tenant_id, day, policy, severity, n)
    VALUES (NEW.tenant_id, NEW.created_at / 86400000000 - (NEW.created_at % 86400000000 < 0), NEW.triggered_policy, NEW.severity, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
    INSERT INTO agent_violations_daily (tenant_id, day, agent_id, n)
    VALUES (NEW.tenant_id, NEW.created_at / 86400000000 - (NEW.created_at % 86400000000 < 0), NEW.agent_id, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;

-- Actions recorded before this migration.
INSERT INTO action_counts_hourly (tenant_id, hour, status, n)
SELECT tenant_id, created_at / 3600000000 - (created_at % 3600000000 < 0) AS hour, status, count(*)
FROM actions GROUP BY tenant_id, hour, status;

INSERT INTO policy_violations_daily (tenant_id, day, policy, severity, n)
SELECT tenant_id, created_at / 86400000000 - (created_at % 86400000000 < 0) AS day, triggered_policy, severity, count(*)
FROM actions WHERE violation_count > 0 GROUP BY tenant_id, day, triggered_policy, severity;

INSERT INTO agent_violations_daily (tenant_id, day, agent_id, n)
SELECT tenant_id, created_at / 86400000000 - (created_at % 86400000000 < 0) AS day, agent_id, count(*)
FROM actions WHERE violation_count > 0 GROUP BY tenant_id, day, agent_id;
