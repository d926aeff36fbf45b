package main

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/gatehouse-pdp/gatehouse/bundles"
)

// BundleConfig holds the bundle settings of `serve` (docs/api.md §B3): how the
// bundles it serves are signed, and the bundles a read-only server decides
// with.
type BundleConfig struct {
	// Sources, when set, make the server read-only: its policies come from
	// these bundle files or URLs (engine.LoadBundle) and policy writes are
	// refused; tenants and keys still come from the store. A source may be
	// written TENANT[+TENANT...]=LOCATION: its bundles may then define only
	// those tenants (parseSource). With more than one source, each must.
	Sources []string `json:"sources"`
	// BearerToken is sent as "Authorization: Bearer" to bundle URLs.
	BearerToken string `json:"bearer_token"`
	// VerifyKey is a PEM public key file: every bundle read from Sources
	// must be signed with its private key.
	VerifyKey string `json:"verify_key"`
	// SigningKey is a PEM private key file (RSA → RS256, EC P-256 → ES256)
	// that signs the bundles GET /v1/bundles serves.
	SigningKey string `json:"signing_key"`
	// SigningSecretFile holds an HS256 secret (at least 32 bytes) that
	// signs them instead.
	SigningSecretFile string `json:"signing_secret_file"`
	// KeyID is the signatures' kid (default "gatehouse"), the name a stock
	// OPA's keys section gives the verification key.
	KeyID string `json:"key_id"`
}

// validate reports every inconsistent bundle setting.
func (b BundleConfig) validate() error {
	var errs []error
	if b.SigningKey != "" && b.SigningSecretFile != "" {
		errs = append(errs, errors.New("bundle.signing_key and bundle.signing_secret_file: set one, not both"))
	}
	if len(b.Sources) == 0 && (b.BearerToken != "" || b.VerifyKey != "") {
		errs = append(errs, errors.New("bundle.bearer_token and bundle.verify_key apply to --bundle sources; none is set"))
	}
	for i, s := range b.Sources {
		tenants, loc := parseSource(s)
		switch {
		case strings.TrimSpace(loc) == "":
			errs = append(errs, fmt.Errorf("bundle.sources[%d]: empty", i))
		case tenants == nil && len(b.Sources) > 1:
			errs = append(errs, fmt.Errorf("bundle.sources[%d] %q: with several bundle sources, each must name the tenants it may define, as TENANT[+TENANT...]=%s", i, s, loc))
		}
	}
	return errors.Join(errs...)
}

// sourceTenants matches the TENANT[+TENANT...]= prefix of a bundle source.
// Tenant ids hold no ':' or '/', so a URL's query (?a=b) never matches.
var sourceTenants = regexp.MustCompile(`^([A-Za-z0-9_.@-]+(?:\+[A-Za-z0-9_.@-]+)*)=(.+)$`)

// parseSource splits a bundle source into the tenants it may define (nil:
// not restricted) and its location.
func parseSource(s string) (tenants []string, location string) {
	m := sourceTenants.FindStringSubmatch(s)
	if m == nil {
		return nil, s
	}
	return strings.Split(m[1], "+"), m[2]
}

// signingKey reads the configured signing key; nil when none is set.
func (b BundleConfig) signingKey() (*bundles.SigningKey, error) {
	switch {
	case b.SigningKey != "":
		pem, err := os.ReadFile(b.SigningKey)
		if err != nil {
			return nil, fmt.Errorf("bundle signing key: %w", err)
		}
		return bundles.NewSigningKey("", pem, b.KeyID)
	case b.SigningSecretFile != "":
		secret, err := readSecretFile(b.SigningSecretFile)
		if err != nil {
			return nil, fmt.Errorf("bundle signing secret: %w", err)
		}
		return bundles.NewSigningKey("HS256", secret, b.KeyID)
	}
	return nil, nil
}

// readSecretFile reads a secret, less one trailing newline (what `echo`
// and editors add).
func readSecretFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	return []byte(s), nil
}

// list is the codec of a repeatable setting: a repeated flag, or one value
// with commas, appends; the file key is a YAML list.
func list(f func(c *Config) *[]string) codec {
	return codec{
		set: func(c *Config, v string) error {
			var out []string
			for part := range strings.SplitSeq(v, ",") {
				if part = strings.TrimSpace(part); part != "" {
					out = append(out, part)
				}
			}
			*f(c) = out
			return nil
		},
		display: func(c Config) string { return strings.Join(*f(&c), ",") },
	}
}

// Bundle settings of serve.
var (
	setBundle = func() *setting {
		s := newSetting("bundle", "bundle.sources", "file|url",
			"read-only mode: decide with this bundle (a file, or a bundle service URL polled like OPA does), optionally as TENANT[+TENANT...]=LOCATION to allow its bundles only those tenants (required with several sources); repeatable or comma-separated. Policy writes are refused; tenants and keys still come from the store",
			list(func(c *Config) *[]string { return &c.Bundle.Sources }))
		s.repeatable = true
		return s
	}()
	setBundleBearerToken = newSetting("bundle-bearer-token", "bundle.bearer_token", "token",
		"bearer token for --bundle URLs, e.g. the tenant's API key on another Gatehouse; prefer the env var",
		str(func(c *Config) *string { return &c.Bundle.BearerToken }))
	setBundleVerifyKey = newSetting("bundle-verify-key", "bundle.verify_key", "file",
		"PEM public key: --bundle bundles must carry a signature it verifies",
		str(func(c *Config) *string { return &c.Bundle.VerifyKey }))
	setBundleSigningKey = newSetting("bundle-signing-key", "bundle.signing_key", "file",
		"PEM private key (RSA: RS256, EC P-256: ES256) signing the bundles GET /v1/bundles/{tenant}.tar.gz serves",
		str(func(c *Config) *string { return &c.Bundle.SigningKey }))
	setBundleSigningSecretFile = newSetting("bundle-signing-secret-file", "bundle.signing_secret_file", "file",
		"file holding an HS256 secret (≥ 32 bytes) signing served bundles instead of a key pair",
		str(func(c *Config) *string { return &c.Bundle.SigningSecretFile }))
	setBundleKeyID = newSetting("bundle-key-id", "bundle.key_id", "id",
		"key id (JWT kid) of bundle signatures; a stock OPA names its verification key so (default gatehouse)",
		str(func(c *Config) *string { return &c.Bundle.KeyID }))
)
