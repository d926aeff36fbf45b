package approval

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// Bounds of Settings.
const (
	DefaultMinApprovals = 2
	MaxMinApprovals     = 100
	MaxAllowedRoles     = 50
	MaxRoleLen          = 64
)

// Settings are a tenant's approval settings (the admin API's
// approval_settings object). They apply in enterprise mode; other modes
// keep them, unused, so switching modes back and forth loses nothing.
type Settings struct {
	// MinApprovals is how many distinct eligible approvals approve an
	// action (default DefaultMinApprovals, 1..MaxMinApprovals).
	MinApprovals int `json:"min_approvals,omitempty"`
	// AllowedRoles, when not empty, counts only approvers whose
	// approver_role is one of them (case-insensitively).
	AllowedRoles []string `json:"allowed_roles,omitempty"`
	// RequireManager counts only approvers who send is_manager=true.
	RequireManager bool `json:"require_manager,omitempty"`
}

func (s Settings) withDefaults() Settings {
	if s.MinApprovals == 0 {
		s.MinApprovals = DefaultMinApprovals
	}
	return s
}

// MinApprovalsOrDefault is MinApprovals, or DefaultMinApprovals when unset.
func (s Settings) MinApprovalsOrDefault() int { return s.withDefaults().MinApprovals }

// ParseSettings decodes approval_settings as stored (nil, empty or JSON
// null: the defaults). It is strict, so a typo never silently weakens a
// tenant's approvals: unknown keys, wrong types and values out of bounds
// are pdp.ValidationErrors naming "approval_settings.<key>", every one at
// once.
func ParseSettings(raw json.RawMessage) (Settings, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return Settings{MinApprovals: DefaultMinApprovals}, nil
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&fields); err != nil || fields == nil {
		return Settings{}, pdp.Invalid("approval_settings", "must be a JSON object or null")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Settings{}, pdp.Invalid("approval_settings", "must be a JSON object or null")
	}
	var (
		s  Settings
		es pdp.ValidationErrors
	)
	problem := func(key, format string, args ...any) {
		es = append(es, &pdp.ValidationError{Field: "approval_settings." + key, Reason: fmt.Sprintf(format, args...)})
	}
	for key, v := range fields {
		if string(v) == "null" {
			continue // the default
		}
		switch key {
		case "min_approvals":
			var n json.Number // which would also take "2": a string is refused first
			if v[0] == '"' || json.Unmarshal(v, &n) != nil {
				problem(key, "must be an integer from 1 to %d", MaxMinApprovals)
				continue
			}
			i, err := n.Int64()
			if err != nil || i < 1 || i > MaxMinApprovals {
				problem(key, "must be an integer from 1 to %d", MaxMinApprovals)
				continue
			}
			s.MinApprovals = int(i)
		case "allowed_roles":
			var roles []string
			if json.Unmarshal(v, &roles) != nil {
				problem(key, "must be an array of strings")
				continue
			}
			if len(roles) > MaxAllowedRoles {
				problem(key, "must have at most %d roles", MaxAllowedRoles)
				continue
			}
			for i, r := range roles {
				r = strings.TrimSpace(r)
				if r == "" || utf8.RuneCountInString(r) > MaxRoleLen || strings.ContainsFunc(r, unicode.IsControl) {
					problem(fmt.Sprintf("%s[%d]", key, i), "must be 1-%d characters without control characters", MaxRoleLen)
					continue
				}
				s.AllowedRoles = append(s.AllowedRoles, r)
			}
		case "require_manager":
			if json.Unmarshal(v, &s.RequireManager) != nil {
				problem(key, "must be a boolean")
			}
		default:
			problem(key, "unknown setting (known: min_approvals, allowed_roles, require_manager)")
		}
	}
	if len(es) > 0 {
		// By field, so the message does not depend on map order.
		slices.SortStableFunc(es, func(a, b *pdp.ValidationError) int { return cmp.Compare(a.Field, b.Field) })
		return Settings{}, es
	}
	return s.withDefaults(), nil
}
