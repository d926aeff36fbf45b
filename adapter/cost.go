package adapter

import (
	"fmt"
	"regexp/syntax"
	"slices"
	"strings"
	"unicode"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// Regex cost bounds.
//
// OPA's regex builtins run Go's regexp, which is linear in the text but
// not cheap: its NFA (and the backtracker it uses for small programs)
// does, for every byte of text, work proportional to the set of program
// instructions alive at that byte. A pattern of 120 branches like
// `.{1000}~` keeps ~120k instructions alive and costs milliseconds per
// byte; the builtins cannot be cancelled, so one such rule stalls a core
// for minutes. So every pattern is measured when it is written and the
// action text is bounded:
//
//   - A pattern's cost is the most instruction visits Go's matcher can make
//     for one byte of text (patternCost): threads stepped plus instructions
//     added. It is computed exactly by exploring the sets of live
//     instructions the way the NFA steps them, over the alphabet's classes;
//     when that exploration is too large it falls back to twice the
//     program's instruction count, a sound upper bound.
//   - MaxRuleCost bounds a rule (match plus context_requires),
//     MaxPolicyCost a policy, and MaxTenantCost what one decision of a
//     tenant can run: its tenant-wide policies plus the costliest agent's
//     agent-scoped ones (TenantCost); all in cost units per byte of text.
//   - MaxActionTextBytes bounds the action text a rule runs on.
//
// The bounds come from measurement (`go test ./adapter -run
// TestCostCalibration -v -calibrate`, on the 2-core development machine
// shared with other builds, load average ~25): over the adversarial texts
// and the accepted shapes of calibrationPatterns (threads all alive,
// Unicode classes, literal alternations), one unit costs at most 4.1 ns
// per byte of text (median of five runs; runs 3.8-4.8). So at 4 KiB of
// action text a rule of MaxRuleCost (56) costs at most ~0.94 ms and a
// tenant's decision at MaxTenantCost (480) at most ~8 ms — within the
// 1 ms per rule and 10 ms per tenant the bounds are for. Typical rules
// cost 4-13 units per pattern (a word, an alternation of three words);
// the bench worlds' costliest tenant costs 474 (TestCorpusAccepted); the
// issue's attacker pattern (~113 branches `.{1000}X`, which RE2 factors to
// `.{1000}[a-z]`) costs 2,003 and is refused.
const (
	// MaxActionTextBytes is the most bytes of action text (docs/api.md §A3's
	// compact JSON of action and params) a decision may match rules
	// against. A larger action is refused (413), never truncated: a cut
	// text could hide a match.
	MaxActionTextBytes = 4 << 10
	// MaxRuleCost bounds the cost of one rule's patterns together.
	MaxRuleCost = 56
	// MaxPolicyCost bounds the sum over a policy's rules.
	MaxPolicyCost = 480
	// MaxTenantCost bounds TenantCost: the rules one decision of the
	// tenant can run.
	MaxTenantCost = 480
)

// Exploration limits of patternCost: past them the cost is the
// instruction-count bound.
const (
	maxCostStates = 1024
	maxCostWork   = 1 << 18 // ~3 ms of exploration at most
	maxCostInsts  = 2048    // larger programs take the instruction bound at once
)

// patternCost returns the most instruction visits Go's regexp makes for
// one byte of text running prog unanchored.
func patternCost(prog *syntax.Prog) int {
	bound := 2 * len(prog.Inst)
	if len(prog.Inst) > maxCostInsts {
		return bound
	}
	e := newCostExplorer(prog)
	if e == nil {
		return bound
	}
	if c, ok := e.explore(); ok {
		return min(c, bound)
	}
	return bound
}

// costExplorer simulates the NFA's thread sets symbolically.
type costExplorer struct {
	prog      *syntax.Prog
	consuming []int       // pcs of rune-consuming instructions
	index     map[int]int // pc -> position in consuming
	alphabet  [][]bool    // per symbol class: which consuming pcs match
}

func isConsuming(op syntax.InstOp) bool {
	switch op {
	case syntax.InstRune, syntax.InstRune1, syntax.InstRuneAny, syntax.InstRuneAnyNotNL:
		return true
	}
	return false
}

// newCostExplorer partitions the runes into classes every consuming
// instruction treats alike; nil when an instruction folds case (the
// translation never emits one) and the partition would be unsound.
func newCostExplorer(prog *syntax.Prog) *costExplorer {
	e := &costExplorer{prog: prog, index: map[int]int{}}
	bounds := []rune{0}
	for pc, in := range prog.Inst {
		if !isConsuming(in.Op) {
			continue
		}
		if (in.Op == syntax.InstRune || in.Op == syntax.InstRune1) && syntax.Flags(in.Arg)&syntax.FoldCase != 0 {
			// Go's parser turns a class such as [Pp] that is exactly a
			// case-folding orbit into a folded literal.
			if len(in.Rune) != 1 {
				return nil
			}
			e.index[pc] = len(e.consuming)
			e.consuming = append(e.consuming, pc)
			for f := in.Rune[0]; ; {
				bounds = append(bounds, f, f+1)
				if f = unicode.SimpleFold(f); f == in.Rune[0] {
					break
				}
			}
			continue
		}
		e.index[pc] = len(e.consuming)
		e.consuming = append(e.consuming, pc)
		switch in.Op {
		case syntax.InstRune:
			for i := 0; i+1 < len(in.Rune); i += 2 {
				bounds = append(bounds, in.Rune[i], in.Rune[i+1]+1)
			}
		case syntax.InstRune1:
			bounds = append(bounds, in.Rune[0], in.Rune[0]+1)
		case syntax.InstRuneAnyNotNL:
			bounds = append(bounds, '\n', '\n'+1)
		}
	}
	slices.Sort(bounds)
	bounds = slices.Compact(bounds)
	if len(bounds)*max(1, len(e.consuming)) > maxCostWork {
		return nil
	}
	seen := map[string]bool{}
	for _, r := range bounds {
		sig := make([]bool, len(e.consuming))
		var key strings.Builder
		for i, pc := range e.consuming {
			sig[i] = matches(&prog.Inst[pc], r)
			if sig[i] {
				key.WriteByte('1')
			} else {
				key.WriteByte('0')
			}
		}
		if !seen[key.String()] {
			seen[key.String()] = true
			e.alphabet = append(e.alphabet, sig)
		}
	}
	return e
}

// closure adds pc and the instructions reachable from it without
// consuming a rune, as the NFA's add does (empty-width assertions are
// taken as passing, which can only add work). It returns the number of
// instructions visited.
func (e *costExplorer) closure(pc int, onq []bool, live *[]int) int {
	visited := 0
	stack := []int{pc}
	for len(stack) > 0 {
		pc := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if onq[pc] {
			continue
		}
		onq[pc] = true
		visited++
		in := &e.prog.Inst[pc]
		switch in.Op {
		case syntax.InstAlt, syntax.InstAltMatch:
			stack = append(stack, int(in.Arg), int(in.Out))
		case syntax.InstCapture, syntax.InstNop, syntax.InstEmptyWidth:
			stack = append(stack, int(in.Out))
		case syntax.InstMatch, syntax.InstFail:
		default:
			*live = append(*live, pc)
		}
	}
	return visited
}

// explore walks the reachable thread sets breadth first and returns the
// largest per-byte cost: threads stepped plus instructions added (the
// start's closure included, as the unanchored search adds it at every
// byte). ok is false when the limits are reached first.
func (e *costExplorer) explore() (cost int, ok bool) {
	n := len(e.prog.Inst)
	onq := make([]bool, n)
	reset := func() { clear(onq) }
	var start []int
	startVisits := e.closure(e.prog.Start, onq, &start)
	reset()
	key := func(s []int) string {
		slices.Sort(s)
		var b strings.Builder
		for _, pc := range s {
			b.WriteString(string(rune(pc + 1)))
		}
		return b.String()
	}
	states := map[string]bool{key(start): true}
	queue := [][]int{start}
	best, work := startVisits, 0
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, sig := range e.alphabet {
			var next []int
			visits := len(cur)
			for _, pc := range cur {
				if sig[e.index[pc]] {
					visits += e.closure(int(e.prog.Inst[pc].Out), onq, &next)
				}
			}
			visits += e.closure(e.prog.Start, onq, &next)
			reset()
			best = max(best, visits)
			work += visits
			if work > maxCostWork {
				return 0, false
			}
			k := key(next)
			if !states[k] {
				if len(states) >= maxCostStates {
					return 0, false
				}
				states[k] = true
				queue = append(queue, next)
			}
		}
	}
	return best, true
}

func matches(in *syntax.Inst, r rune) bool {
	switch in.Op {
	case syntax.InstRuneAny:
		return true
	case syntax.InstRuneAnyNotNL:
		return r != '\n'
	}
	return in.MatchRune(r)
}

// PolicyCost returns the regex cost of a validated policy: the sum of its
// rules' patterns. A pattern that no longer translates counts as
// MaxRuleCost (it cannot run, but must not make room for others).
func PolicyCost(p *pdp.Policy) int {
	cost := 0
	for _, r := range p.Rules {
		for _, pat := range []string{r.Match, r.ContextRequires} {
			if pat == "" {
				continue
			}
			if a, err := AnalyzePattern(pat); err == nil {
				cost += a.Cost
			} else {
				cost += MaxRuleCost
			}
		}
	}
	return cost
}

// TenantCost returns the most regex cost one decision of a tenant with
// these policies can run: its enabled tenant-wide policies plus the
// costliest agent's enabled agent-scoped ones (an agent's policy may
// replace a tenant-wide one of the same name; counting both is an upper
// bound).
func TenantCost(policies []pdp.Policy) int {
	tenant := 0
	agents := map[string]int{}
	for i := range policies {
		p := &policies[i]
		if !p.Enabled {
			continue
		}
		if p.AgentID == "" {
			tenant += PolicyCost(p)
		} else {
			agents[p.AgentID] += PolicyCost(p)
		}
	}
	most := 0
	for _, c := range agents {
		most = max(most, c)
	}
	return tenant + most
}

// CheckTenantCost returns a *pdp.ValidationError naming field when
// policies together exceed MaxTenantCost.
func CheckTenantCost(field string, policies []pdp.Policy) error {
	return tenantCostError(field, TenantCost(policies))
}

// CheckTenantWrite is CheckTenantCost for a write of p, whose cost the
// write's validation measured (Document.PolicyWithCost), among the
// tenant's stored policies: the stored version of p (same scope and name)
// is replaced, and disabled policies count nothing.
func CheckTenantWrite(field string, p *pdp.Policy, cost int, stored []pdp.Policy) error {
	if !p.Enabled {
		cost = 0
	}
	tenant, agents := 0, map[string]int{}
	if p.AgentID == "" {
		tenant = cost
	} else {
		agents[p.AgentID] = cost
	}
	for i := range stored {
		q := &stored[i]
		if !q.Enabled || q.AgentID == p.AgentID && q.Name == p.Name {
			continue
		}
		if q.AgentID == "" {
			tenant += PolicyCost(q)
		} else {
			agents[q.AgentID] += PolicyCost(q)
		}
	}
	most := 0
	for _, c := range agents {
		most = max(most, c)
	}
	return tenantCostError(field, tenant+most)
}

func tenantCostError(field string, c int) error {
	if c > MaxTenantCost {
		return &pdp.ValidationError{Field: field, Reason: fmt.Sprintf(
			"regex too expensive for the tenant: its policies would cost %d units per byte of text in one decision, over the tenant bound of %d (about 10 ms on a %d-byte action); simplify or disable rules",
			c, MaxTenantCost, MaxActionTextBytes)}
	}
	return nil
}
