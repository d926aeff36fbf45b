package registry_test

import (
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// TestReadOnly: every policy write is refused with a *ReadOnlyError naming
// the bundles, before any other check (a built-in name included), and the
// registry leaves the engine alone; tenants and keys still work.
func TestReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	writable := newEnvAt(t, path)
	tn, key := writable.tenant(store.TierEnterprise)
	writable.put(tn.ID, simple(t, "p", "", "stripe"))

	e := newEnvAt(t, path, registry.WithReadOnly("https://gh.example.com/v1/bundles/acme.tar.gz"))
	ctx := t.Context()
	for name, err := range map[string]error{
		"put":     func() error { _, err := e.reg.Put(ctx, tn.ID, simple(t, "q", "", "x")); return err }(),
		"replace": func() error { _, err := e.reg.Replace(ctx, tn.ID, "p", simple(t, "p", "", "x")); return err }(),
		"disable": func() error { _, err := e.reg.Disable(ctx, tn.ID, "", "p"); return err }(),
		"builtin": func() error { _, err := e.reg.Disable(ctx, tn.ID, "", "FinancialSafety"); return err }(),
	} {
		var roe *registry.ReadOnlyError
		if !errors.Is(err, registry.ErrReadOnly) || !errors.As(err, &roe) ||
			!strings.Contains(err.Error(), "bundle https://gh.example.com/v1/bundles/acme.tar.gz; this server is read-only") {
			t.Errorf("%s: %v, want the read-only error naming the bundle", name, err)
		}
	}
	if _, ok := e.eng.Revision(tn.ID); ok {
		t.Error("a read-only registry published the store's policies to the engine")
	}
	got, err := e.reg.Authenticate(ctx, key)
	if err != nil || got.ID != tn.ID {
		t.Fatalf("Authenticate on a read-only registry: %v %v", got.ID, err)
	}
	if _, ok := e.eng.Revision(tn.ID); ok {
		t.Error("Authenticate published the store's policies on a read-only registry")
	}
	if _, err := registry.New(e.st, e.eng, registry.WithReadOnly()); err == nil {
		t.Error("WithReadOnly without sources was accepted")
	}
}

// TestPublishHook: the hook sees every snapshot the engine is given, with
// its revision, after the engine has it.
func TestPublishHook(t *testing.T) {
	var mu sync.Mutex
	var seen []uint64
	var e *env
	e = newEnv(t, registry.WithPublishHook(func(tenant string, rev uint64) {
		if cur, ok := e.eng.Revision(tenant); !ok || cur != rev {
			t.Errorf("hook for revision %d ran before the engine had it (engine at %d)", rev, cur)
		}
		mu.Lock()
		seen = append(seen, rev)
		mu.Unlock()
	}))
	tn, _ := e.tenant(store.TierEnterprise)
	w1 := e.put(tn.ID, simple(t, "p", "", "stripe"))
	w2 := e.put(tn.ID, simple(t, "p", "", "paypal"))
	mu.Lock()
	defer mu.Unlock()
	if len(seen) < 3 || seen[len(seen)-2] != w1.Revision || seen[len(seen)-1] != w2.Revision {
		t.Errorf("hook saw revisions %v; want the tenant's creation, then %d and %d", seen, w1.Revision, w2.Revision)
	}
	if _, err := registry.New(e.st, e.eng, registry.WithPublishHook(nil)); err == nil {
		t.Error("a nil hook was accepted")
	}
}
