package adapter

import "strings"

// Fold returns s the way the Rego library's data.gatehouse.text.folded
// folds the action text: upper-cased, then lower-cased. lower(upper(r)) is
// constant over every simple case-folding orbit, which is what makes a
// containment test on folded text a sound pre-check for (?i) literals.
func Fold(s string) string {
	return strings.ToLower(strings.ToUpper(s))
}
