package replicas

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-pdp/gatehouse/pdp/store/postgres/pgtest"
	"github.com/gatehouse-pdp/gatehouse/test/e2e"
)

// Bound is docs/api.md §A4's "within 1 s on every replica": how long a write
// on one replica may take to govern the others.
const Bound = time.Second

// notificationsWithin bounds how long a started replica may take to
// subscribe to revision notifications.
const notificationsWithin = 10 * time.Second

// adminToken enables every replica's admin API.
const adminToken = "replicas-admin-token-0123456789"

// Cluster is n `gatehouse serve` processes on one fresh PostgreSQL
// database, all started at once, as a deployment behind a load balancer
// would run them. Tenant "default" (enterprise) exists, bootstrapped by
// whichever replica came first, with Key.
type Cluster struct {
	t *testing.T
	// Store is the --store URL every replica runs on.
	Store string
	// DB is a connection to that database, for checks that look past the
	// API (how many rows, which schema).
	DB *pgx.Conn
	// Key is tenant "default"'s API key.
	Key string
	// Replicas are the running servers, in start order.
	Replicas []*e2e.Server

	hc *http.Client // for Send, shared by goroutines
}

// NewCluster starts n replicas together on a new, empty database and
// waits until every one answers /health. args are more `gatehouse serve`
// flags for each. The database is dropped when the test ends, after the
// replicas have stopped.
func NewCluster(t *testing.T, n int, args ...string) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("replica test: skipped with -short")
	}
	u := pgtest.NewDatabase(t)
	c := &Cluster{
		t:     t,
		Store: u,
		Key:   e2e.NewKey(),
		hc: &http.Client{
			Timeout:   30 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: 64},
		},
	}
	for range n {
		c.Replicas = append(c.Replicas, e2e.Launch(t, bin, e2e.Options{
			Store:        u,
			BootstrapKey: c.Key,
			Args:         append([]string{"--admin-token", adminToken}, args...),
		}))
	}
	for i, r := range c.Replicas {
		r.WaitReady()
		// Without notifications the periodic refresh alone would still
		// keep the bound, hiding a regression: demand them.
		if _, _, err := r.Stderr.Wait(0, notificationsWithin, e2e.LogMsg("revision notifications on")); err != nil {
			t.Fatalf("replica %d does not follow revision notifications: %v", i, err)
		}
	}
	c.DB = pgtest.Connect(t, u)
	return c
}

// Client speaks to replica i as tenant "default".
func (c *Cluster) Client(i int) *e2e.Client { return c.Replicas[i].Client(c.Key) }

// Admin speaks to replica i with the admin token.
func (c *Cluster) Admin(i int) *e2e.Client { return c.Replicas[i].Client(adminToken) }

// Answer is one response to Send.
type Answer struct {
	Status int
	Body   map[string]any
}

// Send POSTs body (JSON-encoded) to path on replica i with key, without
// failing the test on a transport error: it is safe from any goroutine and
// against a replica that may be gone.
func (c *Cluster) Send(ctx context.Context, i int, key, path string, body any) (Answer, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return Answer{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Replicas[i].URL+path, bytes.NewReader(b))
	if err != nil {
		return Answer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := c.hc.Do(req)
	if err != nil {
		return Answer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return Answer{}, err
	}
	a := Answer{Status: resp.StatusCode}
	if err := json.Unmarshal(raw, &a.Body); err != nil {
		return a, fmt.Errorf("status %d, body not a JSON object: %w: %s", a.Status, err, raw)
	}
	return a, nil
}

// Submit posts an action to replica i as tenant "default".
func (c *Cluster) Submit(ctx context.Context, i int, action string, params map[string]any) (Answer, error) {
	return c.Send(ctx, i, c.Key, "/v1/actions", map[string]any{"action": action, "params": params})
}

// Until polls ok every few milliseconds until it holds and returns how
// long that took, or fails the test once limit has passed.
func Until(t *testing.T, limit time.Duration, what string, ok func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !ok() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}

// Delays summarizes measured delays.
type Delays []time.Duration

// Median and Max of the delays (zero when there are none).
func (d Delays) Median() time.Duration { return d.at(len(d) / 2) }

// Max is the longest delay.
func (d Delays) Max() time.Duration { return d.at(len(d) - 1) }

func (d Delays) at(i int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[i]
}
