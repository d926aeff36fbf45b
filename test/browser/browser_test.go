// Package browser tests the console (pdp/console) end to end: the real
// gatehouse binary on a loopback port, driven in a real headless Chromium
// (Debian's chromium) by console.test.mjs through playwright-core, pinned
// in package-lock.json. Nothing is skipped for a missing tool: without
// chromium, node or npm the test fails and says what to install (.ci/run
// installs them on a fresh machine).
package browser

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"image"
	"image/png"
	"io/fs"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp/console"
	"github.com/gatehouse-pdp/gatehouse/test/e2e"
)

var updateDocs = flag.Bool("update-docs", false, "copy the screenshots to docs/ (the README shows them)")

// Bounds of the browser run. The script itself takes about 25 s; npm ci
// runs only on a fresh clone.
const (
	npmTimeout    = 5 * time.Minute
	scriptTimeout = 3 * time.Minute
)

// screenshots are the pages console.test.mjs photographs.
var screenshots = []string{
	"signin", "policies-error", "policies", "playground", "approvals",
	"dashboard", "explain", "actions", "tier", "mobile-dashboard",
}

// docShots are the screenshots the README shows (kept few: each is a
// committed file).
var docShots = []string{"policies-error", "playground", "approvals", "dashboard", "explain", "mobile-dashboard"}

func TestConsole(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: skipped with -short")
	}
	chromium := findChromium(t)
	node := lookPath(t, "node", "install Node.js (apt-get install -y nodejs npm)")
	installDeps(t)

	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	bin, err := e2e.Binary(root) // the build every test package shares
	if err != nil {
		t.Fatal(err)
	}
	admin := "console-admin-" + randomHex(t)
	srv := e2e.Start(t, bin, e2e.Options{Args: []string{"--admin-token", admin}})

	checkHeaders(t, srv)

	// A single reviewer can approve in solo mode (Pro allows solo and team
	// and would start in team).
	pro := createTenant(t, srv, admin, map[string]any{"name": "console-pro", "tier": "pro", "approval_mode": "solo"})
	free := createTenant(t, srv, admin, map[string]any{"name": "console-free", "tier": "free"})

	shots := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), scriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "console.test.mjs")
	cmd.Env = append(os.Environ(),
		"GATEHOUSE_URL="+srv.URL, "GATEHOUSE_KEY="+pro, "GATEHOUSE_FREE_KEY="+free,
		"CHROMIUM="+chromium, "SHOTS="+shots)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	err = cmd.Run()
	t.Logf("console.test.mjs (%.1f s):\n%s", time.Since(start).Seconds(), out.String())
	if err != nil {
		t.Fatalf("console.test.mjs: %v", err)
	}

	for _, name := range screenshots {
		checkNotBlank(t, filepath.Join(shots, "console-"+name+".png"))
	}
	if *updateDocs {
		for _, name := range docShots {
			copyFile(t, filepath.Join(shots, "console-"+name+".png"), filepath.Join(root, "docs", "console-"+name+".png"))
		}
	}

	// The console's two routes, through the e2e client, which checks each
	// exchange against docs/openapi.yaml.
	c := srv.Client(pro)
	dry := c.Do(t, http.MethodPost, "/v1/control/dry-run", map[string]any{
		"action": "slack.send_message", "agent_id": "billing-bot",
		"params": map[string]any{"channel": "#external", "text": "Customer email: alice@example.com"},
		"draft":  "name: pii_protection\nagent_id: billing-bot\nrules:\n  - match: phone\n    severity: low\n", "draft_format": "yaml",
	})
	if dry.Status != http.StatusOK {
		t.Fatalf("dry run: %d %s", dry.Status, dry.Body)
	}
	if m := dry.JSON(t); m["saved"].(map[string]any)["status"] != "blocked" || m["draft"].(map[string]any)["status"] != "allowed" {
		t.Errorf("dry run: saved blocked and draft allowed expected: %s", dry.Body)
	}
	if r := c.Do(t, http.MethodGet, "/v1/control/agents", nil); r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"agent_id":"billing-bot"`) {
		t.Errorf("agents: %d %s", r.Status, r.Body)
	}

	// The server's log (at debug level) must hold neither a key nor what
	// the actions carried.
	logs := srv.Stderr.String() + srv.Stdout.String()
	for _, secret := range []string{pro, free, "alice@example.com", "Checked with finance", `"amount"`} {
		if strings.Contains(logs, secret) {
			t.Errorf("the server log contains %q", secret)
		}
	}
}

// checkHeaders checks the console's Content-Security-Policy and that no
// asset needs an exception to it: no inline script or style, no handler
// attributes, no HTML built from strings.
func checkHeaders(t *testing.T, srv *e2e.Server) {
	t.Helper()
	// A plain client: the console's files are HTML, JavaScript and CSS,
	// which the e2e client's OpenAPI check (JSON bodies) cannot decode.
	hc := &http.Client{Timeout: 30 * time.Second}
	get := func(path string) *http.Response {
		t.Helper()
		r, err := hc.Get(srv.URL + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		_ = r.Body.Close()
		return r
	}
	for _, path := range []string{"/console/", "/console/js/app.js", "/console/console.css"} {
		r := get(path)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", path, r.StatusCode)
		}
		csp := r.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: Content-Security-Policy %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") {
			t.Errorf("GET %s: Content-Security-Policy %q allows unsafe sources", path, csp)
		}
		if csp != console.CSP {
			t.Errorf("GET %s: Content-Security-Policy %q, want %q", path, csp, console.CSP)
		}
	}
	if r := get("/console/nope.js"); r.StatusCode != http.StatusNotFound {
		t.Errorf("GET a missing console file: %d, want 404", r.StatusCode)
	}

	inlineScript := regexp.MustCompile(`(?i)<script(\s[^>]*)?>`)
	type rule struct {
		exts string // file extensions the rule applies to
		re   *regexp.Regexp
	}
	forbidden := map[string]rule{
		"a style attribute":                 {".html", regexp.MustCompile(`(?i)\sstyle\s*=`)},
		"a style attribute set from script": {".js", regexp.MustCompile(`\bstyle\s*:|setAttribute\(\s*['"]style`)},
		"a handler attribute":               {".html", regexp.MustCompile(`(?i)<[^>]*\son[a-z]+\s*=`)},
		"HTML built from strings":           {".js", regexp.MustCompile(`\.(inner|outer)HTML\b|insertAdjacentHTML|document\.write`)},
		"eval":                              {".js", regexp.MustCompile(`\beval\(|new Function\(`)},
		"a remote URL":                      {".html .css .js", regexp.MustCompile(`(?i)(src=|href=|url\(|fetch\()\s*["'\x60]?(https?:)?//`)},
		"localStorage writes":               {".js", regexp.MustCompile(`localStorage\.setItem`)},
	}
	static := filepath.Join("..", "..", "pdp", "console", "static")
	err := filepath.WalkDir(static, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		src := string(b)
		for _, m := range inlineScript.FindAllStringSubmatch(src, -1) {
			if !strings.Contains(m[1], "src=") {
				t.Errorf("%s: an inline <script> (CSP forbids it)", p)
			}
		}
		for what, r := range forbidden {
			if strings.Contains(r.exts, filepath.Ext(p)) && r.re.MatchString(src) {
				t.Errorf("%s: %s (%q)", p, what, r.re.FindString(src))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func createTenant(t *testing.T, srv *e2e.Server, admin string, body map[string]any) string {
	t.Helper()
	r := srv.Client(admin).Do(t, http.MethodPost, "/v1/admin/tenants", body)
	if r.Status != http.StatusCreated {
		t.Fatalf("create tenant: %d %s", r.Status, r.Body)
	}
	key, _ := r.JSON(t)["api_key"].(string)
	if key == "" {
		t.Fatalf("create tenant: no api_key in %s", r.Body)
	}
	return key
}

// checkNotBlank fails unless the PNG at path has enough variety to be a
// rendered page: a blank or single-colour page has (nearly) no variance.
func checkNotBlank(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Errorf("screenshot: %v", err)
		return
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Errorf("screenshot %s: %v", path, err)
		return
	}
	std, colours := stats(img)
	if std < 12 || colours < 24 {
		t.Errorf("screenshot %s looks blank: luminance deviation %.1f, %d colours", filepath.Base(path), std, colours)
	}
}

// stats returns the standard deviation of luminance (0..255) and the
// number of distinct colours of img.
func stats(img image.Image) (std float64, colours int) {
	b := img.Bounds()
	seen := map[uint32]bool{}
	var n, sum, sq float64
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			l := (0.2126*float64(r) + 0.7152*float64(g) + 0.0722*float64(bl)) / 257
			n++
			sum += l
			sq += l * l
			if len(seen) < 1<<16 {
				seen[(r>>8)<<16|(g>>8)<<8|bl>>8] = true
			}
		}
	}
	if n == 0 {
		return 0, 0
	}
	mean := sum / n
	return math.Sqrt(math.Max(0, sq/n-mean*mean)), len(seen)
}

// findChromium returns $CHROMIUM, or chromium on the PATH.
func findChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found: install it (apt-get install -y chromium; .ci/run does) or set CHROMIUM to its path")
	return ""
}

func lookPath(t *testing.T, name, hint string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: %s", name, hint)
	}
	return p
}

// installDeps runs npm ci when playwright-core is not installed yet: the
// version in package-lock.json, from the npm registry, without scripts (it
// downloads no browser; the test uses the system's chromium).
func installDeps(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join("node_modules", "playwright-core", "package.json")); err == nil {
		return
	}
	npm := lookPath(t, "npm", "install Node.js and npm (apt-get install -y nodejs npm)")
	ctx, cancel := context.WithTimeout(t.Context(), npmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in test/browser: %v\n%s", err, out)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err == nil {
		err = os.MkdirAll(filepath.Dir(to), 0o755)
	}
	if err == nil {
		err = os.WriteFile(to, b, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d KB)", to, len(b)/1024)
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
