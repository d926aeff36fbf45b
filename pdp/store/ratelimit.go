package store

import (
	"math"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// Bounds of a RateLimit.
const (
	MaxRequestsPerSecond = 1e6
	MaxBurst             = 1_000_000
)

// RateLimit is a tenant's own request rate limit (docs/api.md §A1), which
// overrides the default of its tier: each of the tenant's API keys has a
// token bucket holding Burst requests, refilled at RequestsPerSecond.
// RequestsPerSecond 0 means unlimited (Burst is then 0 too), so a tenant
// can be exempted from a limited tier's default.
type RateLimit struct {
	RequestsPerSecond float64 `json:"requests_per_second"`
	Burst             int     `json:"burst"`
}

// Unlimited reports whether l lets every request through.
func (l RateLimit) Unlimited() bool { return l.RequestsPerSecond == 0 }

// problems lists what is wrong with l; field prefixes each field's name.
func (l RateLimit) problems(field string) pdp.ValidationErrors {
	var es pdp.ValidationErrors
	switch rps := l.RequestsPerSecond; {
	case math.IsNaN(rps) || rps < 0 || rps > MaxRequestsPerSecond:
		es = append(es, invalid(field+".requests_per_second", "must be from 0 (unlimited) to %g", float64(MaxRequestsPerSecond)))
	case rps == 0 && l.Burst != 0:
		es = append(es, invalid(field+".burst", "must be 0 when requests_per_second is 0 (unlimited)"))
	case rps > 0 && (l.Burst < 1 || l.Burst > MaxBurst):
		es = append(es, invalid(field+".burst", "must be from 1 to %d", MaxBurst))
	}
	return es
}

// Validate checks l, naming its fields rate_limit.*.
func (l RateLimit) Validate() error { return l.problems("rate_limit").Err() }
