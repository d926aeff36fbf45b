package api

import (
	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/gatehouse-pdp/gatehouse/pdp/decisionlog"
)

// Observability beyond metrics: the API's own spans and the decision log.
// Each decision is handed to the decision log after it is recorded and
// before it is answered, with one non-blocking call; everything else
// happens on the log's worker (pdp/decisionlog).

// observability is what the handlers need to trace and log decisions.
type observability struct {
	tracer trace.Tracer
	dlog   *decisionlog.Logger // nil: decisions are not logged
}

func newObservability(deps Deps) observability {
	tp := deps.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return observability{tracer: tp.Tracer("github.com/gatehouse-pdp/gatehouse/pdp/api"), dlog: deps.DecisionLog}
}

// logQuery hands a Data API decision to the decision log and returns its
// decision_id ("" when decisions are not logged), which the response
// carries as OPA's does.
func (s *server) logQuery(c *gin.Context, tenantID string, input map[string]any, result any, defined bool) string {
	if s.dlog == nil {
		return ""
	}
	id := decisionlog.NewID()
	d := decisionlog.Decision{
		ID:          id,
		TenantID:    tenantID,
		Input:       decisionlog.QueryInput{Input: input, TenantID: tenantID},
		RequestedBy: c.Request.RemoteAddr,
	}
	if defined {
		d.Result = result
	}
	s.dlog.Log(c.Request.Context(), d)
	return id
}
