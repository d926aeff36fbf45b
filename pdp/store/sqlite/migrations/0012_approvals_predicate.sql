-- 0012: actions_approvals' predicate written as three equalities instead
-- of an IN list. It holds the same rows (pending_review, approved,
-- denied), but SQLite codes an IN list of more than two constants with an
-- ephemeral B-tree built afresh each time the predicate is evaluated, and
-- every action insert evaluates it: opening, filling and closing that
-- B-tree was about 5% of an audited action insert's CPU
-- (BenchmarkActionWritePath). Equalities are plain comparisons. Queries
-- repeat the predicate as written here (approvalStatuses), so the planner
-- still uses the index (TestApprovalPlans).
DROP INDEX actions_approvals;
CREATE INDEX actions_approvals ON actions (tenant_id, status, audit_seq)
    WHERE status = 'pending_review' OR status = 'approved' OR status = 'denied';
