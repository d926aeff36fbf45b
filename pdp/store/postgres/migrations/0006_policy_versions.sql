-- 0006: policy history. Every policy write stores the whole policy as it
-- left it, in the write's transaction: one row per (tenant, scope, name,
-- version). created_at is the policy's, updated_at this version's write
-- time. Policies stored before this migration get their current version,
-- action 'imported'. A policy's mode (per-policy shadow mode) is
-- 'enforce' or 'shadow'; existing policies enforce.
ALTER TABLE policies ADD COLUMN mode text NOT NULL DEFAULT 'enforce' CHECK (mode IN ('enforce', 'shadow'));

CREATE TABLE policy_versions (
    tenant_id           text COLLATE "C" NOT NULL REFERENCES tenants (id),
    agent_id            text COLLATE "C" NOT NULL,
    name                text COLLATE "C" NOT NULL,
    version             bigint      NOT NULL CHECK (version > 0),
    action              text        NOT NULL,
    actor               text        NOT NULL,
    rolled_back_from    bigint      NOT NULL CHECK (rolled_back_from >= 0),
    description         text        NOT NULL,
    step_types          json        NOT NULL,
    whitelisted_domains json        NOT NULL,
    rules               json        NOT NULL,
    enabled             boolean     NOT NULL,
    mode                text        NOT NULL CHECK (mode IN ('enforce', 'shadow')),
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, agent_id, name, version)
);

INSERT INTO policy_versions
SELECT tenant_id, agent_id, name, version, 'imported', '', 0, description, step_types,
       whitelisted_domains, rules, enabled, mode, created_at, updated_at
FROM policies;
