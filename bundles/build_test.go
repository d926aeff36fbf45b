package bundles_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/bundles"
	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
	library "github.com/gatehouse-pdp/gatehouse/rego"
)

func TestBuildDeterministic(t *testing.T) {
	tp := sampleTenant(t, "acme", 7, pdp.ModeEnforcement)
	base := mustBuild(t, tp)

	shuffled := tp
	shuffled.Policies = slices.Clone(tp.Policies)
	slices.Reverse(shuffled.Policies)

	otherRev := tp
	otherRev.Revision = 8

	changed := sampleTenant(t, "acme", 7, pdp.ModeEnforcement)
	changed.Policies[0].Rules[0].Severity = pdp.SeverityHigh

	otherConfig, err := bundles.Build(tp, map[string]any{"financial_safety": map[string]any{"hard_limit": 5.0, "approval_threshold": 1.0}})
	if err != nil {
		t.Fatal(err)
	}
	hs, err := bundles.NewSigningKey("HS256", []byte(strings.Repeat("k", 32)), "")
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		got       *bundles.Built
		sameBytes bool
		sameETag  bool
	}{
		{"rebuilt", mustBuild(t, tp), true, true},
		{"policies in another order", mustBuild(t, shuffled), true, true},
		{"other revision", mustBuild(t, otherRev), false, false},
		{"changed policy, same revision", mustBuild(t, changed), false, false},
		{"other config", otherConfig, false, false},
		{"signed", mustBuild(t, tp, bundles.WithSigningKey(hs)), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := bytes.Equal(tt.got.Bytes, base.Bytes); got != tt.sameBytes {
				t.Errorf("same bytes = %v, want %v", got, tt.sameBytes)
			}
			if got := tt.got.ETag == base.ETag; got != tt.sameETag {
				t.Errorf("ETag %s vs %s: same = %v, want %v", tt.got.ETag, base.ETag, got, tt.sameETag)
			}
		})
	}
	if base.Revision != "7" || !strings.HasPrefix(base.ETag, `"7-`) || !strings.HasSuffix(base.ETag, `"`) {
		t.Errorf("revision %q, ETag %s", base.Revision, base.ETag)
	}
	// Signing with HMAC is deterministic too.
	if a, b := mustBuild(t, tp, bundles.WithSigningKey(hs)), mustBuild(t, tp, bundles.WithSigningKey(hs)); !bytes.Equal(a.Bytes, b.Bytes) {
		t.Error("two HS256-signed builds differ")
	}
}

// tarEntries lists a tarball's headers and contents.
func tarEntries(t *testing.T, tarball []byte) ([]*tar.Header, map[string][]byte, *gzip.Header) {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(tarball))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var hdrs []*tar.Header
	files := map[string][]byte{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		hdrs = append(hdrs, h)
		files[h.Name] = data
	}
	return hdrs, files, &gz.Header
}

func TestBuildLayout(t *testing.T) {
	tp := sampleTenant(t, "acme", 42, pdp.ModeShadow)
	built := mustBuild(t, tp)
	hdrs, files, gzh := tarEntries(t, built.Bytes)

	if gzh.Name != "" || !gzh.ModTime.IsZero() || gzh.Comment != "" {
		t.Errorf("gzip header carries name %q, time %v, comment %q", gzh.Name, gzh.ModTime, gzh.Comment)
	}
	var names []string
	for _, h := range hdrs {
		names = append(names, h.Name)
		if h.ModTime.Unix() != 0 || h.Mode != 0o644 || h.Typeflag != tar.TypeReg {
			t.Errorf("%s: mtime %v, mode %o, type %c", h.Name, h.ModTime, h.Mode, h.Typeflag)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("entries not sorted: %v", names)
	}

	var want []string
	want = append(want, "/.manifest", "/data.json")
	for p := range library.Sources() {
		want = append(want, "/"+p)
	}
	// No module per policy: the rules are in data.json (policy as data).
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("entries\n got %v\nwant %v", names, want)
	}
	for _, n := range names {
		if strings.HasSuffix(n, "_test.rego") {
			t.Errorf("test module %s in bundle", n)
		}
	}

	var manifest map[string]any
	if err := json.Unmarshal(files["/.manifest"], &manifest); err != nil {
		t.Fatal(err)
	}
	wantManifest := map[string]any{
		"revision":     "42",
		"roots":        []any{"gatehouse"},
		"rego_version": 1.0,
		"metadata":     map[string]any{"gatehouse_version": pdp.Version, "tenant_id": "acme"},
	}
	if d := diffJSON(manifest, wantManifest); d != "" {
		t.Errorf("manifest:%s", d)
	}

	var data map[string]any
	if err := json.Unmarshal(files["/data.json"], &data); err != nil {
		t.Fatal(err)
	}
	wantTenant := adapter.TenantData(&tp, "", true)
	wantData := map[string]any{"gatehouse": map[string]any{
		"config":  engineConfig.ConfigData(),
		"tenants": map[string]any{"acme": wantTenant},
	}}
	if d := diffJSON(data, wantData); d != "" {
		t.Errorf("data.json:%s", d)
	}
	if wantTenant["mode"] != "shadow" {
		t.Errorf("mode %v", wantTenant["mode"])
	}
}

func TestBuildErrors(t *testing.T) {
	valid := sampleTenant(t, "acme", 1, "")
	dup := sampleTenant(t, "acme", 1, "")
	dup.Policies = append(dup.Policies, dup.Policies[0])
	invalid := sampleTenant(t, "acme", 1, "")
	invalid.Policies[2].Rules[0].Match = "(?=x)"
	noTenant := valid
	noTenant.TenantID = ""

	tests := []struct {
		name string
		tp   pdp.TenantPolicies
		opts []bundles.Option
		want string
	}{
		{"no tenant", noTenant, nil, "tenant id"},
		{"duplicate", dup, nil, `policy "pii_protection" (agent ""): two enabled policies`},
		{"invalid policy", invalid, nil, "rules[0].match: look-ahead"},
		{"revision too long", valid, []bundles.Option{bundles.WithRevision(strings.Repeat("r", 300))}, "revision"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := bundles.Build(tt.tp, nil, tt.opts...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestBundleParity evaluates every sample action on the bundle, loaded with
// OPA's own reader and evaluated with rego.ParsedBundle, and compares with
// the embedded engine.
func TestBundleParity(t *testing.T) {
	tps := []pdp.TenantPolicies{
		sampleTenant(t, "acme", 3, pdp.ModeEnforcement),
		sampleTenant(t, "shadowy", 9, pdp.ModeShadow),
	}
	for _, tp := range tps {
		t.Run(tp.TenantID, func(t *testing.T) {
			actions := sampleActions(tp.TenantID)
			want := engineDecisions(t, tps, actions)
			pq := preparedFromBundle(t, mustBuild(t, tp).Bytes)
			statuses := map[pdp.Status]int{}
			for i, a := range actions {
				rs, err := pq.Eval(context.Background(), rego.EvalInput(engine.Input(a)))
				if err != nil || len(rs) != 1 {
					t.Fatalf("%+v: eval: %v %v", a, rs, err)
				}
				got := decisionFromResult(t, rs[0].Expressions[0].Value)
				if d := diffJSON(got, want[i]); d != "" {
					t.Errorf("action %d %s agent %q step %q:%s", i, a.Name, a.AgentID, a.StepType, d)
				}
				statuses[want[i].Status]++
				if want[i].ShadowStatus != "" {
					statuses["shadow:"+want[i].ShadowStatus]++
				}
			}
			t.Logf("%d actions, statuses %v", len(actions), statuses)
			if tp.Mode == pdp.ModeEnforcement && (statuses[pdp.StatusBlocked] == 0 || statuses[pdp.StatusPendingReview] == 0 || statuses[pdp.StatusAllowed] == 0) {
				t.Errorf("sample actions do not reach every status: %v", statuses)
			}
		})
	}
	// A tenant the bundle does not hold is undefined: callers fail closed.
	pq := preparedFromBundle(t, mustBuild(t, tps[0]).Bytes)
	rs, err := pq.Eval(context.Background(), rego.EvalInput(engine.Input(pdp.Action{TenantID: "other", Name: "noop"})))
	if err != nil || len(rs) != 0 {
		t.Errorf("other tenant: %v %v, want undefined", rs, err)
	}
}

func TestLoadFromBundle(t *testing.T) {
	tp := sampleTenant(t, "acme", 5, "")
	built := mustBuild(t, tp)
	b, err := bundles.Load(bytes.NewReader(built.Bytes), nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := bundles.FromBundle(b)
	if err != nil {
		t.Fatal(err)
	}
	if l.Revision != "5" || !slices.Equal(l.TenantIDs, []string{"acme"}) {
		t.Errorf("revision %q tenants %v", l.Revision, l.TenantIDs)
	}
	for p := range library.Sources() {
		if l.Modules[p] == nil {
			t.Errorf("library module %s missing from %v", p, slices.Sorted(maps.Keys(l.Modules)))
		}
	}
	if len(l.Modules) != len(library.Sources()) {
		t.Errorf("modules %v, want the library's only", slices.Sorted(maps.Keys(l.Modules)))
	}
	root, _ := l.Data["gatehouse"].(map[string]any)
	tenants, _ := root["tenants"].(map[string]any)
	acme, _ := tenants["acme"].(map[string]any)
	agents, _ := acme["agents"].(map[string]any)
	bot, _ := agents["billing-bot"].(map[string]any)
	pii, _ := bot["pii_protection"].(map[string]any)
	if rules, _ := pii["rules"].([]any); len(rules) == 0 {
		t.Errorf("billing-bot's pii_protection has no rules in the data: %v", pii)
	}

	t.Run("not a gatehouse bundle", func(t *testing.T) {
		roots := []string{""}
		for _, b := range []*bundle.Bundle{
			{Manifest: bundle.Manifest{Roots: &roots}},
			{Manifest: bundle.Manifest{Roots: &[]string{"gatehouse"}}},
		} {
			if _, err := bundles.FromBundle(b); err == nil || !strings.Contains(err.Error(), "not a Gatehouse bundle") {
				t.Errorf("err = %v", err)
			}
		}
	})
	t.Run("too large", func(t *testing.T) {
		_, err := bundles.Load(bytes.NewReader(built.Bytes), nil, bundles.WithMaxBytes(int64(len(built.Bytes)-1)))
		if !errors.Is(err, bundles.ErrTooLarge) {
			t.Errorf("compressed: err = %v", err)
		}
		// Compressed it fits, expanded it does not.
		_, err = bundles.Load(bytes.NewReader(built.Bytes), nil, bundles.WithMaxBytes(int64(len(built.Bytes)+10)))
		if !errors.Is(err, bundles.ErrTooLarge) || !strings.Contains(err.Error(), "add up") {
			t.Errorf("expanded: err = %v", err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		if _, err := bundles.Load(strings.NewReader("not gzip"), nil); err == nil {
			t.Error("no error")
		}
	})
}
