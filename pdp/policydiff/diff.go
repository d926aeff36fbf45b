// Package policydiff compares two versions of a policy: metadata field by
// field, list fields as added and removed items, and rules matched by
// their pattern so an edited rule shows as changed field by field rather
// than as one removed and one added.
package policydiff

import (
	"reflect"
	"slices"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// Diff is what changed from one policy version to another.
type Diff struct {
	// Identical is true when nothing that decides or describes the policy
	// changed (versions and timestamps aside).
	Identical bool `json:"identical"`
	// Metadata lists changed scalar fields: description, enabled, mode.
	Metadata []FieldChange `json:"metadata"`
	// Lists are the list fields that changed: step_types,
	// whitelisted_domains.
	Lists []ListChange `json:"lists"`
	// Rules are the rule changes.
	Rules Rules `json:"rules"`
}

// FieldChange is one field's old and new value.
type FieldChange struct {
	Field string `json:"field"`
	From  any    `json:"from"`
	To    any    `json:"to"`
}

// ListChange is one list field's added and removed items.
type ListChange struct {
	Field   string   `json:"field"`
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
}

// Rules lists rules added, removed, changed and moved. Indexes are the
// 0-based rule indexes decisions report (violations[].rule).
type Rules struct {
	Added   []IndexedRule `json:"added"`
	Removed []IndexedRule `json:"removed"`
	Changed []RuleChange  `json:"changed"`
	// Moved are rules that are the same in both versions at another index.
	Moved []RuleMove `json:"moved"`
}

// IndexedRule is a rule and its index in its version.
type IndexedRule struct {
	Index int      `json:"index"`
	Rule  pdp.Rule `json:"rule"`
}

// RuleChange is a rule kept (the same match pattern) with other fields
// changed.
type RuleChange struct {
	FromIndex int           `json:"from_index"`
	ToIndex   int           `json:"to_index"`
	Match     string        `json:"match"`
	Fields    []FieldChange `json:"fields"`
}

// RuleMove is an unchanged rule at another index.
type RuleMove struct {
	FromIndex int    `json:"from_index"`
	ToIndex   int    `json:"to_index"`
	Match     string `json:"match"`
}

// Compare returns the diff from a to b.
func Compare(a, b pdp.Policy) Diff {
	d := Diff{
		Metadata: []FieldChange{}, Lists: []ListChange{},
		Rules: Rules{Added: []IndexedRule{}, Removed: []IndexedRule{}, Changed: []RuleChange{}, Moved: []RuleMove{}},
	}
	if a.Description != b.Description {
		d.Metadata = append(d.Metadata, FieldChange{"description", a.Description, b.Description})
	}
	if a.Enabled != b.Enabled {
		d.Metadata = append(d.Metadata, FieldChange{"enabled", a.Enabled, b.Enabled})
	}
	if a.ModeName() != b.ModeName() {
		d.Metadata = append(d.Metadata, FieldChange{"mode", a.ModeName(), b.ModeName()})
	}
	for _, l := range []struct {
		field string
		a, b  []string
	}{{"step_types", a.StepTypes, b.StepTypes}, {"whitelisted_domains", a.WhitelistedDomains, b.WhitelistedDomains}} {
		added, removed := minus(l.b, l.a), minus(l.a, l.b)
		if len(added)+len(removed) > 0 {
			d.Lists = append(d.Lists, ListChange{Field: l.field, Added: added, Removed: removed})
		}
	}
	d.Rules = compareRules(a.Rules, b.Rules)
	d.Identical = len(d.Metadata) == 0 && len(d.Lists) == 0 && len(d.Rules.Added) == 0 &&
		len(d.Rules.Removed) == 0 && len(d.Rules.Changed) == 0 && len(d.Rules.Moved) == 0
	return d
}

// minus returns the items of a not in b, in a's order, each once.
func minus(a, b []string) []string {
	out := []string{}
	for _, s := range a {
		if !slices.Contains(b, s) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// compareRules pairs identical rules first (unchanged, perhaps moved),
// then the rest by equal match pattern in order (changed); what is left
// was removed from a or added in b.
func compareRules(a, b []pdp.Rule) Rules {
	r := Rules{Added: []IndexedRule{}, Removed: []IndexedRule{}, Changed: []RuleChange{}, Moved: []RuleMove{}}
	usedA, usedB := make([]bool, len(a)), make([]bool, len(b))
	pair := func(same func(x, y pdp.Rule) bool, f func(i, j int)) {
		for i := range a {
			if usedA[i] {
				continue
			}
			// Prefer the same index, then the first free match.
			if i < len(b) && !usedB[i] && same(a[i], b[i]) {
				usedA[i], usedB[i] = true, true
				f(i, i)
				continue
			}
			for j := range b {
				if !usedB[j] && same(a[i], b[j]) {
					usedA[i], usedB[j] = true, true
					f(i, j)
					break
				}
			}
		}
	}
	pair(func(x, y pdp.Rule) bool { return reflect.DeepEqual(x, y) }, func(i, j int) {
		if i != j {
			r.Moved = append(r.Moved, RuleMove{FromIndex: i, ToIndex: j, Match: a[i].Match})
		}
	})
	pair(func(x, y pdp.Rule) bool { return x.Match == y.Match }, func(i, j int) {
		r.Changed = append(r.Changed, RuleChange{FromIndex: i, ToIndex: j, Match: a[i].Match, Fields: ruleFields(a[i], b[j])})
	})
	for i := range a {
		if !usedA[i] {
			r.Removed = append(r.Removed, IndexedRule{i, a[i]})
		}
	}
	for j := range b {
		if !usedB[j] {
			r.Added = append(r.Added, IndexedRule{j, b[j]})
		}
	}
	slices.SortFunc(r.Changed, func(x, y RuleChange) int { return x.ToIndex - y.ToIndex })
	slices.SortFunc(r.Moved, func(x, y RuleMove) int { return x.ToIndex - y.ToIndex })
	return r
}

// ruleFields lists the fields of two rules with the same match that differ.
func ruleFields(x, y pdp.Rule) []FieldChange {
	fs := []FieldChange{}
	add := func(name string, a, b any) {
		if a != b {
			fs = append(fs, FieldChange{name, a, b})
		}
	}
	add("severity", string(x.Severity), string(y.Severity))
	add("on_violation", string(x.OnViolation), string(y.OnViolation))
	add("reason", x.Reason, y.Reason)
	add("context_requires", x.ContextRequires, y.ContextRequires)
	add("confidence", x.Confidence, y.Confidence)
	return fs
}
