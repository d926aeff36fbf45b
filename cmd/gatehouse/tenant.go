package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"go.opentelemetry.io/otel/trace/noop"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

const tenantUsage = `Usage: gatehouse tenant create --id ID --tier free|starter|pro|enterprise [flags]

Creates a tenant in an existing store and prints one JSON line on stdout:
  {"tenant_id":"ID","name":"N","tier":"T","api_key":"nram_..."}
The API key is shown only this once. The store may be in use by a running
server (SQLite in WAL mode allows it); the server picks the tenant up. A
SQLite store that does not exist is an error (a mistyped path must not
become a new, empty store) unless --create-store says to make it.

Flags:
  --id id
      the tenant's ID: what bundles (/v1/bundles/ID.tar.gz), the admin API
      and "audit verify --tenant" name it by; 1-64 letters, digits, '_' and
      '-'. An ID that exists is refused. Default: a generated ten_... ID
  --name name
      the tenant's display name (default: the ID; required without --id)
  --tier tier
      free, starter, pro or enterprise (required)
  --mode mode
      enforcement (default) or shadow
  --approval-mode mode
      solo, team or enterprise (default: the strongest the tier allows)
  --create-store
      create the SQLite store file when it does not exist
  --config file
      YAML config file whose store is used (env GATEHOUSE_CONFIG)
`

// cmdTenant runs `gatehouse tenant <subcommand>`.
func cmdTenant(ctx context.Context, args []string, s stdio) int {
	if len(args) == 0 || args[0] != "create" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(s.stdout, tenantUsage)
			printSettings(s.stdout, []*setting{setStore})
			return exitOK
		}
		fmt.Fprint(s.stderr, tenantUsage)
		printSettings(s.stderr, []*setting{setStore})
		return exitUsage
	}
	return cmdTenantCreate(ctx, args[1:], s)
}

// tenantCreated is the line `tenant create` prints, the same object the
// admin API's POST /v1/admin/tenants returns (docs/api.md §B1, B2).
type tenantCreated struct {
	TenantID string `json:"tenant_id"`
	Name     string `json:"name"`
	Tier     string `json:"tier"`
	APIKey   string `json:"api_key"`
}

func cmdTenantCreate(ctx context.Context, args []string, s stdio) int {
	fs := flag.NewFlagSet("tenant create", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cf := bindConfig(fs, setStore)
	id := fs.String("id", "", "")
	name := fs.String("name", "", "")
	createStore := fs.Bool("create-store", false, "")
	tier := fs.String("tier", "", "")
	mode := fs.String("mode", "", "")
	approvalMode := fs.String("approval-mode", "", "")
	usage := func(w io.Writer) {
		fmt.Fprint(w, tenantUsage)
		printSettings(w, []*setting{setStore})
	}
	if code, done := parseFlags(fs, args, usage, s); done {
		return code
	}
	var problems []string
	if strings.TrimSpace(*name) == "" && *id == "" {
		problems = append(problems, "--id (or --name) is required")
	}
	if *tier == "" {
		problems = append(problems, "--tier is required (free, starter, pro or enterprise)")
	} else if !store.Tier(*tier).Valid() {
		problems = append(problems, fmt.Sprintf("--tier %q: want free, starter, pro or enterprise", *tier))
	}
	if *mode != "" && *mode != string(pdp.ModeEnforcement) && *mode != string(pdp.ModeShadow) {
		problems = append(problems, fmt.Sprintf("--mode %q: want enforcement or shadow", *mode))
	}
	cfg, err := cf.load(s.lookupEnv)
	if err != nil {
		problems = append(problems, err.Error())
	} else if !*createStore {
		if err := existingStore(cfg.Store); err != nil {
			problems = append(problems, err.Error()+"; or pass --create-store to make a new, empty one")
		}
	}
	if len(problems) > 0 {
		fmt.Fprintf(s.stderr, "gatehouse tenant create: %s\n", strings.Join(problems, "\n"))
		return exitUsage
	}

	out, err := createTenant(ctx, cfg, registry.NewTenant{
		ID:           *id,
		Name:         *name,
		Tier:         store.Tier(*tier),
		Mode:         pdp.Mode(*mode),
		ApprovalMode: *approvalMode,
	})
	if err != nil {
		fmt.Fprintf(s.stderr, "gatehouse tenant create: %v\n", err)
		return exitFail
	}
	line, err := json.Marshal(out)
	if err != nil {
		fmt.Fprintf(s.stderr, "gatehouse tenant create: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(s.stdout, "%s\n", line)
	return exitOK
}

// createTenant creates the tenant through the registry, which owns the
// tier rules, the key format and the ID scheme. The key is returned only
// once the store has closed cleanly, so a printed key is a stored key.
func createTenant(ctx context.Context, cfg Config, nt registry.NewTenant) (_ tenantCreated, err error) {
	tp := noop.NewTracerProvider()
	st, err := openStore(ctx, cfg.Store, tp)
	if err != nil {
		return tenantCreated{}, err
	}
	defer func() {
		if cerr := st.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close store: %w", cerr)
		}
	}()
	eng, err := engine.New(cfg.Engine.engineConfig(), engine.WithTracerProvider(tp))
	if err != nil {
		return tenantCreated{}, fmt.Errorf("engine: %w", err)
	}
	reg, err := registry.New(st, eng)
	if err != nil {
		return tenantCreated{}, fmt.Errorf("registry: %w", err)
	}
	t, key, err := reg.CreateTenant(ctx, nt)
	if err != nil {
		return tenantCreated{}, err
	}
	return tenantCreated{TenantID: t.ID, Name: t.Name, Tier: string(t.Tier), APIKey: key}, nil
}
