package examples_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/gatehouse-pdp/gatehouse/client"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store/postgres/pgtest"
	"github.com/gatehouse-pdp/gatehouse/test/e2e"
)

// composeFile is the part of the Compose specification the example uses.
type composeFile struct {
	Name     string                    `json:"name"`
	Services map[string]composeService `json:"services"`
	Volumes  map[string]any            `json:"volumes"`
}

type composeService struct {
	Image string `json:"image"`
	Build *struct {
		Context    string `json:"context"`
		Dockerfile string `json:"dockerfile"`
	} `json:"build"`
	Command     []string          `json:"command"`
	Environment map[string]string `json:"environment"`
	Ports       []string          `json:"ports"`
	Volumes     []string          `json:"volumes"`
	DependsOn   map[string]struct {
		Condition string `json:"condition"`
	} `json:"depends_on"`
	Healthcheck *struct {
		Test     []string `json:"test"`
		Interval string   `json:"interval"`
		Timeout  string   `json:"timeout"`
		Retries  int      `json:"retries"`
	} `json:"healthcheck"`
	Restart string `json:"restart"`
}

var composeDir = filepath.Join("compose")

func readCompose(t *testing.T) (composeFile, string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(composeDir, "docker-compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		t.Fatalf("docker-compose.yaml: %v", err)
	}
	return f, string(b)
}

// varRef matches a Compose variable reference, ${NAME} or ${NAME:?msg}.
var varRef = regexp.MustCompile(`\$\{([A-Z_][A-Z0-9_]*)(:\?[^}]*)?\}`)

// varName returns the variable v refers to in full ("" when v is not
// exactly one reference).
func varName(v string) string {
	m := varRef.FindStringSubmatch(v)
	if m == nil || m[0] != v {
		return ""
	}
	return m[1]
}

// flagValue returns the value after --name in args.
func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == "--"+name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

// goModOPAVersion is the OPA version go.mod pins (and the engine embeds).
func goModOPAVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*github.com/open-policy-agent/opa v(\S+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("go.mod pins no OPA version")
	}
	return string(m[1])
}

// TestComposeWiring reads examples/compose as Docker Compose would and
// checks that its parts fit: PostgreSQL's credentials are the ones the
// replicas' DSN uses, both replicas share that store and one image built
// from the repository's Dockerfile, only the first bootstraps the tenant
// and the second waits for it, the OPA sidecar is the stock OPA of the
// version Gatehouse embeds, its config file is mounted where its command
// reads it, and the service, tenant and key it pulls the bundle with are a
// replica's address, the bootstrapped tenant and its key.
func TestComposeWiring(t *testing.T) {
	f, text := readCompose(t)
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range f.Services {
			if !yield(k) {
				return
			}
		}
	})
	if !slices.Equal(names, []string{"gatehouse-1", "gatehouse-2", "opa", "postgres"}) {
		t.Fatalf("services %v", names)
	}
	pg, g1, g2, opa := f.Services["postgres"], f.Services["gatehouse-1"], f.Services["gatehouse-2"], f.Services["opa"]

	// PostgreSQL.
	if !regexp.MustCompile(`^postgres:\d+$`).MatchString(pg.Image) {
		t.Errorf("postgres image %q: want a pinned major version", pg.Image)
	}
	pwVar := varName(pg.Environment["POSTGRES_PASSWORD"])
	if pwVar == "" || pg.Healthcheck == nil {
		t.Errorf("postgres: the password must come from a variable and readiness from a healthcheck: %+v", pg)
	}
	if _, ok := f.Volumes["pgdata"]; !ok || !slices.Contains(pg.Volumes, "pgdata:/var/lib/postgresql/data") {
		t.Errorf("postgres data is not on the named volume: %v", pg.Volumes)
	}

	// The replicas.
	if g1.Build == nil {
		t.Fatal("gatehouse-1 does not build the image")
	}
	if _, err := os.Stat(filepath.Join(composeDir, g1.Build.Context, g1.Build.Dockerfile)); err != nil {
		t.Errorf("gatehouse-1 builds from %s/%s: %v", g1.Build.Context, g1.Build.Dockerfile, err)
	}
	if g1.Image == "" || g2.Image != g1.Image {
		t.Errorf("replicas run images %q and %q, want the one gatehouse-1 builds", g1.Image, g2.Image)
	}
	hostPorts := map[string]bool{}
	for name, g := range map[string]composeService{"gatehouse-1": g1, "gatehouse-2": g2} {
		if len(g.Command) == 0 || g.Command[0] != "serve" {
			t.Errorf("%s command %v: want serve", name, g.Command)
			continue
		}
		addr := flagValue(g.Command, "addr")
		_, port, _ := strings.Cut(addr, ":")
		if !strings.HasPrefix(addr, "0.0.0.0:") || len(g.Ports) != 1 || !strings.HasSuffix(g.Ports[0], ":"+port) {
			t.Errorf("%s listens on %q but publishes %v", name, addr, g.Ports)
		}
		if len(g.Ports) == 1 {
			host := strings.TrimSuffix(g.Ports[0], ":"+port)
			if !strings.HasPrefix(host, "127.0.0.1:") || hostPorts[host] {
				t.Errorf("%s publishes on %q: want a distinct loopback port", name, host)
			}
			hostPorts[host] = true
		}
		// Variables become placeholders: "${X}" is no valid URL text.
		u, err := url.Parse(varRef.ReplaceAllString(g.Environment["GATEHOUSE_STORE"], "var_$1"))
		if err != nil || u.Scheme != "postgres" {
			t.Errorf("%s GATEHOUSE_STORE %q: want a postgres URL", name, g.Environment["GATEHOUSE_STORE"])
			continue
		}
		pw, _ := u.User.Password()
		switch {
		case u.Hostname() != "postgres" || u.Port() != "5432":
			t.Errorf("%s store host %q: want the postgres service on 5432", name, u.Host)
		case u.User.Username() != pg.Environment["POSTGRES_USER"] || strings.TrimPrefix(u.Path, "/") != pg.Environment["POSTGRES_DB"]:
			t.Errorf("%s store user/db %s/%s: postgres creates %s/%s", name, u.User.Username(), u.Path,
				pg.Environment["POSTGRES_USER"], pg.Environment["POSTGRES_DB"])
		case pw != "var_"+pwVar:
			t.Errorf("%s store password %q: want ${%s}", name, pw, pwVar)
		}
		if varName(g.Environment["GATEHOUSE_ADMIN_TOKEN"]) != "GATEHOUSE_ADMIN_TOKEN" {
			t.Errorf("%s: the admin token must come from ${GATEHOUSE_ADMIN_TOKEN}", name)
		}
	}
	if g1.Environment["GATEHOUSE_STORE"] != g2.Environment["GATEHOUSE_STORE"] {
		t.Error("the replicas do not share one store")
	}
	keyVar := varName(g1.Environment["GATEHOUSE_BOOTSTRAP_KEY"])
	if keyVar == "" {
		t.Error("gatehouse-1 does not bootstrap the tenant from a variable")
	}
	if _, ok := g2.Environment["GATEHOUSE_BOOTSTRAP_KEY"]; ok {
		t.Error("both replicas bootstrap: they would race on an empty store")
	}
	if g1.DependsOn["postgres"].Condition != "service_healthy" || g2.DependsOn["gatehouse-1"].Condition != "service_healthy" {
		t.Errorf("start order: gatehouse-1 after a healthy postgres, gatehouse-2 after a healthy gatehouse-1: %+v %+v", g1.DependsOn, g2.DependsOn)
	}

	// The OPA sidecar.
	if want := "openpolicyagent/opa:" + goModOPAVersion(t); opa.Image != want {
		t.Errorf("opa image %q, want %q: the version Gatehouse embeds, so both decide alike", opa.Image, want)
	}
	if len(opa.Command) < 2 || opa.Command[0] != "run" || !slices.Contains(opa.Command, "--server") {
		t.Errorf("opa command %v: want run --server", opa.Command)
	}
	cfgPath := flagValue(opa.Command, "config-file")
	mounted := ""
	for _, v := range opa.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == cfgPath {
			mounted = parts[0]
		}
	}
	if mounted != "./opa-config.yaml" {
		t.Errorf("opa reads %q, mounted from %q: want ./opa-config.yaml", cfgPath, mounted)
	}
	src, err := url.Parse(opa.Environment["GATEHOUSE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	replica, ok := f.Services[src.Hostname()]
	if !ok || !strings.HasPrefix(src.Hostname(), "gatehouse-") {
		t.Errorf("opa pulls from %q: not a replica", src.Host)
	} else if _, port, _ := strings.Cut(flagValue(replica.Command, "addr"), ":"); src.Port() != port {
		t.Errorf("opa pulls from port %s; %s listens on %s", src.Port(), src.Hostname(), port)
	}
	if _, ok := opa.DependsOn[src.Hostname()]; !ok {
		t.Errorf("opa does not wait for %s", src.Hostname())
	}
	if opa.Environment["GATEHOUSE_TENANT"] != registry.BootstrapTenant || varName(opa.Environment["GATEHOUSE_API_KEY"]) != keyVar {
		t.Errorf("opa pulls tenant %q with %q: want the bootstrapped %q with ${%s}",
			opa.Environment["GATEHOUSE_TENANT"], opa.Environment["GATEHOUSE_API_KEY"], registry.BootstrapTenant, keyVar)
	}

	// OPA's config reads exactly the variables compose gives it.
	oc, err := os.ReadFile(filepath.Join(composeDir, "opa-config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Services map[string]struct {
			URL         string `json:"url"`
			Credentials struct {
				Bearer struct {
					Token string `json:"token"`
				} `json:"bearer"`
			} `json:"credentials"`
		} `json:"services"`
		Bundles map[string]struct {
			Service  string `json:"service"`
			Resource string `json:"resource"`
		} `json:"bundles"`
	}
	if err := yaml.Unmarshal(oc, &cfg); err != nil {
		t.Fatal(err)
	}
	b := cfg.Bundles["gatehouse"]
	svc := cfg.Services[b.Service]
	if svc.URL != "${GATEHOUSE_URL}" || svc.Credentials.Bearer.Token != "${GATEHOUSE_API_KEY}" ||
		b.Resource != "v1/bundles/${GATEHOUSE_TENANT}.tar.gz" {
		t.Errorf("opa-config.yaml: service %+v, bundle %+v", svc, b)
	}
	for _, m := range varRef.FindAllStringSubmatch(string(oc), -1) {
		if _, ok := opa.Environment[m[1]]; !ok {
			t.Errorf("opa-config.yaml reads ${%s}, which compose does not set for opa", m[1])
		}
	}

	// Every variable the user must set is in the header's instructions.
	for _, m := range varRef.FindAllStringSubmatch(text, -1) {
		if !strings.Contains(text, "export "+m[1]+"=") {
			t.Errorf("${%s} is used but the header does not say to export it", m[1])
		}
	}
}

// TestComposeTopology runs what docker-compose.yaml describes, without
// Docker: the replicas' command and environment (host names aside: the
// store is a fresh database on the local PostgreSQL, addresses are
// loopback), and the stock OPA with the compose's opa-config.yaml and
// variables, pulling the bundle from replica 2. A policy written to
// replica 1 is then decided alike by replica 2 and by OPA.
func TestComposeTopology(t *testing.T) {
	bin := binary(t)
	f, _ := readCompose(t)
	dsn := pgtest.NewDatabase(t)
	key, token := e2e.NewKey(), "compose-admin-token-0123456789"
	vars := map[string]string{"GATEHOUSE_BOOTSTRAP_KEY": key, "GATEHOUSE_ADMIN_TOKEN": token}
	// env renders a service's environment with the variables substituted;
	// the store and the address are the harness's flags, which win.
	env := func(s composeService) []string {
		var out []string
		for k, v := range s.Environment {
			if k == "GATEHOUSE_STORE" {
				continue
			}
			out = append(out, k+"="+varRef.ReplaceAllStringFunc(v, func(ref string) string { return vars[varName(ref)] }))
		}
		return out
	}
	args := func(s composeService) []string {
		var out []string
		for i := 1; i < len(s.Command); i++ { // serve's flags but --addr
			if s.Command[i] == "--addr" {
				i++
				continue
			}
			out = append(out, s.Command[i])
		}
		return out
	}
	g1, g2 := f.Services["gatehouse-1"], f.Services["gatehouse-2"]
	r1 := e2e.Start(t, bin, e2e.Options{Store: dsn, Args: args(g1), Env: env(g1)})
	r1.Key = key
	r2 := e2e.Start(t, bin, e2e.Options{Store: dsn, Args: args(g2), Env: env(g2)})
	r2.Key = key

	ctx := e2e.WithTB(t.Context(), t)
	c1, err := client.New(r1.URL, key, client.WithHTTPClient(e2e.SpecClient(t)))
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := client.New(r2.URL, key, client.WithHTTPClient(e2e.SpecClient(t)))
	if _, err := c1.PutPolicy(ctx, client.Policy{Name: "no-drops", Rules: []client.Rule{{Match: `drop table`, Severity: "critical"}}}); err != nil {
		t.Fatal(err)
	}
	action := client.Action{Action: "db.query", Params: map[string]any{"sql": "drop table users"}}
	deadline := time.Now().Add(waitTimeout)
	for {
		res, err := c2.SubmitAction(ctx, action)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status == client.StatusBlocked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica 2 still decides %s for a policy written to replica 1", res.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}

	opaBin, err := opaBinary()
	if err != nil {
		t.Fatal(err)
	}
	o := f.Services["opa"]
	vars["GATEHOUSE_URL"] = r2.URL
	opaEnv := []string{"GATEHOUSE_URL=" + r2.URL}
	for k, v := range o.Environment {
		if k != "GATEHOUSE_URL" {
			opaEnv = append(opaEnv, k+"="+varRef.ReplaceAllStringFunc(v, func(ref string) string { return vars[varName(ref)] }))
		}
	}
	sidecar := e2e.StartOPA(t, opaBin, opaEnv, "--config-file", filepath.Join(root, "examples", "compose", "opa-config.yaml"))
	if !sidecar.WaitHealth(t, "?bundles", waitTimeout) {
		t.Fatal("OPA did not activate the bundle from replica 2")
	}
	input, _ := json.Marshal(map[string]any{"input": map[string]any{
		"tenant_id": registry.BootstrapTenant, "action": action.Action, "params": action.Params,
	}})
	resp, err := http.Post(sidecar.URL+"/v1/data/gatehouse/decision/result", "application/json", bytes.NewReader(input))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Result *client.PolicyResult `json:"result"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || got.Result == nil {
		t.Fatalf("OPA decision: %v %+v", err, got)
	}
	if got.Result.Status != client.StatusBlocked || got.Result.TriggeredPolicy == nil || *got.Result.TriggeredPolicy != "no-drops" {
		t.Errorf("OPA decided %+v, want blocked by no-drops like the replicas", got.Result)
	}
}
