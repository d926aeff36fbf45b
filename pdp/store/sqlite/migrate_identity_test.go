package sqlite

import (
	"database/sql"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// TestMigrationKeyIdentity opens a database written by the version before
// keys had identities: every key it holds must keep working, as an owner
// with every scope and the manager flag.
func TestMigrationKeyIdentity(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "old.db")
	w, err := sql.Open("sqlite", path+"?_pragma=journal_mode(wal)")
	if err != nil {
		t.Fatal(err)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.ExecContext(ctx, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(ms, func(m migration) bool { return m.Name == "key_identity" })
	if i < 0 {
		t.Fatal("no key_identity migration")
	}
	for _, m := range ms[:i] { // the previous version's schema
		if err := apply(ctx, w, m, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	if _, err := w.ExecContext(ctx, `INSERT INTO tenants (id, name, tier, mode, approval_mode, approval_settings, revision, created_at)
VALUES ('acme', 'Acme', 'pro', 'enforcement', 'team', NULL, 1, ?)`, at); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"nram_old_one", "nram_old_two"} {
		if _, err := w.ExecContext(ctx, `INSERT INTO api_keys (id, tenant_id, hash, prefix, created_at, revoked_at) VALUES (?, 'acme', ?, ?, ?, NULL)`,
			"key_"+k, store.HashAPIKey(k), store.KeyPrefix(k), at); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, secret := range []string{"nram_old_one", "nram_old_two"} {
		tn, k, err := db.TenantByKeyHash(ctx, store.HashAPIKey(secret))
		if err != nil {
			t.Fatalf("key %s after the upgrade: %v", secret, err)
		}
		if tn.ID != "acme" || tn.RequireAgentKeys || k.Role != pdp.RoleOwner || !k.IsManager || k.AgentID != "" || k.StepTypes != nil || k.ExpiresAt != nil ||
			!slices.Equal(k.Scopes, pdp.AllScopes) || k.Identity() != "key_"+secret {
			t.Errorf("key %s after the upgrade: %+v of %+v", secret, k, tn)
		}
	}
	ks, err := db.ListAPIKeys(ctx, "acme")
	if err != nil || len(ks) != 2 {
		t.Errorf("ListAPIKeys after the upgrade: %d keys, %v", len(ks), err)
	}
}
