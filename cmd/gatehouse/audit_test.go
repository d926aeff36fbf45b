package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/sqlite"
)

func TestAuditVerify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "g.db")
	dsn := "sqlite://" + path
	code, out, errOut := runCmd(t, nil, "tenant", "create", "--name", "Acme", "--tier", "pro", "--store", dsn, "--create-store")
	if code != 0 {
		t.Fatalf("tenant create: %d %s", code, errOut)
	}
	var tn tenantCreated
	if err := json.Unmarshal([]byte(out), &tn); err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := db.AppendAudit(context.Background(), tn.TenantID, store.AuditEvent{Event: "test_event", Metadata: fmt.Appendf(nil, `{"i":%d}`, i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	code, out, errOut = runCmd(t, nil, "audit", "verify", "--tenant", tn.TenantID, "--store", dsn)
	var rep auditReport
	if code != exitOK || json.Unmarshal([]byte(out), &rep) != nil || !rep.Valid || rep.Entries != 5 || rep.FirstBadSequence != nil || rep.TenantID != tn.TenantID {
		t.Fatalf("intact chain: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if !strings.Contains(errOut, "5 entries verified") {
		t.Errorf("stderr %q", errOut)
	}

	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`UPDATE audit_log SET metadata = '{"i":9}' WHERE tenant_id = ? AND seq = 3`, tn.TenantID); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	code, out, errOut = runCmd(t, nil, "audit", "verify", "--tenant", tn.TenantID, "--store", dsn)
	rep = auditReport{}
	if code != exitFail || json.Unmarshal([]byte(out), &rep) != nil || rep.Valid || rep.FirstBadSequence == nil || *rep.FirstBadSequence != 3 {
		t.Fatalf("tampered chain: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if !strings.Contains(errOut, "broken at sequence 3") || rep.Reason != store.ReasonHash {
		t.Errorf("stderr %q, reason %q", errOut, rep.Reason)
	}

	// The chain as written again, but a rollup counts an action that is
	// not there: every entry verifies, the store does not.
	raw, err = sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`UPDATE audit_log SET metadata = '{"i":2}' WHERE tenant_id = ? AND seq = 3`, tn.TenantID); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`INSERT INTO action_counts_hourly (tenant_id, hour, status, n) VALUES (?, 480000, 'allowed', 1)`, tn.TenantID); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	code, out, errOut = runCmd(t, nil, "audit", "verify", "--tenant", tn.TenantID, "--store", dsn)
	rep = auditReport{}
	if code != exitFail || json.Unmarshal([]byte(out), &rep) != nil || rep.Valid || rep.FirstBadSequence != nil ||
		rep.Reason != store.ReasonRollup+`: action_counts_hourly, hour 2024-10-04T00:00:00Z, status "allowed": 1 counted, 0 actions` ||
		!strings.Contains(errOut, "the audit chain verifies (5 entries) but the store does not") {
		t.Fatalf("tampered rollup: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	// A chain that cannot be read is a broken chain with its reason, not
	// a crash.
	raw, err = sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	// The store as written again, but an index verification reads by gone.
	if _, err := raw.Exec(`DELETE FROM action_counts_hourly WHERE tenant_id = ?`, tn.TenantID); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`DROP INDEX actions_tenant_created`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	code, out, errOut = runCmd(t, nil, "audit", "verify", "--tenant", tn.TenantID, "--store", dsn)
	rep = auditReport{}
	if code != exitFail || json.Unmarshal([]byte(out), &rep) != nil || rep.Valid || rep.Reason != store.ReasonUnreadable || !strings.Contains(errOut, "actions_tenant_created") {
		t.Fatalf("unreadable chain: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"audit"}, exitUsage, "Usage: gatehouse audit verify"},
		{[]string{"audit", "check"}, exitUsage, "Usage: gatehouse audit verify"},
		{[]string{"audit", "verify", "--store", dsn}, exitUsage, "--tenant is required"},
		{[]string{"audit", "verify", "--tenant", "ten_missing", "--store", dsn}, exitUsage, `tenant "ten_missing" not found`},
		{[]string{"audit", "verify", "--tenant", "t", "--store", "sqlite://" + filepath.Join(t.TempDir(), "none.db")}, exitUsage, "no store at"},
		{[]string{"audit", "verify", "--tenant", "t", "--bogus"}, exitUsage, "flag provided but not defined"},
	} {
		code, _, errOut := runCmd(t, nil, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.msg) {
			t.Errorf("%v: exit %d (want %d), stderr %q (want %q)", tc.args, code, tc.code, errOut, tc.msg)
		}
	}
	if code, out, _ := runCmd(t, nil, "audit", "--help"); code != exitOK || !strings.Contains(out, "Exit status") {
		t.Errorf("audit --help: %d %q", code, out)
	}
}
