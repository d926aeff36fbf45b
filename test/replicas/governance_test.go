package replicas

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
)

// The audit chain and the approvals are one per database: whichever
// replica appends or decides, the tenant's chain must stay gap-free and
// fork-free (docs/api.md §A10) and a decision must happen exactly once (A8).

// codeAlreadyDecided is docs/api.md §A8's code for a decision on a decided
// approval.
const codeAlreadyDecided = "novyx_ram.v1.control.approval_already_decided"

// skipIfRouteMissing skips the test when a governance route is not served
// yet (404 with the generic NOT_FOUND code, not a resource's own 404).
func skipIfRouteMissing(t *testing.T, what string, status int, body map[string]any) {
	t.Helper()
	if status == http.StatusNotFound && body["code"] == "NOT_FOUND" {
		t.Skipf("%s answers 404 NOT_FOUND: the route is not served by this build yet (%v)", what, body)
	}
}

// verifyChainOnAll checks GET /v1/audit/verify on every replica: a valid chain
// of want entries (want < 0: any), the same on each. It returns the count.
func verifyChainOnAll(t *testing.T, c *Cluster, want int) int {
	t.Helper()
	got := -1
	for i := range c.Replicas {
		r := c.Client(i).Do(t, http.MethodGet, "/v1/audit/verify", nil)
		body := r.JSON(t)
		skipIfRouteMissing(t, "GET /v1/audit/verify", r.Status, body)
		if r.Status != http.StatusOK {
			t.Fatalf("replica %d: GET /v1/audit/verify = %d %s", i, r.Status, r.Body)
		}
		n, _ := body["entries"].(float64)
		if body["valid"] != true || body["first_bad_sequence"] != nil {
			t.Errorf("replica %d: chain does not verify: %s", i, r.Body)
		}
		if want >= 0 && int(n) != want {
			t.Errorf("replica %d: chain of %d entries, want %d", i, int(n), want)
		}
		if got >= 0 && int(n) != got {
			t.Errorf("replica %d verifies %d entries, replica 0 %d", i, int(n), got)
		}
		got = int(n)
	}
	return got
}

// submitHeld submits an action that FinancialSafety holds for approval to
// replica i and returns its ID.
func submitHeld(t *testing.T, c *Cluster, i int, ref string) string {
	t.Helper()
	ans, err := c.Submit(t.Context(), i, "payment.transfer", map[string]any{"amount": 20000, "ref": ref})
	id, _ := ans.Body["action_id"].(string)
	if err != nil || ans.Status != http.StatusOK || ans.Body["status"] != "pending_review" || id == "" {
		t.Fatalf("submit to replica %d: %d %v %v; want a pending_review action", i, ans.Status, ans.Body, err)
	}
	return id
}

// approvers are the people deciding in these tests; each has a key of
// its own, since the approver is the deciding key's owner.
var approvers = []string{"prober", "denier", "approver-0", "approver-1", "enterprise-approver-0", "enterprise-approver-1", "team-approver-0", "team-approver-1"}

// govCluster is NewCluster with tenant "default" in enterprise mode (two
// approvals) and a key for every approver, created before any test
// counts entries.
func govCluster(t *testing.T, n int) (*Cluster, map[string]string) {
	t.Helper()
	c := NewCluster(t, n)
	if r := c.Admin(0).Do(t, http.MethodPatch, "/v1/admin/tenants/default", map[string]any{"approval_mode": "enterprise",
		"approval_settings": map[string]any{"min_approvals": 2}}); r.Status != http.StatusOK {
		t.Fatalf("PATCH approval_mode enterprise: %d %s", r.Status, r.Body)
	}
	keys := map[string]string{}
	for _, name := range approvers {
		r := c.Client(0).Do(t, http.MethodPost, "/v1/keys", map[string]any{"name": name, "role": "admin"})
		if r.Status != http.StatusCreated {
			t.Fatalf("key for %s: %d %s", name, r.Status, r.Body)
		}
		keys[name] = r.JSON(t)["api_key"].(string)
	}
	return c, keys
}

// postDecision posts a decision on approval id to replica i with the
// approver's own key.
func postDecision(ctx context.Context, c *Cluster, keys map[string]string, i int, id, decision, approver string) (Answer, error) {
	key, ok := keys[approver]
	if !ok {
		return Answer{}, fmt.Errorf("no key for approver %q", approver)
	}
	return c.Send(ctx, i, key, "/v1/approvals/"+id+"/decision", map[string]any{"decision": decision, "reason": "replica test"})
}

// decisionEntries is how many entries a successful decision appended: its vote
// or decision, and the decision too when a vote completed it.
func decisionEntries(a Answer, mode string) int {
	if mode == "enterprise" && a.Body["status"] != "pending_review" {
		return 2
	}
	return 1
}

// TestAuditChainAcrossReplicas submits from 8 clients to each of two
// replicas at once — allowed, held and blocked actions — then decides
// every held action, half by one deny, half by two approvals sent to the
// two replicas at the same instant (enterprise mode, two approvals needed).
// The tenant's chain must verify on both replicas and hold exactly one
// entry per evaluation, vote and decision.
func TestAuditChainAcrossReplicas(t *testing.T) {
	c, keys := govCluster(t, 2)
	ctx := t.Context()
	base := verifyChainOnAll(t, c, -1)
	// Probe the decision route once, before the load.
	probe := submitHeld(t, c, 0, "probe")
	ans, err := postDecision(ctx, c, keys, 1, probe, "deny", "prober")
	if err != nil {
		t.Fatal(err)
	}
	skipIfRouteMissing(t, "POST /v1/approvals/{id}/decision", ans.Status, ans.Body)
	if ans.Status != http.StatusOK || ans.Body["status"] != "denied" {
		t.Fatalf("deny %s: %d %v", probe, ans.Status, ans.Body)
	}

	const workers, each = 8, 30
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		entries  = 1 + decisionEntries(ans, "enterprise")
		held     []string
		failures []string
	)
	failed := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, fmt.Sprintf(format, args...))
	}
	for r := range c.Replicas {
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					action, params := actionMix(w + i)
					ans, err := c.Submit(ctx, r, action, params)
					id, _ := ans.Body["action_id"].(string)
					if err != nil || ans.Status != http.StatusOK || id == "" {
						failed("submit to replica %d: %d %v %v", r, ans.Status, ans.Body, err)
						continue
					}
					mu.Lock()
					entries++
					if ans.Body["status"] == "pending_review" {
						held = append(held, id)
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if len(held) == 0 {
		t.Fatal("no submission was held for approval")
	}

	// Decide every held action, 16 at a time.
	sem := make(chan struct{}, 16)
	for k, id := range held {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if k%2 == 0 { // one deny finalizes
				ans, err := postDecision(ctx, c, keys, k%2, id, "deny", "denier")
				if err != nil || ans.Status != http.StatusOK || ans.Body["status"] != "denied" {
					failed("deny %s: %d %v %v", id, ans.Status, ans.Body, err)
					return
				}
				mu.Lock()
				entries += decisionEntries(ans, "enterprise")
				mu.Unlock()
				return
			}
			// Two approvals, one on each replica, at once: both are
			// counted, exactly one of them decides.
			var (
				pair [2]Answer
				errs [2]error
				vg   sync.WaitGroup
			)
			start := make(chan struct{})
			for r := range 2 {
				vg.Go(func() {
					<-start
					pair[r], errs[r] = postDecision(ctx, c, keys, r, id, "approve", fmt.Sprintf("approver-%d", r))
				})
			}
			close(start)
			vg.Wait()
			decided := 0
			for r, ans := range pair {
				if errs[r] != nil || ans.Status != http.StatusOK {
					failed("approve %s on replica %d: %d %v %v", id, r, ans.Status, ans.Body, errs[r])
					return
				}
				if ans.Body["status"] == "approved" {
					decided++
				}
				mu.Lock()
				entries += decisionEntries(ans, "enterprise")
				mu.Unlock()
			}
			if decided != 1 {
				failed("approve %s: %d of the two approvals decided (%v, %v), want 1", id, decided, pair[0].Body, pair[1].Body)
			}
		})
	}
	wg.Wait()
	for i, f := range failures {
		if i == 5 {
			t.Errorf("... %d failures in all", len(failures))
			break
		}
		t.Error(f)
	}
	t.Logf("%d submissions, %d held and decided, %d entries appended across both replicas", workers*each*len(c.Replicas), len(held), entries)
	verifyChainOnAll(t, c, base+entries)
	for i := range c.Replicas {
		list := c.Client(i).Do(t, http.MethodGet, "/v1/audit?limit=1", nil)
		if list.Status != http.StatusOK {
			t.Fatalf("replica %d: GET /v1/audit = %d %s", i, list.Status, list.Body)
		}
		if total, _ := list.JSON(t)["total"].(float64); int(total) != base+entries {
			t.Errorf("replica %d lists %v entries, want %d", i, total, base+entries)
		}
	}
	var rows, top int
	if err := c.DB.QueryRow(ctx, `SELECT count(*), coalesce(max(seq), 0) FROM audit_log WHERE tenant_id = 'default'`).Scan(&rows, &top); err != nil {
		t.Fatal(err)
	}
	if rows != base+entries || top != rows {
		t.Errorf("audit_log holds %d rows up to sequence %d, want %d without gaps", rows, top, base+entries)
	}
}

// TestDecisionOnceAcrossReplicas posts two decisions on one approval to the
// two replicas at the same instant, twenty times: exactly one is applied
// (200) and the other refused with 409 approval_already_decided. In
// enterprise mode, two denies by different approvers (a deny finalizes);
// then in team mode, two approvals (each decides at once). The chain
// verifies on both replicas afterwards, with one entry per evaluation and
// per applied vote or decision.
func TestDecisionOnceAcrossReplicas(t *testing.T) {
	c, keys := govCluster(t, 2)
	ctx := t.Context()
	base := verifyChainOnAll(t, c, -1)
	entries := 0

	race := func(mode, id, decision string) {
		t.Helper()
		var (
			answers [2]Answer
			errs    [2]error
			wg      sync.WaitGroup
		)
		start := make(chan struct{})
		for r := range 2 {
			wg.Go(func() {
				<-start
				answers[r], errs[r] = postDecision(ctx, c, keys, r, id, decision, fmt.Sprintf("%s-approver-%d", mode, r))
			})
		}
		close(start)
		wg.Wait()
		for r := range 2 {
			if errs[r] != nil {
				t.Fatalf("%s: decision on replica %d: %v", mode, r, errs[r])
			}
			skipIfRouteMissing(t, "POST /v1/approvals/{id}/decision", answers[r].Status, answers[r].Body)
		}
		ok, conflict := 0, 0
		for r, a := range answers {
			switch {
			case a.Status == http.StatusOK:
				ok++
				entries += decisionEntries(a, mode)
			case a.Status == http.StatusConflict && a.Body["code"] == codeAlreadyDecided:
				conflict++
			default:
				t.Errorf("%s: replica %d answered %d %v", mode, r, a.Status, a.Body)
			}
		}
		if ok != 1 || conflict != 1 {
			t.Errorf("%s, approval %s: %d applied and %d refused as already decided (%v / %v), want exactly one of each",
				mode, id, ok, conflict, answers[0].Body, answers[1].Body)
		}
	}

	const rounds = 10
	for k := range rounds {
		id := submitHeld(t, c, k%2, fmt.Sprint("enterprise-", k))
		entries++
		race("enterprise", id, "deny")
	}

	if r := c.Admin(0).Do(t, http.MethodPatch, "/v1/admin/tenants/default", map[string]any{"approval_mode": "team"}); r.Status != http.StatusOK {
		t.Fatalf("PATCH approval_mode team: %d %s", r.Status, r.Body)
	}
	for i := range c.Replicas {
		Until(t, 5*Bound, fmt.Sprintf("replica %d sees team mode", i), func() bool {
			r := c.Admin(i).Do(t, http.MethodGet, "/v1/admin/tenants/default", nil)
			return r.Status == http.StatusOK && r.JSON(t)["approval_mode"] == "team"
		})
	}
	// A settings change may have an entry of its own: count from here.
	base, entries = verifyChainOnAll(t, c, -1), 0
	for k := range rounds {
		id := submitHeld(t, c, k%2, fmt.Sprint("team-", k))
		entries++
		race("team", id, "approve")
	}
	verifyChainOnAll(t, c, base+entries)
}
