package console

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

func TestRegister(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	Register(r, func(c *gin.Context, message string) {
		c.AbortWithStatusJSON(http.StatusNotFound, gin.H{"error": message, "code": "NOT_FOUND", "message": message, "status": http.StatusNotFound})
	})
	for _, tc := range []struct {
		method, path string
		status       int
		typ, body    string
	}{
		{http.MethodGet, "/console/", http.StatusOK, "text/html", `<script type="module" src="js/app.js">`},
		{http.MethodHead, "/console/", http.StatusOK, "text/html", ""},
		{http.MethodGet, "/console/js/app.js", http.StatusOK, "javascript", "import"},
		{http.MethodGet, "/console/console.css", http.StatusOK, "text/css", ":root"},
		{http.MethodGet, "/console", http.StatusMovedPermanently, "", ""},
		{http.MethodGet, "/console/js", http.StatusNotFound, "application/json", `"code":"NOT_FOUND"`},
		{http.MethodGet, "/console/missing.html", http.StatusNotFound, "application/json", "No console file /console/missing.html"},
		{http.MethodGet, "/console/..%2f..%2fconsole.go", http.StatusNotFound, "application/json", ""},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			w := httptest.NewRecorder()
			r.ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, nil))
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d", w.Code, tc.status)
			}
			if got := w.Header().Get("Content-Security-Policy"); got != CSP {
				t.Errorf("CSP %q", got)
			}
			if !strings.Contains(w.Header().Get("Content-Type"), tc.typ) {
				t.Errorf("Content-Type %q, want %q", w.Header().Get("Content-Type"), tc.typ)
			}
			if !strings.Contains(w.Body.String(), tc.body) {
				t.Errorf("body does not contain %q:\n%.300s", tc.body, w.Body.String())
			}
			if tc.status == http.StatusNotFound {
				var env map[string]any
				if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || env["status"] != float64(404) || env["code"] != "NOT_FOUND" {
					t.Errorf("404 envelope %s (%v)", w.Body.String(), err)
				}
			}
		})
	}
}
