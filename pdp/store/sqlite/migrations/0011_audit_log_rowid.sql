-- 0011: audit_log becomes a rowid table with a unique index on
-- (tenant_id, seq) instead of a WITHOUT ROWID table clustered on that
-- key. With many tenants every append landed in the middle of the
-- clustered B-tree, and its splits rewrote neighbouring pages; a rowid
-- table takes every append on its last leaf (SQLite's quick balance is
-- for rowid tables only), and what lands mid-tree per tenant is the
-- small entry of the unique index. The trade: reading a chain in order
-- (verification, export) looks each entry up by rowid from that index,
-- and a tenant's entries are no longer stored together (README "The
-- write path's pages").
--
-- The usual rebuild (https://sqlite.org/lang_altertable.html#otheralter):
-- a new table, the rows copied in (tenant_id, seq) order so rowids follow
-- each chain, the old table dropped, the new one renamed, its indexes
-- created again. The columns, their order, types and constraints are
-- those of 0002 and 0010, and every value is copied as it is: no entry's
-- hash changes. Nothing references audit_log (no foreign key, trigger or
-- view). The secondary indexes spell seq out as their last column, which
-- the clustered table added implicitly: an event's entries, a window's and
-- an action's are still in chain order along them, and the window's page
-- (ListAudit) and pruning's first kept entry still read seq from the index
-- alone. This runs once, inside the migration's transaction, and rewrites
-- the whole table and its indexes (README "The write path's pages": 20–25 s per million entries).
CREATE TABLE audit_log_new (
    tenant_id  TEXT    NOT NULL REFERENCES tenants (id),
    seq        INTEGER NOT NULL CHECK (seq > 0),
    ts         INTEGER NOT NULL,
    event      TEXT    NOT NULL,
    metadata   TEXT    NOT NULL,
    action_id  TEXT,
    prev_hash  TEXT    NOT NULL,
    entry_hash TEXT    NOT NULL,
    evaluation INTEGER NOT NULL DEFAULT 0 CHECK (evaluation IN (0, 1))
) STRICT;

INSERT INTO audit_log_new (tenant_id, seq, ts, event, metadata, action_id, prev_hash, entry_hash, evaluation)
SELECT tenant_id, seq, ts, event, metadata, action_id, prev_hash, entry_hash, evaluation
FROM audit_log ORDER BY tenant_id, seq;

DROP TABLE audit_log;
ALTER TABLE audit_log_new RENAME TO audit_log;

CREATE UNIQUE INDEX audit_log_seq ON audit_log (tenant_id, seq);
CREATE INDEX audit_log_action ON audit_log (tenant_id, action_id, seq) WHERE action_id IS NOT NULL AND evaluation = 0;
CREATE INDEX audit_log_event ON audit_log (tenant_id, event, seq);
CREATE INDEX audit_log_ts ON audit_log (tenant_id, ts, seq);
