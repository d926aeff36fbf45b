-- 0008: policy history. Every policy write stores the whole policy as it
-- left it, in the write's transaction: one row per (tenant, scope, name,
-- version). created_at is the policy's, updated_at this version's write
-- time. Policies stored before this migration get their current version,
-- action 'imported'. A policy's mode (per-policy shadow mode) is
-- 'enforce' or 'shadow'; existing policies enforce.
ALTER TABLE policies ADD COLUMN mode TEXT NOT NULL DEFAULT 'enforce' CHECK (mode IN ('enforce', 'shadow'));

CREATE TABLE policy_versions (
    tenant_id           TEXT    NOT NULL REFERENCES tenants (id),
    agent_id            TEXT    NOT NULL,
    name                TEXT    NOT NULL,
    version             INTEGER NOT NULL CHECK (version > 0),
    action              TEXT    NOT NULL,
    actor               TEXT    NOT NULL,
    rolled_back_from    INTEGER NOT NULL CHECK (rolled_back_from >= 0),
    description         TEXT    NOT NULL,
    step_types          TEXT    NOT NULL,
    whitelisted_domains TEXT    NOT NULL,
    rules               TEXT    NOT NULL,
    enabled             INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    mode                TEXT    NOT NULL CHECK (mode IN ('enforce', 'shadow')),
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, agent_id, name, version)
) STRICT, WITHOUT ROWID;

INSERT INTO policy_versions
SELECT tenant_id, agent_id, name, version, 'imported', '', 0, description, step_types,
       whitelisted_domains, rules, enabled, mode, created_at, updated_at
FROM policies;
