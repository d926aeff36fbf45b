package registry

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/approval"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// Policy writes append to the tenant's audit chain (docs/api.md §A10) in the
// same transaction as the write when the store keeps one
// (store.AuditedWrites); the store fills in the event and the policy's
// facts. A store without a chain (PostgreSQL, for now) writes as before.

func (r *Registry) putPolicy(ctx context.Context, req store.PutPolicyRequest) (store.PolicyWrite, error) {
	if aw, ok := r.st.(store.AuditedWrites); ok {
		w, _, err := aw.PutPolicyAudited(ctx, req, store.AuditEvent{})
		return w, err
	}
	return r.st.PutPolicy(ctx, req)
}

func (r *Registry) disablePolicy(ctx context.Context, key store.PolicyKey) (store.PolicyWrite, error) {
	if aw, ok := r.st.(store.AuditedWrites); ok {
		var ev store.AuditEvent
		if a := actorOf(ctx); a != "" {
			md, err := json.Marshal(map[string]string{"actor": a})
			if err != nil {
				return store.PolicyWrite{}, err
			}
			ev.Metadata = md
		}
		w, _, err := aw.DisablePolicyAudited(ctx, key, ev)
		return w, err
	}
	return r.st.DisablePolicy(ctx, key)
}

// checkApprovalSettings adds approval_settings' problems to es and reports
// whether there were none. Settings are checked whatever the mode: they
// apply in enterprise mode and are kept, unused, in the others.
func checkApprovalSettings(es *pdp.ValidationErrors, raw []byte) bool {
	_, err := approval.ParseSettings(raw)
	var (
		ves pdp.ValidationErrors
		ve  *pdp.ValidationError
	)
	switch {
	case err == nil:
		return true
	case errors.As(err, &ves):
		*es = append(*es, ves...)
	case errors.As(err, &ve):
		*es = append(*es, ve)
	default:
		*es = append(*es, &pdp.ValidationError{Field: "approval_settings", Reason: err.Error()})
	}
	return false
}
