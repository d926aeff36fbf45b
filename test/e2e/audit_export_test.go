package e2e

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/sqlite"
)

// Audit export and retention through the binary (docs/api.md §A10).

var exportCSVHeader = "timestamp,operation,agent_id,artifact_id,content_hash,sequence_number,event,prev_hash,entry_hash,metadata"

// TestAuditExportFormats: the three formats, their content types, the
// tier gate and the filters, every exchange checked against the spec.
func TestAuditExportFormats(t *testing.T) {
	t.Parallel()
	s := govServer(t, SQLiteStore(t), NewKey())
	_, c := govTenant(t, s, "starter")
	_, free := govTenant(t, s, "free")
	wantStatus(t, c.Do(t, "POST", "/v1/control/policies", warnPolicy("emails", "email")), 201)
	govSubmit(t, c, map[string]any{"action": "slack.send", "params": map[string]any{"text": "email"}, "agent_id": "ops bot/eu"}, "allowed")
	govSubmit(t, c, map[string]any{"action": "bank.wire", "params": map[string]any{"amount": 150000}}, "blocked")

	ok := func(r *Response) {
		t.Helper()
		if r.Status != 200 {
			t.Fatalf("export: %d %s", r.Status, r.Body)
		}
	}
	r := c.Do(t, "GET", "/v1/audit/export", nil) // csv by default
	ok(r)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
		t.Errorf("Content-Type %q", ct)
	}
	rows, err := csv.NewReader(bytes.NewReader(r.Body)).ReadAll()
	if err != nil || len(rows) != 4 || strings.Join(rows[0], ",") != exportCSVHeader {
		t.Fatalf("csv export: %v\n%s", err, r.Body)
	}
	// Chain order; Novyx's columns first.
	if rows[1][1] != "policy_created" || rows[1][3] != "emails" || rows[2][1] != "action_executed" || rows[2][2] != "ops bot/eu" || rows[3][1] != "action_blocked" || rows[3][5] != "3" {
		t.Errorf("csv rows %q", rows[1:])
	}
	if !strings.HasPrefix(rows[2][4], "sha256:") || !strings.HasPrefix(rows[2][8], "sha256:") || rows[3][7] != rows[2][8] {
		t.Errorf("csv hashes %q", rows[2:])
	}

	r = c.Do(t, "GET", "/v1/audit/export?format=json&event_type=action_executed,action_blocked", nil)
	ok(r)
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var arr []map[string]any
	if err := json.Unmarshal(r.Body, &arr); err != nil || len(arr) != 2 || arr[0]["operation"] != "action_executed" || arr[0]["agent_id"] != "ops bot/eu" {
		t.Fatalf("json export: %v\n%s", err, r.Body)
	}

	r = c.Do(t, "GET", "/v1/audit/export?format=jsonl&since=2000-01-01&until=", nil)
	ok(r)
	if ct := r.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("Content-Type %q", ct)
	}
	if lines := strings.Split(strings.TrimSuffix(string(r.Body), "\n"), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[0], `{"sequence_number":1,`) {
		t.Errorf("jsonl export:\n%s", r.Body)
	}
	// An empty window is a valid, empty document.
	r = c.Do(t, "GET", "/v1/audit/export?format=json&until=2000-01-01", nil)
	if ok(r); string(r.Body) != "[]" {
		t.Errorf("empty json export %q", r.Body)
	}
	wantError(t, c.Do(t, "GET", "/v1/audit/export?format=xml", nil), 400, "VALIDATION_ERROR")
	wantFeatureRequired(t, free.Do(t, "GET", "/v1/audit/export", nil), "audit_export", "starter", "free")
}

// TestAuditExportCSVFormulas: agent ids a spreadsheet would run as
// formulas come out of the CSV export as text (after a single quote, as
// does one that begins with a quote), and exactly as they are in JSON.
func TestAuditExportCSVFormulas(t *testing.T) {
	t.Parallel()
	s := govServer(t, SQLiteStore(t), NewKey())
	_, c := govTenant(t, s, "starter")
	agents := []string{`=HYPERLINK("http://evil.example","x")`, "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)", "'quoted", "a=1"}
	for _, a := range agents {
		govSubmit(t, c, map[string]any{"action": "slack.send", "params": map[string]any{"text": "hi"}, "agent_id": a}, "allowed")
	}
	r := c.Do(t, "GET", "/v1/audit/export?format=csv", nil)
	if r.Status != 200 {
		t.Fatalf("export: %d %s", r.Status, r.Body)
	}
	rows, err := csv.NewReader(bytes.NewReader(r.Body)).ReadAll()
	if err != nil || len(rows) != 1+len(agents) {
		t.Fatalf("csv export: %v\n%s", err, r.Body)
	}
	for i, a := range agents {
		want := a
		if a != "a=1" {
			want = "'" + a
		}
		if got := rows[1+i][2]; got != want {
			t.Errorf("agent_id cell %q, want %q", got, want)
		}
	}
	r = c.Do(t, "GET", "/v1/audit/export?format=json", nil)
	var arr []map[string]any
	if err := json.Unmarshal(r.Body, &arr); err != nil || len(arr) != len(agents) {
		t.Fatalf("json export: %v\n%s", err, r.Body)
	}
	for i, a := range agents {
		if arr[i]["agent_id"] != a {
			t.Errorf("json agent_id %v, want %q", arr[i]["agent_id"], a)
		}
	}
}

// rss returns the process's current and peak resident set sizes in KiB
// (/proc/<pid>/status VmRSS and VmHWM).
func rss(t *testing.T, pid int) (cur, peak int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && (f[0] == "VmRSS:" || f[0] == "VmHWM:") {
			n, _ := strconv.Atoi(f[1])
			if f[0] == "VmRSS:" {
				cur = n
			} else {
				peak = n
			}
		}
	}
	return cur, peak
}

// TestAuditExportLarge exports a chain of 100,000 entries in each format
// and checks the server's peak RSS grows by far less than the export's
// size: the entries are streamed, never held.
func TestAuditExportLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 entries")
	}
	t.Parallel()
	const n = 100_000
	storeDSN, key := SQLiteStore(t), NewKey()
	s := govServer(t, storeDSN, key)
	s.Stop()
	// The entries are appended by the store itself (real hashes, real
	// chain), a thousand per transaction: through the API it would take
	// minutes on a loaded machine.
	db, err := sqlite.Open(context.Background(), strings.TrimPrefix(storeDSN, "sqlite://"))
	if err != nil {
		t.Fatal(err)
	}
	evs := make([]store.AuditEvent, 1000)
	for i := 0; i < n; i += len(evs) {
		for j := range evs {
			evs[j] = store.AuditEvent{Event: "action_executed", Metadata: json.RawMessage(fmt.Sprintf(
				`{"action_id":"act_%024d","agent_id":"bulk-agent","action":"db.query","status":"allowed","note":"entry %d of the large export test, padded to a realistic size"}`, i+j, i+j))}
		}
		if _, err := db.AppendAudit(context.Background(), "default", evs...); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Streaming is about live memory: at serve's default GOGC=400 the
	// garbage a 65 MB stream leaves between collections may reach four
	// times the live heap, which says nothing about what the export holds.
	// Go's default GOGC=100 keeps the peak close to the live heap.
	s = Start(t, binary(t), Options{Store: storeDSN, BootstrapKey: key, Args: []string{"--admin-token", govAdminToken}, Env: []string{"GOGC=100"}})
	pid := s.cmd.Process.Pid
	hc := &http.Client{Timeout: 10 * time.Minute} // not the spec client: it would hold the body to check it
	get := func(format string) (entries int, bytes int64) {
		req, _ := http.NewRequest("GET", s.URL+"/v1/audit/export?format="+format, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("export %s: %d %s", format, resp.StatusCode, b)
		}
		cr := &countingReader{r: resp.Body}
		switch format {
		case "json":
			dec := json.NewDecoder(cr)
			if _, err := dec.Token(); err != nil {
				t.Fatal(err)
			}
			for dec.More() {
				var e struct {
					SequenceNumber int `json:"sequence_number"`
				}
				if err := dec.Decode(&e); err != nil {
					t.Fatal(err)
				}
				if entries++; e.SequenceNumber != entries {
					t.Fatalf("json entry %d has sequence_number %d", entries, e.SequenceNumber)
				}
			}
		default:
			sc := bufio.NewScanner(cr)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				entries++
			}
			if err := sc.Err(); err != nil {
				t.Fatal(err)
			}
			if format == "csv" {
				entries-- // the header
			}
		}
		return entries, cr.n
	}
	_, before := rss(t, pid)
	for _, f := range []string{"csv", "json", "jsonl"} {
		start := time.Now()
		got, size := get(f)
		cur, peak := rss(t, pid)
		t.Logf("export %s: %d entries, %.1f MB in %s; server RSS %d MiB now, peak %d MiB (%d MiB before the exports)",
			f, got, float64(size)/1e6, time.Since(start).Round(time.Millisecond), cur/1024, peak/1024, before/1024)
		if got != n {
			t.Errorf("export %s: %d entries, want %d", f, got, n)
		}
		// Held in memory, the export alone would add its size (30 MB and
		// more) to the peak; streamed, the peak barely moves.
		if grew := int64(peak-before) * 1024; grew > size/2 {
			t.Errorf("export %s of %d bytes grew the server's peak RSS by %d bytes", f, size, grew)
		}
	}
	v := wantStatus(t, s.Client(key).Do(t, "GET", "/v1/audit/verify", nil), 200)
	wantField(t, v, true, "valid")
	wantField(t, v, n, "entries")
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestAuditRetention: with retention on, the server prunes entries past
// the tier's period behind a checkpoint; verify still passes and says
// where the retained chain starts; a tamper after pruning still fails,
// through the API and the CLI.
func TestAuditRetention(t *testing.T) {
	t.Parallel()
	storeDSN, key := SQLiteStore(t), NewKey()
	s := Start(t, binary(t), Options{Store: storeDSN, BootstrapKey: key, Args: []string{
		"--admin-token", govAdminToken, "--audit-retention", "--audit-retention-enterprise", "3s", "--audit-prune-interval", "1s",
	}})
	c := s.Client(key)
	for range 3 {
		govSubmit(t, c, map[string]any{"action": "bank.wire", "params": map[string]any{"amount": 150000}}, "blocked")
	}
	var v map[string]any
	if !eventually(60*time.Second, func() bool {
		v = wantStatus(t, c.Do(t, "GET", "/v1/audit/verify", nil), 200)
		return v["retained_from_sequence"] == 4.0
	}) {
		t.Fatalf("entries were not pruned: %v", v)
	}
	wantField(t, v, true, "valid")
	wantField(t, v, 0, "entries")
	wantField(t, v, 3, "checkpoint", "sequence_number")
	wantTime(t, field(v, "checkpoint", "pruned_at"), "pruned_at")
	id := govSubmit(t, c, map[string]any{"action": "bank.wire", "params": map[string]any{"amount": 150000}}, "blocked")
	s.Stop()

	// Without retention, nothing more goes.
	s = govServer(t, storeDSN, key)
	c = s.Client(key)
	v = wantStatus(t, c.Do(t, "GET", "/v1/audit/verify", nil), 200)
	wantField(t, v, true, "valid")
	wantField(t, v, 1, "entries")
	wantField(t, v, 4, "retained_from_sequence")
	l := wantStatus(t, c.Do(t, "GET", "/v1/audit", nil), 200)
	wantField(t, l, 1, "total")
	wantField(t, l, id, "entries", 0, "artifact_id")
	s.Stop()

	// A forged checkpoint breaks the link to the first retained entry.
	db, err := sql.Open("sqlite", strings.TrimPrefix(storeDSN, "sqlite://"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE audit_checkpoints SET entry_hash = 'sha256:' || substr(entry_hash, 9, 63) || 'x' WHERE tenant_id = 'default'`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	res := Run(t, binary(t), nil, "audit", "verify", "--tenant", "default", "--store", storeDSN)
	if res.Code != 1 || !strings.Contains(res.Stdout, `"first_bad_sequence":4`) {
		t.Errorf("audit verify after a forged checkpoint: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	s = govServer(t, storeDSN, key)
	v = wantStatus(t, s.Client(key).Do(t, "GET", "/v1/audit/verify", nil), 200)
	wantField(t, v, false, "valid")
	wantField(t, v, 4, "first_bad_sequence")
}
