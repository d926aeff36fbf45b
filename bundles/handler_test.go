package bundles_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/bundles"
	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// tenants is a minimal stand-in for the registry: tenant policies by id,
// a key per tenant, and a write that bumps the revision and notifies the
// cache, as the registry does.
type tenants struct {
	mu     sync.Mutex
	byID   map[string]pdp.TenantPolicies
	cache  *bundles.Cache
	failOn string // tenant whose snapshot fails
	// reads receives a value on each snapshot. The handler watches for
	// changes before it reads, so once a long poll's read arrived here, a
	// write cannot slip past it: tests wait on this, not on a sleep.
	reads chan struct{}
}

func newTenants(t *testing.T, cache *bundles.Cache, ids ...string) *tenants {
	ts := &tenants{byID: map[string]pdp.TenantPolicies{}, cache: cache, reads: make(chan struct{}, 1024)}
	for _, id := range ids {
		ts.byID[id] = sampleTenant(t, id, 1, pdp.ModeEnforcement)
	}
	return ts
}

func (ts *tenants) snapshot(_ context.Context, tenant string) (pdp.TenantPolicies, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	select {
	case ts.reads <- struct{}{}:
	default:
	}
	if tenant == ts.failOn {
		return pdp.TenantPolicies{}, errors.New("database is down: secret detail")
	}
	tp, ok := ts.byID[tenant]
	if !ok {
		return pdp.TenantPolicies{}, fmt.Errorf("tenant %q: %w", tenant, pdp.ErrNotFound)
	}
	return tp, nil
}

// write toggles the tenant's first policy and publishes the new revision.
func (ts *tenants) write(tenant string) uint64 {
	ts.mu.Lock()
	tp := ts.byID[tenant]
	tp.Revision++
	tp.Policies = append([]pdp.Policy(nil), tp.Policies...)
	tp.Policies[0].Enabled = !tp.Policies[0].Enabled
	ts.byID[tenant] = tp
	ts.mu.Unlock()
	ts.cache.Notify(tenant, tp.Revision)
	return tp.Revision
}

// drainReads forgets the reads so far.
func (ts *tenants) drainReads() {
	for {
		select {
		case <-ts.reads:
		default:
			return
		}
	}
}

// waitRead waits for the next snapshot read, at most 30 s.
func (ts *tenants) waitRead(t *testing.T, what string) {
	t.Helper()
	select {
	case <-ts.reads:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: no snapshot read within 30s", what)
	}
}

func (ts *tenants) setFailOn(tenant string) {
	ts.mu.Lock()
	ts.failOn = tenant
	ts.mu.Unlock()
}

func (ts *tenants) authorize(r *http.Request, tenant string) error {
	switch r.Header.Get("Authorization") {
	case "Bearer admin", "Bearer key-" + tenant:
		return nil
	}
	return errors.New("bad key")
}

func newBundleServer(t *testing.T, cache *bundles.Cache, maxWait time.Duration, ids ...string) (*httptest.Server, *tenants) {
	t.Helper()
	ts := newTenants(t, cache, ids...)
	h, err := bundles.NewHandler(bundles.HandlerConfig{
		Cache: cache, Authorize: ts.authorize, Snapshot: ts.snapshot, MaxWait: maxWait,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/bundles/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, ts
}

type response struct {
	status int
	header http.Header
	body   []byte
	took   time.Duration
}

func get(t *testing.T, url string, header map[string]string) response {
	t.Helper()
	return do(t, http.MethodGet, url, header)
}

func do(t *testing.T, method, url string, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, body, time.Since(start)}
}

func TestHandler(t *testing.T) {
	cache := bundles.NewCache(engineConfig.ConfigData())
	srv, ts := newBundleServer(t, cache, 2*time.Second, "acme", "other")
	url := srv.URL + "/v1/bundles/acme.tar.gz"
	auth := "Bearer key-acme"

	first := get(t, url, map[string]string{"Authorization": auth})
	etag := first.header.Get("ETag")
	if first.status != http.StatusOK || first.header.Get("Content-Type") != bundles.ContentTypeGzip || !strings.HasPrefix(etag, `"1-`) {
		t.Fatalf("first: %d %v", first.status, first.header)
	}
	b, err := bundles.Load(bytes.NewReader(first.body), nil)
	if err != nil || b.Manifest.Revision != "1" {
		t.Fatalf("body: %v %v", b, err)
	}

	tests := []struct {
		name        string
		method      string
		path        string
		header      map[string]string
		status      int
		contentType string
		code        string // error envelope code
	}{
		{"same ETag", "GET", "acme.tar.gz", map[string]string{"If-None-Match": etag}, 304, "", ""},
		{"ETag list", "GET", "acme.tar.gz", map[string]string{"If-None-Match": `"0-old", ` + etag + `, "x"`}, 304, "", ""},
		{"weak ETag", "GET", "acme.tar.gz", map[string]string{"If-None-Match": "W/" + etag}, 304, "", ""},
		{"star", "GET", "acme.tar.gz", map[string]string{"If-None-Match": "*"}, 304, "", ""},
		{"other ETag", "GET", "acme.tar.gz", map[string]string{"If-None-Match": `"1-0000000000000000"`}, 200, bundles.ContentTypeGzip, ""},
		{"long poll without ETag answers at once", "GET", "acme.tar.gz", map[string]string{"Prefer": "modes=snapshot,delta;wait=30"}, 200, bundles.ContentTypeLongPoll, ""},
		{"admin token", "GET", "acme.tar.gz", map[string]string{"Authorization": "Bearer admin"}, 200, bundles.ContentTypeGzip, ""},
		{"HEAD", "HEAD", "acme.tar.gz", nil, 200, bundles.ContentTypeGzip, ""},
		{"no key", "GET", "acme.tar.gz", map[string]string{"Authorization": ""}, 401, "application/json", pdp.CodeUnauthorized},
		{"another tenant's key", "GET", "acme.tar.gz", map[string]string{"Authorization": "Bearer key-other"}, 401, "application/json", pdp.CodeUnauthorized},
		{"unknown tenant", "GET", "nobody.tar.gz", map[string]string{"Authorization": "Bearer admin"}, 404, "application/json", pdp.CodeNotFound},
		{"no suffix", "GET", "acme", nil, 404, "application/json", pdp.CodeNotFound},
		{"POST", "POST", "acme.tar.gz", nil, 405, "application/json", pdp.CodeMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string]string{"Authorization": auth}
			for k, v := range tt.header {
				h[k] = v
			}
			r := do(t, tt.method, srv.URL+"/v1/bundles/"+tt.path, h)
			if r.status != tt.status || r.header.Get("Content-Type") != tt.contentType {
				t.Fatalf("%d %q, want %d %q: %s", r.status, r.header.Get("Content-Type"), tt.status, tt.contentType, r.body)
			}
			switch {
			case tt.code != "":
				var env map[string]any
				if err := json.Unmarshal(r.body, &env); err != nil {
					t.Fatal(err)
				}
				wantErr := any(tt.code)
				if pdp.IsGenericCode(tt.code) {
					wantErr = env["message"]
				}
				if env["error"] != wantErr || env["code"] != tt.code || env["status"] != float64(tt.status) || env["message"] == "" || len(env) != 4 {
					t.Errorf("envelope %s", r.body)
				}
				if tt.status == 401 && r.header.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
			case tt.status == 304:
				if r.header.Get("ETag") != etag || len(r.body) != 0 {
					t.Errorf("304: ETag %s, body %d bytes", r.header.Get("ETag"), len(r.body))
				}
			case tt.method == "HEAD":
				if len(r.body) != 0 || r.header.Get("Content-Length") != fmt.Sprint(len(first.body)) {
					t.Errorf("HEAD: body %d, Content-Length %s", len(r.body), r.header.Get("Content-Length"))
				}
			default:
				if !bytes.Equal(r.body, first.body) || r.header.Get("ETag") != etag {
					t.Error("different bundle for the same revision")
				}
			}
		})
	}

	t.Run("internal error is not leaked", func(t *testing.T) {
		ts.setFailOn("other")
		defer ts.setFailOn("")
		r := get(t, srv.URL+"/v1/bundles/other.tar.gz", map[string]string{"Authorization": "Bearer key-other"})
		if r.status != 500 || strings.Contains(string(r.body), "secret") || !strings.Contains(string(r.body), pdp.CodeInternal) {
			t.Errorf("%d %s", r.status, r.body)
		}
	})

	if s := cache.Stats(); s.Builds != 1 {
		t.Errorf("builds %d, want 1 for one revision of acme", s.Builds)
	}
}

// TestHandlerLongPoll holds requests on a server whose cap (60 s) is far
// above every wait it asks for, so the time bounds it checks are the
// protocol's, with room for a loaded machine, not races with a scheduler:
// the only lower bounds are the waits themselves, and every upper bound is
// the next longer wait that would mean a different (wrong) behaviour.
func TestHandlerLongPoll(t *testing.T) {
	cache := bundles.NewCache(engineConfig.ConfigData())
	srv, ts := newBundleServer(t, cache, time.Minute, "acme")
	url := srv.URL + "/v1/bundles/acme.tar.gz"
	first := get(t, url, map[string]string{"Authorization": "Bearer key-acme"})
	etag := first.header.Get("ETag")
	poll := func(wait string) map[string]string {
		return map[string]string{
			"Authorization": "Bearer key-acme",
			"If-None-Match": etag,
			"Prefer":        "modes=snapshot,delta;wait=" + wait,
		}
	}

	t.Run("released by a write", func(t *testing.T) {
		ts.drainReads()
		done := make(chan response, 1)
		go func() { done <- get(t, url, poll("30")) }()
		// Once the poll read revision 1 (matching its ETag) it waits; the
		// write below can only be answered after it, with revision 2.
		ts.waitRead(t, "long poll")
		rev := ts.write("acme")
		r := <-done
		if r.status != 200 || r.header.Get("Content-Type") != bundles.ContentTypeLongPoll || r.header.Get("ETag") == etag {
			t.Fatalf("%d after %v %v: want 200 with the new bundle, well before the 30 s wait", r.status, r.took, r.header)
		}
		b, err := bundles.Load(bytes.NewReader(r.body), nil)
		if err != nil || b.Manifest.Revision != fmt.Sprint(rev) {
			t.Errorf("revision %v, want %d (%v)", b, rev, err)
		}
		etag = r.header.Get("ETag")
	})

	t.Run("times out with 304", func(t *testing.T) {
		r := get(t, url, poll("1"))
		if r.status != 304 || r.header.Get("ETag") != etag || r.took < time.Second || r.took > 30*time.Second {
			t.Errorf("%d after %v, want 304 after the 1 s asked for (the cap is a minute)", r.status, r.took)
		}
	})

	t.Run("a notification without a change keeps waiting", func(t *testing.T) {
		ts.drainReads()
		done := make(chan response, 1)
		go func() { done <- get(t, url, poll("2")) }()
		ts.waitRead(t, "long poll")
		cache.Notify("acme", 0) // wakes, but the tenant is unchanged
		ts.waitRead(t, "the read after the notification")
		r := <-done
		if r.status != 304 || r.took < 2*time.Second {
			t.Errorf("%d after %v, want 304 at the timeout", r.status, r.took)
		}
	})

	t.Run("client gone", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		for k, v := range poll("30") {
			req.Header.Set(k, v)
		}
		start := time.Now()
		if _, err := http.DefaultClient.Do(req); err == nil || time.Since(start) > 20*time.Second {
			t.Errorf("err %v after %v", err, time.Since(start))
		}
	})
}

// TestHandlerLongPollCap: a wait longer than MaxWait is cut to it.
func TestHandlerLongPollCap(t *testing.T) {
	cache := bundles.NewCache(engineConfig.ConfigData())
	srv, _ := newBundleServer(t, cache, 2*time.Second, "acme")
	url := srv.URL + "/v1/bundles/acme.tar.gz"
	first := get(t, url, map[string]string{"Authorization": "Bearer key-acme"})
	r := get(t, url, map[string]string{
		"Authorization": "Bearer key-acme",
		"If-None-Match": first.header.Get("ETag"),
		"Prefer":        "modes=snapshot,delta;wait=3600",
	})
	if r.status != 304 || r.took < 2*time.Second || r.took > time.Minute {
		t.Errorf("%d after %v, want 304 after the 2 s cap, not the hour asked for", r.status, r.took)
	}
}

func TestNewHandlerRequiresCallbacks(t *testing.T) {
	if _, err := bundles.NewHandler(bundles.HandlerConfig{Cache: bundles.NewCache(nil)}); err == nil {
		t.Error("no error")
	}
}

func TestHandlerStatusError(t *testing.T) {
	cache := bundles.NewCache(nil)
	h, err := bundles.NewHandler(bundles.HandlerConfig{
		Cache: cache,
		Authorize: func(*http.Request, string) error {
			return fmt.Errorf("wrapped: %w", &bundles.StatusError{Status: 403, Code: "novyx_ram.v1.tier.feature_required", Message: "Feature 'bundles' requires Pro tier or higher"})
		},
		Snapshot: func(context.Context, string) (pdp.TenantPolicies, error) { return pdp.TenantPolicies{}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/bundles/acme.tar.gz", nil))
	want := `{"error":"novyx_ram.v1.tier.feature_required","code":"novyx_ram.v1.tier.feature_required","message":"Feature 'bundles' requires Pro tier or higher","status":403}` + "\n"
	if rec.Code != 403 || rec.Body.String() != want {
		t.Errorf("%d %s", rec.Code, rec.Body)
	}
}

// TestHandlerDrain: closing Drain answers held long polls at once with 304,
// so a server shutting down need not wait out their wait.
func TestHandlerDrain(t *testing.T) {
	cache := bundles.NewCache(engineConfig.ConfigData())
	ts := newTenants(t, cache, "acme")
	drain := make(chan struct{})
	h, err := bundles.NewHandler(bundles.HandlerConfig{
		Cache: cache, Authorize: ts.authorize, Snapshot: ts.snapshot, MaxWait: time.Minute,
		Logger: slog.New(slog.DiscardHandler), Drain: drain,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	url := srv.URL + "/v1/bundles/acme.tar.gz"
	first := get(t, url, map[string]string{"Authorization": "Bearer key-acme"})
	if first.status != http.StatusOK {
		t.Fatalf("first GET: %d", first.status)
	}
	time.AfterFunc(200*time.Millisecond, func() { close(drain) })
	r := get(t, url, map[string]string{"Authorization": "Bearer key-acme", "If-None-Match": first.header.Get("ETag"),
		"Prefer": "modes=snapshot,delta;wait=30"})
	if r.status != http.StatusNotModified || r.took > 10*time.Second {
		t.Fatalf("held poll after Drain: %d after %s, want 304 at once", r.status, r.took)
	}
	// Once drained, a new long poll is not held either.
	r = get(t, url, map[string]string{"Authorization": "Bearer key-acme", "If-None-Match": first.header.Get("ETag"),
		"Prefer": "modes=snapshot,delta;wait=30"})
	if r.status != http.StatusNotModified || r.took > 10*time.Second {
		t.Fatalf("poll after Drain: %d after %s", r.status, r.took)
	}
}
