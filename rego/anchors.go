package rego

import (
	"regexp"
	"strings"
)

// The built-ins' anchors: the same containment pre-checks their rules start
// with in builtins/*.rego, mirrored in Go so the engine can tell, before
// evaluating, whether a built-in could fire at all. Each condition here is
// implied by the Rego rule it mirrors firing (a property test checks it
// over generated actions); a built-in whose condition fails is skipped
// through the engine's hints, never otherwise.

var moneyWords = []string{"transfer", "wire", "payment", "payout", "refund", "withdraw", "charge", "invoice", "purchase"}

// exportAction is data_exfiltration's rule 5 action test, the same
// pattern OPA's regex.match runs with Go's regexp.
var exportAction = regexp.MustCompile(`(?i)(export|upload|dump|backup|sync)`)

var githubPrefixes = []string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_"}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// FinancialSafetyMayFire reports whether FinancialSafetyPolicy can fire on
// an action whose folded text is folded: its only rule needs a money word
// (_money).
func FinancialSafetyMayFire(folded string) bool {
	return containsAny(folded, moneyWords...)
}

// DataExfiltrationMayFire reports whether any DataExfiltrationPolicy rule
// can fire on an action named action with action text text, folded.
func DataExfiltrationMayFire(action, text, folded string) bool {
	switch {
	case strings.Contains(text, "PRIVATE KEY-----"), // rule 0
		strings.Contains(text, "AKIA"),                   // rule 1
		containsAny(text, githubPrefixes...),             // rule 2: gh[pousr]_
		strings.Contains(text, "xox"),                    // rule 3
		containsAny(folded, "password", "key", "secret"): // rule 4: _credential_pre
		return true
	}
	// rule 5: an export-like action and _sensitive_pre
	if containsAny(folded, "ssn", "social", "card", "passport", "customer", "credentials", "passwords") &&
		exportAction.MatchString(action) {
		return true
	}
	// rule 6: _sending_pre (rule 4's nouns already returned above, but keep
	// the mirror complete)
	return containsAny(folded, "secret", "password", "credential") &&
		containsAny(folded, "send", "sent", "export", "upload")
}
