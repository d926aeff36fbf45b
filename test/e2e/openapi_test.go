package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestSpecTransportCatchesDrift feeds the validating transport exchanges
// that break the document in each way it checks, and exchanges that do
// not, so the check of the whole suite is known to be able to fail. The
// server here is a stand-in on purpose: what is tested is the checker.
func TestSpecTransportCatchesDrift(t *testing.T) {
	const env404 = `{"error":"NOT_FOUND","code":"NOT_FOUND","message":"No route","status":404}`
	const health = `{"status":"ok"}`
	cases := []struct {
		name         string
		method, path string
		body         string
		status       int
		respCT       string
		resp         string
		wantProblem  string // "" for none
	}{
		{"documented and valid", "GET", "/health", "", 200, "application/json", health, ""},
		{"undocumented field in a strict object", "GET", "/v1/actions?limit=1", "", 200, "application/json",
			`{"actions":[],"total":0,"extra":1}`, "does not match the document"},
		{"missing required field", "GET", "/v1/audit/verify", "", 200, "application/json",
			`{"valid":true,"entries":0}`, "does not match the document"},
		{"undocumented status", "GET", "/v1/audit/verify", "", 418, "application/json",
			`{"error":"x","code":"x","message":"","status":418}`, "status is not supported"},
		{"error that is not the envelope", "GET", "/v1/actions/act_1", "", 404, "application/json",
			`{"detail":"nope"}`, "does not match the document"},
		{"envelope status differs from HTTP status", "GET", "/v1/actions/act_1", "", 404, "application/json",
			`{"error":"x","code":"x","message":"m","status":400}`, "envelope status"},
		{"undocumented route answered 200", "GET", "/v1/secret", "", 200, "application/json", `{}`, "undocumented route"},
		{"undocumented route answered 404", "GET", "/v1/secret", "", 404, "application/json", env404, ""},
		{"invalid request accepted", "POST", "/v1/actions", `{"action":7}`, 200, "application/json",
			`{}`, "yet the server answered 200"},
		{"invalid request refused as documented", "POST", "/v1/actions", `{"bogus":1}`, 400, "application/json",
			`{"error":"VALIDATION_ERROR","code":"VALIDATION_ERROR","message":"m","status":400}`, ""},
		{"connector operation over several segments", "POST", "/v1/actions/github/repos/create", `{}`, 400, "application/json",
			`{"error":"VALIDATION_ERROR","code":"VALIDATION_ERROR","message":"m","status":400}`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.respCT)
				w.WriteHeader(tc.status)
				fmt.Fprint(w, tc.resp)
			}))
			defer srv.Close()
			var problems []string
			tr := &SpecTransport{T: t, report: func(format string, args ...any) {
				problems = append(problems, fmt.Sprintf(format, args...))
			}}
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			req.Header.Set("Authorization", "Bearer nram_x")
			resp, err := (&http.Client{Transport: tr}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := strings.Join(problems, "\n")
			switch {
			case tc.wantProblem == "" && got != "":
				t.Errorf("valid exchange reported: %s", got)
			case tc.wantProblem != "" && !strings.Contains(got, tc.wantProblem):
				t.Errorf("want a report containing %q, got %q", tc.wantProblem, got)
			}
		})
	}
}
