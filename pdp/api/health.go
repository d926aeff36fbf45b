package api

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// health answers 200 {"status":"ok"} without authentication (CONTRACT
// B1). New runs only with an open store and a ready engine, so a handler
// that answers at all is healthy; it deliberately does no I/O, so load
// balancers probing it cost nothing.
func (s *server) health(c *gin.Context) {
	if c.Request.Method == http.MethodHead {
		c.Status(http.StatusOK)
		return
	}
	writeJSON(c, http.StatusOK, map[string]string{"status": "ok"})
}
