package bundles_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/gatehouse-pdp/gatehouse/bundles"
)

type testKey struct {
	alg         string
	private     []byte // PEM, or the secret
	public      []byte // PEM, or the secret
	inferredAlg bool   // alg can be left out
}

var (
	keysOnce sync.Once
	keys     map[string]testKey
)

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// testKeys generates one key per algorithm, once per test binary.
func testKeys(t *testing.T) map[string]testKey {
	t.Helper()
	keysOnce.Do(func() {
		rk, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		ecDER, _ := x509.MarshalECPrivateKey(ek)
		rsaPub, _ := x509.MarshalPKIXPublicKey(&rk.PublicKey)
		ecPub, _ := x509.MarshalPKIXPublicKey(&ek.PublicKey)
		secret := []byte("0123456789abcdef0123456789abcdef-gatehouse")
		keys = map[string]testKey{
			"RS256": {"RS256", pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk)), pemBlock("PUBLIC KEY", rsaPub), true},
			"ES256": {"ES256", pemBlock("EC PRIVATE KEY", ecDER), pemBlock("PUBLIC KEY", ecPub), true},
			"HS256": {"HS256", secret, secret, false},
		}
	})
	return keys
}

// rewrite returns tarball with edit applied to its files (name → content;
// a nil result drops the file).
func rewrite(t *testing.T, tarball []byte, edit func(files map[string][]byte)) []byte {
	t.Helper()
	hdrs, files, _ := tarEntries(t, tarball)
	edit(files)
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	written := map[string]bool{}
	write := func(name string, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write(data)
		written[name] = true
	}
	for _, h := range hdrs {
		if data := files[h.Name]; data != nil {
			write(h.Name, data)
		}
	}
	for name, data := range files {
		if !written[name] && data != nil {
			write(name, data)
		}
	}
	_ = tw.Close()
	_ = gz.Close()
	return buf.Bytes()
}

func TestSigningRoundTrip(t *testing.T) {
	tp := sampleTenant(t, "acme", 11, "")
	for alg, k := range testKeys(t) {
		t.Run(alg, func(t *testing.T) {
			sk, err := bundles.NewSigningKey(alg, k.private, "")
			if err != nil {
				t.Fatal(err)
			}
			if sk.Algorithm() != alg || sk.KeyID() != bundles.DefaultKeyID {
				t.Errorf("alg %s kid %s", sk.Algorithm(), sk.KeyID())
			}
			built := mustBuild(t, tp, bundles.WithSigningKey(sk))
			_, files, _ := tarEntries(t, built.Bytes)
			if !strings.Contains(string(files["/.signatures.json"]), `"signatures":["`) {
				t.Fatalf(".signatures.json = %s", files["/.signatures.json"])
			}

			// The key's own verification config, and one made from the
			// public half alone.
			fromPublic, err := bundles.NewVerifyConfig(map[bool]string{true: "", false: alg}[k.inferredAlg], k.public, "")
			if err != nil {
				t.Fatal(err)
			}
			for _, vc := range []*bundles.VerifyConfig{sk.VerifyConfig(), fromPublic} {
				b, err := bundles.Load(bytes.NewReader(built.Bytes), vc)
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if b.Manifest.Revision != "11" {
					t.Errorf("revision %q", b.Manifest.Revision)
				}
			}

			// Stock OPA's reader, configured as opa run would be from
			// keys: {gatehouse: {key, algorithm}} and the JWT's kid.
			vc := bundle.NewVerificationConfig(map[string]*bundle.KeyConfig{
				bundles.DefaultKeyID: {Key: string(k.public), Algorithm: alg},
			}, "", "", nil)
			if _, err := bundle.NewReader(bytes.NewReader(built.Bytes)).WithBundleVerificationConfig(vc).Read(); err != nil {
				t.Errorf("OPA reader: %v", err)
			}

			// Without a verification config, signatures are not checked.
			if _, err := bundles.Load(bytes.NewReader(built.Bytes), nil); err != nil {
				t.Errorf("Load unverified: %v", err)
			}

			tampered := []struct {
				name string
				edit func(map[string][]byte)
				want string
			}{
				{"module changed", func(f map[string][]byte) {
					p := "/gatehouse/decision.rego"
					f[p] = bytes.Replace(f[p], []byte(`"critical": 4`), []byte(`"critical": 1`), 1)
				}, "digest mismatch"},
				{"data changed", func(f map[string][]byte) {
					f["/data.json"] = bytes.Replace(f["/data.json"], []byte(`"hard_limit":100000`), []byte(`"hard_limit":1e12`), 1)
				}, "digest mismatch"},
				{"manifest changed", func(f map[string][]byte) {
					f["/.manifest"] = bytes.Replace(f["/.manifest"], []byte(`"revision":"11"`), []byte(`"revision":"12"`), 1)
				}, "digest mismatch"},
				{"module added", func(f map[string][]byte) {
					f["/gatehouse/evil.rego"] = []byte("package gatehouse.evil\n\nx := 1\n")
				}, "not included in bundle signature"},
				{"module removed", func(f map[string][]byte) {
					f["/gatehouse/text.rego"] = nil
				}, "not found in the target bundle"},
				{"signature removed", func(f map[string][]byte) { f["/.signatures.json"] = nil }, "missing .signatures.json"},
			}
			for _, tt := range tampered {
				t.Run(tt.name, func(t *testing.T) {
					bad := rewrite(t, built.Bytes, tt.edit)
					if _, err := bundles.Load(bytes.NewReader(bad), sk.VerifyConfig()); err == nil || !strings.Contains(err.Error(), tt.want) {
						t.Errorf("err = %v, want %q", err, tt.want)
					}
				})
			}
		})
	}

	t.Run("wrong key", func(t *testing.T) {
		ks := testKeys(t)
		rs, _ := bundles.NewSigningKey("RS256", ks["RS256"].private, "")
		built := mustBuild(t, tp, bundles.WithSigningKey(rs))
		other, _ := rsa.GenerateKey(rand.Reader, 2048)
		der, _ := x509.MarshalPKIXPublicKey(&other.PublicKey)
		vc, err := bundles.NewVerifyConfig("", pemBlock("PUBLIC KEY", der), "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bundles.Load(bytes.NewReader(built.Bytes), vc); err == nil || !strings.Contains(err.Error(), "verify") {
			t.Errorf("err = %v", err)
		}
		hs, _ := bundles.NewVerifyConfig("HS256", []byte(strings.Repeat("z", 32)), "")
		if _, err := bundles.Load(bytes.NewReader(built.Bytes), hs); err == nil {
			t.Error("HS256 config accepted an RS256 signature")
		}
	})
	t.Run("key id", func(t *testing.T) {
		ks := testKeys(t)
		es, _ := bundles.NewSigningKey("", ks["ES256"].private, "prod-2026")
		built := mustBuild(t, tp, bundles.WithSigningKey(es))
		vc, _ := bundles.NewVerifyConfig("ES256", ks["ES256"].public, "prod-2026")
		if _, err := bundles.Load(bytes.NewReader(built.Bytes), vc); err != nil {
			t.Errorf("Load: %v", err)
		}
		// OPA picks the key by the JWT's kid when its config names none.
		opaVC := bundle.NewVerificationConfig(map[string]*bundle.KeyConfig{
			"prod-2026": {Key: string(ks["ES256"].public), Algorithm: "ES256"},
		}, "", "", nil)
		if _, err := bundle.NewReader(bytes.NewReader(built.Bytes)).WithBundleVerificationConfig(opaVC).Read(); err != nil {
			t.Errorf("OPA reader: %v", err)
		}
	})
	t.Run("unsigned bundle with verification", func(t *testing.T) {
		ks := testKeys(t)
		vc, _ := bundles.NewVerifyConfig("RS256", ks["RS256"].public, "")
		if _, err := bundles.Load(bytes.NewReader(mustBuild(t, tp).Bytes), vc); err == nil || !strings.Contains(err.Error(), "missing .signatures.json") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestSigningKeyErrors(t *testing.T) {
	ks := testKeys(t)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalPKCS8PrivateKey(p384)
	existing := filepath.Join(t.TempDir(), strings.Repeat("f", 40))
	if err := os.WriteFile(existing, []byte("file contents"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		alg  string
		key  []byte
		want string
	}{
		{"RSA too small", "", pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(small)), "too small"},
		{"EC key for RS256", "RS256", ks["ES256"].private, "signs ES256, not RS256"},
		{"RSA key for ES256", "ES256", ks["RS256"].private, "cannot sign ES256"},
		{"P-384 key for ES256", "ES256", pemBlock("PRIVATE KEY", p384DER), "signs ES384, not ES256"},
		{"public key", "", ks["RS256"].public, "signing needs the private key"},
		{"secret without algorithm", "", []byte(strings.Repeat("s", 40)), "needs an explicit algorithm"},
		{"short secret", "HS256", []byte("short"), "too short"},
		{"secret naming a file", "HS256", []byte(existing), "ambiguous"},
		{"unknown algorithm", "EdDSA", ks["RS256"].private, "cannot sign EDDSA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := bundles.NewSigningKey(tt.alg, tt.key, "")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}

	verifyTests := []struct {
		name string
		alg  string
		key  []byte
		want string
	}{
		{"no key", "RS256", nil, "no key"},
		{"secret without algorithm", "", []byte("secret"), "explicit algorithm"},
		{"EC key for RS256", "RS256", ks["ES256"].public, "cannot verify RS256"},
		{"garbage PEM", "RS256", []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), "verification key"},
		{"unsupported algorithm", "none", []byte("x"), "unsupported algorithm"},
	}
	for _, tt := range verifyTests {
		t.Run("verify "+tt.name, func(t *testing.T) {
			_, err := bundles.NewVerifyConfig(tt.alg, tt.key, "")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
