package postgres

import (
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/postgres/pgtest"
)

// TestMigrationKeyIdentity opens a database written by the version before
// keys had identities: every key it holds must keep working, as an owner
// with every scope and the manager flag.
func TestMigrationKeyIdentity(t *testing.T) {
	ctx := t.Context()
	u := pgtest.NewDatabase(t)
	conn := pgtest.Connect(t, u)
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(ms, func(m migration) bool { return m.Name == "key_identity" })
	if i < 0 {
		t.Fatal("no key_identity migration")
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[:i] { // the previous version's schema
		if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations VALUES ($1, $2, now())`, m.Version, m.Name)
			return err
		}); err != nil {
			t.Fatalf("migration %d: %v", m.Version, err)
		}
	}
	at := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	if _, err := conn.Exec(ctx, `INSERT INTO tenants (id, name, tier, mode, approval_mode, approval_settings, revision, created_at)
VALUES ('acme', 'Acme', 'pro', 'enforcement', 'team', NULL, 1, $1)`, at); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"nram_old_one", "nram_old_two"} {
		if _, err := conn.Exec(ctx, `INSERT INTO api_keys (id, tenant_id, hash, prefix, created_at, revoked_at) VALUES ($1, 'acme', $2, $3, $4, NULL)`,
			"key_"+k, store.HashAPIKey(k), store.KeyPrefix(k), at); err != nil {
			t.Fatal(err)
		}
	}

	db, err := Open(ctx, u)
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
