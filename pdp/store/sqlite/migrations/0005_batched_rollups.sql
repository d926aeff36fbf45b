-- 0005: inserted actions are added to the dashboard's rollups by the
-- code that inserts them, one upsert per bucket per transaction (see
-- rollups.go), instead of by per-row triggers that cost up to three
-- upserts per action inside every group commit. Updates and deletes keep
-- their triggers.
DROP TRIGGER actions_counts_insert;
DROP TRIGGER actions_violations_insert;
