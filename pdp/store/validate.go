package store

import (
	"encoding/json"
	"fmt"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// The Validate methods check what every driver needs before writing, so all
// drivers refuse the same inputs. They return every problem at once as
// pdp.ValidationErrors (errors.As finds a *pdp.ValidationError). Content
// rules (policy names, regexes, bounds) are the registry's and the API's.

// Validate checks a tenant about to be created or updated.
func (t Tenant) Validate() error {
	var es pdp.ValidationErrors
	if t.ID == "" {
		es = append(es, invalid("id", "required"))
	}
	if !t.Tier.Valid() {
		es = append(es, invalid("tier", "unknown tier %q", t.Tier))
	}
	if t.Mode != pdp.ModeEnforcement && t.Mode != pdp.ModeShadow {
		es = append(es, invalid("mode", "unknown mode %q", t.Mode))
	}
	if t.ApprovalSettings != nil && !json.Valid(t.ApprovalSettings) {
		es = append(es, invalid("approval_settings", "not valid JSON"))
	}
	if t.RateLimit != nil {
		es = append(es, t.RateLimit.problems("rate_limit")...)
	}
	return es.Err()
}

// Validate checks a key about to be created.
func (k APIKey) Validate() error {
	var es pdp.ValidationErrors
	for _, f := range []struct{ name, v string }{{"id", k.ID}, {"tenant_id", k.TenantID}, {"hash", k.Hash}} {
		if f.v == "" {
			es = append(es, invalid(f.name, "required"))
		}
	}
	return es.Err()
}

// Validate checks a policy write.
func (r PutPolicyRequest) Validate() error {
	var es pdp.ValidationErrors
	if r.TenantID == "" {
		es = append(es, invalid("tenant_id", "required"))
	}
	if r.Policy.Name == "" {
		es = append(es, invalid("name", "required"))
	}
	if r.Limit < Unlimited {
		es = append(es, invalid("limit", "must be ≥ 0, or Unlimited (%d)", Unlimited))
	}
	return es.Err()
}

// Validate checks an action about to be inserted.
func (a ActionRecord) Validate() error {
	var es pdp.ValidationErrors
	for _, f := range []struct{ name, v string }{{"id", a.ID}, {"tenant_id", a.TenantID}, {"action", a.Action}, {"status", string(a.Status)}} {
		if f.v == "" {
			es = append(es, invalid(f.name, "required"))
		}
	}
	if a.Params != nil && !json.Valid(a.Params) {
		es = append(es, invalid("params", "not valid JSON"))
	}
	if a.Decision != nil && !json.Valid(a.Decision) {
		es = append(es, invalid("decision", "not valid JSON"))
	}
	return es.Err()
}

func invalid(field, format string, args ...any) *pdp.ValidationError {
	return &pdp.ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
