package adapter

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// Bounds of a policy document (docs/api.md §A3). Lengths of text count
// characters (runes), not bytes.
const (
	maxNameLen        = 64
	maxDescriptionLen = 1024
	maxStepTypes      = 6
	maxDomains        = 100
	maxHostnameLen    = 253
	maxLabelLen       = 63
	maxRules          = 100
	maxPatternLen     = 1024
	maxReasonLen      = 512
)

var (
	namePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

var (
	severities = []pdp.Severity{pdp.SeverityCritical, pdp.SeverityHigh, pdp.SeverityMedium, pdp.SeverityLow}
	outcomes   = []pdp.Outcome{pdp.OutcomeBlock, pdp.OutcomeRequireApproval, pdp.OutcomeWarn}
)

// Policy validates d and returns its normalized policy: Enabled defaults to
// true, rule confidence to pdp.DefaultConfidence, and the rest as Validate
// describes; Version and the timestamps are zero, for the registry to set.
// Every problem is reported at once as pdp.ValidationErrors.
func (d *Document) Policy() (pdp.Policy, error) {
	p, _, err := d.PolicyWithCost()
	return p, err
}

// PolicyWithCost is Policy that also returns the policy's regex cost (the
// sum of its patterns' costs, see MaxPolicyCost), measured while the
// patterns are compiled for validation: a write compiles each pattern once
// and hands the cost to the tenant budget check (CheckTenantWrite).
func (d *Document) PolicyWithCost() (pdp.Policy, int, error) {
	p := pdp.Policy{
		Name:               deref(d.Name),
		Description:        deref(d.Description),
		AgentID:            deref(d.AgentID),
		StepTypes:          d.StepTypes,
		WhitelistedDomains: d.WhitelistedDomains,
		Enabled:            d.Enabled == nil || *d.Enabled,
	}
	var modeErr *pdp.ValidationError
	switch m := strings.ToLower(deref(d.Mode)); m {
	case "", string(pdp.PolicyEnforce):
	case string(pdp.PolicyShadow):
		p.Mode = pdp.PolicyShadow
	default:
		modeErr = &pdp.ValidationError{Field: "mode", Reason: "must be enforce or shadow"}
	}
	if d.Rules != nil {
		p.Rules = make([]pdp.Rule, len(d.Rules))
		for i, r := range d.Rules {
			p.Rules[i] = pdp.Rule{
				Match:           deref(r.Match),
				Severity:        pdp.Severity(deref(r.Severity)),
				OnViolation:     pdp.Outcome(deref(r.OnViolation)),
				Reason:          deref(r.Reason),
				ContextRequires: deref(r.ContextRequires),
				Confidence:      pdp.DefaultConfidence,
			}
			if r.Confidence != nil {
				p.Rules[i].Confidence = *r.Confidence
			}
		}
	}
	cost, err := validate(&p)
	if modeErr != nil {
		var es pdp.ValidationErrors
		if !errors.As(err, &es) && err != nil {
			return pdp.Policy{}, 0, err
		}
		return pdp.Policy{}, 0, append(es, modeErr)
	}
	if err != nil {
		return pdp.Policy{}, 0, err
	}
	return p, cost, nil
}

func deref[T any](v *T) T {
	var zero T
	if v == nil {
		return zero
	}
	return *v
}

// Validate checks the content fields of p (Name … Rules) against docs/api.md §A3
// and normalizes them in place: step types upper-case, deduplicated, and
// ["ACTION"] when nil; whitelisted domains lower-case, deduplicated, and an
// empty (never nil) list when absent; severity and on_violation lower-case,
// on_violation defaulting from severity. Enabled, Version and the timestamps
// are left alone, and so is Confidence: in a pdp.Policy zero is a value, not
// "absent". Validate is idempotent: a normalized policy passes unchanged.
// It returns every problem at once as pdp.ValidationErrors, and on error
// leaves p untouched.
func Validate(p *pdp.Policy) error {
	_, err := validate(p)
	return err
}

// validate is Validate that also returns the policy's regex cost.
func validate(p *pdp.Policy) (int, error) {
	v := &policyChecker{}
	n := *p
	n.Name = v.name(p.Name)
	n.Description = v.description(p.Description)
	n.AgentID = v.agentID(p.AgentID)
	n.StepTypes = v.stepTypes(p.StepTypes)
	n.WhitelistedDomains = v.domains(p.WhitelistedDomains)
	n.Rules = v.rules(p.Rules)
	if err := v.errs.Err(); err != nil {
		return 0, err
	}
	*p = n
	return v.cost, nil
}

// policyChecker collects the problems of one policy.
type policyChecker struct {
	errs pdp.ValidationErrors
	cost int // regex cost of the rules checked so far
}

func (v *policyChecker) fail(field, format string, args ...any) {
	v.errs = append(v.errs, &pdp.ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)})
}

// text rejects what no field may hold: invalid UTF-8 (JSON and YAML input is
// checked by Decode; this catches policies built in Go or loaded elsewhere)
// and NUL, which PostgreSQL text cannot store and which can hide the rest of
// a string from C-based tooling. It also enforces the length bound, if any.
func (v *policyChecker) text(field, s string, maxLen int) bool {
	switch {
	case !utf8.ValidString(s):
		v.fail(field, "must be valid UTF-8")
		return false
	case strings.IndexByte(s, 0) >= 0:
		v.fail(field, "must not contain NUL bytes")
		return false
	case maxLen > 0 && utf8.RuneCountInString(s) > maxLen:
		v.fail(field, "must be at most %d characters", maxLen)
		return false
	}
	return true
}

func (v *policyChecker) name(name string) string {
	switch {
	case !v.text("name", name, 0):
	case name == "":
		v.fail("name", "is required")
	case !namePattern.MatchString(name):
		v.fail("name", "must be 1-%d characters of letters, digits, '_' or '-'", maxNameLen)
	case IsReservedName(name):
		v.fail("name", "%q is a reserved name of a built-in policy", name)
	}
	return name
}

func (v *policyChecker) description(d string) string {
	v.text("description", d, maxDescriptionLen)
	return d
}

// agentID accepts "" as "no agent": an explicit empty agent_id means the
// tenant-wide policy, as leaving it out does (the Novyx SDKs send null or ""
// interchangeably), rather than an error or an agent with no name.
func (v *policyChecker) agentID(id string) string {
	if v.text("agent_id", id, 0) && id != "" && !pdp.ValidAgentID(id) {
		v.fail("agent_id", "%s", pdp.AgentIDRule)
	}
	return id
}

// stepTypes defaults nil to ["ACTION"] but rejects an explicit empty list:
// a policy that applies to no step type would be silently inert, and the
// author who wants that should set enabled to false instead.
func (v *policyChecker) stepTypes(in []string) []string {
	switch {
	case in == nil:
		return []string{pdp.DefaultStepType}
	case len(in) == 0:
		v.fail("step_types", "must not be empty (leave it out for the default [\"ACTION\"])")
		return in
	case len(in) > maxStepTypes:
		v.fail("step_types", "must have at most %d entries", maxStepTypes)
		return in
	}
	out := make([]string, 0, len(in))
	for i, s := range in {
		field := fmt.Sprintf("step_types[%d]", i)
		if !v.text(field, s, 0) {
			continue
		}
		// ASCII case only: strings.ToUpper would turn "obſervation" into
		// OBSERVATION.
		up := upperASCII(s)
		if !slices.Contains(pdp.StepTypes, up) {
			v.fail(field, "must be one of %s", strings.ToLower(strings.Join(pdp.StepTypes, ", ")))
			continue
		}
		if !slices.Contains(out, up) {
			out = append(out, up)
		}
	}
	return out
}

func (v *policyChecker) domains(in []string) []string {
	if len(in) > maxDomains {
		v.fail("whitelisted_domains", "must have at most %d entries", maxDomains)
		return in
	}
	out := make([]string, 0, len(in))
	for i, d := range in {
		field := fmt.Sprintf("whitelisted_domains[%d]", i)
		if !v.text(field, d, 0) {
			continue
		}
		if !isHostname(d) {
			v.fail(field, "must be a hostname such as example.com (no scheme, port, path or wildcard)")
			continue
		}
		if low := lowerASCII(d); !slices.Contains(out, low) {
			out = append(out, low)
		}
	}
	return out
}

// isHostname reports whether s is an RFC 1123 host name with at least two
// labels: labels of 1-63 letters, digits and '-', not starting or ending
// with '-', 253 characters in all. Internationalized names must be given in
// their ASCII (xn--) form, which is how they appear in URLs.
func isHostname(s string) bool {
	if len(s) > maxHostnameLen || !strings.Contains(s, ".") {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if len(label) == 0 || len(label) > maxLabelLen || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func (v *policyChecker) rules(in []pdp.Rule) []pdp.Rule {
	switch {
	case in == nil:
		v.fail("rules", "is required")
		return nil
	case len(in) == 0:
		v.fail("rules", "must contain at least one rule")
		return in
	case len(in) > maxRules:
		// The rules are not checked one by one: the count alone rejects the
		// document, and this bounds the work and the error list.
		v.fail("rules", "must have at most %d rules", maxRules)
		return in
	}
	out := make([]pdp.Rule, len(in))
	for i, r := range in {
		out[i] = v.rule(fmt.Sprintf("rules[%d]", i), r)
	}
	if v.cost > MaxPolicyCost {
		v.fail("rules", "%s", costReason(v.cost, MaxPolicyCost, "a policy"))
	}
	return out
}

func (v *policyChecker) rule(at string, r pdp.Rule) pdp.Rule {
	field := func(name string) string { return at + "." + name }

	cost := 0
	switch f := field("match"); {
	case !v.text(f, r.Match, maxPatternLen):
	case r.Match == "":
		v.fail(f, "is required")
	default:
		if p, ve := checkPattern(f, r.Match); ve != nil {
			v.errs = append(v.errs, ve)
		} else if p.Nullable {
			v.fail(f, "matches the empty string; a rule must match at least one character")
		} else {
			cost += p.Cost
		}
	}

	severityOK := false
	switch f, s := field("severity"), pdp.Severity(lowerASCII(string(r.Severity))); {
	case !v.text(f, string(r.Severity), 0):
	case r.Severity == "":
		v.fail(f, "is required")
	case !slices.Contains(severities, s):
		v.fail(f, "must be one of critical, high, medium, low")
	default:
		r.Severity, severityOK = s, true
	}

	switch f, o := field("on_violation"), pdp.Outcome(lowerASCII(string(r.OnViolation))); {
	case !v.text(f, string(r.OnViolation), 0):
	case r.OnViolation == "":
		if severityOK {
			r.OnViolation = r.Severity.DefaultOutcome()
		}
	case !slices.Contains(outcomes, o):
		v.fail(f, "must be one of block, require_approval, warn")
	default:
		r.OnViolation = o
	}

	v.text(field("reason"), r.Reason, maxReasonLen)

	// context_requires only narrows a rule that match already fired, so a
	// pattern that matches the empty string is harmless there (it is always
	// satisfied) and is allowed.
	if f := field("context_requires"); v.text(f, r.ContextRequires, maxPatternLen) && r.ContextRequires != "" {
		if p, ve := checkPattern(f, r.ContextRequires); ve != nil {
			v.errs = append(v.errs, ve)
		} else if cost += p.Cost; cost > MaxRuleCost {
			v.fail(at, "%s", costReason(cost, MaxRuleCost, "a rule (match and context_requires together)"))
		}
	}
	v.cost += cost

	if c := r.Confidence; math.IsNaN(c) || c < 0 || c > 1 {
		v.fail(field("confidence"), "must be a number from 0.0 to 1.0")
	}
	return r
}

// IsReservedName reports whether name is one of the built-in policies'
// reserved names: FinancialSafety or DataExfiltration in any (ASCII) case,
// with or without a "Policy" suffix, such as "financialsafetypolicy" or
// "DATAEXFILTRATION" (docs/api.md §A5).
func IsReservedName(name string) bool {
	n := strings.TrimSuffix(lowerASCII(name), "policy")
	for _, b := range pdp.Builtins {
		if n == lowerASCII(b.Name) {
			return true
		}
	}
	return false
}

func lowerASCII(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' {
			return r + ('a' - 'A')
		}
		return r
	}, s)
}

func upperASCII(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' {
			return r - ('a' - 'A')
		}
		return r
	}, s)
}
