package registry

import (
	"errors"
	"math"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// normalizeRateLimit completes a tenant's own rate limit as an operator
// wrote it: a Burst left at 0 with a positive rate becomes the rate
// rounded up (one second's worth of requests at once), then the store's
// bounds apply.
func normalizeRateLimit(l *store.RateLimit, es *pdp.ValidationErrors) *store.RateLimit {
	if l == nil {
		return nil
	}
	n := *l
	if n.Burst == 0 && n.RequestsPerSecond > 0 && n.RequestsPerSecond <= store.MaxRequestsPerSecond {
		n.Burst = max(1, int(math.Ceil(n.RequestsPerSecond)))
	}
	if err := n.Validate(); err != nil {
		var ves pdp.ValidationErrors
		if errors.As(err, &ves) {
			*es = append(*es, ves...)
		}
		return nil
	}
	return &n
}
