-- 0009: actions_approvals holds only held actions (pending_review,
-- approved, denied), as on PostgreSQL: the approvals queue reads nothing
-- else, and every allowed or blocked action (nine in ten) no longer
-- writes a leaf of this index inside its group commit. Queries repeat the
-- predicate (approvalStatuses) so the planner can use it.
DROP INDEX actions_approvals;
CREATE INDEX actions_approvals ON actions (tenant_id, status, audit_seq)
    WHERE status IN ('pending_review', 'approved', 'denied');

-- VerifyAudit's pass over undecided actions (allowed, blocked,
-- pending_review) now reads actions_tenant_status, which gains audit_seq
-- as its last column: a bulk-loaded action (audit_seq NULL) is skipped on
-- its index entry, without reading its row. Its other readers use its
-- prefix, as before.
DROP INDEX actions_tenant_status;
CREATE INDEX actions_tenant_status ON actions (tenant_id, status, created_at DESC, seq DESC, audit_seq);
