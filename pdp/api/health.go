package api

import (
	"maps"
	"net/http"

	"github.com/gin-gonic/gin"
)

// health answers 200 {"status":"ok"} without authentication (docs/api.md
// §B1). New runs only with an open store and a ready engine, so a handler
// that answers at all is healthy; it deliberately does no I/O, so load
// balancers probing it cost nothing.
//
// Tenants holding an invalid policy fail closed on their own (the engine
// re-validates what it loads); the server still serves everyone else, so
// the answer stays 200, with status "degraded" and their number in
// degraded_tenants. Which tenants and why is in the log, not here: this
// route has no authentication.
//
// While the server is still compiling the tenants it started with
// (Deps.Warming), it answers 503 {"status":"warming","tenants_compiled",
// "tenants"}: it is live, and decides (a decision compiles what it needs),
// but not ready, so a load balancer keeps traffic away until no decision
// has a compile ahead of it.
//
// Deps.HealthDetail may add fields (a read-only server's bundle
// coverage, in counts for the same reason; it lists the store's tenants at
// most every 5 s), never the status.
func (s *server) health(c *gin.Context) {
	if s.warming != nil {
		if warming, compiled, tenants := s.warming(); warming {
			if c.Request.Method == http.MethodHead {
				c.Status(http.StatusServiceUnavailable)
				return
			}
			writeJSON(c, http.StatusServiceUnavailable, map[string]any{
				"status": "warming", "tenants_compiled": compiled, "tenants": tenants,
			})
			return
		}
	}
	if c.Request.Method == http.MethodHead {
		c.Status(http.StatusOK)
		return
	}
	body := map[string]any{}
	if s.healthDetail != nil {
		maps.Copy(body, s.healthDetail(c.Request.Context()))
	}
	body["status"] = "ok"
	if n := len(s.eng.Degraded()); n > 0 {
		body["status"], body["degraded_tenants"] = "degraded", n
	}
	writeJSON(c, http.StatusOK, body)
}
