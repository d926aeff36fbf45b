package api

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// health answers 200 {"status":"ok"} without authentication (CONTRACT
// B1). New runs only with an open store and a ready engine, so a handler
// that answers at all is healthy; it deliberately does no I/O, so load
// balancers probing it cost nothing.
//
// Tenants holding an invalid policy fail closed on their own (the engine
// re-validates what it loads); the server still serves everyone else, so
// the answer stays 200, with status "degraded" and their number in
// degraded_tenants. Which tenants and why is in the log, not here: this
// route has no authentication.
func (s *server) health(c *gin.Context) {
	if c.Request.Method == http.MethodHead {
		c.Status(http.StatusOK)
		return
	}
	if n := len(s.eng.Degraded()); n > 0 {
		writeJSON(c, http.StatusOK, map[string]any{"status": "degraded", "degraded_tenants": n})
		return
	}
	writeJSON(c, http.StatusOK, map[string]string{"status": "ok"})
}
