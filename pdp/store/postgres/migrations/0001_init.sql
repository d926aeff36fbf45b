-- 0001: tenants, API keys, policies, actions.
--
-- Timestamps are timestamptz: an absolute instant at microsecond precision,
-- what store.TimePrecision promises. JSON the store returns byte for byte
-- (params, decisions, settings) is json, which keeps the text exactly as
-- written; jsonb would reorder keys, drop whitespace and refuse \u0000.
-- Identifier columns use COLLATE "C" so listings sort in byte order, as
-- SQLite does, whatever the database's locale.

CREATE TABLE tenants (
    id                text COLLATE "C" PRIMARY KEY,
    name              text        NOT NULL,
    tier              text        NOT NULL CHECK (tier IN ('free', 'starter', 'pro', 'enterprise')),
    mode              text        NOT NULL CHECK (mode IN ('enforcement', 'shadow')),
    approval_mode     text        NOT NULL DEFAULT '',
    approval_settings json,
    revision          bigint      NOT NULL CHECK (revision > 0),
    created_at        timestamptz NOT NULL
);

CREATE TABLE api_keys (
    id         text COLLATE "C" PRIMARY KEY,
    tenant_id  text COLLATE "C" NOT NULL REFERENCES tenants (id),
    hash       text COLLATE "C" NOT NULL,
    prefix     text        NOT NULL,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);

-- Every authenticated request looks its key up by hash.
CREATE UNIQUE INDEX api_keys_hash ON api_keys (hash);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

-- agent_id is '' for a tenant-wide policy, so the primary key makes
-- (tenant, scope, name) unique without NULL's distinctness getting in the way.
CREATE TABLE policies (
    tenant_id           text COLLATE "C" NOT NULL REFERENCES tenants (id),
    agent_id            text COLLATE "C" NOT NULL,
    name                text COLLATE "C" NOT NULL,
    description         text        NOT NULL,
    step_types          json        NOT NULL,
    whitelisted_domains json        NOT NULL,
    rules               json        NOT NULL,
    enabled             boolean     NOT NULL,
    version             bigint      NOT NULL CHECK (version > 0),
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, agent_id, name)
);

-- The tier limit counts enabled policies inside every adding write.
CREATE INDEX policies_enabled ON policies (tenant_id) WHERE enabled;

-- seq is the insertion order: it breaks created_at ties so "newest first"
-- is total and paging is stable.
CREATE TABLE actions (
    seq              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               text COLLATE "C" NOT NULL UNIQUE,
    tenant_id        text COLLATE "C" NOT NULL REFERENCES tenants (id),
    agent_id         text             NOT NULL,
    action           text             NOT NULL,
    connector        text             NOT NULL,
    operation        text             NOT NULL,
    params           json,
    step_type        text             NOT NULL,
    status           text             NOT NULL,
    decision         json,
    triggered_policy text             NOT NULL,
    severity         text             NOT NULL,
    risk_score       double precision NOT NULL,
    violation_count  bigint           NOT NULL,
    trace_id         text             NOT NULL,
    created_at       timestamptz      NOT NULL,
    decided_at       timestamptz,
    approver_id      text             NOT NULL,
    decision_reason  text             NOT NULL
);

CREATE INDEX actions_tenant_created ON actions (tenant_id, created_at DESC, seq DESC);
CREATE INDEX actions_tenant_status ON actions (tenant_id, status, created_at DESC, seq DESC);
