package replicas

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/test/e2e"
)

// TestPolicyWriteGovernsOtherReplica writes a policy through replica A 50
// times, each time blocking a new word, and measures how long replica B
// takes to block it: docs/api.md §A4 allows 1 s.
func TestPolicyWriteGovernsOtherReplica(t *testing.T) {
	c := NewCluster(t, 2)
	a := c.Client(0)
	var delays Delays
	for i := range 50 {
		word := fmt.Sprintf("replica_probe_%02d", i)
		r := a.Do(t, http.MethodPost, "/v1/control/policies", map[string]any{
			"name":  "replica_probe",
			"rules": []any{map[string]any{"match": word, "severity": "critical", "on_violation": "block"}},
		})
		if r.Status != http.StatusCreated && r.Status != http.StatusOK {
			t.Fatalf("write %d through A: %d %s", i, r.Status, r.Body)
		}
		written := time.Now()
		var enforced time.Duration
		Until(t, 5*Bound, "B blocks "+word, func() bool {
			ans, err := c.Submit(t.Context(), 1, "slack.send_message", map[string]any{"text": "say " + word})
			if err != nil || ans.Status != http.StatusOK {
				t.Fatalf("submit to B: %d %v %v", ans.Status, ans.Body, err)
			}
			enforced = time.Since(written)
			return ans.Body["status"] == "blocked"
		})
		delays = append(delays, enforced)
	}
	t.Logf("policy write on A → enforced on B, %d writes: median %s, max %s", len(delays), delays.Median(), delays.Max())
	// The contract's bound holds for the median: a loaded CI machine can
	// stall one process past it (each write is still held to 5 s above).
	if delays.Median() > Bound {
		t.Errorf("median write took %s to govern the other replica, contract allows %s", delays.Median(), Bound)
	}
}

// TestRevokedKeyRefusedOnOtherReplica revokes, through replica A, a key
// replica B has just authenticated (and cached): B must refuse it within
// the same bound.
func TestRevokedKeyRefusedOnOtherReplica(t *testing.T) {
	c := NewCluster(t, 2)
	created := c.Admin(0).Do(t, http.MethodPost, "/v1/admin/tenants/default/keys", nil).JSON(t)
	key, _ := created["api_key"].(string)
	keyID, _ := created["key_id"].(string)
	if key == "" || keyID == "" {
		t.Fatalf("new key: %v", created)
	}
	b := c.Replicas[1].Client(key)
	if r := b.Do(t, http.MethodGet, "/v1/control/policies", nil); r.Status != http.StatusOK {
		t.Fatalf("new key on B: %d %s", r.Status, r.Body)
	}
	if r := c.Admin(0).Do(t, http.MethodDelete, "/v1/admin/keys/"+keyID, nil); r.Status != http.StatusOK {
		t.Fatalf("revoke through A: %d %s", r.Status, r.Body)
	}
	// Below the auth cache's 5 s TTL, so a pass proves the revocation was
	// pushed to B, not waited out; a single measurement, so not held to the
	// contract's 1 s, which a loaded machine can miss once (the write test
	// above holds the median to it).
	d := Until(t, 4*Bound, "B refuses the revoked key", func() bool {
		return b.Do(t, http.MethodGet, "/v1/control/policies", nil).Status == http.StatusUnauthorized
	})
	t.Logf("key revoked on A → refused on B after %s", d)
}

// actionMix is what the load tests submit: allowed, pending and blocked
// decisions alike, so every kind of row is written.
func actionMix(n int) (string, map[string]any) {
	switch n % 3 {
	case 0:
		return "slack.send_message", map[string]any{"channel": "#ops", "text": fmt.Sprintf("note %d", n)}
	case 1:
		return "payment.transfer", map[string]any{"amount": 20000, "ref": n}
	default:
		return "wire.send", map[string]any{"amount": 250000, "ref": n}
	}
}

// TestConcurrentSubmissionsStoredOnce submits from 8 clients to each of
// two replicas at once: every submission is answered 200 and its action is
// stored exactly once, visible from both replicas.
func TestConcurrentSubmissionsStoredOnce(t *testing.T) {
	c := NewCluster(t, 2)
	const workers, each = 8, 40
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		ids      []string
		failures []string
	)
	for r := range c.Replicas {
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					action, params := actionMix(i)
					ans, err := c.Submit(t.Context(), r, action, params)
					id, _ := ans.Body["action_id"].(string)
					mu.Lock()
					if err != nil || ans.Status != http.StatusOK || id == "" {
						failures = append(failures, fmt.Sprintf("replica %d worker %d #%d: %d %v %v", r, w, i, ans.Status, ans.Body, err))
					} else {
						ids = append(ids, id)
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	for i, f := range failures {
		if i == 5 {
			t.Errorf("... %d failures in all", len(failures))
			break
		}
		t.Error(f)
	}
	want := len(c.Replicas) * workers * each
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Errorf("action_id %s answered twice", id)
		}
		seen[id] = true
	}
	var rows, distinct, answered int
	if err := c.DB.QueryRow(t.Context(), `SELECT count(*), count(DISTINCT id), count(*) FILTER (WHERE id = ANY($1)) FROM actions`, ids).
		Scan(&rows, &distinct, &answered); err != nil {
		t.Fatal(err)
	}
	if rows != want || distinct != want || answered != want {
		t.Errorf("actions table: %d rows, %d distinct ids, %d of the answered ids; want %d of each", rows, distinct, answered, want)
	}
	for i := range c.Replicas {
		got := c.Client(i).Do(t, http.MethodGet, "/v1/actions?limit=1", nil).JSON(t)
		if total, _ := got["total"].(float64); int(total) != want {
			t.Errorf("replica %d lists %v actions, want %d", i, got["total"], want)
		}
	}
}

// TestKilledReplicaLosesNoAcknowledgedAction drives both replicas, kills
// replica A with SIGKILL in the middle of it, and then reads every action
// A had acknowledged through the survivor: an answer is sent only once the
// action is durable, so none may be missing. B keeps answering throughout.
func TestKilledReplicaLosesNoAcknowledgedAction(t *testing.T) {
	c := NewCluster(t, 2)
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	const workers = 8
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		acked    [2][]string
		refused  [2]int
		bFailure []string
	)
	for r := range c.Replicas {
		for w := range workers {
			wg.Go(func() {
				for i := 0; ctx.Err() == nil; i++ {
					action, params := actionMix(w*1_000_000 + i)
					ans, err := c.Submit(ctx, r, action, params)
					id, _ := ans.Body["action_id"].(string)
					mu.Lock()
					switch {
					case err == nil && ans.Status == http.StatusOK && id != "":
						acked[r] = append(acked[r], id)
					case ctx.Err() != nil:
					case r == 0:
						refused[0]++ // in flight when A died, or sent after
					default:
						bFailure = append(bFailure, fmt.Sprintf("%d %v %v", ans.Status, ans.Body, err))
					}
					mu.Unlock()
					if r == 0 && err != nil {
						time.Sleep(5 * time.Millisecond) // A is gone: do not spin
					}
				}
			})
		}
	}
	count := func(r int) int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked[r])
	}
	Until(t, 60*time.Second, "A acknowledges 300 actions", func() bool { return count(0) >= 300 })
	c.Replicas[0].Kill()
	killedAt := count(0)
	after := count(1)
	Until(t, 60*time.Second, "B acknowledges 200 more actions after A died", func() bool { return count(1) >= after+200 })
	stop()
	wg.Wait()
	if len(bFailure) > 0 {
		t.Errorf("the surviving replica failed %d requests, e.g. %s", len(bFailure), bFailure[0])
	}
	t.Logf("A acknowledged %d actions (%d as SIGKILL was sent), %d requests to A failed; B acknowledged %d",
		len(acked[0]), killedAt, refused[0], len(acked[1]))

	b := c.Client(1)
	missing := 0
	for r, ids := range acked {
		for _, id := range ids {
			got := b.Do(t, http.MethodGet, "/v1/actions/"+id, nil)
			if got.Status != http.StatusOK || !strings.Contains(string(got.Body), id) {
				missing++
				if missing <= 5 {
					t.Errorf("action %s acknowledged by replica %d: GET on the survivor = %d %s", id, r, got.Status, got.Body)
				}
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d acknowledged actions lost", missing)
	}
}

// TestReplicasMigrateTogether starts two replicas at the same instant on
// an empty database, three times over: both migrate without an error (one
// applies the schema, the other waits for it), the schema is recorded
// once, tenant "default" is bootstrapped once, and both serve it.
func TestReplicasMigrateTogether(t *testing.T) {
	for round := range 3 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			c := NewCluster(t, 2)
			var rows, distinct, newest, tenants int
			if err := c.DB.QueryRow(t.Context(), `SELECT count(*), count(DISTINCT version), max(version) FROM schema_migrations`).
				Scan(&rows, &distinct, &newest); err != nil {
				t.Fatal(err)
			}
			if rows != newest || distinct != newest || newest < 1 {
				t.Errorf("schema_migrations: %d rows, %d distinct, newest %d; want each version once", rows, distinct, newest)
			}
			if err := c.DB.QueryRow(t.Context(), `SELECT count(*) FROM tenants`).Scan(&tenants); err != nil || tenants != 1 {
				t.Errorf("%d tenants (%v), want the bootstrap tenant once", tenants, err)
			}
			for i, r := range c.Replicas {
				if line, _, err := r.Stderr.Wait(0, 0, isError); err == nil {
					t.Errorf("replica %d logged an error: %s", i, line)
				}
				if got := c.Client(i).Do(t, http.MethodGet, "/v1/control/policies", nil); got.Status != http.StatusOK {
					t.Errorf("replica %d: GET /v1/control/policies = %d %s", i, got.Status, got.Body)
				}
			}
		})
	}
}

// isError matches log lines at level ERROR.
func isError(line string) bool {
	m, ok := e2e.LogEntry(line)
	return ok && m["level"] == "ERROR"
}
