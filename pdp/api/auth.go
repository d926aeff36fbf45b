package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// bearer returns the credential of an "Authorization: Bearer <token>"
// header (scheme in any case).
func bearer(h string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// authenticate resolves the tenant from the API key; the tenant of a
// request never comes from its body or query.
// Its span, api.Authenticate, covers the key lookup (and its store call
// on a cache miss) and the rate limit; a refused key is an event on it,
// not an error.
func (s *server) authenticate(c *gin.Context) {
	if !s.tracing {
		s.authenticateUntraced(c)
		return
	}
	ctx, span := s.tracer.Start(c.Request.Context(), "api.Authenticate")
	key, ok := bearer(c.GetHeader("Authorization"))
	if !ok {
		span.AddEvent("no bearer token")
		span.End()
		fail(c, registry.ErrUnauthorized)
		return
	}
	id, err := s.reg.Identify(ctx, key)
	if err != nil {
		if errors.Is(err, registry.ErrUnauthorized) {
			span.AddEvent(err.Error())
		} else {
			span.RecordError(err)
			span.SetStatus(codes.Error, "authentication failed")
		}
		span.End()
		fail(c, err)
		return
	}
	t := id.Tenant
	setIdentity(c, &id)
	span.SetAttributes(attribute.String("tenant_id", t.ID))
	if err := authorize(c, &id.Key); err != nil {
		span.AddEvent("scope refused")
		span.End()
		fail(c, err)
		return
	}
	trace.SpanFromContext(c.Request.Context()).SetAttributes(attribute.String("tenant_id", t.ID))
	allowed := s.allowRate(c, id.KeyHash, t)
	if !allowed {
		span.AddEvent("rate limited")
	}
	span.End()
	if !allowed {
		return
	}
	c.Next()
}

// authenticateUntraced is authenticate without its span, when tracing is
// off.
func (s *server) authenticateUntraced(c *gin.Context) {
	key, ok := bearer(c.GetHeader("Authorization"))
	if !ok {
		fail(c, registry.ErrUnauthorized)
		return
	}
	id, err := s.reg.Identify(c.Request.Context(), key)
	if err != nil {
		fail(c, err)
		return
	}
	setIdentity(c, &id)
	if err := authorize(c, &id.Key); err != nil {
		fail(c, err)
		return
	}
	if s.allowRate(c, id.KeyHash, id.Tenant) {
		c.Next()
	}
}

// Gin context key of the request's *registry.Identity: its tenant, key
// and key ID, set once by authenticate (one pointer, not three copies).
const ctxIdentity = "gatehouse.identity"

// setIdentity keeps the identity the request authenticated with: in the
// request's state (no allocation of its own), else under ctxIdentity.
func setIdentity(c *gin.Context, id *registry.Identity) {
	if st := stateOf(c); st != nil {
		st.identity, st.authed = *id, true
		return
	}
	cp := *id
	c.Set(ctxIdentity, &cp)
}

// identityOf returns the identity the request authenticated with.
func identityOf(c *gin.Context) (*registry.Identity, bool) {
	if st := stateOf(c); st != nil && st.authed {
		return &st.identity, true
	}
	v, ok := c.Get(ctxIdentity)
	if !ok {
		return nil, false
	}
	id, ok := v.(*registry.Identity)
	return id, ok && id != nil
}

func tenantOf(c *gin.Context) (store.Tenant, bool) {
	id, ok := identityOf(c)
	if !ok {
		return store.Tenant{}, false
	}
	return id.Tenant, true
}

// tenant returns the authenticated tenant; only routes behind
// authenticate call it.
func tenant(c *gin.Context) store.Tenant {
	t, _ := tenantOf(c)
	return t
}

// adminAuth checks the admin token. Both sides are hashed first so the
// constant-time comparison also hides the token's length.
func (s *server) adminAuth(c *gin.Context) {
	token, ok := bearer(c.GetHeader("Authorization"))
	got := sha256.Sum256([]byte(token))
	if !ok || subtle.ConstantTimeCompare(got[:], s.adminHash[:]) != 1 {
		fail(c, &apiError{Status: http.StatusUnauthorized, Code: pdp.CodeUnauthorized, Message: "Invalid or missing admin token"})
		return
	}
	c.Next()
}
