package api

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// Who may do what (README "Who may do what"): every route an API key
// reaches names the scopes that admit it, in one table, and authenticate
// refuses a key holding none of them with 403 FORBIDDEN. A route missing
// from the table is refused to every key (fail closed), and a test
// compares the table with gin's route table, so a new route cannot ship
// without its scope.

// Access is what a route asks of the caller.
type Access struct {
	// Scopes admit a key holding any one of them.
	Scopes []pdp.KeyScope
	// AnyKey admits every key of the tenant: the route acts only on the
	// key itself (POST /v1/keys/rotate without key_id) or tells any key
	// what its tenant may do (GET /v1/usage).
	AnyKey bool
	// Admin routes take the operator's admin token, not a key.
	Admin bool
	// Public routes take no credential.
	Public bool
}

func scopes(ss ...pdp.KeyScope) Access { return Access{Scopes: ss} }

// RouteAccess maps "METHOD /path" (gin's path patterns) to what each
// route asks of the caller.
var RouteAccess = map[string]Access{
	"GET /health":         {Public: true},
	"HEAD /health":        {Public: true},
	"GET /metrics":        {Public: true},
	"GET /openapi.json":   {Public: true},
	"GET /console":        {Public: true},
	"HEAD /console":       {Public: true},
	"GET /console/*file":  {Public: true},
	"HEAD /console/*file": {Public: true},

	"GET /v1/control/policies":            scopes(pdp.ScopePoliciesRead),
	"POST /v1/control/policies":           scopes(pdp.ScopePoliciesWrite),
	"GET /v1/control/policies/:name":      scopes(pdp.ScopePoliciesRead),
	"PUT /v1/control/policies/:name":      scopes(pdp.ScopePoliciesWrite),
	"DELETE /v1/control/policies/:name":   scopes(pdp.ScopePoliciesWrite),
	"GET /v1/control/policies/:name/rego": scopes(pdp.ScopePoliciesRead),
	// Policy history (README "Changing policies safely"): reading versions
	// and diffs reads policies; a rollback is a write; an impact replay
	// previews a write, costs replay CPU and shows recorded actions, so it
	// asks what the write would.
	"GET /v1/control/policies/:name/versions":          scopes(pdp.ScopePoliciesRead),
	"GET /v1/control/policies/:name/versions/:version": scopes(pdp.ScopePoliciesRead),
	"GET /v1/control/policies/:name/diff":              scopes(pdp.ScopePoliciesRead),
	"POST /v1/control/policies/:name/rollback":         scopes(pdp.ScopePoliciesWrite),
	"POST /v1/control/policies/impact":                 scopes(pdp.ScopePoliciesWrite),
	"POST /v1/control/dry-run":                         scopes(pdp.ScopePoliciesRead),
	"GET /v1/control/agents":                           scopes(pdp.ScopePoliciesRead),
	"GET /v1/bundles/:file":                            scopes(pdp.ScopePoliciesRead),
	"HEAD /v1/bundles/:file":                           scopes(pdp.ScopePoliciesRead),
	"POST /v1/data/gatehouse/decision/result":          scopes(pdp.ScopePoliciesRead),
	"GET /v1/data/*path":                               scopes(pdp.ScopePoliciesRead),

	"POST /v1/actions":                       scopes(pdp.ScopeActionsSubmit),
	"POST /v1/actions/:connector":            scopes(pdp.ScopeActionsSubmit),
	"POST /v1/actions/:connector/*operation": scopes(pdp.ScopeActionsSubmit),
	"GET /v1/actions":                        scopes(pdp.ScopeActionsSubmit, pdp.ScopeAuditRead),
	"GET /v1/actions/:id":                    scopes(pdp.ScopeActionsSubmit, pdp.ScopeAuditRead),
	"GET /v1/actions/:id/explain":            scopes(pdp.ScopeActionsSubmit, pdp.ScopeAuditRead),

	"GET /v1/approvals":               scopes(pdp.ScopeApprovalsDecide, pdp.ScopeAuditRead),
	"POST /v1/approvals/:id/decision": scopes(pdp.ScopeApprovalsDecide),

	"GET /v1/audit":        scopes(pdp.ScopeAuditRead),
	"GET /v1/audit/verify": scopes(pdp.ScopeAuditRead),
	"GET /v1/audit/export": scopes(pdp.ScopeAuditRead),
	"GET /v1/usage":        {AnyKey: true},

	"GET /v1/control/dashboard":                   scopes(pdp.ScopeDashboardRead),
	"GET /v1/control/agents/:agent_id/violations": scopes(pdp.ScopeDashboardRead),

	"GET /v1/keys":            scopes(pdp.ScopeKeysManage),
	"POST /v1/keys":           scopes(pdp.ScopeKeysManage),
	"DELETE /v1/keys/:key_id": scopes(pdp.ScopeKeysManage),
	"POST /v1/keys/rotate":    {AnyKey: true},

	"POST /v1/admin/tenants":          {Admin: true},
	"GET /v1/admin/tenants":           {Admin: true},
	"GET /v1/admin/tenants/:id":       {Admin: true},
	"PATCH /v1/admin/tenants/:id":     {Admin: true},
	"POST /v1/admin/tenants/:id/keys": {Admin: true},
	"DELETE /v1/admin/keys/:key_id":   {Admin: true},
}

// Admits reports whether a key may use a route asking a.
func (a Access) Admits(k store.APIKey) bool {
	if a.AnyKey {
		return true
	}
	return slices.ContainsFunc(a.Scopes, k.Has)
}

// String is how the README's table shows a.
func (a Access) String() string {
	switch {
	case a.Public:
		return "none (public)"
	case a.Admin:
		return "admin token"
	case a.AnyKey:
		return "any key"
	}
	out := make([]string, len(a.Scopes))
	for i, s := range a.Scopes {
		out[i] = "`" + string(s) + "`"
	}
	return strings.Join(out, " or ")
}

// authorize refuses a key that lacks the scope of the request's route.
func authorize(c *gin.Context, k *store.APIKey) error {
	// The key "METHOD /path" is built on the stack: a lookup by
	// string(bytes) does not allocate.
	var buf [128]byte
	rk := append(append(append(buf[:0], c.Request.Method...), ' '), c.FullPath()...)
	a, ok := RouteAccess[string(rk)]
	if !ok || a.Public || a.Admin {
		route := string(rk)
		// Not in the table: no key may use it (fail closed).
		return &apiError{Status: http.StatusForbidden, Code: pdp.CodeForbidden,
			Message: "No API key may use this route", cause: fmt.Errorf("route %q has no scope", route)}
	}
	if a.Admits(*k) {
		return nil
	}
	need := make([]string, len(a.Scopes))
	for i, s := range a.Scopes {
		need[i] = string(s)
	}
	return &apiError{Status: http.StatusForbidden, Code: pdp.CodeForbidden,
		Message: fmt.Sprintf("This API key lacks the scope %s that this route needs", strings.Join(need, " or ")),
		Extra:   map[string]any{"required_scopes": need}}
}

// apiKey returns the key the request authenticated with; only routes
// behind authenticate call it.
func apiKey(c *gin.Context) store.APIKey {
	if id, ok := identityOf(c); ok {
		return id.Key
	}
	return store.APIKey{}
}
