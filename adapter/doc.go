// Package adapter turns Novyx policy documents (JSON or YAML) into validated
// pdp.Policy values and translates them into the tenant's data document,
// each policy's rules included (policy as data, rules.go, which the Rego
// library evaluates), and into readable Rego modules (PolicyModule, the
// rego view).
//
// Reading a policy is two steps. Decode checks the document's shape — only
// known fields, each of the right JSON type, one document and nothing after
// it — and reports every problem with the path of the field, so a typo such
// as "sevrity" can never silently weaken a policy. Document.Policy (or
// Validate, for a pdp.Policy built elsewhere) then checks every value against
// docs/api.md §A3 and returns the normalized policy: step types upper-case,
// severities and outcomes lower-case, defaults filled in, duplicates
// removed. Both steps return pdp.ValidationErrors holding every problem at
// once, each a *pdp.ValidationError whose message reads "field: reason".
//
// Patterns are Python re, evaluated on RE2. Translate rewrites a pattern
// into the RE2 pattern that means what Python's re.search(pattern, text,
// re.IGNORECASE) means — Unicode classes and Python's case folding spelled
// out as explicit sets (pyre.go) — and refuses by name what RE2 cannot
// mean the same way; the translation is what the library matches with.
// AnalyzePattern parses and compiles each pattern once per write and
// measures its per-byte cost, which Validate bounds per rule and policy
// and CheckTenantCost per tenant (cost.go).
package adapter
