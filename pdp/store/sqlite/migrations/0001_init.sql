-- 0001: tenants, API keys, policies, actions.
-- Timestamps are INTEGER Unix microseconds, UTC. JSON is TEXT.

CREATE TABLE tenants (
    id                TEXT    PRIMARY KEY,
    name              TEXT    NOT NULL,
    tier              TEXT    NOT NULL CHECK (tier IN ('free', 'starter', 'pro', 'enterprise')),
    mode              TEXT    NOT NULL CHECK (mode IN ('enforcement', 'shadow')),
    approval_mode     TEXT    NOT NULL DEFAULT '',
    approval_settings TEXT,
    revision          INTEGER NOT NULL CHECK (revision > 0),
    created_at        INTEGER NOT NULL
) STRICT;

CREATE TABLE api_keys (
    id         TEXT    PRIMARY KEY,
    tenant_id  TEXT    NOT NULL REFERENCES tenants (id),
    hash       TEXT    NOT NULL,
    prefix     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;

-- Every authenticated request looks its key up by hash.
CREATE UNIQUE INDEX api_keys_hash ON api_keys (hash);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

-- agent_id is '' for a tenant-wide policy, so the primary key makes
-- (tenant, scope, name) unique without NULL's distinctness getting in the way.
CREATE TABLE policies (
    tenant_id           TEXT    NOT NULL REFERENCES tenants (id),
    agent_id            TEXT    NOT NULL,
    name                TEXT    NOT NULL,
    description         TEXT    NOT NULL,
    step_types          TEXT    NOT NULL,
    whitelisted_domains TEXT    NOT NULL,
    rules               TEXT    NOT NULL,
    enabled             INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    version             INTEGER NOT NULL CHECK (version > 0),
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, agent_id, name)
) STRICT, WITHOUT ROWID;

-- The tier limit counts enabled policies inside every adding write.
CREATE INDEX policies_enabled ON policies (tenant_id) WHERE enabled = 1;

-- seq is the insertion order: it breaks created_at ties so "newest first"
-- is total and paging is stable.
CREATE TABLE actions (
    seq              INTEGER PRIMARY KEY,
    id               TEXT    NOT NULL UNIQUE,
    tenant_id        TEXT    NOT NULL REFERENCES tenants (id),
    agent_id         TEXT    NOT NULL,
    action           TEXT    NOT NULL,
    connector        TEXT    NOT NULL,
    operation        TEXT    NOT NULL,
    params           TEXT,
    step_type        TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    decision         TEXT,
    triggered_policy TEXT    NOT NULL,
    severity         TEXT    NOT NULL,
    risk_score       REAL    NOT NULL,
    violation_count  INTEGER NOT NULL,
    trace_id         TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    decided_at       INTEGER,
    approver_id      TEXT    NOT NULL,
    decision_reason  TEXT    NOT NULL
) STRICT;

CREATE INDEX actions_tenant_created ON actions (tenant_id, created_at DESC, seq DESC);
CREATE INDEX actions_tenant_status ON actions (tenant_id, status, created_at DESC, seq DESC);
