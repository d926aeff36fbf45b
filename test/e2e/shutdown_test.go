package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestShutdownUnderLoad: SIGTERM while clients are submitting actions.
// The server stops accepting, lets the in-flight requests finish and
// exits 0 within its shutdown timeout; nothing it acknowledged is lost:
// every action answered 200 is in the store (read back through a new
// server on the same file), the audit chain verifies, and the decision
// log file holds every one of them.
func TestShutdownUnderLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	store := "sqlite://" + filepath.Join(dir, "g.db")
	logPath := filepath.Join(dir, "decisions", "decisions.log")
	key := NewKey()
	s := Start(t, binary(t), Options{Store: store, BootstrapKey: key, Args: []string{
		"--decision-log", "file", "--decision-log-path", logPath, "--decision-log-max-size-mb", "1", "--decision-log-max-files", "1000",
		// A buffer no burst of this test fills: every answered decision
		// must be logged. (Dropping is tested in pdp/decisionlog.)
		"--decision-log-buffer-size", "100000",
	}})
	c := s.Client(key)
	wantStatus(t, c.Do(t, "POST", "/v1/control/policies", map[string]any{
		"name": "no_prod_deletes", "rules": []any{map[string]any{"match": "delete.*prod", "severity": "high"}},
	}), 201)

	const clients = 8
	var (
		mu       sync.Mutex
		accepted []string // action ids answered 200
		answered atomic.Int64
		refused  atomic.Int64 // no 200: connection refused or reset once stopping
	)
	hc := &http.Client{Timeout: requestTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range clients {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body := fmt.Sprintf(`{"action":"db.delete","params":{"table":"t%d","env":%q},"agent_id":"bot-%d"}`,
					i, []string{"prod", "dev"}[i%2], w)
				req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/actions", bytes.NewReader([]byte(body)))
				req.Header.Set("Authorization", "Bearer "+key)
				req.Header.Set("Content-Type", "application/json")
				resp, err := hc.Do(req)
				if err != nil {
					refused.Add(1)
					time.Sleep(5 * time.Millisecond)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					refused.Add(1)
					continue
				}
				var r struct {
					ActionID string `json:"action_id"`
				}
				if err := json.Unmarshal(b, &r); err != nil || r.ActionID == "" {
					t.Errorf("200 without an action_id: %s", b)
					continue
				}
				mu.Lock()
				accepted = append(accepted, r.ActionID)
				mu.Unlock()
				answered.Add(1)
			}
		})
	}

	// Mid-load: once a good number of actions went through.
	if !eventually(30*time.Second, func() bool { return answered.Load() >= 200 }) {
		close(stop)
		wg.Wait()
		t.Fatalf("only %d actions answered in 30s", answered.Load())
	}
	sent := time.Now()
	s.Signal(syscall.SIGTERM)
	code, err := s.Wait(shutdownTimeout + 5*time.Second)
	took := time.Since(sent)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("after SIGTERM under load: %v", err)
	}
	if code != 0 {
		t.Fatalf("exit code %d after SIGTERM under load, want 0", code)
	}
	t.Logf("%d actions answered 200 (%d refused or failed while stopping); exited 0 %s after SIGTERM",
		len(accepted), refused.Load(), took.Round(time.Millisecond))
	if took > shutdownTimeout {
		t.Errorf("exit took %s, more than the shutdown timeout %s", took, shutdownTimeout)
	}
	if _, _, err := s.Stderr.Wait(0, logTimeout, LogMsg("decision log flushed")); err != nil {
		t.Errorf("no \"decision log flushed\" line:\n%s", s.Stderr)
	}

	// The decision log holds every acknowledged decision.
	logged := map[string]bool{}
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(logPath), "*"))
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var ev struct {
				DecisionID string `json:"decision_id"`
			}
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Errorf("%s: a line that is not an event: %.200s", f, sc.Text())
				continue
			}
			logged[ev.DecisionID] = true
		}
		fh.Close()
	}
	missing := 0
	for _, id := range accepted {
		if !logged[id] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged actions are not in the decision log (%d files)", missing, len(accepted), len(files))
	}

	// Every acknowledged action is durable: a new server on the same file
	// has each one.
	s2 := Start(t, binary(t), Options{Store: store})
	c2 := s2.Client(key)
	lost := 0
	for _, id := range accepted {
		if r := c2.Do(t, "GET", "/v1/actions/"+id, nil); r.Status != 200 {
			lost++
			if lost <= 3 {
				t.Errorf("GET /v1/actions/%s after restart: %d %s", id, r.Status, r.Body)
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged actions lost", lost, len(accepted))
	}
	r := c2.Do(t, "GET", "/v1/audit/verify", nil)
	skipUnbuilt(t, r)
	v := wantStatus(t, r, 200)
	if v["valid"] != true || v["first_bad_sequence"] != nil {
		t.Errorf("audit chain after shutdown under load: %s", r.Body)
	}
	// One entry per action at least, plus the policy write.
	if n, _ := v["entries"].(float64); int(n) < len(accepted)+1 {
		t.Errorf("audit chain has %v entries for %d acknowledged actions and a policy write", v["entries"], len(accepted))
	}
}
