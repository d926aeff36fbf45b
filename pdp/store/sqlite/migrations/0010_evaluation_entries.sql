-- 0010: an action's evaluation entry (written with the action by
-- InsertActionAudited) is marked evaluation = 1 and left out of
-- audit_log_action: the action's audit_seq finds it by primary key, so
-- the index only needs the entries recorded after it (decisions, votes,
-- entries appended by AppendAudit). Every audited action insert no longer
-- writes a leaf of this index inside its group commit (about one WAL page
-- per action with many tenants). AuditTrail reads both; the verifier's
-- exhaustive pass sorts the evaluation entries itself. Entries written
-- before this migration keep evaluation = 0 and stay in the index, so no
-- chain is rewritten.
ALTER TABLE audit_log ADD COLUMN evaluation INTEGER NOT NULL DEFAULT 0 CHECK (evaluation IN (0, 1));

DROP INDEX audit_log_action;
CREATE INDEX audit_log_action ON audit_log (tenant_id, action_id) WHERE action_id IS NOT NULL AND evaluation = 0;
