package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/sqlite"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/storetest"
)

// TestGovernanceAtScale measures the README's governance figures through
// the binary: the dashboard over 1,000,000 evaluations in a 30-day window
// (p50 of 20 GET /v1/control/dashboard calls), and `gatehouse audit
// verify` over a chain of 1,000,000 entries. It builds about 1 GB of
// SQLite and takes minutes, so it runs only when asked:
//
//	GATEHOUSE_E2E_SCALE=1 go test ./test/e2e -run GovernanceAtScale -v -timeout 30m
func TestGovernanceAtScale(t *testing.T) {
	if os.Getenv("GATEHOUSE_E2E_SCALE") == "" {
		t.Skip("set GATEHOUSE_E2E_SCALE=1 to measure the governance figures at 1,000,000 rows")
	}
	const n = 1_000_000
	bin := binary(t)
	path := filepath.Join(t.TempDir(), "g.db")
	key := NewKey()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateTenant(ctx, store.Tenant{ID: "acme", Name: "acme", Tier: store.TierEnterprise, Mode: pdp.ModeEnforcement, ApprovalMode: "enterprise"},
		store.OwnerKey(store.APIKey{ID: "key_acme", Hash: store.HashAPIKey(key), Prefix: store.KeyPrefix(key)})); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// Spread over the 30 days' window minus an hour, so none leaves it
	// while the test runs.
	mix := storetest.DefaultMix("acme", n, time.Now().UTC())
	mix.Since = mix.Since.Add(time.Hour)
	got, err := db.BulkInsertActions(ctx, storetest.GenerateActions(mix))
	if err != nil || got != n {
		t.Fatalf("bulk insert: %d, %v", got, err)
	}
	t.Logf("loaded %d actions in %s", n, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	const perCall = 10_000
	evs := make([]store.AuditEvent, perCall)
	at := time.Now().UTC().Add(-30 * 24 * time.Hour)
	for i := 0; i < n; i += perCall {
		for j := range evs {
			k := i + j
			evs[j] = store.AuditEvent{Event: store.EventActionExecuted, Timestamp: at.Add(time.Duration(k) * time.Second),
				Metadata: fmt.Appendf(nil, `{"action":"slack.send_message","action_id":"act_%024x","agent_id":"agent-%03d","key_id":"key_acme","risk_score":0.25,"status":"allowed"}`, k, k%50)}
		}
		if _, err := db.AppendAudit(ctx, "acme", evs...); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("appended %d audit entries in %s", n, time.Since(start).Round(time.Millisecond))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	storeDSN := "sqlite://" + path

	s := Start(t, bin, Options{Store: storeDSN})
	c := s.Client(key)
	for _, q := range []string{"window=30d", "window=7d", "window=24h"} {
		var took []time.Duration
		for i := range 21 {
			t0 := time.Now()
			r := c.Do(t, "GET", "/v1/control/dashboard?"+q, nil)
			d := time.Since(t0)
			if r.Status != 200 {
				t.Fatalf("dashboard: %d %s", r.Status, r.Body)
			}
			if i == 0 {
				if q == "window=30d" {
					wantField(t, r.JSON(t), n, "totals", "evaluations")
				}
				continue // warm-up
			}
			took = append(took, d)
		}
		slices.Sort(took)
		t.Logf("GET /v1/control/dashboard?%s over %d evaluations: p50 %s, max %s (20 calls)", q, n, took[len(took)/2].Round(10*time.Microsecond), took[len(took)-1].Round(10*time.Microsecond))
	}
	s.Stop()

	for range 2 {
		t0 := time.Now()
		res := Run(t, bin, nil, "audit", "verify", "--tenant", "acme", "--store", storeDSN)
		d := time.Since(t0)
		if res.Code != 0 || !strings.Contains(res.Stdout, `"entries":1000000`) {
			t.Fatalf("audit verify: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
		}
		t.Logf("gatehouse audit verify, %d entries: %s wall (%.0f entries/s, process start included); %s", n, d.Round(time.Millisecond), float64(n)/d.Seconds(), strings.TrimSpace(res.Stderr))
	}
}
