package api_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/bundles"
	"github.com/gatehouse-pdp/gatehouse/pdp/api"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/sqlite"
)

// bundleServer is an API wired as serve wires it: a bundle cache the
// registry notifies, or (readOnly) a registry that refuses policy writes.
func bundleServer(t *testing.T, readOnly bool) (*httptest.Server, *registry.Registry) {
	t.Helper()
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "gatehouse.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	eng, err := engine.New(engine.Config{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cache := bundles.NewCache(engine.Config{}.Defaults().ConfigData())
	opt := registry.WithPublishHook(cache.Notify)
	if readOnly {
		cache, opt = nil, registry.WithReadOnly("acme.tar.gz")
	}
	reg, err := registry.New(db, eng, opt)
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Config{AdminToken: adminToken}, api.Deps{
		Registry: reg, Engine: eng, Store: db, Logger: slog.New(slog.DiscardHandler), Bundles: cache,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, reg
}

func call(t *testing.T, method, url, key, body string, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func TestBundleRoute(t *testing.T) {
	srv, reg := bundleServer(t, false)
	acme, acmeKey, err := reg.CreateTenant(t.Context(), registry.NewTenant{Name: "acme", Tier: store.TierEnterprise})
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, _ := reg.CreateTenant(t.Context(), registry.NewTenant{Name: "other", Tier: store.TierPro})
	url := srv.URL + "/v1/bundles/" + acme.ID + ".tar.gz"
	for _, tc := range []struct {
		key  string
		want int
	}{{acmeKey, 200}, {adminToken, 200}, {otherKey, 404}, {"", 401}, {"nram_unknown", 401}} {
		if code, _, body := call(t, "GET", url, tc.key, ""); code != tc.want {
			t.Errorf("key %.12q: %d %s, want %d", tc.key, code, body, tc.want)
		}
	}
	_, hdr, _ := call(t, "GET", url, acmeKey, "")
	etag := hdr.Get("ETag")

	// A held long poll is answered as soon as a policy write is visible.
	done := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		code, h, _ := call(t, "GET", url, acmeKey, "", "If-None-Match", etag, "Prefer", "modes=snapshot,delta;wait=20")
		if code != 200 || h.Get("ETag") == etag || h.Get("Content-Type") != bundles.ContentTypeLongPoll {
			t.Errorf("woken poll: %d, ETag %s (was %s), %s", code, h.Get("ETag"), etag, h.Get("Content-Type"))
		}
		done <- time.Since(start)
	}()
	time.Sleep(200 * time.Millisecond)
	if code, _, body := call(t, "POST", srv.URL+"/v1/control/policies", acmeKey,
		`{"name":"p","rules":[{"match":"stripe","severity":"high"}]}`); code != 201 {
		t.Fatalf("write: %d %s", code, body)
	}
	select {
	case took := <-done:
		if took > 10*time.Second {
			t.Errorf("long poll answered after %s", took)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the write did not wake the long poll")
	}
}

func TestDataAPI(t *testing.T) {
	srv, reg := bundleServer(t, false)
	acme, key, err := reg.CreateTenant(t.Context(), registry.NewTenant{Name: "acme", Tier: store.TierEnterprise})
	if err != nil {
		t.Fatal(err)
	}
	if code, _, body := call(t, "POST", srv.URL+"/v1/control/policies", key,
		`{"name":"p","step_types":["output"],"rules":[{"match":"stripe","severity":"high"}]}`); code != 201 {
		t.Fatalf("write: %d %s", code, body)
	}
	decide := srv.URL + "/v1/data/gatehouse/decision/result"
	code, _, body := call(t, "POST", decide, key,
		`{"input":{"tenant_id":"someone-else","agent_id":null,"action":"pay","params":{"via":"stripe"},"step_type":"OUTPUT"}}`)
	var got struct {
		Result map[string]any `json:"result"`
	}
	if err := json.Unmarshal(body, &got); code != 200 || err != nil || got.Result["status"] != "pending_review" || got.Result["triggered_policy"] != "p" {
		t.Fatalf("decision: %d %s", code, body)
	}
	_, _, actionBody := call(t, "POST", srv.URL+"/v1/actions", key,
		`{"action":"pay","params":{"via":"stripe"},"step_type":"output"}`)
	var act struct {
		PolicyResult map[string]any `json:"policy_result"`
	}
	_ = json.Unmarshal(actionBody, &act)
	delete(act.PolicyResult, "action_id")
	delete(act.PolicyResult, "evaluation_time_ms")
	a, _ := json.Marshal(act.PolicyResult)
	b, _ := json.Marshal(got.Result)
	if string(a) != string(b) {
		t.Errorf("Data API %s\n/v1/actions %s", b, a)
	}

	for _, tc := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"POST", "/v1/data/gatehouse/decision/result", `{"input":`, 400, `"code":"VALIDATION_ERROR"`},
		{"POST", "/v1/data/gatehouse/decision/result", `{"input":[1]}`, 400, `input: must be a JSON object`},
		{"GET", "/v1/data/gatehouse/tenants/" + acme.ID + "/tenant/p/step_types", "", 200, `{"result":{"OUTPUT":true}}`},
		{"GET", "/v1/data/gatehouse/tenants/" + acme.ID + "/mode", "", 200, `{"result":"enforcement"}`},
		{"GET", "/v1/data/gatehouse/tenants/" + acme.ID + "/tenant/nope", "", 200, `{}`},
		{"GET", "/v1/data/gatehouse/tenants/ten_other", "", 404, `"code":"NOT_FOUND"`},
		{"GET", "/v1/data/gatehouse/config", "", 404, `"code":"NOT_FOUND"`},
	} {
		code, _, body := call(t, tc.method, srv.URL+tc.path, key, tc.body)
		if code != tc.status || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s %s %s: %d %s, want %d with %s", tc.method, tc.path, tc.body, code, body, tc.status, tc.want)
		}
	}
	if code, _, _ := call(t, "POST", decide, "", `{"input":{}}`); code != 401 {
		t.Errorf("Data API without a key: %d, want 401", code)
	}
}

func TestReadOnlyAPI(t *testing.T) {
	srv, reg := bundleServer(t, true)
	_, key, err := reg.CreateTenant(t.Context(), registry.NewTenant{Name: "acme", Tier: store.TierEnterprise})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct{ method, path string }{
		{"POST", "/v1/control/policies"}, {"PUT", "/v1/control/policies/p"}, {"DELETE", "/v1/control/policies/p"},
		{"DELETE", "/v1/control/policies/FinancialSafety"},
	} {
		code, _, body := call(t, q.method, srv.URL+q.path, key, `{"name":"p","rules":[{"match":"x","severity":"low"}]}`)
		want := `{"error":"novyx_ram.v1.control.read_only","code":"novyx_ram.v1.control.read_only","message":"Policies come from bundle acme.tar.gz; this server is read-only","status":409}`
		if code != 409 || strings.TrimSpace(string(body)) != want {
			t.Errorf("%s %s: %d %s", q.method, q.path, code, body)
		}
	}
	if code, _, _ := call(t, "GET", srv.URL+"/v1/bundles/x.tar.gz", key, ""); code != 404 {
		t.Errorf("bundle route on a read-only server: %d, want 404", code)
	}
}
