package api_test

import (
	"encoding/json"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"

	"github.com/gatehouse-pdp/gatehouse/docs"
)

// templateParam matches a path parameter in either notation: gin's
// ":name" and "*name", OpenAPI's "{name}".
var templateParam = regexp.MustCompile(`:[^/]+|\*[^/]+|\{[^}]+\}`)

func routeKey(method, path string) string {
	return method + " " + templateParam.ReplaceAllString(path, "{}")
}

// TestOpenAPIDescribesEveryRoute checks the route table against
// docs/openapi.yaml in both directions, so that a route added without its
// description (or a description of a route that is gone) fails here, long
// before the e2e suite meets it. Routes that exist only with a dependency
// this test does not wire (metrics, the bundle cache) are listed.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	e := newEnv(t) // with an admin token: the admin routes are registered
	engine, ok := e.h.(*gin.Engine)
	if !ok {
		t.Fatalf("api.New returned %T, want *gin.Engine", e.h)
	}
	served := map[string]bool{}
	for _, r := range engine.Routes() {
		served[routeKey(r.Method, r.Path)] = true
	}

	b, err := docs.OpenAPIJSON()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[routeKey(method, path)] = true
		}
	}
	// The connector route is one gin catch-all ("/:connector/*operation")
	// and the data read one ("/*path"); both are single templates in the
	// document.
	needsDeps := []string{"GET /metrics", "GET /v1/bundles/{}", "HEAD /v1/bundles/{}"}

	for _, k := range slices.Sorted(maps.Keys(served)) {
		if !documented[k] {
			t.Errorf("route %s is served but not described in docs/openapi.yaml", k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(documented)) {
		if !served[k] && !slices.Contains(needsDeps, k) {
			t.Errorf("docs/openapi.yaml describes %s, which the API does not serve", k)
		}
	}
}

// TestOpenAPIServed checks GET /openapi.json: no auth, JSON, the embedded
// document.
func TestOpenAPIServed(t *testing.T) {
	e := newEnv(t)
	r := e.get("/openapi.json", "")
	if r.code != http.StatusOK {
		t.Fatalf("GET /openapi.json: %d %s", r.code, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	var got, want any
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	b, _ := docs.OpenAPIJSON()
	_ = json.Unmarshal(b, &want)
	if g, w := got.(map[string]any)["openapi"], want.(map[string]any)["openapi"]; g != w || g != "3.1.0" {
		t.Errorf("openapi %v, want %v", g, w)
	}
	if len(got.(map[string]any)["paths"].(map[string]any)) != len(want.(map[string]any)["paths"].(map[string]any)) {
		t.Error("served document differs from the embedded one")
	}
}
