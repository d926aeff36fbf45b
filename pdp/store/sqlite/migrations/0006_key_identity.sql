-- 0006: API keys carry an identity (README "Who may do what"): the
-- owner's name, a role, a manager flag, scopes, an optional bound agent
-- and allowed step types, an expiry (a rotated key's grace period) and
-- the key that created it. Keys that exist become owners with every
-- scope and the manager flag, so nothing that worked stops working.
-- Tenants get require_agent_keys.

ALTER TABLE api_keys ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN role TEXT NOT NULL DEFAULT 'owner'
    CHECK (role IN ('owner', 'admin', 'member', 'readonly'));
ALTER TABLE api_keys ADD COLUMN is_manager INTEGER NOT NULL DEFAULT 1 CHECK (is_manager IN (0, 1));
ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL
    DEFAULT '["actions:submit","approvals:decide","policies:read","policies:write","audit:read","dashboard:read","keys:manage"]';
ALTER TABLE api_keys ADD COLUMN agent_id TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN step_types TEXT NOT NULL DEFAULT '[]';
ALTER TABLE api_keys ADD COLUMN expires_at INTEGER;
ALTER TABLE api_keys ADD COLUMN created_by TEXT NOT NULL DEFAULT '';

ALTER TABLE tenants ADD COLUMN require_agent_keys INTEGER NOT NULL DEFAULT 0 CHECK (require_agent_keys IN (0, 1));
