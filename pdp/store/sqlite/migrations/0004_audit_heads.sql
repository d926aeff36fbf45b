-- 0004: every tenant has an audit head from its creation, as on
-- PostgreSQL, so a missing head row always means it was deleted: with
-- entries present, verification reports it (a deleted head would
-- otherwise hide entries removed from the end) and appends refuse to
-- continue the chain (store.ResolveHead).
CREATE TRIGGER tenants_audit_head AFTER INSERT ON tenants BEGIN
    INSERT INTO audit_heads (tenant_id, seq, entry_hash)
    VALUES (NEW.id, 0, '0000000000000000000000000000000000000000000000000000000000000000');
END;

-- Tenants that never appended. A tenant with entries but no head has lost
-- it and is left without one.
INSERT INTO audit_heads (tenant_id, seq, entry_hash)
SELECT id, 0, '0000000000000000000000000000000000000000000000000000000000000000' FROM tenants AS t
WHERE NOT EXISTS (SELECT 1 FROM audit_heads AS h WHERE h.tenant_id = t.id)
  AND NOT EXISTS (SELECT 1 FROM audit_log AS l WHERE l.tenant_id = t.id);
