package adapter

import (
	"bytes"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf16"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/format"
	"github.com/open-policy-agent/opa/v1/topdown"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// Root is the data and package root every Gatehouse document lives under.
const Root = "gatehouse"

// DecisionQuery is the one query a decision needs.
const DecisionQuery = "data.gatehouse.decision.result"

// Refs into the Rego library that generated rules use.
var (
	textRef   = ast.MustParseRef("data.gatehouse.text.text")
	foldedRef = ast.MustParseRef("data.gatehouse.text.folded")
)

// Module is the Rego module generated for one policy.
type Module struct {
	// Path is the module's file path inside a bundle, unique per policy:
	// gatehouse/policies/<tenant>/tenant/<name>.rego or
	// gatehouse/policies/<tenant>/agents/<agent>/<name>.rego, with every
	// user-chosen segment path-escaped.
	Path string
	// Package is the module's package path, data.gatehouse.policies[...].
	Package ast.Ref
	// Text is the formatted source, with # METADATA labels on each rule.
	Text string
	// Parsed is Text parsed with annotations; the compiler copies it, so it
	// may be shared by many compilations.
	Parsed *ast.Module
}

// PolicyPackage returns the package path of a policy's module:
// data.gatehouse.policies[tenant].tenant[name] for a tenant-wide policy,
// data.gatehouse.policies[tenant].agents[agent][name] for an agent-scoped one.
func PolicyPackage(tenantID, agentID, name string) ast.Ref {
	ref := ast.Ref{ast.DefaultRootDocument, ast.StringTerm(Root), ast.StringTerm("policies"), ast.StringTerm(tenantID)}
	if agentID == "" {
		return append(ref, ast.StringTerm("tenant"), ast.StringTerm(name))
	}
	return append(ref, ast.StringTerm("agents"), ast.StringTerm(agentID), ast.StringTerm(name))
}

// PolicyPath returns the bundle file path of a policy's module.
func PolicyPath(tenantID, agentID, name string) string {
	parts := []string{Root, "policies", pathSegment(tenantID)}
	if agentID == "" {
		parts = append(parts, "tenant")
	} else {
		parts = append(parts, "agents", pathSegment(agentID))
	}
	return strings.Join(append(parts, pathSegment(name)+".rego"), "/")
}

// pathSegment escapes a user-chosen id for use as one path segment; "." and
// ".." are escaped too so no id can climb out of its directory.
func pathSegment(s string) string {
	e := url.PathEscape(s)
	if strings.Trim(e, ".") == "" {
		e = strings.ReplaceAll(e, ".", "%2E")
	}
	return e
}

// PolicyModule renders one validated policy as a Rego module: the
// readable form the rego view of the API shows (decisions evaluate the
// policy's rules as data, rules.go; TestDataDecidesAsModules in
// pdp/engine checks that its rules decide the same). User
// text (names, patterns, reasons) enters the module only as string terms of
// OPA's AST, and the source is produced by OPA's formatter, so no policy can
// change the module's structure.
func PolicyModule(tenantID string, p *pdp.Policy) (*Module, error) {
	pkg := PolicyPackage(tenantID, p.AgentID, p.Name)
	var src bytes.Buffer
	pkgText, err := format.Ast(&ast.Package{Path: pkg})
	if err != nil {
		return nil, fmt.Errorf("format package: %w", err)
	}
	src.Write(bytes.TrimSpace(pkgText))
	src.WriteString("\n")
	for i := range p.Rules {
		rules := ruleRules(p, i)
		for j, r := range rules {
			src.WriteString("\n")
			if j == 0 {
				labels, err := ruleLabels(p, i)
				if err != nil {
					return nil, err
				}
				src.WriteString(labels)
			}
			text, err := format.Ast(r)
			if err != nil {
				return nil, fmt.Errorf("format rules[%d]: %w", i, err)
			}
			src.Write(bytes.TrimSpace(text))
			src.WriteString("\n")
		}
	}
	formatted, err := format.Source(PolicyPath(tenantID, p.AgentID, p.Name), src.Bytes())
	if err != nil {
		return nil, fmt.Errorf("format module: %w", err)
	}
	path := PolicyPath(tenantID, p.AgentID, p.Name)
	parsed, err := ast.ParseModuleWithOpts(path, string(formatted), ast.ParserOptions{ProcessAnnotation: true, RegoVersion: ast.RegoV1})
	if err != nil {
		return nil, fmt.Errorf("parse generated module: %w", err)
	}
	return &Module{Path: path, Package: pkg, Text: string(formatted), Parsed: parsed}, nil
}

// ruleLabels renders the # METADATA block of rule i: labels naming the
// policy, scope, rule index, severity and outcome, as decision logs'
// rule_labels name a rule that fired. The YAML is marshalled from
// validated values, never pasted.
func ruleLabels(p *pdp.Policy, i int) (string, error) {
	r := p.Rules[i]
	doc := map[string]any{"labels": map[string]any{
		"policy":       p.Name,
		"scope":        string(p.Scope()),
		"rule":         i,
		"severity":     string(r.Severity),
		"on_violation": string(r.OnViolation),
	}}
	y, err := yaml.Marshal(doc)
	if err != nil {
		return "", fmt.Errorf("rules[%d] labels: %w", i, err)
	}
	var b strings.Builder
	b.WriteString("# METADATA\n")
	for line := range strings.Lines(string(y)) {
		b.WriteString("# " + line)
	}
	return b.String(), nil
}

// ruleRules returns the Rego rules of policy rule i: the hits rule, then
// the rules it calls (a pre-check of two or more literals, the finder).
func ruleRules(p *pdp.Policy, i int) []*ast.Rule {
	r := p.Rules[i]
	var body ast.Body
	var extra []*ast.Rule
	prefix := "_r" + strconv.Itoa(i) + "_"

	if lits, ok := Literals(r.Match); ok {
		body.Append(guard(prefix+"match", lits, &extra))
	}
	m := ast.VarTerm("m")
	if alts, ok := literalAlternatives(r.Match); ok {
		found := prefix + "found"
		extra = append(extra, foundRule(found, alts, emittedPattern(r.Match)))
		body.Append(ast.Assign.Expr(m, ast.VarTerm(found)))
	} else {
		ms := ast.VarTerm("ms")
		body.Append(ast.Assign.Expr(ms, ast.RegexFind.Call(userString(emittedPattern(r.Match)), ast.NewTerm(textRef), ast.IntNumberTerm(1))))
		body.Append(ast.Assign.Expr(m, ast.RefTerm(ms, ast.IntNumberTerm(0))))
	}
	if r.ContextRequires != "" {
		if lits, ok := Literals(r.ContextRequires); ok {
			body.Append(guard(prefix+"context", lits, &extra))
		}
		body.Append(ast.RegexMatch.Expr(userString(emittedPattern(r.ContextRequires)), ast.NewTerm(textRef)))
	}

	var reason *ast.Term
	switch {
	case r.Reason == "":
		reason = ast.Concat.Call(ast.StringTerm(""), ast.ArrayTerm(ast.StringTerm("Policy '"+p.Name+"' violated: "), m))
	case strings.Contains(r.Reason, "{match}"):
		reason = ast.Replace.Call(userString(r.Reason), ast.StringTerm("{match}"), m)
	default:
		reason = userString(r.Reason)
	}
	if _, ok := reason.Value.(ast.Call); ok {
		// Computed once, for the violation and the patch alike.
		rv := ast.VarTerm("reason")
		body.Append(ast.Assign.Expr(rv, reason))
		reason = rv
	}
	v := ast.VarTerm("v")
	body.Append(ast.Assign.Expr(v, ast.ObjectTerm(
		ast.Item(ast.StringTerm("policy"), userString(p.Name)),
		ast.Item(ast.StringTerm("scope"), ast.StringTerm(string(p.Scope()))),
		ast.Item(ast.StringTerm("rule"), ast.IntNumberTerm(i)),
		ast.Item(ast.StringTerm("severity"), ast.StringTerm(string(r.Severity))),
		ast.Item(ast.StringTerm("on_violation"), ast.StringTerm(string(r.OnViolation))),
		ast.Item(ast.StringTerm("confidence"), ast.NewTerm(floatNumber(r.Confidence))),
		ast.Item(ast.StringTerm("match"), m),
		ast.Item(ast.StringTerm("reason"), reason),
	)))
	main := &ast.Rule{Head: ast.NewHead(ast.Var("hits"), hitTerm(p, i, v, reason)), Body: body}
	return append([]*ast.Rule{main}, extra...)
}

// hitTerm is the element the hits rule of policy rule i yields when it
// fires with violation v (reason: its reason): the hit already ranked and
// composed, so the library neither builds nor ranks it per decision. It is
// data.gatehouse.decision._ranked(v, policy, scope) with every part that
// does not depend on the action a constant computed here (a test checks
// the two agree):
//
//	[0 - outcome rank, 0 - severity rank, scope rank, policy, rule, v, patch]
//
// Sorted, hits come strongest first (docs/api.md §A7's order). patch is
// what v alone makes of the result when nothing else fires: status,
// risk_score, triggered_policy, severity, reason, violations and
// warnings, laid over the view's no-hit result.
func hitTerm(p *pdp.Policy, i int, v, reason *ast.Term) *ast.Term {
	r := p.Rules[i]
	warnings := ast.ArrayTerm()
	if r.OnViolation == pdp.OutcomeWarn {
		warnings = ast.ArrayTerm(v)
	}
	patch := ast.ObjectTerm(
		ast.Item(ast.StringTerm("status"), ast.StringTerm(string(outcomeStatus(r.OnViolation)))),
		ast.Item(ast.StringTerm("risk_score"), ast.NewTerm(RiskScore(r.Severity, r.Confidence))),
		ast.Item(ast.StringTerm("triggered_policy"), userString(p.Name)),
		ast.Item(ast.StringTerm("severity"), ast.StringTerm(string(r.Severity))),
		ast.Item(ast.StringTerm("reason"), reason),
		ast.Item(ast.StringTerm("violations"), ast.ArrayTerm(v)),
		ast.Item(ast.StringTerm("warnings"), warnings),
	)
	scope := 1
	if p.Scope() == pdp.ScopeAgent {
		scope = 0
	}
	return ast.ArrayTerm(
		ast.IntNumberTerm(-r.OnViolation.Rank()),
		ast.IntNumberTerm(-r.Severity.Rank()),
		ast.IntNumberTerm(scope),
		userString(p.Name),
		ast.IntNumberTerm(i),
		v,
		patch,
	)
}

// outcomeStatus is the status a hit with outcome o gives on its own
// (decision.rego's _status_of_outcome).
func outcomeStatus(o pdp.Outcome) pdp.Status {
	switch o {
	case pdp.OutcomeBlock:
		return pdp.StatusBlocked
	case pdp.OutcomeRequireApproval:
		return pdp.StatusPendingReview
	}
	return pdp.StatusAllowed
}

// severityWeights are decision.rego's _severity_weight, spelled as it
// spells them (the risk score is computed from these number terms).
var severityWeights = map[pdp.Severity]ast.Number{
	pdp.SeverityCritical: "1",
	pdp.SeverityHigh:     "0.8",
	pdp.SeverityMedium:   "0.5",
	pdp.SeverityLow:      "0.25",
}

// RiskScore is the risk score of one hit of severity sev and confidence
// conf, round(weight * conf * 100) / 100, computed by OPA's own mul, round
// and div built-ins on the terms decision.rego uses, so the constant is
// the number the library would compute (docs/api.md §A7). A decision's
// risk_score is the largest of its hits' (rounding is monotonic, so the
// largest rounded product is the rounded largest product).
func RiskScore(sev pdp.Severity, conf float64) ast.Number {
	w, ok := severityWeights[sev]
	if !ok {
		w = "0"
	}
	x := callNumber(ast.Multiply.Name, w, floatNumber(conf))
	x = callNumber(ast.Multiply.Name, x, "100")
	x = callNumber(ast.Round.Name, x)
	return callNumber(ast.Divide.Name, x, "100")
}

// callNumber calls OPA's built-in name on numbers; arithmetic on finite
// numbers cannot fail.
func callNumber(name string, args ...ast.Number) ast.Number {
	ops := make([]*ast.Term, len(args))
	for i, a := range args {
		ops[i] = ast.NewTerm(a)
	}
	var out ast.Number
	err := topdown.GetBuiltin(name)(topdown.BuiltinContext{}, ops, func(t *ast.Term) error {
		out = t.Value.(ast.Number)
		return nil
	})
	if err != nil {
		panic(fmt.Sprintf("%s%v: %v", name, args, err))
	}
	return out
}

// foundTemplate finds the first match of a pure alternation of ASCII
// literals without a regex when the action text is ASCII: for ASCII text
// and ASCII literals, folded containment is exactly Python's IGNORECASE
// matching (its extra equivalences, i ~ ı, s ~ ſ, k ~ K, all involve a
// non-ASCII character), indexof
// gives byte = rune positions, and min over [position, alternative index]
// is RE2's leftmost-first choice. Other texts take the regex.
var foundTemplate = ast.MustParseRuleWithOpts(`__found__ := substring(data.gatehouse.text.text, x[0], x[2]) if {
	data.gatehouse.text.ascii
	x := min([[i, k, n] |
		some k, lit in __literals__
		i := indexof(data.gatehouse.text.folded, lit)
		i >= 0
		n := count(lit)
	])
} else := ms[0] if {
	ms := regex.find_n(__pattern__, data.gatehouse.text.text, 1)
}`, ast.ParserOptions{RegoVersion: ast.RegoV1})

// untranslatable is emitted in place of a pattern Translate refuses, which
// only a policy stored by an older version can hold: it does not compile,
// so evaluating the rule is an error (with strict builtin errors, a failed
// decision) instead of a rule that silently means something else.
const untranslatable = `(?:untranslatable pattern; re-save the policy`

// emittedPattern is the RE2 pattern the generated Rego matches with: the
// Python pattern's translation (Translate), or untranslatable.
func emittedPattern(pattern string) string {
	re2, err := Translate(pattern)
	if err != nil {
		return untranslatable
	}
	return re2
}

// foundRule instantiates foundTemplate: the literals and the translated
// pattern enter as string terms replacing the template's placeholders.
func foundRule(name string, alts []string, pattern string) *ast.Rule {
	lits := make([]*ast.Term, len(alts))
	for i, a := range alts {
		lits[i] = userString(Fold(a))
	}
	rule := foundTemplate.Copy()
	for r := rule; r != nil; r = r.Else {
		r.Head.Name = ast.Var(name)
		r.Head.Reference = ast.Ref{ast.VarTerm(name)}
	}
	fill(rule, map[ast.Var]*ast.Term{
		"__literals__": ast.ArrayTerm(lits...),
		"__pattern__":  userString(pattern),
	})
	return rule
}

// fill replaces a template's placeholder variables with terms. Whole
// terms are replaced (not only values): the formatter prints a string
// from its term's location text, which userString sets.
func fill(rule *ast.Rule, with map[ast.Var]*ast.Term) {
	ast.WalkTerms(rule, func(t *ast.Term) bool {
		if v, ok := t.Value.(ast.Var); ok {
			if r, ok := with[v]; ok {
				*t = *r
			}
		}
		return false
	})
}

// literalAlternatives reports whether pattern is a plain alternation of
// ASCII literals, optionally inside one group, such as (email|phone) or
// ssn, and returns the alternatives in order.
func literalAlternatives(pattern string) ([]string, bool) {
	inner := pattern
	switch {
	case strings.HasPrefix(inner, "(?:") && strings.HasSuffix(inner, ")"):
		inner = inner[3 : len(inner)-1]
	case strings.HasPrefix(inner, "(") && strings.HasSuffix(inner, ")"):
		inner = inner[1 : len(inner)-1]
	}
	alts := strings.Split(inner, "|")
	for _, a := range alts {
		if a == "" {
			return nil, false
		}
		for i := 0; i < len(a); i++ {
			c := a[i]
			if c >= 0x80 || c < 0x20 || strings.IndexByte(`\.+*?()|[]{}^$`, c) >= 0 {
				return nil, false
			}
		}
	}
	return alts, true
}

// guard returns the pre-check expression for lits: a contains() call for a
// single literal, else a reference to a pre-check rule named name, whose
// rules it appends to extra.
func guard(name string, lits []string, extra *[]*ast.Rule) *ast.Expr {
	if len(lits) == 1 {
		return ast.Contains.Expr(ast.NewTerm(foldedRef), userString(lits[0]))
	}
	*extra = append(*extra, precheck(name, lits)...)
	return ast.NewExpr(ast.VarTerm(name))
}

// precheck returns one boolean rule, true when the folded action text
// contains any of lits: one body that reads the text once and tries each
// literal (a rule with a body per literal costs a rule evaluation, and a
// read of the text, per literal). A complete rule exits on its first
// success.
func precheck(name string, lits []string) []*ast.Rule {
	terms := make([]*ast.Term, len(lits))
	for j, lit := range lits {
		terms[j] = userString(lit)
	}
	rule := precheckTemplate.Copy()
	rule.Head.Name = ast.Var(name)
	rule.Head.Reference = ast.Ref{ast.VarTerm(name)}
	fill(rule, map[ast.Var]*ast.Term{"__literals__": ast.ArrayTerm(terms...)})
	return []*ast.Rule{rule}
}

var precheckTemplate = ast.MustParseRuleWithOpts(`__precheck__ if {
	f := data.gatehouse.text.folded
	some lit in __literals__
	contains(f, lit)
}`, ast.ParserOptions{RegoVersion: ast.RegoV1})

// userString returns a string term for user text that OPA's formatter
// writes as a valid Rego string literal. Without a location the formatter
// writes strconv.Quote's Go syntax, whose \x10, \a, \v and \U0001xxxx
// escapes Rego does not accept, so a valid policy with a control or
// non-printable character failed to translate (found by FuzzPolicyModule).
// The formatter copies a string term's location text verbatim, so the term
// carries its own Rego quoting.
func userString(s string) *ast.Term {
	t := ast.StringTerm(s)
	t.Location = ast.NewLocation([]byte(regoQuote(s)), "", 1, 1)
	return t
}

// regoQuote quotes s as a Rego (JSON) string literal: printable runes as
// they are, the rest as \u escapes (surrogate pairs above U+FFFF). U+FEFF,
// which Rego's scanner rejects inside a file, is not printable, so it is
// escaped too.
func regoQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case strconv.IsPrint(r):
			b.WriteRune(r)
		case r > 0xFFFF:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func floatNumber(f float64) ast.Number {
	return ast.Number(strconv.FormatFloat(f, 'f', -1, 64))
}

// TenantData returns the data document of one tenant,
// data.gatehouse.tenants[tenant]: its mode and, per scope, the step types,
// whitelisted domains, guard, mode and rules (PolicyRules: policy as
// data, what the library evaluates) of each enabled policy; and "views", what the
// library would otherwise derive from those at every decision (the
// effective policies per scope and step type, policies_evaluated, the
// result when nothing fires), computed once here. When agent is non-empty
// only that agent's scope is included (the engine compiles per agent);
// allAgents includes every agent (bundles).
func TenantData(tp *pdp.TenantPolicies, agent string, allAgents bool) map[string]any {
	tenant := map[string]any{}
	agents := map[string]any{}
	metas := map[*pdp.Policy]map[string]any{}
	for i := range tp.Policies {
		p := &tp.Policies[i]
		if !p.Enabled {
			continue
		}
		steps := make(map[string]any, len(p.StepTypes))
		for _, st := range p.StepTypes {
			steps[st] = true
		}
		meta := map[string]any{
			"step_types":          steps,
			"whitelisted_domains": toAny(p.WhitelistedDomains),
			"guard":               PolicyGuard(p),
			"mode":                p.ModeName(),
		}
		metas[p] = meta
		// The policy's own entry carries its rules (rules.go); the
		// views, which list a policy once per step type, do not.
		entry := make(map[string]any, len(meta)+1)
		for k, v := range meta {
			entry[k] = v
		}
		entry["rules"] = PolicyRules(p)
		entry["by_literal"] = RuleIndex(p)
		meta = entry
		switch {
		case p.AgentID == "":
			tenant[p.Name] = meta
		case allAgents || p.AgentID == agent:
			scope, _ := agents[p.AgentID].(map[string]any)
			if scope == nil {
				scope = map[string]any{}
				agents[p.AgentID] = scope
			}
			scope[p.Name] = meta
		}
	}
	mode := tp.Mode
	if mode == "" {
		mode = pdp.ModeEnforcement
	}
	views := tenantViews(tp, agent, allAgents, func(p *pdp.Policy) map[string]any { return metas[p] }, string(mode))
	return map[string]any{"mode": string(mode), "tenant": tenant, "agents": agents, "views": views}
}

// alwaysGuard is the guard of a policy that cannot be skipped: every
// action text begins with it.
const alwaysGuard = `{"action":`

// PolicyGuard returns the literals of every rule's pre-check as a
// strings.replace_n pattern object ({literal: ""}): the folded action text
// contains one of them whenever any rule of p could fire, so the library
// skips the policy with one call when replacing them changes nothing. When
// a rule has no pre-check the guard is {alwaysGuard: ""}, which never
// skips.
func PolicyGuard(p *pdp.Policy) map[string]any {
	guard := map[string]any{}
	for _, r := range p.Rules {
		lits, ok := Literals(r.Match)
		if !ok {
			return map[string]any{alwaysGuard: ""}
		}
		for _, l := range lits {
			guard[l] = ""
		}
	}
	if len(guard) == 0 {
		return map[string]any{alwaysGuard: ""}
	}
	return guard
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
