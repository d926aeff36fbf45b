// Package adapter turns Novyx policy documents (JSON or YAML) into validated
// pdp.Policy values and translates them into Rego modules and data.
//
// Reading a policy is two steps. Decode checks the document's shape — only
// known fields, each of the right JSON type, one document and nothing after
// it — and reports every problem with the path of the field, so a typo such
// as "sevrity" can never silently weaken a policy. Document.Policy (or
// Validate, for a pdp.Policy built elsewhere) then checks every value against
// CONTRACT A3 and returns the normalized policy: step types upper-case,
// severities and outcomes lower-case, defaults filled in, duplicates
// removed. Both steps return pdp.ValidationErrors holding every problem at
// once, each a *pdp.ValidationError whose message reads "field: reason".
//
// Patterns are RE2, not Python re. CheckPattern rejects the Python-only
// constructs by name, so a policy written for Novyx's hosted service fails
// loudly instead of meaning something else, and CompilePattern is the one
// place the case-insensitive prefix is added.
package adapter
