package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

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
	es = append(es, k.identityProblems()...)
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

// Bounds of a stored action's fields. They are the store's, generous
// beside the API's (an action name of 200 bytes, params of 64 KiB), so a
// caller that passed the API's checks is never refused here; they exist so
// no write is unbounded whoever calls the store.
const (
	MaxActionIDLen     = 256     // id, tenant_id, agent_id, step_type, status, severity, trace_id, approver_id
	MaxActionTextLen   = 4 << 10 // action, connector, operation, triggered_policy
	MaxActionReasonLen = 64 << 10
	MaxActionJSONBytes = 1 << 20 // params, decision
)

// Validate checks an action about to be inserted; it is ValidateAction.
func (a ActionRecord) Validate() error { return ValidateAction(a) }

// ValidateAction is the one check of an action every driver runs before
// writing it, and the service runs before deciding it, so an input no
// driver can store is refused before a decision is made, identically on
// every backend: required fields, every text valid UTF-8 without NUL
// (PostgreSQL cannot store either; SQLite would), the Max* bounds, and
// params and decision valid JSON. It returns every problem at once as
// pdp.ValidationErrors (errors.As finds a *pdp.ValidationError naming the
// field).
func ValidateAction(a ActionRecord) error {
	var es pdp.ValidationErrors
	for _, f := range []struct{ name, v string }{{"id", a.ID}, {"tenant_id", a.TenantID}, {"action", a.Action}, {"status", string(a.Status)}} {
		if f.v == "" {
			es = append(es, invalid(f.name, "required"))
		}
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{
		{"id", a.ID, MaxActionIDLen}, {"tenant_id", a.TenantID, MaxActionIDLen}, {"agent_id", a.AgentID, MaxActionIDLen},
		{"action", a.Action, MaxActionTextLen}, {"connector", a.Connector, MaxActionTextLen},
		{"operation", a.Operation, MaxActionTextLen},
		{"step_type", a.StepType, MaxActionIDLen}, {"status", string(a.Status), MaxActionIDLen},
		{"triggered_policy", a.TriggeredPolicy, MaxActionTextLen},
		{"severity", string(a.Severity), MaxActionIDLen}, {"trace_id", a.TraceID, MaxActionIDLen},
		{"approver_id", a.ApproverID, MaxActionIDLen}, {"decision_reason", a.DecisionReason, MaxActionReasonLen},
	} {
		if len(f.v) > f.max {
			es = append(es, invalid(f.name, "at most %d bytes", f.max))
		} else if !Storable(f.v) {
			es = append(es, invalid(f.name, textReason))
		}
	}
	// The JSON fields are checked as bytes: a string of each would be a
	// copy per insert.
	for _, f := range []struct {
		name string
		v    []byte
	}{{"params", a.Params}, {"decision", a.Decision}} {
		if len(f.v) > MaxActionJSONBytes {
			es = append(es, invalid(f.name, "at most %d bytes", MaxActionJSONBytes))
		} else if !utf8.Valid(f.v) || bytes.IndexByte(f.v, 0) >= 0 {
			es = append(es, invalid(f.name, textReason))
		}
	}
	if a.Params != nil && !a.JSONEncoded && !json.Valid(a.Params) {
		es = append(es, invalid("params", "not valid JSON"))
	}
	if a.Decision != nil && !a.JSONEncoded && !json.Valid(a.Decision) {
		es = append(es, invalid("decision", "not valid JSON"))
	}
	if a.ViolationCount < 0 {
		es = append(es, invalid("violation_count", "must be ≥ 0"))
	}
	if math.IsNaN(a.RiskScore) || math.IsInf(a.RiskScore, 0) {
		es = append(es, invalid("risk_score", "must be a finite number"))
	}
	return es.Err()
}

const textReason = "must be valid UTF-8 without NUL characters"

// Storable reports whether every backend can hold s as text: valid UTF-8
// without NUL. A lookup of a key that is not storable finds nothing, as it
// could never have been written; a write of one is a validation error.
func Storable(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// AllStorable reports whether every s is Storable.
func AllStorable(ss ...string) bool {
	for _, s := range ss {
		if !Storable(s) {
			return false
		}
	}
	return true
}

// Text is a named text value about to be written.
type Text struct{ Field, Value string }

// CheckText returns a pdp.ValidationErrors naming every text that is not
// Storable, or nil. JSON passes through it too: valid JSON never holds a
// raw NUL, but may hold invalid UTF-8.
func CheckText(ts ...Text) error {
	var es pdp.ValidationErrors
	for _, t := range ts {
		if !Storable(t.Value) {
			es = append(es, invalid(t.Field, textReason))
		}
	}
	return es.Err()
}

func invalid(field, format string, args ...any) *pdp.ValidationError {
	return &pdp.ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// PrepareAction sets what the store owns on an action about to be
// inserted — CreatedAt (now() when zero) and DecidedAt in UTC at
// TimePrecision — and runs ValidateAction: what every driver's insert
// starts with, so the record it returns is exactly what will be stored.
func PrepareAction(a ActionRecord, now func() time.Time) (ActionRecord, error) {
	if a.CreatedAt.IsZero() {
		a.CreatedAt = now()
	}
	a.CreatedAt = a.CreatedAt.UTC().Truncate(TimePrecision)
	if a.DecidedAt != nil {
		d := a.DecidedAt.UTC().Truncate(TimePrecision)
		a.DecidedAt = &d
	}
	err := ValidateAction(a)
	a.JSONEncoded = false
	return a, err
}
