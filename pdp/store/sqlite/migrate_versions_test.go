package sqlite

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// TestMigrationPolicyVersions: policies stored before history was kept
// get their current version as "imported", enforcing, and later writes
// continue their history.
func TestMigrationPolicyVersions(t *testing.T) {
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
	for _, m := range ms {
		if strings.Contains(m.Name, "policy_versions") {
			break
		}
		if err := apply(ctx, w, m, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	for _, q := range []string{
		`INSERT INTO tenants (id, name, tier, mode, approval_mode, approval_settings, revision, created_at) VALUES ('acme', 'acme', 'pro', 'enforcement', 'team', NULL, 3, ?)`,
		`INSERT INTO policies (tenant_id, agent_id, name, description, step_types, whitelisted_domains, rules, enabled, version, created_at, updated_at)
VALUES ('acme', 'bot', 'pii', 'old', '["ACTION"]', '[]', '[{"match":"email","severity":"high","on_violation":"require_approval","confidence":0.85}]', 1, 3, ?, ?)`,
	} {
		args := []any{at}
		if strings.Contains(q, "policies") {
			args = append(args, at)
		}
		if _, err := w.ExecContext(ctx, q, args...); err != nil {
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
	key := store.PolicyKey{TenantID: "acme", AgentID: "bot", Name: "pii"}
	vs, err := db.PolicyVersions(ctx, key)
	if err != nil || len(vs) != 1 || vs[0].Action != store.VersionImported || vs[0].Policy.Version != 3 || vs[0].Policy.Mode != "" || vs[0].Policy.Description != "old" {
		t.Fatalf("history after the upgrade: %+v, %v", vs, err)
	}
	p := vs[0].Policy
	p.Mode = pdp.PolicyShadow
	if _, err := db.PutPolicy(ctx, store.PutPolicyRequest{TenantID: "acme", Policy: p, Limit: store.Unlimited}); err != nil {
		t.Fatal(err)
	}
	vs, err = db.PolicyVersions(ctx, key)
	if err != nil || len(vs) != 2 || vs[0].Policy.Version != 4 || vs[0].Action != store.VersionUpdated || !vs[0].Policy.Shadow() {
		t.Errorf("history after a write: %+v, %v", vs, err)
	}
}
