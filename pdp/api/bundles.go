package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-pdp/gatehouse/bundles"
	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
)

// BundleMaxWait caps a bundle long poll (Prefer: wait=N, OPA's
// polling.long_polling_timeout_seconds). The HTTP server's WriteTimeout
// must be longer, or held polls would be cut off mid-answer.
const BundleMaxWait = 2 * time.Minute

// newBundleHandler wires GET /v1/bundles/{tenant}.tar.gz (docs/api.md §B3) when
// deps has a bundle cache: bundles of the tenant's policies as the store
// holds them now, built once per revision and signed when the cache signs.
func (s *server) newBundleHandler(deps Deps) error {
	if deps.Bundles == nil {
		return nil
	}
	h, err := bundles.NewHandler(bundles.HandlerConfig{
		Cache:     deps.Bundles,
		Authorize: s.authorizeBundle,
		Snapshot: func(ctx context.Context, tenant string) (pdp.TenantPolicies, error) {
			return s.st.TenantPolicies(ctx, tenant)
		},
		MaxWait: BundleMaxWait,
		Logger:  s.log,
		Drain:   deps.BundleDrain,
		Envelope: func(status int, code, message string) []byte {
			return append((&apiError{Status: status, Code: code, Message: message}).body(), '\n')
		},
	})
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	s.bundles = h
	return nil
}

func (s *server) bundleRoutes(v1 *gin.RouterGroup) {
	if s.bundles == nil {
		return // unknown route: 404 NOT_FOUND
	}
	serve := func(c *gin.Context) { s.bundles.ServeHTTP(c.Writer, c.Request) }
	v1.GET("/bundles/:file", serve)
	v1.HEAD("/bundles/:file", serve)
}

// authorizeBundle admits the admin token for any tenant, and an API key
// for its own tenant only. Another tenant's bundle is 404, like a tenant
// that does not exist, so a key cannot probe which tenants do.
func (s *server) authorizeBundle(r *http.Request, tenant string) error {
	token, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		return registry.ErrUnauthorized
	}
	if s.cfg.AdminToken != "" {
		got := sha256.Sum256([]byte(token))
		if subtle.ConstantTimeCompare(got[:], s.adminHash[:]) == 1 {
			return nil
		}
	}
	id, err := s.reg.Identify(r.Context(), token)
	if err != nil {
		return err
	}
	t := id.Tenant
	if !RouteAccess["GET /v1/bundles/:file"].Admits(id.Key) {
		return &bundles.StatusError{Status: http.StatusForbidden, Code: pdp.CodeForbidden,
			Message: "This API key lacks the scope policies:read that this route needs"}
	}
	if t.ID != tenant {
		return &bundles.StatusError{Status: http.StatusNotFound, Code: pdp.CodeNotFound, Message: "Tenant not found"}
	}
	return nil
}
