package api_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/api"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// concretePath fills gin's path parameters with values of the tenant.
func concretePath(path, tenantID string) string {
	r := strings.NewReplacer(
		":name", "pii_protection", ":id", "act_000000000000000000000000", ":agent_id", "bot", ":key_id", "key_0000000000000000",
		":connector", "slack", "*operation", "/send_message", "*path", "/gatehouse/tenants/"+tenantID, ":file", tenantID+".tar.gz",
		"*file", "/index.html",
	)
	return r.Replace(path)
}

// TestEveryRouteHasAScope compares gin's route table with api.RouteAccess:
// a route served without an entry fails here (and is refused to every key
// at run time).
func TestEveryRouteHasAScope(t *testing.T) {
	e := newEnv(t)
	for _, r := range e.h.(*gin.Engine).Routes() {
		if _, ok := api.RouteAccess[r.Method+" "+r.Path]; !ok {
			t.Errorf("route %s %s has no entry in api.RouteAccess: say which scope it needs", r.Method, r.Path)
		}
	}
}

// TestRouteScopes is the table route × scope → allowed or 403: for every
// route a key reaches and every scope, a key holding only that scope is
// refused with 403 FORBIDDEN exactly when the route does not admit it.
func TestRouteScopes(t *testing.T) {
	e := newEnv(t)
	tenantID, secret := e.tenant(store.TierEnterprise)
	owner, err := e.reg.Identify(t.Context(), secret)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[pdp.KeyScope]string{}
	for _, sc := range pdp.AllScopes {
		_, k, err := e.reg.CreateTenantKey(t.Context(), owner.Key, registry.NewKey{Name: "only " + string(sc), Role: pdp.RoleAdmin, Scopes: []pdp.KeyScope{sc}})
		if err != nil {
			t.Fatal(err)
		}
		keys[sc] = k
	}
	routes := e.h.(*gin.Engine).Routes()
	checked := 0
	for _, r := range routes {
		access := api.RouteAccess[r.Method+" "+r.Path]
		if access.Public || access.Admin {
			continue
		}
		for _, sc := range pdp.AllScopes {
			body := any(`{}`)
			if r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodDelete {
				body = nil
			}
			if r.Path == "/v1/keys/rotate" {
				body = `{"grace_period_seconds":3600}`
			}
			resp := e.do(request{method: r.Method, path: concretePath(r.Path, tenantID), key: keys[sc], body: body})
			refused := resp.code == http.StatusForbidden && scopeRefusal(resp)
			want := !access.AnyKey && !slices.Contains(access.Scopes, sc)
			if refused != want {
				t.Errorf("%s %s with only %s: %d %s; want refused=%v", r.Method, r.Path, sc, resp.code, resp.body, want)
			}
			checked++
		}
	}
	if checked < 25*len(pdp.AllScopes) {
		t.Errorf("only %d route × scope pairs checked", checked)
	}
	// The rotate route's own rule: another key needs keys:manage.
	resp := e.post("/v1/keys/rotate", keys[pdp.ScopeActionsSubmit], map[string]any{"key_id": owner.KeyID})
	if resp.code != http.StatusForbidden || !scopeRefusal(resp) {
		t.Errorf("rotating another key without keys:manage: %d %s", resp.code, resp.body)
	}
}

// scopeRefusal reports whether a 403 is the scope check's (not a tier
// error or an approval rule).
func scopeRefusal(r response) bool {
	var m map[string]any
	if r.code != http.StatusForbidden || len(r.body) == 0 {
		return r.code == http.StatusForbidden // HEAD: no body
	}
	_ = json.Unmarshal(r.body, &m)
	return m["code"] == pdp.CodeForbidden && m["required_scopes"] != nil
}
