package api

import (
	"bytes"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// rateLimitView is a tenant's own rate limit in the admin API:
// {"requests_per_second": 10, "burst": 20}; requests_per_second 0 is
// unlimited. PATCH takes the same object (burst optional: the rate rounded
// up), or null to fall back to the tier's default (--rate-limit-<tier>).
type rateLimitView struct {
	RequestsPerSecond *float64 `json:"requests_per_second"`
	Burst             *int     `json:"burst"`
}

func viewRateLimit(l *store.RateLimit) *rateLimitView {
	if l == nil {
		return nil
	}
	rps, burst := l.RequestsPerSecond, l.Burst
	return &rateLimitView{RequestsPerSecond: &rps, Burst: &burst}
}

// decodeRateLimit reads PATCH's rate_limit: nil for JSON null.
func decodeRateLimit(raw []byte) (*store.RateLimit, error) {
	if string(bytes.TrimSpace(raw)) == "null" {
		return nil, nil
	}
	var v rateLimitView
	if err := decodeStrict(raw, &v); err != nil {
		return nil, &pdp.ValidationError{Field: "rate_limit", Reason: `must be {"requests_per_second": n, "burst": n} or null`}
	}
	if v.RequestsPerSecond == nil {
		return nil, &pdp.ValidationError{Field: "rate_limit.requests_per_second", Reason: "is required (0 for unlimited)"}
	}
	l := &store.RateLimit{RequestsPerSecond: *v.RequestsPerSecond}
	if v.Burst != nil {
		l.Burst = *v.Burst
	}
	return l, nil
}
