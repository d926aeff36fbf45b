-- 0004: API keys carry an identity (README "Who may do what"): the
-- owner's name, a role, a manager flag, scopes, an optional bound agent
-- and allowed step types, an expiry (a rotated key's grace period) and
-- the key that created it. Keys that exist become owners with every
-- scope and the manager flag, so nothing that worked stops working.
-- Tenants get require_agent_keys.

ALTER TABLE api_keys
    ADD COLUMN name       text        NOT NULL DEFAULT '',
    ADD COLUMN role       text        NOT NULL DEFAULT 'owner' CHECK (role IN ('owner', 'admin', 'member', 'readonly')),
    ADD COLUMN is_manager boolean     NOT NULL DEFAULT true,
    ADD COLUMN scopes     text[]      NOT NULL
        DEFAULT ARRAY['actions:submit', 'approvals:decide', 'policies:read', 'policies:write', 'audit:read', 'dashboard:read', 'keys:manage'],
    ADD COLUMN agent_id   text        NOT NULL DEFAULT '',
    ADD COLUMN step_types text[]      NOT NULL DEFAULT '{}',
    ADD COLUMN expires_at timestamptz,
    ADD COLUMN created_by text        NOT NULL DEFAULT '';

ALTER TABLE tenants ADD COLUMN require_agent_keys boolean NOT NULL DEFAULT false;
