package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/sqlite"
)

// countingStore is a real store that counts key lookups and can be told to
// fail TenantPolicies, to observe the cache and the fail-closed path. It
// wraps the SQLite store; nothing is mocked.
type countingStore struct {
	store.Store
	keyLookups   atomic.Int64
	failSnapshot atomic.Bool
}

func (s *countingStore) TenantByKeyHash(ctx context.Context, hash string) (store.Tenant, store.APIKey, error) {
	s.keyLookups.Add(1)
	return s.Store.TenantByKeyHash(ctx, hash)
}

var errInjected = errors.New("injected snapshot failure")

func (s *countingStore) TenantPolicies(ctx context.Context, id string) (pdp.TenantPolicies, error) {
	if s.failSnapshot.Load() {
		return pdp.TenantPolicies{}, errInjected
	}
	return s.Store.TenantPolicies(ctx, id)
}

type env struct {
	t   *testing.T
	st  *countingStore
	eng *engine.Engine
	reg *registry.Registry
}

func openStore(t *testing.T, path string) store.Store {
	t.Helper()
	db, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// newEnvAt builds a registry with its own engine on the database at path,
// and loads it.
func newEnvAt(t *testing.T, path string, opts ...registry.Option) *env {
	t.Helper()
	st := &countingStore{Store: openStore(t, path)}
	eng, err := engine.New(engine.Config{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(st, eng, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, st: st, eng: eng, reg: reg}
}

func newEnv(t *testing.T, opts ...registry.Option) *env {
	return newEnvAt(t, filepath.Join(t.TempDir(), "gatehouse.db"), opts...)
}

func (e *env) tenant(tier store.Tier) (store.Tenant, string) {
	e.t.Helper()
	tn, key, err := e.reg.CreateTenant(e.t.Context(), registry.NewTenant{Name: "acme " + string(tier), Tier: tier})
	if err != nil {
		e.t.Fatalf("CreateTenant(%s): %v", tier, err)
	}
	return tn, key
}

// doc decodes a JSON policy document.
func doc(t *testing.T, js string) *adapter.Document {
	t.Helper()
	d, err := adapter.Decode([]byte(js), adapter.FormatJSON)
	if err != nil {
		t.Fatalf("Decode(%s): %v", js, err)
	}
	return d
}

// simple is a valid one-rule document named name, at agent's scope.
func simple(t *testing.T, name, agent, match string) *adapter.Document {
	t.Helper()
	m := map[string]any{"name": name, "rules": []any{map[string]any{"match": match, "severity": "critical"}}}
	if agent != "" {
		m["agent_id"] = agent
	}
	b, _ := json.Marshal(m)
	return doc(t, string(b))
}

func (e *env) put(tenantID string, d *adapter.Document) registry.Write {
	e.t.Helper()
	w, err := e.reg.Put(e.t.Context(), tenantID, d)
	if err != nil {
		e.t.Fatalf("Put: %v", err)
	}
	return w
}

func (e *env) decide(tenantID, agent, action string, params map[string]any) *pdp.Decision {
	e.t.Helper()
	d, err := e.eng.Evaluate(e.t.Context(), pdp.Action{TenantID: tenantID, AgentID: agent, Name: action, Params: params})
	if err != nil {
		e.t.Fatalf("Evaluate(%s, %q): %v", tenantID, agent, err)
	}
	return d
}

func triggered(d *pdp.Decision) string {
	if d.TriggeredPolicy == nil {
		return ""
	}
	return *d.TriggeredPolicy
}

func reason(d *pdp.Decision) string {
	if d.Reason == nil {
		return ""
	}
	return *d.Reason
}

func tierErr(t *testing.T, err error) *registry.TierError {
	t.Helper()
	var te *registry.TierError
	if !errors.As(err, &te) {
		t.Fatalf("error %v (%T) is not a *TierError", err, err)
	}
	return te
}

func validationErr(t *testing.T, err error) *pdp.ValidationError {
	t.Helper()
	var ve *pdp.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a validation error", err, err)
	}
	return ve
}
