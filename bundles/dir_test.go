package bundles_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/gatehouse-pdp/gatehouse/bundles"
	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
)

// writeTree writes files (slash paths → content) under a new directory.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var gitopsTree = map[string]string{
	"pii.yaml": `name: pii_protection
description: Warn on PII patterns
rules:
  - match: (email|phone)
    context_requires: (external|public)
    severity: medium
    on_violation: warn
`,
	"links.json": `{"name": "external_links", "whitelisted_domains": ["Example.com"],
  "rules": [{"match": "https?://[a-z0-9.-]+", "severity": "HIGH"}]}`,
	"off.yml": `{name: retired, enabled: false, rules: [{match: x, severity: low}]}`,
	"agents/billing-bot/strict.yaml": `name: pii_protection
rules:
  - match: (email|phone|ssn|passport|routing)
    severity: critical
    reason: "PII blocked for billing-bot: {match}"
`,
	"agents/support-bot/refunds.yml": `agent_id: support-bot
name: refunds
rules: [{match: refund, severity: high, on_violation: warn}]
`,
	".git/config":           "[core]\n",
	".hidden.yaml":          "not: a policy",
	"agents/.keep":          "",
	"agents/billing-bot/.x": "ignored",
}

func TestLoadDir(t *testing.T) {
	dir := writeTree(t, gitopsTree)
	tp, err := bundles.LoadDir(dir, "acme")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range tp.Policies {
		got = append(got, p.AgentID+"/"+p.Name)
		if p.Version != 1 {
			t.Errorf("%s: version %d", p.Name, p.Version)
		}
	}
	want := []string{"/external_links", "/pii_protection", "/retired", "billing-bot/pii_protection", "support-bot/refunds"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("policies %v, want %v", got, want)
	}
	if tp.TenantID != "acme" || tp.Mode != pdp.ModeEnforcement || tp.Revision == 0 {
		t.Errorf("tenant %q mode %q revision %d", tp.TenantID, tp.Mode, tp.Revision)
	}
	if p := tp.Policies[0]; p.WhitelistedDomains[0] != "example.com" || p.Rules[0].Severity != pdp.SeverityHigh {
		t.Errorf("not normalized: %+v", p)
	}
	if tp.Policies[2].Enabled {
		t.Error("retired is enabled")
	}

	// Same tree, same revisions; a change moves both.
	again, err := bundles.LoadDir(writeTree(t, gitopsTree), "acme")
	if err != nil || again.Revision != tp.Revision {
		t.Errorf("reloaded revision %d vs %d (%v)", again.Revision, tp.Revision, err)
	}
	b1, err := bundles.BuildFromDir(dir, "acme", engineConfig.ConfigData())
	if err != nil {
		t.Fatal(err)
	}
	b2, err := bundles.BuildFromDir(writeTree(t, gitopsTree), "acme", engineConfig.ConfigData())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b1.Revision, "sha256:") || len(b1.Revision) != len("sha256:")+64 || !bytes.Equal(b1.Bytes, b2.Bytes) {
		t.Errorf("revision %q; same bytes %v", b1.Revision, bytes.Equal(b1.Bytes, b2.Bytes))
	}
	edited := map[string]string{}
	for k, v := range gitopsTree {
		edited[k] = v
	}
	edited["agents/support-bot/refunds.yml"] = strings.Replace(edited["agents/support-bot/refunds.yml"], "high", "medium", 1)
	b3, err := bundles.BuildFromDir(writeTree(t, edited), "acme", engineConfig.ConfigData())
	if err != nil {
		t.Fatal(err)
	}
	if b3.Revision == b1.Revision || b3.ETag == b1.ETag {
		t.Errorf("edit kept revision %s / ETag %s", b3.Revision, b3.ETag)
	}

	// The directory bundle decides like the engine given the loaded policies.
	actions := sampleActions("acme")
	wantDecisions := engineDecisions(t, []pdp.TenantPolicies{tp}, actions)
	pq := preparedFromBundle(t, b1.Bytes)
	for i, a := range actions {
		rs, err := pq.Eval(context.Background(), rego.EvalInput(engine.Input(a)))
		if err != nil || len(rs) != 1 {
			t.Fatalf("eval: %v %v", rs, err)
		}
		if d := diffJSON(decisionFromResult(t, rs[0].Expressions[0].Value), wantDecisions[i]); d != "" {
			t.Errorf("action %d:%s", i, d)
		}
	}
}

func TestLoadDirErrors(t *testing.T) {
	const ok = `{"name": "ok", "rules": [{"match": "x", "severity": "low"}]}`
	tests := []struct {
		name  string
		files map[string]string
		want  []string // each must appear in the error, one per line
	}{
		{
			name:  "bad severity names file and field",
			files: map[string]string{"agents/billing-bot/pii.yaml": "name: pii\nrules:\n  - match: email\n    severity: severe\n"},
			want:  []string{"agents/billing-bot/pii.yaml: rules[0].severity: "},
		},
		{
			name:  "unknown field",
			files: map[string]string{"x.json": `{"name": "x", "rules": [{"match": "x", "sevrity": "low"}]}`},
			want:  []string{`x.json: rules[0]: unknown field "sevrity"`},
		},
		{
			name:  "every problem of a document",
			files: map[string]string{"p.yaml": "name: 'bad name'\nrules: []\n"},
			want:  []string{"p.yaml: name: ", "p.yaml: rules: "},
		},
		{
			name:  "unknown file type",
			files: map[string]string{"README.md": "# policies", "ok.json": ok},
			want:  []string{"README.md: not a policy file: policy files end in .json, .yaml or .yml"},
		},
		{
			name:  "agent_id disagrees with directory",
			files: map[string]string{"agents/billing-bot/p.yaml": "agent_id: support-bot\n" + "name: p\nrules: [{match: x, severity: low}]\n"},
			want:  []string{`agents/billing-bot/p.yaml: agent_id: "support-bot" does not match the directory agents/billing-bot/`},
		},
		{
			name:  "agent_id at the top level",
			files: map[string]string{"p.json": `{"name": "p", "agent_id": "billing-bot", "rules": [{"match": "x", "severity": "low"}]}`},
			want:  []string{`p.json: agent_id: a top-level file holds a tenant-wide policy; put the policy of agent "billing-bot" in agents/billing-bot/`},
		},
		{
			name:  "invalid agent directory",
			files: map[string]string{"agents/bad%agent/p.json": ok},
			want:  []string{"agents/bad%agent/: directory name is not a valid agent_id"},
		},
		{
			name:  "file directly in agents",
			files: map[string]string{"agents/p.json": ok},
			want:  []string{"agents/p.json: unexpected file"},
		},
		{
			name:  "unexpected directory",
			files: map[string]string{"policies/p.json": ok},
			want:  []string{"policies/: unexpected directory"},
		},
		{
			name:  "nested agent directory",
			files: map[string]string{"agents/a/b/p.json": ok},
			want:  []string{"agents/a/b/: unexpected directory"},
		},
		{
			name:  "duplicate name at one scope",
			files: map[string]string{"a.json": ok, "b.yaml": "name: ok\nenabled: false\nrules: [{match: z, severity: low}]\n"},
			want:  []string{`b.yaml: name: policy "ok" is already defined at this scope by a.json`},
		},
		{
			name: "duplicate name in an agent directory",
			files: map[string]string{
				"agents/bot/a.json": ok, "agents/bot/b.json": ok, "ok.json": ok, "agents/other/ok.json": ok,
			},
			want: []string{`agents/bot/b.json: name: policy "ok" is already defined at this scope by agents/bot/a.json`},
		},
		{
			name:  "invalid YAML",
			files: map[string]string{"bad.yaml": "name: [unclosed\n"},
			want:  []string{"bad.yaml: invalid YAML"},
		},
		{
			name:  "empty file",
			files: map[string]string{"empty.json": ""},
			want:  []string{"empty.json: the policy document is empty"},
		},
		{
			name:  "reserved name",
			files: map[string]string{"fs.json": `{"name": "FinancialSafetyPolicy", "rules": [{"match": "x", "severity": "low"}]}`},
			want:  []string{"fs.json: name: ", "reserved"},
		},
		{
			name:  "python-only regex",
			files: map[string]string{"re.yaml": "name: re\nrules: [{match: 'a(?=b)', severity: low}, {match: x, severity: low, context_requires: '(a)\\1'}]\n"},
			want:  []string{"re.yaml: rules[0].match: look-ahead", "re.yaml: rules[1].context_requires: "},
		},
		{
			name:  "too large",
			files: map[string]string{"big.json": `{"name": "big", "description": "` + strings.Repeat("x", 1<<20) + `"}`},
			want:  []string{"big.json: larger than 1048576 bytes"},
		},
		{
			name: "several files at once",
			files: map[string]string{
				"a.txt": "", "b.json": `{"name": "b"}`, "agents/x/c.yaml": "name: c\nrules: [{match: x, severity: none}]\n",
			},
			want: []string{"a.txt: not a policy file", "b.json: rules: ", "agents/x/c.yaml: rules[0].severity: "},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := bundles.LoadDir(writeTree(t, tt.files), "acme")
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
			var fe *bundles.FileError
			if !errors.As(err, &fe) || fe.Path == "" {
				t.Errorf("error is not a *FileError: %v", err)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.Contains(line, ": ") {
					t.Errorf("line without file: %q", line)
				}
			}
		})
	}

	t.Run("field errors are ValidationErrors", func(t *testing.T) {
		_, err := bundles.LoadDir(writeTree(t, map[string]string{"p.json": `{"name": "p", "rules": [{"match": "x", "severity": "bad"}]}`}), "acme")
		var ve *pdp.ValidationError
		if !errors.As(err, &ve) || ve.Field != "rules[0].severity" {
			t.Errorf("err = %v, ValidationError %+v", err, ve)
		}
	})
	t.Run("not a directory", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "file.json")
		_ = os.WriteFile(f, []byte("{}"), 0o644)
		if _, err := bundles.LoadDir(f, "acme"); err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("bad tenant id", func(t *testing.T) {
		if _, err := bundles.LoadDir(t.TempDir(), ""); err == nil {
			t.Error("no error")
		}
	})
	t.Run("symbolic links are followed", func(t *testing.T) {
		// The layout of a Kubernetes ConfigMap volume: visible names are
		// links into a hidden directory.
		dir := writeTree(t, map[string]string{"..data/p.json": ok})
		if err := os.Symlink(filepath.Join("..data", "p.json"), filepath.Join(dir, "p.json")); err != nil {
			t.Skip("symlinks unavailable:", err)
		}
		tp, err := bundles.LoadDir(dir, "acme")
		if err != nil || len(tp.Policies) != 1 {
			t.Errorf("policies %v, err %v", tp.Policies, err)
		}
	})
}
