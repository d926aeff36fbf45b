package bundles

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/util"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/pdp"
	library "github.com/gatehouse-pdp/gatehouse/rego"
)

// Bundle file names, without the leading "/" they carry inside the tarball.
const (
	manifestFile   = ".manifest"
	signaturesFile = ".signatures.json"
	dataFile       = "data.json"
)

// maxTenantIDLen bounds a tenant id; registry ids are far shorter.
const maxTenantIDLen = 128

// Built is one built bundle. Its fields are read-only: the Cache hands the
// same Built to every request.
type Built struct {
	// TenantID is the tenant the bundle holds.
	TenantID string
	// TenantRevision is the pdp.TenantPolicies revision it was built from.
	TenantRevision uint64
	// Revision is the manifest revision (see the package comment).
	Revision string
	// ETag is the quoted entity tag to serve it under (see the package
	// comment): the same policies, library, config and signing key give the
	// same ETag on every replica.
	ETag string
	// Bytes is the gzip tarball.
	Bytes []byte
}

// Option configures Build.
type Option func(*options)

type options struct {
	signer          *SigningKey
	revision        string
	contentRevision bool
}

// WithSigningKey signs the bundle (.signatures.json) with k; nil leaves it
// unsigned.
func WithSigningKey(k *SigningKey) Option {
	return func(o *options) { o.signer = k }
}

// WithRevision sets the manifest revision instead of the decimal
// TenantPolicies.Revision.
func WithRevision(rev string) Option {
	return func(o *options) { o.revision = rev }
}

// WithContentRevision sets the manifest revision to "sha256:" and the hex
// SHA-256 of the bundle's content (data.json and every module, not the
// manifest or signatures), so a bundle changes revision exactly when what it
// decides changes. BuildFromDir uses it: files carry no revision number.
func WithContentRevision() Option {
	return func(o *options) { o.contentRevision = true }
}

// Build returns the OPA bundle of one tenant: the library, one module per
// enabled policy, data.json with data.gatehouse.config (config, normally
// engine.Config.ConfigData(); nil leaves the library's defaults, which are
// the engine's) and data.gatehouse.tenants[tenant] (adapter.TenantData with
// every agent), and a manifest with revision, roots ["gatehouse"],
// rego_version 1 and metadata {gatehouse_version, tenant_id}.
//
// The tarball is deterministic: the same input gives the same bytes (entries
// sorted, fixed modes and epoch mtimes, gzip header without name or time,
// JSON with sorted keys), except that ES* signatures are randomized by
// design; the ETag does not depend on them.
func Build(tp pdp.TenantPolicies, config map[string]any, opts ...Option) (*Built, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if err := checkTenantID(tp.TenantID); err != nil {
		return nil, err
	}
	files, err := contentFiles(&tp, config)
	if err != nil {
		return nil, err
	}

	revision := strconv.FormatUint(tp.Revision, 10)
	switch {
	case o.revision != "":
		revision = o.revision
	case o.contentRevision:
		revision = "sha256:" + hex.EncodeToString(digest(files))
	}
	if !utf8.ValidString(revision) || len(revision) > 256 {
		return nil, errors.New("bundle revision must be valid UTF-8 of at most 256 bytes")
	}
	roots := []string{adapter.Root}
	regoVersion := 1
	manifest := bundle.Manifest{
		Revision:    revision,
		Roots:       &roots,
		RegoVersion: &regoVersion,
		Metadata: map[string]any{
			"gatehouse_version": pdp.Version,
			"tenant_id":         tp.TenantID,
		},
	}
	if files[manifestFile], err = marshalJSON(manifest); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}

	// The ETag covers everything but the signature, plus which key signs:
	// stable across replicas and rebuilds even when signatures are not.
	etagHash := sha256.New()
	etagHash.Write(digest(files))
	if o.signer != nil {
		etagHash.Write(o.signer.fingerprint[:])
		if files[signaturesFile], err = signatures(files, manifest, o.signer); err != nil {
			return nil, err
		}
	}
	tarball, err := writeTarGz(files)
	if err != nil {
		return nil, err
	}
	return &Built{
		TenantID:       tp.TenantID,
		TenantRevision: tp.Revision,
		Revision:       revision,
		ETag:           `"` + etagRevision(revision) + "-" + hex.EncodeToString(etagHash.Sum(nil))[:16] + `"`,
		Bytes:          tarball,
	}, nil
}

func checkTenantID(id string) error {
	if id == "" || len(id) > maxTenantIDLen || !utf8.ValidString(id) || strings.ContainsFunc(id, unicode.IsControl) {
		return fmt.Errorf("tenant id %q: must be 1-%d printable characters", id, maxTenantIDLen)
	}
	return nil
}

// contentFiles returns the bundle's files other than the manifest and the
// signatures, by path without the leading "/".
func contentFiles(tp *pdp.TenantPolicies, config map[string]any) (map[string][]byte, error) {
	files := map[string][]byte{}
	for p, src := range library.Sources() {
		files[p] = []byte(src)
	}
	// Registry and directory policies are validated already; validating a
	// copy again keeps a bundle from ever carrying a policy the API would
	// refuse, and costs one regexp compilation per rule per revision.
	// The policies' rules go into data.json (policy as data), which the
	// library evaluates; the bundle ships no module per policy.
	norm := *tp
	norm.Policies = make([]pdp.Policy, len(tp.Policies))
	seen := map[[2]string]bool{}
	for i, p := range tp.Policies {
		if p.Enabled {
			if err := adapter.Validate(&p); err != nil {
				return nil, fmt.Errorf("policy %q (agent %q): %w", p.Name, p.AgentID, err)
			}
			if k := [2]string{p.AgentID, p.Name}; seen[k] {
				return nil, fmt.Errorf("policy %q (agent %q): two enabled policies with this name at one scope", p.Name, p.AgentID)
			} else {
				seen[k] = true
			}
		}
		norm.Policies[i] = p
	}
	if config == nil {
		config = map[string]any{}
	}
	data := map[string]any{adapter.Root: map[string]any{
		"config":  config,
		"tenants": map[string]any{tp.TenantID: adapter.TenantData(&norm, "", true)},
	}}
	var err error
	if files[dataFile], err = marshalJSON(data); err != nil {
		return nil, fmt.Errorf("data.json: %w", err)
	}
	return files, nil
}

// marshalJSON encodes v compactly with sorted keys (encoding/json sorts map
// keys) and without HTML escaping, plus a final newline.
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// digest hashes files (path, length, bytes) in path order.
func digest(files map[string][]byte) []byte {
	h := sha256.New()
	for _, name := range slices.Sorted(maps.Keys(files)) {
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(files[name]))
		h.Write(files[name])
	}
	return h.Sum(nil)
}

// signatures returns the .signatures.json of files. The bundle handed to
// OPA's signer holds data.json and the manifest as parsed JSON, as OPA's
// reader will hash them.
func signatures(files map[string][]byte, manifest bundle.Manifest, k *SigningKey) ([]byte, error) {
	b := bundle.Bundle{Manifest: manifest}
	if err := util.UnmarshalJSON(files[dataFile], &b.Data); err != nil {
		return nil, fmt.Errorf("sign bundle: %w", err)
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if strings.HasSuffix(name, ".rego") {
			b.Modules = append(b.Modules, bundle.ModuleFile{Path: "/" + name, URL: "/" + name, Raw: files[name]})
		}
	}
	if err := k.sign(&b); err != nil {
		return nil, err
	}
	return marshalJSON(b.Signatures)
}

// epoch is every entry's mtime: a build must not depend on the clock.
var epoch = time.Unix(0, 0)

// writeTarGz writes files as a gzip tarball in path order, each named with a
// leading "/" as `opa build` does.
func writeTarGz(files map[string][]byte) ([]byte, error) {
	var buf bytes.Buffer
	gz, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(gz)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		hdr := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     "/" + name,
			Mode:     0o644,
			Size:     int64(len(files[name])),
			ModTime:  epoch,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("write %s: %w", name, err)
		}
		if _, err := tw.Write(files[name]); err != nil {
			return nil, fmt.Errorf("write %s: %w", name, err)
		}
	}
	if err := errors.Join(tw.Close(), gz.Close()); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// etagRevision returns rev as ETag characters: printable ASCII without the
// quote and the comma (which separates ETags in If-None-Match), at most 80
// of them. Uniqueness comes from the hash that follows it.
func etagRevision(rev string) string {
	var b strings.Builder
	for _, r := range rev {
		if b.Len() == 80 {
			break
		}
		if r > 0x20 && r < 0x7f && r != '"' && r != ',' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}
