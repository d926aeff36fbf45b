package parity

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/test/e2e"
)

// Sizes and bounds of the test.
const (
	corpusSize = 600
	corpusSeed = 20261124
	// maxPropagation is how long a policy write may take to reach a
	// long-polling OPA: about 50 ms, but a loaded machine can stall OPA's
	// activation for seconds. Below the sidecar's 10 s min_delay_seconds,
	// so a pass still proves the long poll, not the next regular poll.
	maxPropagation = 9 * time.Second
	// activationTimeout bounds OPA's first bundle activation.
	activationTimeout = 60 * time.Second
	tenantID          = "default" // the bootstrap tenant
)

// sidecarConfig is the production (signed) OPA configuration examples/opa-sidecar shows.
var sidecarConfig = filepath.Join("..", "..", "examples", "opa-sidecar", "opa-config-signed.yaml")

// TestOPAParity runs the whole story against one signed Gatehouse and one
// stock OPA configured with examples/opa-sidecar/opa-config-signed.yaml.
func TestOPAParity(t *testing.T) {
	binaries(t)
	dir := t.TempDir()
	privPath, pubPath := writeRSAKey(t, dir)

	key := e2e.NewKey()
	gh := e2e.Start(t, gatehouseBin, e2e.Options{
		BootstrapKey: key,
		Args:         []string{"--bundle-signing-key", privPath},
	})
	c := gh.Client(key)
	for _, p := range richPolicies() {
		r := c.Do(t, "POST", "/v1/control/policies", p)
		if r.Status != 201 && r.Status != 200 {
			t.Fatalf("create policy %v: %d %s", p["name"], r.Status, r.Body)
		}
	}
	// A disabled tenant-wide policy and a disabled override: neither may
	// decide anything, on either side.
	for _, q := range []string{"legacy", "refund_watch?agent_id=ops-bot"} {
		if r := c.Do(t, "DELETE", "/v1/control/policies/"+q, nil); r.Status != 200 {
			t.Fatalf("DELETE %s: %d %s", q, r.Status, r.Body)
		}
	}

	opa := startSidecar(t, gh.URL, key, pubPath)
	if !opa.WaitHealth(t, "?bundles", activationTimeout) {
		t.Fatalf("OPA did not activate the signed bundle within %s", activationTimeout)
	}

	t.Run("corpus", func(t *testing.T) {
		rng := mrand.New(mrand.NewPCG(corpusSeed, corpusSeed))
		stats := map[string]int{}
		for i := range corpusSize {
			a := randomAction(rng)
			viaActions := decideActions(t, c, a)
			viaData := decideData(t, c, gh.URL, a.input(tenantID, "spoofed-tenant"))
			viaOPA := decideData(t, opa.Client(), opa.URL, a.input(tenantID, tenantID))
			for _, cmp := range []struct {
				name string
				got  any
			}{{"Gatehouse Data API", viaData}, {"stock OPA", viaOPA}} {
				if path, x, y := firstDifference(viaActions, cmp.got, "result"); path != "" {
					t.Fatalf("action %d: POST /v1/actions and %s differ at %s: %s vs %s\ninput: %s\n/v1/actions: %s\n%s: %s",
						i, cmp.name, path, canonical(x), canonical(y), canonical(a.input(tenantID, tenantID)),
						canonical(viaActions), cmp.name, canonical(cmp.got))
				}
			}
			st, _ := viaActions.(map[string]any)["status"].(string)
			stats[st]++
			for _, v := range append(asSlice(field(viaActions, "violations")), asSlice(field(viaActions, "warnings"))...) {
				if p, _ := field(v, "policy").(string); p != "" {
					stats["hit:"+p]++
				}
			}
			for _, v := range asSlice(field(viaActions, "shadow")) {
				p, _ := field(v, "policy").(string)
				sc, _ := field(v, "scope").(string)
				stats["shadow:"+p+":"+sc]++
			}
		}
		t.Logf("parity: %d actions, 0 differences between POST /v1/actions, Gatehouse's Data API and stock OPA; outcomes %v",
			corpusSize, stats)
		for _, want := range []string{"allowed", "blocked", "pending_review", "hit:FinancialSafetyPolicy", "hit:DataExfiltrationPolicy",
			"hit:pii_protection", "hit:html_guard", "hit:unicode_words", "hit:outbound_http", "hit:step_scoped",
			"hit:deploy_guard", "hit:refund_watch",
			"shadow:card_watch:tenant", "shadow:pii_protection:agent", "shadow:refund_watch:tenant"} {
			if stats[want] == 0 {
				t.Errorf("the corpus never produced %s: widen the generator", want)
			}
		}
	})

	t.Run("data API edges", func(t *testing.T) {
		// Odd inputs: Gatehouse answers what OPA answers for the same
		// input with the key's tenant in it ({} when undefined).
		for _, in := range []map[string]any{nil, {}, {"action": "transfer"}, {"action": "x", "params": map[string]any{"amount": 1e6}},
			{"action": 7, "params": "not an object", "step_type": nil}, {"action": "export", "params": map[string]any{"ssn": true}, "agent_id": "billing-bot"}} {
			body := map[string]any{}
			if in != nil {
				body["input"] = in
			}
			a := c.Do(t, "POST", "/v1/data/gatehouse/decision/result", body)
			withTenant := map[string]any{"tenant_id": tenantID}
			for k, v := range in {
				withTenant[k] = v
			}
			b := opa.Client().Do(t, "POST", "/v1/data/gatehouse/decision/result", map[string]any{"input": withTenant})
			if a.Status != 200 || b.Status != 200 {
				t.Fatalf("input %s: Gatehouse %d %s, OPA %d %s", canonical(in), a.Status, a.Body, b.Status, b.Body)
			}
			if path, x, y := firstDifference(decode(t, a.Body), decode(t, b.Body), ""); path != "" {
				t.Errorf("input %s: Gatehouse and OPA differ at %s: %s vs %s", canonical(in), path, canonical(x), canonical(y))
			}
		}
		r := c.Do(t, "POST", "/v1/data/gatehouse/decision/result", `{"input": {`)
		if m, _ := decode(t, r.Body).(map[string]any); r.Status != 400 || m["code"] != "VALIDATION_ERROR" {
			t.Errorf("bad JSON: %d %s, want 400 VALIDATION_ERROR", r.Status, r.Body)
		}
		if r := gh.Client("").Do(t, "POST", "/v1/data/gatehouse/decision/result", `{"input": {}}`); r.Status != 401 {
			t.Errorf("no key: %d, want 401", r.Status)
		}
		r = c.Do(t, "GET", "/v1/data/gatehouse/tenants/"+tenantID+"/tenant/pii_protection/step_types", nil)
		if r.Status != 200 || canonical(decode(t, r.Body)) != `{"result":{"ACTION":true}}` {
			t.Errorf("own data: %d %s", r.Status, r.Body)
		}
		if r := c.Do(t, "GET", "/v1/data/gatehouse/tenants/"+tenantID+"/tenant/no_such_policy", nil); r.Status != 200 || string(bytes.TrimSpace(r.Body)) != "{}" {
			t.Errorf("undefined own data: %d %s, want 200 {}", r.Status, r.Body)
		}
		for _, p := range []string{"/v1/data/gatehouse/tenants/ten_other", "/v1/data/gatehouse/config", "/v1/data", "/v1/data/system/bundles"} {
			if r := c.Do(t, "GET", p, nil); r.Status != 404 {
				t.Errorf("GET %s: %d %s, want 404", p, r.Status, r.Body)
			}
		}
		if r := gh.Client("").Do(t, "GET", "/v1/bundles/"+tenantID+".tar.gz", nil); r.Status != 401 {
			t.Errorf("bundle without a key: %d, want 401", r.Status)
		}
		if r := c.Do(t, "GET", "/v1/bundles/ten_other.tar.gz", nil); r.Status != 404 {
			t.Errorf("another tenant's bundle: %d, want 404", r.Status)
		}
	})

	// A read-only Gatehouse deciding with the same bundle, pulled from the
	// first over HTTP with the tenant's key and verified with the public
	// key: tenants and keys from its own store, policies from the bundle.
	ro := e2e.Start(t, gatehouseBin, e2e.Options{
		BootstrapKey: key,
		Args:         []string{"--bundle", gh.URL + "/v1/bundles/" + tenantID + ".tar.gz", "--bundle-verify-key", pubPath},
		Env:          []string{"GATEHOUSE_BUNDLE_BEARER_TOKEN=" + key},
	})
	roc := ro.Client(key)
	t.Run("read-only server", func(t *testing.T) {
		rng := mrand.New(mrand.NewPCG(corpusSeed+1, corpusSeed+1))
		const n = 150
		for i := range n {
			a := randomAction(rng)
			if path, x, y := firstDifference(decideActions(t, c, a), decideActions(t, roc, a), "result"); path != "" {
				t.Fatalf("action %d: the read-only server differs at %s: %s vs %s\ninput: %s", i, path, canonical(x), canonical(y),
					canonical(a.input(tenantID, tenantID)))
			}
		}
		for _, q := range []struct{ method, path string }{
			{"POST", "/v1/control/policies"}, {"PUT", "/v1/control/policies/pii_protection"}, {"DELETE", "/v1/control/policies/pii_protection"},
		} {
			r := roc.Do(t, q.method, q.path, map[string]any{"name": "pii_protection", "rules": []any{map[string]any{"match": "x", "severity": "low"}}})
			m, _ := decode(t, r.Body).(map[string]any)
			if r.Status != 409 || m["code"] != "novyx_ram.v1.control.read_only" || !strings.Contains(fmt.Sprint(m["message"]), "read-only") {
				t.Errorf("%s %s on the read-only server: %d %s, want 409 novyx_ram.v1.control.read_only", q.method, q.path, r.Status, r.Body)
			}
		}
		a, b := c.Do(t, "GET", "/v1/data/gatehouse/tenants/"+tenantID, nil), roc.Do(t, "GET", "/v1/data/gatehouse/tenants/"+tenantID, nil)
		if path, x, y := firstDifference(decode(t, a.Body), decode(t, b.Body), ""); a.Status != 200 || path != "" {
			t.Errorf("tenant data differs at %s: %s vs %s (status %d)", path, canonical(x), canonical(y), a.Status)
		}
		t.Logf("read-only server: %d actions decided as the source server does; policy writes refused with 409", n)
	})

	t.Run("write reaches OPA", func(t *testing.T) {
		probe := action{Name: "notes.write", Params: map[string]any{"text": "zebra crossing"}, Step: "ACTION"}
		in := probe.input(tenantID, tenantID)
		if got := field(decideData(t, opa.Client(), opa.URL, in), "status"); got != "allowed" {
			t.Fatalf("before the write OPA says %v, want allowed", got)
		}
		start := time.Now()
		r := c.Do(t, "POST", "/v1/control/policies", map[string]any{
			"name": "zebra", "rules": []any{map[string]any{"match": "zebra", "severity": "critical"}},
		})
		if r.Status != 201 {
			t.Fatalf("create zebra: %d %s", r.Status, r.Body)
		}
		var delay, roDelay time.Duration
		for delay == 0 || roDelay == 0 {
			if delay == 0 && field(decideData(t, opa.Client(), opa.URL, in), "status") == "blocked" {
				delay = time.Since(start)
			}
			if roDelay == 0 && field(decideData(t, roc, ro.URL, in), "status") == "blocked" {
				roDelay = time.Since(start)
			}
			if time.Since(start) > 3*maxPropagation {
				t.Fatalf("after %s: OPA changed after %s, the read-only server after %s (0: not yet)", 3*maxPropagation, delay, roDelay)
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("policy write → stock OPA decision changed after %s, read-only Gatehouse after %s (long polling)",
			delay.Round(time.Millisecond), roDelay.Round(time.Millisecond))
		if delay > maxPropagation || roDelay > maxPropagation {
			t.Errorf("the write took %s to reach OPA and %s the read-only server, want ≤ %s", delay, roDelay, maxPropagation)
		}
		// And the three deciders agree on the new policy too.
		if path, x, y := firstDifference(decideActions(t, c, probe), decideData(t, opa.Client(), opa.URL, in), "result"); path != "" {
			t.Errorf("after the write, Gatehouse and OPA differ at %s: %s vs %s", path, canonical(x), canonical(y))
		}
	})

	t.Run("write-to-OPA delay over 20 writes", func(t *testing.T) {
		// Alternate the zebra policy between critical (blocked) and low
		// (allowed) and time each write until the long-polling OPA decides
		// with it: the figure is the median of 20.
		probe := action{Name: "notes.write", Params: map[string]any{"text": "zebra crossing"}, Step: "ACTION"}
		in := probe.input(tenantID, tenantID)
		var delays []time.Duration
		for i := range 20 {
			severity, want := "low", "allowed"
			if i%2 == 1 {
				severity, want = "critical", "blocked"
			}
			start := time.Now()
			r := c.Do(t, "PUT", "/v1/control/policies/zebra", map[string]any{
				"rules": []any{map[string]any{"match": "zebra", "severity": severity}},
			})
			if r.Status != 200 {
				t.Fatalf("update zebra: %d %s", r.Status, r.Body)
			}
			for field(decideData(t, opa.Client(), opa.URL, in), "status") != want {
				if time.Since(start) > maxPropagation {
					t.Fatalf("write %d: OPA still not %s after %s", i, want, maxPropagation)
				}
				time.Sleep(5 * time.Millisecond)
			}
			delays = append(delays, time.Since(start))
		}
		slices.Sort(delays)
		t.Logf("write → stock OPA deciding with it, 20 writes: median %s, max %s",
			((delays[9] + delays[10]) / 2).Round(time.Millisecond), delays[19].Round(time.Millisecond))
	})

	t.Run("tampered bundle refused", func(t *testing.T) {
		r := c.Do(t, "GET", "/v1/bundles/"+tenantID+".tar.gz", nil)
		if r.Status != 200 {
			t.Fatalf("GET bundle: %d %s", r.Status, r.Body)
		}
		tampered := tamper(t, r.Body)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/gzip")
			_, _ = w.Write(tampered)
		}))
		defer srv.Close()
		bad := startSidecar(t, srv.URL, key, pubPath)
		deadline := time.Now().Add(activationTimeout)
		refused := func(l string) bool {
			return strings.Contains(l, "Bundle load failed") && strings.Contains(l, "digest mismatch")
		}
		for !slices.ContainsFunc(bad.Log.All(), refused) {
			if bad.Health("?bundles") == 200 {
				t.Fatal("OPA activated a tampered bundle")
			}
			if time.Now().After(deadline) {
				t.Fatalf("OPA logged no digest mismatch within %s", activationTimeout)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if code := bad.Health("?bundles"); code == 200 {
			t.Fatal("OPA reports the tampered bundle healthy")
		}
		i := slices.IndexFunc(bad.Log.All(), refused)
		t.Logf("OPA refused the tampered bundle: %s", bad.Log.All()[i])
	})
}

// startSidecar runs a stock OPA with the example configuration, pulling
// the tenant's bundle from url with key and verifying it with pubPath.
func startSidecar(t *testing.T, url, key, pubPath string) *e2e.OPA {
	t.Helper()
	return e2e.StartOPA(t, opaBin,
		[]string{"GATEHOUSE_URL=" + url, "GATEHOUSE_TENANT=" + tenantID, "GATEHOUSE_API_KEY=" + key},
		"--config-file", sidecarConfig, "--set-file", "keys.gatehouse.key="+pubPath)
}

// writeRSAKey writes a new RSA key pair as PEM files.
func writeRSAKey(t *testing.T, dir string) (priv, pub string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	priv, pub = filepath.Join(dir, "gatehouse.pem"), filepath.Join(dir, "gatehouse-public.pem")
	if err := os.WriteFile(priv, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

// tamper returns the bundle with data.json changed (the tenant switched to
// shadow mode, which would allow everything) and its signature kept.
func tamper(t *testing.T, bundle []byte) []byte {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(bundle))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var out bytes.Buffer
	gw := gzip.NewWriter(&out)
	tw := tar.NewWriter(gw)
	changed := false
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Name == "/data.json" {
			body = bytes.Replace(body, []byte(`"mode":"enforcement"`), []byte(`"mode":"shadow"`), 1)
			changed = true
		}
		hdr.Size = int64(len(body))
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gw.Close(); err != nil {
		t.Fatal(err)
	}
	if !changed {
		t.Fatal("the bundle has no /data.json to tamper with")
	}
	return out.Bytes()
}

// decideActions submits a through POST /v1/actions and returns its
// policy_result less the per-call fields.
func decideActions(t *testing.T, c *e2e.Client, a action) any {
	t.Helper()
	body := map[string]any{"action": a.Name, "params": a.Params, "step_type": a.SentStep()}
	if a.Agent != "" {
		body["agent_id"] = a.Agent
	}
	r := c.Do(t, "POST", "/v1/actions", body)
	if r.Status != 200 {
		t.Fatalf("POST /v1/actions %s: %d %s", canonical(body), r.Status, r.Body)
	}
	m := decode(t, r.Body)
	pr, _ := m.(map[string]any)["policy_result"].(map[string]any)
	if pr == nil {
		t.Fatalf("no policy_result: %s", r.Body)
	}
	delete(pr, "action_id")
	delete(pr, "evaluation_time_ms")
	return pr
}

// decideData asks a Data API (Gatehouse's or OPA's) for the decision.
func decideData(t *testing.T, c *e2e.Client, url string, input map[string]any) any {
	t.Helper()
	// strict-builtin-errors: what the README tells OPA clients to send, so
	// a built-in error is an error (500) on OPA as it is (503) on Gatehouse.
	r := c.Do(t, "POST", "/v1/data/gatehouse/decision/result?strict-builtin-errors=true", map[string]any{"input": input})
	if r.Status != 200 {
		t.Fatalf("POST %s/v1/data/gatehouse/decision/result: %d %s", url, r.Status, r.Body)
	}
	m, _ := decode(t, r.Body).(map[string]any)
	res, ok := m["result"]
	if !ok {
		t.Fatalf("%s: undefined decision for %s: %s", url, canonical(input), r.Body)
	}
	return res
}

func decode(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	return v
}

// canonical is v as JSON with sorted keys and no HTML escaping.
func canonical(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return strings.TrimSpace(b.String())
}

// firstDifference returns the first path (in sorted key order) where two
// decoded JSON values differ, with the two values there; "" when equal.
func firstDifference(a, b any, path string) (string, any, any) {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			return path, a, b
		}
		keys := map[string]bool{}
		for k := range x {
			keys[k] = true
		}
		for k := range y {
			keys[k] = true
		}
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range keys {
				if !yield(k) {
					return
				}
			}
		}) {
			xv, xok := x[k]
			yv, yok := y[k]
			if xok != yok {
				return path + "." + k, xv, yv
			}
			if p, d1, d2 := firstDifference(xv, yv, path+"."+k); p != "" {
				return p, d1, d2
			}
		}
		return "", nil, nil
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return path, a, b
		}
		for i := range x {
			if p, d1, d2 := firstDifference(x[i], y[i], fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p, d1, d2
			}
		}
		return "", nil, nil
	}
	if !reflect.DeepEqual(a, b) {
		return path, a, b
	}
	return "", nil, nil
}

func asSlice(v any) []any {
	a, _ := v.([]any)
	return a
}

// field returns v[k] of a JSON object.
func field(v any, k string) any {
	m, _ := v.(map[string]any)
	return m[k]
}
