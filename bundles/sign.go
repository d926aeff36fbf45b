package bundles

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/open-policy-agent/opa/v1/bundle"
)

// DefaultKeyID is the key id a signing key gets when none is configured: the
// JWT header's kid, and the id a stock OPA's keys section must use
// (keys: {gatehouse: {key: ..., algorithm: ...}}) unless its bundle config
// names another with signing.keyid.
const DefaultKeyID = "gatehouse"

// Algorithm families OPA can verify (v1/keys). EdDSA is not among them.
var (
	rsaAlgs  = map[string]bool{"RS256": true, "RS384": true, "RS512": true, "PS256": true, "PS384": true, "PS512": true}
	ecCurves = map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}
	hmacLen  = map[string]int{"HS256": 32, "HS384": 48, "HS512": 64} // RFC 7518 3.2: at least the hash size
)

// minRSABits is the smallest RSA modulus accepted for signing.
const minRSABits = 2048

// SigningKey signs bundles with OPA's .signatures.json (one JWT over the
// hashes of every file, as `opa build --signing-key` writes it). Build it
// with NewSigningKey; the zero value is not usable.
type SigningKey struct {
	alg    string
	keyID  string
	key    string // what OPA's signer reads: canonical PKCS#8 PEM, or the HMAC secret
	verify string // the matching verification key: public key PEM, or the secret
	// fingerprint identifies the key in ETags without revealing it: a hash
	// of the public key, or of the secret.
	fingerprint [sha256.Size]byte
}

// NewSigningKey returns a signing key from key: a PEM private key (PKCS#1
// "RSA PRIVATE KEY", SEC 1 "EC PRIVATE KEY" or PKCS#8 "PRIVATE KEY") for
// the RS*/PS* and ES* algorithms, or the raw secret for HS*. alg is one of
// RS256 (the usual RSA choice), ES256 (EC P-256), HS256, or another OPA
// supports (RS/PS/ES/HS 384 and 512); empty alg is inferred from a PEM key
// (RSA → RS256, EC P-256/384/521 → ES256/384/512) and is required for a
// secret. keyID defaults to DefaultKeyID. Weak keys are refused: RSA under
// 2048 bits, HMAC secrets shorter than the hash (32 bytes for HS256).
func NewSigningKey(alg string, key []byte, keyID string) (*SigningKey, error) {
	if keyID == "" {
		keyID = DefaultKeyID
	}
	alg = strings.ToUpper(strings.TrimSpace(alg))
	if n, ok := hmacLen[alg]; ok {
		return newHMACKey(alg, key, keyID, n)
	}
	priv, err := parsePrivateKey(key)
	if err != nil {
		if alg == "" {
			return nil, fmt.Errorf("signing key: %w (an HMAC secret needs an explicit algorithm such as HS256)", err)
		}
		return nil, fmt.Errorf("signing key: %w", err)
	}
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		if alg == "" {
			alg = "RS256"
		}
		if !rsaAlgs[alg] {
			return nil, fmt.Errorf("signing key: an RSA key cannot sign %s; use RS256", alg)
		}
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("signing key: RSA key of %d bits is too small; use at least %d", k.N.BitLen(), minRSABits)
		}
	case *ecdsa.PrivateKey:
		curveAlg := ""
		for a, c := range ecCurves {
			if c == k.Curve {
				curveAlg = a
			}
		}
		if curveAlg == "" {
			return nil, errors.New("signing key: unsupported EC curve; use P-256 with ES256")
		}
		if alg == "" {
			alg = curveAlg
		}
		if alg != curveAlg {
			return nil, fmt.Errorf("signing key: an EC %s key signs %s, not %s", k.Curve.Params().Name, curveAlg, alg)
		}
	default:
		return nil, fmt.Errorf("signing key: unsupported private key type %T; use RSA or EC", priv)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(priv.(crypto.Signer).Public())
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	// Re-encoded so OPA's signer always sees "-----BEGIN" first and never
	// mistakes the key for a file name.
	return &SigningKey{
		alg:         alg,
		keyID:       keyID,
		key:         string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		verify:      string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})),
		fingerprint: sha256.Sum256(append([]byte(alg+"\x00"+keyID+"\x00"), pub...)),
	}, nil
}

func newHMACKey(alg string, secret []byte, keyID string, minLen int) (*SigningKey, error) {
	if len(secret) < minLen {
		return nil, fmt.Errorf("signing key: %s secret of %d bytes is too short; use at least %d random bytes", alg, len(secret), minLen)
	}
	s := string(secret)
	// OPA's SigningConfig reads a key that does not start with "-----BEGIN"
	// as a file path when such a file exists (and fails when the name cannot
	// be looked up, e.g. a secret of more than 255 bytes). A secret must
	// therefore not name anything on this machine, or the bundle would be
	// signed with the contents of that file.
	if !strings.HasPrefix(s, "-----BEGIN") {
		if _, err := os.Stat(s); !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("signing key: the %s secret is ambiguous: OPA would read it as a file path; use a secret without '/' of at most 255 bytes", alg)
		}
	}
	h := sha256.Sum256(secret)
	return &SigningKey{
		alg:         alg,
		keyID:       keyID,
		key:         s,
		verify:      s,
		fingerprint: sha256.Sum256(append([]byte(alg+"\x00"+keyID+"\x00"), h[:]...)),
	}, nil
}

// parsePrivateKey decodes the first PEM block of data as a private key.
func parsePrivateKey(data []byte) (any, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("not a PEM private key")
	}
	switch block.Type {
	case "RSA PRIVATE KEY":
		return x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(block.Bytes)
	case "PRIVATE KEY":
		return x509.ParsePKCS8PrivateKey(block.Bytes)
	case "PUBLIC KEY", "RSA PUBLIC KEY", "CERTIFICATE":
		return nil, fmt.Errorf("PEM block %q is a public key; signing needs the private key", block.Type)
	}
	return nil, fmt.Errorf("unsupported PEM block %q", block.Type)
}

// Algorithm returns the JWT algorithm, e.g. "RS256".
func (k *SigningKey) Algorithm() string { return k.alg }

// KeyID returns the JWT kid.
func (k *SigningKey) KeyID() string { return k.keyID }

// VerifyConfig returns the configuration that verifies this key's
// signatures: the public key for RSA and EC, the secret itself for HMAC.
func (k *SigningKey) VerifyConfig() *VerifyConfig {
	return &VerifyConfig{KeyID: k.keyID, Algorithm: k.alg, Key: k.verify}
}

// sign adds .signatures.json to b, using OPA's own signer so the hashes are
// exactly the ones OPA verifies (JSON files hashed after parsing, keys
// sorted; modules as raw bytes).
func (k *SigningKey) sign(b *bundle.Bundle) error {
	sc := bundle.NewSigningConfig(k.key, k.alg, "")
	if err := b.GenerateSignature(sc, k.keyID, true); err != nil {
		return fmt.Errorf("sign bundle: %w", err)
	}
	return nil
}

// VerifyConfig says how to verify a signed bundle, like the keys and
// signing sections of an OPA configuration.
type VerifyConfig struct {
	// KeyID names the key; default DefaultKeyID. It is used whatever kid
	// the JWT names, as OPA does with signing.keyid.
	KeyID string
	// Algorithm is the JWT algorithm, e.g. RS256, ES256 or HS256; empty is
	// inferred from a PEM public key (RSA → RS256, EC → ES256/384/512).
	Algorithm string
	// Key is the PEM public key (PKIX "PUBLIC KEY", PKCS#1 "RSA PUBLIC
	// KEY" or a "CERTIFICATE") for RSA and EC, or the HMAC secret.
	Key string
	// Scope, if set, must equal the JWT's scope claim.
	Scope string
}

// NewVerifyConfig returns the verification configuration for a public key
// (PEM) or HMAC secret, inferring the algorithm from a PEM key when alg is
// empty. keyID defaults to DefaultKeyID.
func NewVerifyConfig(alg string, key []byte, keyID string) (*VerifyConfig, error) {
	vc := &VerifyConfig{KeyID: keyID, Algorithm: alg, Key: string(key)}
	if _, err := vc.opa(); err != nil {
		return nil, err
	}
	return vc.withDefaults(), nil
}

func (vc *VerifyConfig) withDefaults() *VerifyConfig {
	c := *vc
	if c.KeyID == "" {
		c.KeyID = DefaultKeyID
	}
	c.Algorithm = strings.ToUpper(strings.TrimSpace(c.Algorithm))
	if c.Algorithm == "" {
		c.Algorithm = inferPublicAlg([]byte(c.Key))
	}
	return &c
}

// opa checks vc and returns OPA's verification configuration for it.
func (vc *VerifyConfig) opa() (*bundle.VerificationConfig, error) {
	c := vc.withDefaults()
	switch {
	case c.Key == "":
		return nil, errors.New("verification key: no key given")
	case c.Algorithm == "":
		return nil, errors.New("verification key: not a PEM public key (an HMAC secret needs an explicit algorithm such as HS256)")
	case hmacLen[c.Algorithm] > 0:
	case rsaAlgs[c.Algorithm] || ecCurves[c.Algorithm] != nil:
		pub, err := parsePublicKey([]byte(c.Key))
		if err != nil {
			return nil, fmt.Errorf("verification key: %w", err)
		}
		if err := matchPublic(c.Algorithm, pub); err != nil {
			return nil, fmt.Errorf("verification key: %w", err)
		}
	default:
		return nil, fmt.Errorf("verification key: unsupported algorithm %q", c.Algorithm)
	}
	keys := map[string]*bundle.KeyConfig{c.KeyID: {Key: c.Key, Algorithm: c.Algorithm, Scope: c.Scope}}
	return bundle.NewVerificationConfig(keys, c.KeyID, c.Scope, nil), nil
}

func parsePublicKey(data []byte) (any, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("not a PEM public key")
	}
	switch block.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		return cert.PublicKey, nil
	}
	return nil, fmt.Errorf("PEM block %q is not a public key or certificate", block.Type)
}

func inferPublicAlg(data []byte) string {
	pub, err := parsePublicKey(data)
	if err != nil {
		return ""
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return "RS256"
	case *ecdsa.PublicKey:
		for a, c := range ecCurves {
			if c == k.Curve {
				return a
			}
		}
	}
	return ""
}

func matchPublic(alg string, pub any) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if !rsaAlgs[alg] {
			return fmt.Errorf("an RSA key cannot verify %s", alg)
		}
	case *ecdsa.PublicKey:
		if ecCurves[alg] != k.Curve {
			return fmt.Errorf("an EC %s key cannot verify %s", k.Curve.Params().Name, alg)
		}
	default:
		return fmt.Errorf("unsupported public key type %T", pub)
	}
	return nil
}
