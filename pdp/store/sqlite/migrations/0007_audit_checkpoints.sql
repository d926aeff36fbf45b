-- 0006: audit retention. When a tenant's oldest entries are pruned, the
-- last removed entry's sequence number and entry_hash are kept here: the
-- first retained entry's prev_hash must equal entry_hash, so the retained
-- chain still verifies, and a tamper with it is still found.
CREATE TABLE audit_checkpoints (
    tenant_id  TEXT    PRIMARY KEY REFERENCES tenants (id),
    seq        INTEGER NOT NULL CHECK (seq > 0),
    entry_hash TEXT    NOT NULL,
    pruned_at  INTEGER NOT NULL
) STRICT;
