package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// TestConcurrentActionsKeepTheirOwnBytes: what a request's answer and
// record are made of is its own. The action path decodes strings in place
// in the request's body, encodes params, policy_result and the audit
// metadata in a pooled scratch buffer and answers from a pooled buffer;
// concurrent requests of different sizes, checked only after all of them
// were answered, would show any of those memories shared with another
// request (the answer, the record or the audit entry naming another
// action).
func TestConcurrentActionsKeepTheirOwnBytes(t *testing.T) {
	e := newEnv(t)
	_, key := e.tenant(store.TierPro)
	type sent struct {
		name, agent, text string
		answer            []byte
	}
	const workers, each = 8, 12
	results := make([][]sent, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				s := sent{
					name:  fmt.Sprintf("conn%d.op_%d_%s", w, i, strings.Repeat("x", (w*each+i)%40)),
					agent: fmt.Sprintf("agent-%d-%d", w, i),
					text:  strings.Repeat(string(rune('a'+w)), 1+(i*97+w*389)%3000),
				}
				body, _ := json.Marshal(map[string]any{"action": s.name, "agent_id": s.agent, "params": map[string]any{"text": s.text, "n": i, "list": []any{w, i, s.agent}}})
				req := httptest.NewRequest(http.MethodPost, "/v1/actions", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+key)
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				e.h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					t.Errorf("%s: status %d %s", s.name, rec.Code, rec.Body.Bytes())
					return
				}
				s.answer = rec.Body.Bytes()
				results[w] = append(results[w], s)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, rs := range results {
		for _, s := range rs {
			var a struct {
				ActionID     string `json:"action_id"`
				Action       string `json:"action"`
				AgentID      string `json:"agent_id"`
				PolicyResult struct {
					ActionID string `json:"action_id"`
				} `json:"policy_result"`
			}
			if err := json.Unmarshal(s.answer, &a); err != nil {
				t.Fatalf("%s: answer %v: %s", s.name, err, s.answer)
			}
			if a.Action != s.name || a.AgentID != s.agent || a.PolicyResult.ActionID != a.ActionID {
				t.Fatalf("%s: answered %s", s.name, s.answer)
			}
			r := e.get("/v1/actions/"+a.ActionID, key)
			got := expect(t, r, http.StatusOK, map[string]any{"action": s.name, "agent_id": s.agent})
			if pr, _ := got["policy_result"].(map[string]any); pr["action_id"] != a.ActionID {
				t.Fatalf("%s: stored policy_result %v", s.name, got["policy_result"])
			}
			rec, err := e.st.GetAction(t.Context(), tenantOfKey(t, e, key), a.ActionID)
			if err != nil {
				t.Fatal(err)
			}
			var params struct {
				Text string `json:"text"`
				List []any  `json:"list"`
			}
			if err := json.Unmarshal(rec.Params, &params); err != nil || params.Text != s.text || len(params.List) != 3 || params.List[2] != s.agent {
				t.Fatalf("%s: stored params %.200s (%v)", s.name, rec.Params, err)
			}
			trail, err := e.st.(store.GovernanceStore).AuditTrail(t.Context(), rec.TenantID, a.ActionID)
			if err != nil || len(trail) != 1 || !bytes.Contains(trail[0].Metadata, []byte(`"action":"`+s.name+`"`)) {
				t.Fatalf("%s: audit trail %v (%v)", s.name, trail, err)
			}
		}
	}
}

// tenantOfKey is the tenant the key belongs to.
func tenantOfKey(t *testing.T, e *env, key string) string {
	t.Helper()
	id, err := e.reg.Identify(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	return id.Tenant.ID
}

// TestBodyLimitWithoutItsWrapper: a body of a declared length is not
// wrapped in http.MaxBytesReader (net/http reads no further than the
// length), so a request made in-process whose body runs past its declared
// length is still refused at the limit, by readBody, not read whole.
func TestBodyLimitWithoutItsWrapper(t *testing.T) {
	e := newEnv(t, func(o *envOption) { o.cfg.MaxBodyBytes = 100 << 10 })
	_, key := e.tenant(store.TierPro)
	big := `{"action":"a.b","params":{"text":"` + strings.Repeat("d", 100<<10) + `"}}`
	for _, declared := range []int64{100, 64<<10 + 1} { // the two ways readAll reads
		r := &countingReader{r: strings.NewReader(big)}
		req := httptest.NewRequest(http.MethodPost, "/v1/actions", r)
		req.ContentLength = declared
		req.Header.Set("Authorization", "Bearer "+key)
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, req)
		expectError(t, response{code: w.Code, header: w.Header(), body: w.Body.Bytes()}, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE", "request body exceeds 102400 bytes", nil)
		if r.n > 100<<10+64<<10 {
			t.Errorf("declared %d: read %d bytes of a body over the limit", declared, r.n)
		}
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestParamsStoredInOneForm: params are stored as encoding/json writes
// them whether the body spelled them that way (taken as sent) or not
// (encoded again).
func TestParamsStoredInOneForm(t *testing.T) {
	e := newEnv(t)
	tid, key := e.tenant(store.TierPro)
	for _, tc := range []struct{ sent, want string }{
		{`{"a":"<x> & y","b":[1,2.50,{"c":null,"d":true}]}`, `{"a":"<x> & y","b":[1,2.50,{"c":null,"d":true}]}`}, // taken as sent
		{`{"b":[1, 2.50,{"d":true,"c":null}],"a":"\u003cx\u003e & y"}`, `{"a":"<x> & y","b":[1,2.50,{"c":null,"d":true}]}`},
		{`{"e":"` + "\u2028" + `"}`, `{"e":"\u2028"}`}, // encoding/json escapes U+2028
		{`{"e":"\u2028"}`, `{"e":"\u2028"}`},
	} {
		r := e.post("/v1/actions", key, `{"action":"a.b","params":`+tc.sent+`}`)
		got := expect(t, r, http.StatusOK, nil)
		rec, err := e.st.GetAction(t.Context(), tid, got["action_id"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if string(rec.Params) != tc.want {
			t.Errorf("params %s stored as %s, want %s", tc.sent, rec.Params, tc.want)
		}
	}
}
