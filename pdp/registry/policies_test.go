package registry_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

const (
	seedTenantWide = `{
		"name": "pii_protection",
		"description": "Warn on PII patterns",
		"rules": [{
			"match": "(email|phone)",
			"context_requires": "(external|public)",
			"severity": "medium",
			"on_violation": "warn"
		}]
	}`
	seedBillingBot = `{
		"name": "pii_protection",
		"description": "Block PII outright for billing-bot",
		"agent_id": "billing-bot",
		"rules": [{
			"match": "(email|phone|ssn|passport|routing)",
			"severity": "critical",
			"on_violation": "block",
			"reason": "PII blocked for billing-bot: {match}"
		}]
	}`
)

var seedParams = map[string]any{"channel": "#external", "text": "Customer email: alice@example.com"}

// TestSeedWalkthrough runs seed-agent-scoped-policies.txt at registry level.
func TestSeedWalkthrough(t *testing.T) {
	e := newEnv(t)
	tn, _ := e.tenant(store.TierPro)

	w := e.put(tn.ID, doc(t, seedTenantWide))
	if w.Action != registry.ActionCreated || w.Policy.Version != 1 || w.Policy.Scope() != pdp.ScopeTenant {
		t.Fatalf("tenant-wide write = %+v", w)
	}
	w = e.put(tn.ID, doc(t, seedBillingBot))
	if w.Action != registry.ActionCreated || w.Policy.Version != 1 || w.Policy.AgentID != "billing-bot" {
		t.Fatalf("agent-scoped write = %+v", w)
	}

	d := e.decide(tn.ID, "billing-bot", "slack.send_message", seedParams)
	if d.Status != pdp.StatusBlocked || triggered(d) != "pii_protection" || reason(d) != "PII blocked for billing-bot: email" {
		t.Fatalf("billing-bot: status %s, triggered %q, reason %q", d.Status, triggered(d), reason(d))
	}
	if d.Violations[0].Scope != pdp.ScopeAgent {
		t.Errorf("billing-bot violation scope = %s, want agent", d.Violations[0].Scope)
	}
	for _, agent := range []string{"support-bot", ""} {
		d := e.decide(tn.ID, agent, "slack.send_message", seedParams)
		if d.Status != pdp.StatusAllowed || len(d.Warnings) != 1 || d.Warnings[0].Policy != "pii_protection" || d.Warnings[0].Scope != pdp.ScopeTenant {
			t.Errorf("agent %q: status %s, warnings %+v; want allowed with the tenant-wide warning", agent, d.Status, d.Warnings)
		}
	}

	p, err := e.reg.Policy(t.Context(), tn.ID, "billing-bot", "pii_protection")
	if err != nil || p.Description != "Block PII outright for billing-bot" || p.AgentID != "billing-bot" {
		t.Fatalf("get agent-scoped = %+v, %v", p, err)
	}
	p, err = e.reg.Policy(t.Context(), tn.ID, "", "pii_protection")
	if err != nil || p.Description != "Warn on PII patterns" || p.AgentID != "" {
		t.Fatalf("get without agent_id must return the tenant-wide copy: %+v, %v", p, err)
	}
	ps, err := e.reg.Policies(t.Context(), tn.ID, "billing-bot")
	if err != nil || len(ps) != 2 || ps[0].AgentID != "" || ps[1].AgentID != "billing-bot" {
		t.Fatalf("list with agent_id = %+v, %v", ps, err)
	}
	ps, err = e.reg.Policies(t.Context(), tn.ID, "")
	if err != nil || len(ps) != 1 || ps[0].AgentID != "" {
		t.Fatalf("list without agent_id = %+v, %v", ps, err)
	}
}

func TestPutVersionsAndScopes(t *testing.T) {
	e := newEnv(t)
	tn, _ := e.tenant(store.TierEnterprise)

	for i, want := range []struct {
		action  string
		version int
	}{{registry.ActionCreated, 1}, {registry.ActionUpdated, 2}, {registry.ActionUpdated, 3}} {
		w := e.put(tn.ID, simple(t, "p", "", fmt.Sprintf("v%d", i)))
		if w.Action != want.action || w.Policy.Version != want.version || !w.Policy.Enabled {
			t.Fatalf("write %d = %s v%d, want %s v%d", i, w.Action, w.Policy.Version, want.action, want.version)
		}
	}
	// The same name at agent scope is a different policy with its own version.
	w := e.put(tn.ID, simple(t, "p", "bot", "x"))
	if w.Action != registry.ActionCreated || w.Policy.Version != 1 {
		t.Fatalf("agent copy = %s v%d, want created v1", w.Action, w.Policy.Version)
	}
	p, _ := e.reg.Policy(t.Context(), tn.ID, "", "p")
	if p.Version != 3 || p.Rules[0].Match != "v2" {
		t.Fatalf("tenant copy changed by the agent write: %+v", p)
	}
	// Deleting one scope leaves the other.
	if _, err := e.reg.Disable(t.Context(), tn.ID, "bot", "p"); err != nil {
		t.Fatal(err)
	}
	if p, _ := e.reg.Policy(t.Context(), tn.ID, "", "p"); !p.Enabled || p.Version != 3 {
		t.Fatalf("tenant copy changed by the agent delete: %+v", p)
	}
}

func TestReplace(t *testing.T) {
	e := newEnv(t)
	tn, _ := e.tenant(store.TierPro)
	ctx := t.Context()

	if _, err := e.reg.Replace(ctx, tn.ID, "missing", simple(t, "missing", "", "x")); !errors.Is(err, registry.ErrPolicyNotFound) {
		t.Fatalf("replace missing = %v, want ErrPolicyNotFound", err)
	}
	e.put(tn.ID, doc(t, `{"name":"p","description":"old","whitelisted_domains":["example.com"],"rules":[{"match":"a","severity":"low"}]}`))
	// Missing at the agent scope even though the tenant-wide one exists.
	if _, err := e.reg.Replace(ctx, tn.ID, "p", simple(t, "p", "bot", "x")); !errors.Is(err, registry.ErrPolicyNotFound) {
		t.Fatalf("replace at a scope without the policy = %v, want ErrPolicyNotFound", err)
	}
	// A body name different from the path name.
	_, err := e.reg.Replace(ctx, tn.ID, "p", simple(t, "q", "", "x"))
	if ve := validationErr(t, err); ve.Field != "name" {
		t.Fatalf("name mismatch: field %q (%v)", ve.Field, err)
	}
	// Full replacement: what the body leaves out is gone; name may be left out.
	w, err := e.reg.Replace(ctx, tn.ID, "p", doc(t, `{"rules":[{"match":"b","severity":"high"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if w.Action != registry.ActionUpdated || w.Policy.Version != 2 || w.Policy.Description != "" || len(w.Policy.WhitelistedDomains) != 0 || w.Policy.Rules[0].Match != "b" {
		t.Fatalf("replace = %+v", w)
	}
	// Reserved names are refused as invalid, before the existence check.
	_, err = e.reg.Replace(ctx, tn.ID, "FinancialSafety", doc(t, `{"rules":[{"match":"b","severity":"high"}]}`))
	if ve := validationErr(t, err); !strings.Contains(ve.Error(), "reserved name") {
		t.Fatalf("replace reserved = %v", err)
	}
}

func TestDisable(t *testing.T) {
	e := newEnv(t)
	tn, _ := e.tenant(store.TierPro)
	ctx := t.Context()
	e.put(tn.ID, doc(t, seedTenantWide))
	e.put(tn.ID, doc(t, seedBillingBot))

	w, err := e.reg.Disable(ctx, tn.ID, "billing-bot", "pii_protection")
	if err != nil || w.Action != registry.ActionDisabled || w.Policy.Enabled || w.Policy.Version != 2 {
		t.Fatalf("disable = %+v, %v", w, err)
	}
	// A disabled agent-scoped policy shadows nothing: billing-bot is governed
	// by the tenant-wide policy again, at once.
	d := e.decide(tn.ID, "billing-bot", "slack.send_message", seedParams)
	if d.Status != pdp.StatusAllowed || len(d.Warnings) != 1 || d.Warnings[0].Scope != pdp.ScopeTenant {
		t.Fatalf("after delete billing-bot: %s %+v", d.Status, d.Violations)
	}

	// A repeated delete is a no-op: same version, same revision.
	rev, _ := e.eng.Revision(tn.ID)
	w, err = e.reg.Disable(ctx, tn.ID, "billing-bot", "pii_protection")
	if err != nil || w.Policy.Version != 2 || w.Policy.Enabled {
		t.Fatalf("repeat disable = %+v, %v", w, err)
	}
	if rev2, _ := e.eng.Revision(tn.ID); rev2 != rev {
		t.Fatalf("repeat disable moved the revision %d → %d", rev, rev2)
	}

	// Re-posting re-enables, version +1, and the override is back.
	w = e.put(tn.ID, doc(t, seedBillingBot))
	if w.Action != registry.ActionUpdated || !w.Policy.Enabled || w.Policy.Version != 3 {
		t.Fatalf("re-post = %+v", w)
	}
	if d := e.decide(tn.ID, "billing-bot", "slack.send_message", seedParams); d.Status != pdp.StatusBlocked {
		t.Fatalf("after re-post billing-bot: %s", d.Status)
	}

	for _, tc := range []struct {
		name, agent string
		want        error
	}{
		{"missing", "", registry.ErrPolicyNotFound},
		{"pii_protection", "other-bot", registry.ErrPolicyNotFound},
		{"FinancialSafety", "", registry.ErrCannotDeleteBuiltin},
		{"financialsafetypolicy", "", registry.ErrCannotDeleteBuiltin},
		{"DATAEXFILTRATION", "", registry.ErrCannotDeleteBuiltin},
		{"DataExfiltrationPolicy", "bot", registry.ErrCannotDeleteBuiltin},
	} {
		if _, err := e.reg.Disable(ctx, tn.ID, tc.agent, tc.name); !errors.Is(err, tc.want) {
			t.Errorf("Disable(%q, %q) = %v, want %v", tc.agent, tc.name, err, tc.want)
		}
	}
	if _, err := e.reg.Disable(ctx, tn.ID, "bad\nagent", "pii_protection"); validationErr(t, err).Field != "agent_id" {
		t.Errorf("bad agent_id: %v", err)
	}
}

func TestReservedNames(t *testing.T) {
	e := newEnv(t)
	tn, _ := e.tenant(store.TierEnterprise)
	for _, name := range []string{"FinancialSafety", "financialsafety", "FinancialSafetyPolicy", "DATAEXFILTRATIONPOLICY", "dataExfiltration"} {
		_, err := e.reg.Put(t.Context(), tn.ID, simple(t, name, "", "x"))
		if ve := validationErr(t, err); ve.Field != "name" || !strings.Contains(err.Error(), "reserved name") {
			t.Errorf("Put(%q) = %v, want a reserved-name error on name", name, err)
		}
		if b, ok := registry.Builtin(name); !ok || (b.Name != pdp.BuiltinFinancialSafety && b.Name != pdp.BuiltinDataExfiltration) {
			t.Errorf("Builtin(%q) = %+v, %v", name, b, ok)
		}
	}
	if _, ok := registry.Builtin("FinancialSafetyX"); ok {
		t.Error("Builtin(FinancialSafetyX) matched")
	}
	if ps, _ := e.reg.Policies(t.Context(), tn.ID, ""); len(ps) != 0 {
		t.Fatalf("reserved writes stored %d policies", len(ps))
	}
}

// TestTierMatrix checks every tier against both kinds of policy write.
func TestTierMatrix(t *testing.T) {
	e := newEnv(t)
	type want struct {
		feature registry.Feature
		tier    store.Tier
		message string
	}
	starter := &want{registry.FeatureDraftPolicies, store.TierStarter, "Feature 'draft_policies' requires Starter tier or higher"}
	pro := &want{registry.FeatureAgentScopedPolicies, store.TierPro, "Feature 'agent_scoped_policies' requires Pro tier or higher"}
	for _, tc := range []struct {
		tier              store.Tier
		tenantWide, agent *want
	}{
		{store.TierFree, starter, pro},
		{store.TierStarter, nil, pro},
		{store.TierPro, nil, nil},
		{store.TierEnterprise, nil, nil},
	} {
		tn, _ := e.tenant(tc.tier)
		for _, c := range []struct {
			agent string
			want  *want
		}{{"", tc.tenantWide}, {"bot", tc.agent}} {
			_, err := e.reg.Put(t.Context(), tn.ID, simple(t, "p", c.agent, "x"))
			if c.want == nil {
				if err != nil {
					t.Errorf("%s agent=%q: %v", tc.tier, c.agent, err)
				}
				continue
			}
			te := tierErr(t, err)
			if te.Code != pdp.CodeFeatureRequired || te.Feature != c.want.feature || te.RequiredTier != c.want.tier || te.CurrentTier != tc.tier || te.Error() != c.want.message {
				t.Errorf("%s agent=%q: %+v %q", tc.tier, c.agent, te, te.Error())
			}
		}
	}

	for _, tc := range []struct {
		tier  store.Tier
		limit int
		modes []string
		dash  bool
	}{
		{store.TierFree, 0, []string{"solo"}, false},
		{store.TierStarter, 5, []string{"solo", "team"}, true},
		{store.TierPro, 25, []string{"solo", "team"}, true},
		{store.TierEnterprise, store.Unlimited, []string{"solo", "team", "enterprise"}, true},
	} {
		if got := registry.PolicyLimit(tc.tier); got != tc.limit {
			t.Errorf("PolicyLimit(%s) = %d, want %d", tc.tier, got, tc.limit)
		}
		if got := registry.ApprovalModes(tc.tier); strings.Join(got, ",") != strings.Join(tc.modes, ",") {
			t.Errorf("ApprovalModes(%s) = %v, want %v", tc.tier, got, tc.modes)
		}
		if got := registry.Allows(tc.tier, registry.FeatureGovernanceDashboard); got != tc.dash {
			t.Errorf("governance_dashboard on %s = %v", tc.tier, got)
		}
	}
	if err := registry.RequireFeature(store.TierFree, registry.FeatureGovernanceDashboard); err == nil || err.Error() != "Feature 'governance_dashboard' requires Starter tier or higher" {
		t.Errorf("dashboard on free: %v", err)
	}
}

func TestLimit(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	tn, _ := e.tenant(store.TierStarter)
	for i := range 5 {
		e.put(tn.ID, simple(t, fmt.Sprintf("p%d", i), "", "x"))
	}
	_, err := e.reg.Put(ctx, tn.ID, simple(t, "p5", "", "x"))
	te := tierErr(t, err)
	if te.Code != pdp.CodeLimitExceeded || te.Limit != 5 || te.Current != 5 || te.Error() != "Custom policy limit reached (5) for tier 'starter'" {
		t.Fatalf("6th policy: %+v %q", te, te.Error())
	}
	// Validation comes before the limit.
	_, err = e.reg.Put(ctx, tn.ID, doc(t, `{"name":"p5","rules":[]}`))
	validationErr(t, err)
	// Updating an enabled policy does not add one.
	if w := e.put(tn.ID, simple(t, "p0", "", "y")); w.Policy.Version != 2 {
		t.Fatalf("update at the limit: %+v", w)
	}
	// Creating a disabled policy does not add an enabled one.
	if w := e.put(tn.ID, doc(t, `{"name":"off","enabled":false,"rules":[{"match":"x","severity":"low"}]}`)); w.Policy.Enabled {
		t.Fatalf("disabled create: %+v", w)
	}
	// Re-enabling it would.
	if _, err := e.reg.Put(ctx, tn.ID, simple(t, "off", "", "x")); tierErr(t, err).Code != pdp.CodeLimitExceeded {
		t.Fatalf("re-enable at the limit: %v", err)
	}
	// Disabling one frees a slot.
	if _, err := e.reg.Disable(ctx, tn.ID, "", "p1"); err != nil {
		t.Fatal(err)
	}
	e.put(tn.ID, simple(t, "off", "", "x"))
	if n, _ := e.st.CountEnabledPolicies(ctx, tn.ID); n != 5 {
		t.Fatalf("enabled = %d, want 5", n)
	}

	// Both scopes count toward one limit (pro: 25).
	pro, _ := e.tenant(store.TierPro)
	for i := range 20 {
		e.put(pro.ID, simple(t, fmt.Sprintf("t%d", i), "", "x"))
	}
	for i := range 5 {
		e.put(pro.ID, simple(t, fmt.Sprintf("a%d", i), "bot", "x"))
	}
	_, err = e.reg.Put(ctx, pro.ID, simple(t, "a5", "other", "x"))
	if te := tierErr(t, err); te.Limit != 25 || te.Current != 25 || te.CurrentTier != store.TierPro {
		t.Fatalf("26th policy: %+v", te)
	}

	// Enterprise has no limit.
	ent, _ := e.tenant(store.TierEnterprise)
	for i := range 30 {
		e.put(ent.ID, simple(t, fmt.Sprintf("e%d", i), "", "x"))
	}
}

// TestConcurrentCreatesRespectLimit races creates of distinct policies: the
// limit is checked inside each write's transaction, so exactly the limit
// succeed, and the engine ends on the store's last revision.
func TestConcurrentCreatesRespectLimit(t *testing.T) {
	e := newEnv(t)
	tn, _ := e.tenant(store.TierStarter)
	const writers = 24
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		ok, over int
	)
	for i := range writers {
		wg.Go(func() {
			_, err := e.reg.Put(t.Context(), tn.ID, simple(t, fmt.Sprintf("p%d", i), "", "x"))
			mu.Lock()
			defer mu.Unlock()
			var te *registry.TierError
			switch {
			case err == nil:
				ok++
			case errors.As(err, &te) && te.Code == pdp.CodeLimitExceeded:
				over++
			default:
				t.Errorf("writer %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if ok != 5 || over != writers-5 {
		t.Fatalf("succeeded %d, refused %d; want 5 and %d", ok, over, writers-5)
	}
	if n, _ := e.st.CountEnabledPolicies(t.Context(), tn.ID); n != 5 {
		t.Fatalf("enabled = %d", n)
	}
	stored, _ := e.st.GetTenant(t.Context(), tn.ID)
	if rev, _ := e.eng.Revision(tn.ID); rev != stored.Revision {
		t.Fatalf("engine revision %d, store %d", rev, stored.Revision)
	}
}

// TestReadAfterWrite: every write is visible to the very next decision, and
// other tenants' published revisions do not move.
func TestReadAfterWrite(t *testing.T) {
	e := newEnv(t)
	a, _ := e.tenant(store.TierEnterprise)
	b, _ := e.tenant(store.TierEnterprise)
	e.put(b.ID, simple(t, "b_only", "", "zebra"))
	bRev, _ := e.eng.Revision(b.ID)

	for i := range 20 {
		word := fmt.Sprintf("word%d", i)
		e.put(a.ID, simple(t, "moving", "", word))
		if d := e.decide(a.ID, "", "do", map[string]any{"text": word}); d.Status != pdp.StatusBlocked {
			t.Fatalf("write %d not visible: %s", i, d.Status)
		}
		if d := e.decide(a.ID, "", "do", map[string]any{"text": fmt.Sprintf("word%d", i-1)}); i > 0 && d.Status != pdp.StatusAllowed {
			t.Fatalf("write %d: the previous version still applies", i)
		}
	}
	if _, err := e.reg.Disable(t.Context(), a.ID, "", "moving"); err != nil {
		t.Fatal(err)
	}
	if d := e.decide(a.ID, "", "do", map[string]any{"text": "word19"}); d.Status != pdp.StatusAllowed {
		t.Fatalf("delete not visible: %s", d.Status)
	}
	if rev, _ := e.eng.Revision(b.ID); rev != bRev {
		t.Fatalf("tenant B's revision moved %d → %d", bRev, rev)
	}
	// Tenant A is not governed by B's policy, and vice versa.
	if d := e.decide(a.ID, "", "do", map[string]any{"text": "zebra"}); d.Status != pdp.StatusAllowed {
		t.Fatalf("A governed by B's policy")
	}
	if d := e.decide(b.ID, "", "do", map[string]any{"text": "zebra"}); d.Status != pdp.StatusBlocked {
		t.Fatalf("B not governed by its own policy")
	}
}

// TestPublishFailureFailsClosed: when the snapshot cannot be read after a
// write, the tenant's decisions fail instead of running on stale policies,
// and the next Authenticate republishes it.
func TestPublishFailureFailsClosed(t *testing.T) {
	e := newEnv(t)
	tn, key := e.tenant(store.TierEnterprise)
	e.put(tn.ID, simple(t, "p", "", "alpha"))

	e.st.failSnapshot.Store(true)
	if _, err := e.reg.Put(t.Context(), tn.ID, simple(t, "p", "", "beta")); !errors.Is(err, errInjected) {
		t.Fatalf("Put with a failing snapshot = %v", err)
	}
	_, err := e.eng.Evaluate(t.Context(), pdp.Action{TenantID: tn.ID, Name: "do", Params: map[string]any{"text": "alpha"}})
	if !errors.Is(err, pdp.ErrEvaluationFailed) {
		t.Fatalf("decision after a failed publish = %v, want ErrEvaluationFailed", err)
	}
	e.st.failSnapshot.Store(false)
	if _, err := e.reg.Authenticate(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	if d := e.decide(tn.ID, "", "do", map[string]any{"text": "beta"}); d.Status != pdp.StatusBlocked {
		t.Fatalf("after republish: %s (the stored write must apply)", d.Status)
	}
}

func TestLoadAndRefresh(t *testing.T) {
	path := t.TempDir() + "/gatehouse.db"
	one := newEnvAt(t, path)
	a, _ := one.tenant(store.TierEnterprise)
	one.put(a.ID, simple(t, "p", "", "alpha"))

	// A second server on the same database loads what exists.
	two := newEnvAt(t, path)
	if d := two.decide(a.ID, "", "do", map[string]any{"text": "alpha"}); d.Status != pdp.StatusBlocked {
		t.Fatalf("Load: %s", d.Status)
	}

	// A write on the first is seen by the second after Refresh.
	one.put(a.ID, simple(t, "p", "", "beta"))
	if d := two.decide(a.ID, "", "do", map[string]any{"text": "beta"}); d.Status != pdp.StatusAllowed {
		t.Fatalf("before Refresh the second server already saw the write?")
	}
	if err := two.reg.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if d := two.decide(a.ID, "", "do", map[string]any{"text": "beta"}); d.Status != pdp.StatusBlocked {
		t.Fatalf("after Refresh: %s", d.Status)
	}

	// A tenant created by the first after the second loaded is published
	// by the second on its first authentication.
	b, keyB := one.tenant(store.TierPro)
	if _, ok := two.eng.Revision(b.ID); ok {
		t.Fatal("second engine knows the new tenant already")
	}
	if got, err := two.reg.Authenticate(t.Context(), keyB); err != nil || got.ID != b.ID {
		t.Fatalf("Authenticate on the second: %+v, %v", got, err)
	}
	if _, ok := two.eng.Revision(b.ID); !ok {
		t.Fatal("Authenticate did not publish the new tenant")
	}
}

// TestTenantRegexBudget: a write after which one decision of the tenant
// could run more regex cost than adapter.MaxTenantCost is refused naming
// the bound; replacing or disabling policies makes room again; agents'
// policies count only the costliest agent's.
func TestTenantRegexBudget(t *testing.T) {
	e := newEnv(t)
	tn, _ := e.tenant(store.TierEnterprise)
	// Each policy: rules of `.{10}~`, well within the rule and policy bounds.
	heavy := func(name, agent string, rules int) *adapter.Document {
		rs := make([]any, rules)
		for i := range rs {
			rs[i] = map[string]any{"match": `.{10}~`, "severity": "low"}
		}
		m := map[string]any{"name": name, "rules": rs}
		if agent != "" {
			m["agent_id"] = agent
		}
		b, _ := json.Marshal(m)
		return doc(t, string(b))
	}
	a, err := adapter.AnalyzePattern(`.{10}~`)
	if err != nil {
		t.Fatal(err)
	}
	perPolicy := adapter.MaxPolicyCost / a.Cost // rules that fit one policy
	fill := adapter.MaxTenantCost / a.Cost      // rules that fit the tenant
	e.put(tn.ID, heavy("p1", "", min(perPolicy, fill)))
	rest := fill - min(perPolicy, fill)
	if rest > 0 {
		e.put(tn.ID, heavy("p2", "", rest))
	}
	// Agent-scoped policies add to the tenant-wide ones.
	_, err = e.reg.Put(t.Context(), tn.ID, heavy("p3", "bot-1", 1))
	var ve *pdp.ValidationError
	if !errors.As(err, &ve) || ve.Field != "rules" ||
		!strings.Contains(ve.Reason, fmt.Sprintf("over the tenant bound of %d", adapter.MaxTenantCost)) {
		t.Fatalf("Put over the tenant budget = %v", err)
	}
	// Replacing p1 by a cheaper version makes room; the budget counts the
	// replacement, not both.
	e.put(tn.ID, heavy("p1", "", 1))
	e.put(tn.ID, heavy("p3", "bot-1", 2))
	e.put(tn.ID, heavy("p4", "bot-2", 2)) // another agent: only the costliest counts
}

// TestCompileBudget: a write after which compiling the tenant would cost
// more than the engine's compile budget is refused before anything is
// stored — a ValidationError on "rules" naming the budget — and the
// tenant keeps deciding with what it had; disabling a policy makes room.
// Agent-scoped policies count in full (one compile holds every agent's).
func TestCompileBudget(t *testing.T) {
	policy := func(name, agent string) *adapter.Document {
		rs := make([]any, 20)
		for i := range rs {
			rs[i] = map[string]any{"match": fmt.Sprintf(`secret%02d`, i), "severity": "low"}
		}
		b, _ := json.Marshal(map[string]any{"name": name, "agent_id": agent, "rules": rs})
		return doc(t, string(b))
	}
	probe, err := engine.New(engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	one, _, err := policy("p", "bot-0").PolicyWithCost()
	if err != nil {
		t.Fatal(err)
	}
	unit, err := probe.CompileCost("x", []pdp.Policy{one})
	if err != nil || unit == 0 {
		t.Fatalf("CompileCost: %d, %v", unit, err)
	}

	st := &countingStore{Store: openStore(t, filepath.Join(t.TempDir(), "gatehouse.db"))}
	eng, err := engine.New(engine.Config{Timeout: 5 * time.Second, CompileBudget: unit*5/2 + 1})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(st, eng)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, st: st, eng: eng, reg: reg}
	tn, _ := e.tenant(store.TierEnterprise)
	e.put(tn.ID, policy("p1", "bot-1"))
	w := e.put(tn.ID, policy("p2", "bot-2"))
	_, err = reg.Put(t.Context(), tn.ID, policy("p3", "bot-3"))
	var ve *pdp.ValidationError
	if !errors.As(err, &ve) || ve.Field != "rules" || !errors.Is(err, engine.ErrCompileBudget) ||
		!strings.Contains(ve.Reason, fmt.Sprintf("over the compile budget of %d", eng.CompileBudget())) {
		t.Fatalf("Put over the compile budget = %v", err)
	}
	if rev, _ := eng.Revision(tn.ID); rev != w.Revision {
		t.Errorf("revision moved to %d after a refused write (was %d)", rev, w.Revision)
	}
	ps, err := st.ListPolicies(t.Context(), tn.ID, store.PolicyFilter{})
	if err != nil || len(ps) != 2 {
		t.Fatalf("stored after the refused write: %d policies, %v; want 2", len(ps), err)
	}
	if d := e.decide(tn.ID, "bot-2", "http.post", map[string]any{"q": "secret07"}); len(d.Violations)+len(d.Warnings) == 0 {
		t.Errorf("the tenant stopped deciding with its policies: %+v", d)
	}
	if _, err := reg.Disable(t.Context(), tn.ID, "bot-1", "p1"); err != nil {
		t.Fatal(err)
	}
	e.put(tn.ID, policy("p3", "bot-3"))
}
