package client_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp/api"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/sqlite"
)

// baseURL and apiKey are those of the real API (pdp/api on a SQLite store
// in a temporary directory, served on loopback) that the tests and the
// examples talk to; TestMain starts it. The e2e suite drives the client
// against the gatehouse binary (test/e2e/client_test.go).
var baseURL, apiKey string

func TestMain(m *testing.M) {
	stop, err := serve()
	if err != nil {
		fmt.Fprintln(os.Stderr, "client tests:", err)
		os.Exit(1)
	}
	code := m.Run()
	stop()
	os.Exit(code)
}

func serve() (func(), error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "gatehouse-client-")
	if err != nil {
		return nil, err
	}
	db, err := sqlite.Open(ctx, filepath.Join(dir, "g.db"))
	if err != nil {
		return nil, err
	}
	// A generous timeout: CI machines are loaded (see the README).
	eng, err := engine.New(engine.Config{Timeout: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	reg, err := registry.New(db, eng)
	if err != nil {
		return nil, err
	}
	if err := reg.Load(ctx); err != nil {
		return nil, err
	}
	_, key, err := reg.CreateTenant(ctx, registry.NewTenant{Name: "examples", Tier: store.TierEnterprise})
	if err != nil {
		return nil, err
	}
	h, err := api.New(api.Config{}, api.Deps{Registry: reg, Engine: eng, Store: db})
	if err != nil {
		return nil, err
	}
	srv := httptest.NewServer(h)
	baseURL, apiKey = srv.URL, key
	return func() {
		srv.Close()
		_ = db.Close()
		_ = os.RemoveAll(dir)
	}, nil
}
