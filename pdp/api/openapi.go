package api

import (
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-pdp/gatehouse/docs"
)

// openapiRoutes serves GET /openapi.json (no auth): docs/openapi.yaml,
// converted to JSON once here, at startup, so a document that does not
// convert stops the server from starting rather than failing a client.
// The e2e suite validates every request and response against the same
// embedded document, so what is served is what the server does.
func (s *server) openapiRoutes(r *gin.Engine) error {
	doc, err := docs.OpenAPIJSON()
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	r.GET("/openapi.json", func(c *gin.Context) {
		c.Data(http.StatusOK, "application/json", doc)
	})
	return nil
}
