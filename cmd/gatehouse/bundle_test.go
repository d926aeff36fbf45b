package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-pdp/gatehouse/bundles"
)

// TestBundleBuild builds the example policy tree unsigned, signed with an
// EC key and with an HMAC secret, and reads each back as `serve --bundle`
// would, signatures verified.
func TestBundleBuild(t *testing.T) {
	dir := t.TempDir()
	policies := filepath.Join("..", "..", "examples", "opa-test", "policies")

	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalECPrivateKey(ec)
	pubDER, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	keyFile := filepath.Join(dir, "key.pem")
	secretFile := filepath.Join(dir, "secret")
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
	_ = os.WriteFile(secretFile, []byte(strings.Repeat("s3cr3t-", 6)+"\n"), 0o600)
	ecVerify, err := bundles.NewVerifyConfig("", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), "k1")
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		args   []string
		verify *bundles.VerifyConfig
	}{
		{"unsigned", nil, nil},
		{"ES256", []string{"--signing-key", keyFile, "--key-id", "k1"}, ecVerify},
		{"HS256", []string{"--signing-secret-file", secretFile, "--signing-alg", "HS256"},
			&bundles.VerifyConfig{Algorithm: "HS256", Key: strings.Repeat("s3cr3t-", 6)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, tc.name+".tar.gz")
			args := append([]string{"bundle", "build", "--policies", policies, "--tenant", "acme", "--out", out,
				"--financial-hard-limit", "5000", "--financial-approval-threshold", "500"}, tc.args...)
			code, stdout, stderr := runCmd(t, nil, args...)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			var line bundleBuilt
			if err := json.Unmarshal([]byte(stdout), &line); err != nil || line.TenantID != "acme" ||
				!strings.HasPrefix(line.Revision, "sha256:") || line.Signed != (tc.verify != nil) {
				t.Fatalf("stdout %q: %v", stdout, err)
			}
			data, err := os.ReadFile(out)
			if err != nil || len(data) != line.Bytes {
				t.Fatalf("bundle file: %v (%d bytes, line says %d)", err, len(data), line.Bytes)
			}
			b, err := bundles.Load(bytes.NewReader(data), tc.verify)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			l, err := bundles.FromBundle(b)
			if err != nil || len(l.TenantIDs) != 1 || l.TenantIDs[0] != "acme" {
				t.Fatalf("FromBundle: %v %v", l, err)
			}
			fs := l.Data["gatehouse"].(map[string]any)["config"].(map[string]any)["financial_safety"].(map[string]any)
			if fs["hard_limit"].(json.Number) != "5000" || fs["approval_threshold"].(json.Number) != "500" {
				t.Errorf("thresholds in the bundle: %v", fs)
			}
		})
	}
}

// TestBundleBuildRefuses: invalid documents exit 1 with one line per
// problem naming the file and the field; bad usage exits 2.
func TestBundleBuildRefuses(t *testing.T) {
	dir := t.TempDir()
	_ = os.MkdirAll(filepath.Join(dir, "agents", "bot"), 0o755)
	_ = os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("name: a\nrules:\n  - match: \"(?=x)\"\n    severity: huge\n"), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "agents", "bot", "b.json"), []byte(`{"name":"b","rules":[]}`), 0o644)
	out := filepath.Join(t.TempDir(), "b.tar.gz")
	code, _, stderr := runCmd(t, nil, "bundle", "build", "--policies", dir, "--tenant", "acme", "--out", out)
	if code != exitFail {
		t.Fatalf("exit %d, want 1: %s", code, stderr)
	}
	for _, want := range []string{
		"a.yaml: rules[0].match: look-ahead (?=...) is not supported\n",
		"a.yaml: rules[0].severity: must be one of",
		"agents/bot/b.json: rules: ",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a bundle was written despite the errors")
	}
	for _, args := range [][]string{
		{"bundle", "build", "--tenant", "acme"},
		{"bundle", "build", "--policies", dir, "--tenant", "acme", "--out", out, "--signing-key", "k", "--signing-secret-file", "s"},
		{"bundle"},
	} {
		if code, _, _ := runCmd(t, nil, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if code, stdout, _ := runCmd(t, nil, "bundle", "--help"); code != exitOK || !strings.Contains(stdout, "--signing-key") {
		t.Errorf("bundle --help: exit %d\n%s", code, stdout)
	}
}

// TestBundleSettings: --bundle repeats and splits on commas, and the
// bundle settings are checked together.
func TestBundleSettings(t *testing.T) {
	c, err := loadServe(t, []string{"--bundle", "a=a.tar.gz", "--bundle", "t=https://x/v1/bundles/t.tar.gz?x=y,b+c=b.tar.gz"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a=a.tar.gz", "t=https://x/v1/bundles/t.tar.gz?x=y", "b+c=b.tar.gz"}; strings.Join(c.Bundle.Sources, " ") != strings.Join(want, " ") {
		t.Errorf("sources %q, want %q", c.Bundle.Sources, want)
	}
	_, err = loadServe(t, []string{"--bundle", "a.tar.gz,t=b.tar.gz"}, nil)
	if err == nil || !strings.Contains(err.Error(), "each must name the tenants") {
		t.Errorf("two sources, one without tenants: %v", err)
	}
	c, err = loadServe(t, nil, map[string]string{"GATEHOUSE_BUNDLE": "x.tar.gz", "GATEHOUSE_BUNDLE_KEY_ID": "k"})
	if err != nil || len(c.Bundle.Sources) != 1 || c.Bundle.KeyID != "k" {
		t.Errorf("env: %+v %v", c.Bundle, err)
	}
	_, err = loadServe(t, []string{"--bundle-signing-key", "k.pem", "--bundle-signing-secret-file", "s", "--bundle-verify-key", "v.pem"}, nil)
	if err == nil || !strings.Contains(err.Error(), "set one, not both") || !strings.Contains(err.Error(), "bundle.verify_key") {
		t.Errorf("conflicting bundle settings: %v", err)
	}
}

// TestParseSource: the tenant prefix is recognised only as tenant ids
// followed by '=', so URLs with query strings stay whole.
func TestParseSource(t *testing.T) {
	for in, want := range map[string]string{
		"acme=./a.tar.gz":                    "[acme] ./a.tar.gz",
		"acme+globex=https://gh/v1/b.tar.gz": "[acme globex] https://gh/v1/b.tar.gz",
		"https://gh/v1/bundles/a.tar.gz?x=y": "[] https://gh/v1/bundles/a.tar.gz?x=y",
		"./dir/a=b.tar.gz":                   "[] ./dir/a=b.tar.gz",
		"bundle.tar.gz":                      "[] bundle.tar.gz",
	} {
		tenants, loc := parseSource(in)
		if got := fmt.Sprintf("%v %s", tenants, loc); got != want {
			t.Errorf("parseSource(%q) = %s, want %s", in, got, want)
		}
	}
}
