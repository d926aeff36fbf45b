package bundles

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/bundles/loaded"
)

// DefaultMaxBytes bounds a bundle read by Load: its compressed size and,
// separately, the total size of its files once decompressed. A tenant with
// hundreds of policies needs well under 1 MiB.
const DefaultMaxBytes = 64 << 20

// ErrTooLarge is returned for a bundle over the size limit.
var ErrTooLarge = errors.New("bundle too large")

// LoadOption configures Load.
type LoadOption func(*loadOptions)

type loadOptions struct {
	maxBytes int64
}

// WithMaxBytes sets Load's size limit (default DefaultMaxBytes).
func WithMaxBytes(n int64) LoadOption {
	return func(o *loadOptions) {
		if n > 0 {
			o.maxBytes = n
		}
	}
}

// Load reads a bundle tarball with OPA's bundle reader (Rego v1, annotations
// processed). With verify set, the bundle must carry a .signatures.json whose
// JWT verifies with that key and whose hashes match every file, exactly as
// a stock OPA with a signing configuration checks it; with verify nil,
// signatures are not checked at all. The compressed input and the total of
// the decompressed files are each bounded by the size limit, so a
// decompression bomb is refused before OPA buffers it.
func Load(r io.Reader, verify *VerifyConfig, opts ...LoadOption) (*bundle.Bundle, error) {
	o := loadOptions{maxBytes: DefaultMaxBytes}
	for _, opt := range opts {
		opt(&o)
	}
	data, err := io.ReadAll(io.LimitReader(r, o.maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	if int64(len(data)) > o.maxBytes {
		return nil, fmt.Errorf("%w: over %d bytes compressed", ErrTooLarge, o.maxBytes)
	}
	if err := checkExpandedSize(data, o.maxBytes); err != nil {
		return nil, err
	}
	reader := bundle.NewReader(bytes.NewReader(data)).
		WithRegoVersion(ast.RegoV1).
		WithProcessAnnotations(true).
		WithSizeLimitBytes(o.maxBytes + 1) // OPA's limit is exclusive
	if verify == nil {
		reader = reader.WithSkipBundleVerification(true)
	} else {
		vc, err := verify.opa()
		if err != nil {
			return nil, err
		}
		reader = reader.WithBundleVerificationConfig(vc)
	}
	b, err := reader.Read()
	if err != nil {
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	return &b, nil
}

// checkExpandedSize walks the tarball's headers and fails when its files
// add up to more than limit bytes.
func checkExpandedSize(data []byte, limit int64) error {
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("read bundle: %w", err)
	}
	tr := tar.NewReader(gz)
	var total int64
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read bundle: %w", err)
		}
		if total += hdr.Size; total > limit || hdr.Size < 0 {
			return fmt.Errorf("%w: files add up to over %d bytes", ErrTooLarge, limit)
		}
	}
}

// Loaded is a bundle ready for an engine (loaded.Bundle; the type lives
// there so that the engine does not import this package).
type Loaded = loaded.Bundle

// FromBundle checks that b is a Gatehouse bundle — roots exactly
// ["gatehouse"], the decision package present, at least one tenant — and
// returns it as a Loaded. The manifest roots keep a bundle from reaching
// outside data.gatehouse (OPA's reader has checked that every module and
// document lies under them).
func FromBundle(b *bundle.Bundle) (*Loaded, error) {
	if b.Manifest.Roots == nil || !slices.Equal(*b.Manifest.Roots, []string{adapter.Root}) {
		var roots any = "none"
		if b.Manifest.Roots != nil {
			roots = *b.Manifest.Roots
		}
		return nil, fmt.Errorf("not a Gatehouse bundle: manifest roots are %v, want [%s]", roots, adapter.Root)
	}
	l := &Loaded{
		Revision: b.Manifest.Revision,
		Modules:  make(map[string]*ast.Module, len(b.Modules)),
		Data:     b.Data,
	}
	decision := ast.MustParseRef(strings.TrimSuffix(adapter.DecisionQuery, ".result"))
	hasDecision := false
	for _, m := range b.Modules {
		if m.Parsed == nil {
			return nil, fmt.Errorf("module %s: not parsed", m.Path)
		}
		l.Modules[strings.TrimPrefix(m.Path, "/")] = m.Parsed
		hasDecision = hasDecision || m.Parsed.Package.Path.Equal(decision)
	}
	if !hasDecision {
		return nil, fmt.Errorf("not a Gatehouse bundle: no module of package %v", decision)
	}
	root, _ := l.Data[adapter.Root].(map[string]any)
	tenants, _ := root["tenants"].(map[string]any)
	if len(tenants) == 0 {
		return nil, fmt.Errorf("not a Gatehouse bundle: data.%s.tenants holds no tenant", adapter.Root)
	}
	l.TenantIDs = slices.Sorted(maps.Keys(tenants))
	return l, nil
}
