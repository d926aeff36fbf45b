package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The seed document's curl tab, verbatim (testdata/seed-curl.sh), runs
// against Gatehouse with only the base URL and the key changed.
const (
	seedBaseURL = "https://novyx-ram-api.fly.dev"
	seedKey     = "nram_your_key"
)

// seedScript returns the curl tab with the base URL and key replaced.
func seedScript(t *testing.T, url, key string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/seed-curl.sh")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if strings.Count(s, seedBaseURL) != 3 || strings.Count(s, seedKey) != 3 {
		t.Fatalf("testdata/seed-curl.sh is not the seed document's curl tab")
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, seedBaseURL, url), seedKey, key)
}

// curlCommand is one curl invocation of the script.
type curlCommand struct {
	method  string
	url     string
	headers [][2]string
	data    *string
}

// parseCurl reads the script's curl commands with the little shell it
// uses: comments, '…' and "…" quoting, and backslash-newline.
func parseCurl(script string) ([]curlCommand, error) {
	var (
		cmds [][]string
		argv []string
		word strings.Builder
		in   bool // inside a word
	)
	endWord := func() {
		if in {
			argv = append(argv, word.String())
			word.Reset()
			in = false
		}
	}
	endCmd := func() {
		endWord()
		if len(argv) > 0 {
			cmds = append(cmds, argv)
			argv = nil
		}
	}
	for i := 0; i < len(script); i++ {
		c := script[i]
		switch {
		case c == '#' && !in:
			for i < len(script) && script[i] != '\n' {
				i++
			}
			endCmd()
		case c == '\\' && i+1 < len(script) && script[i+1] == '\n':
			i++ // line continuation
		case c == '\\' && i+1 < len(script):
			i++
			word.WriteByte(script[i])
			in = true
		case c == '\n':
			endCmd()
		case c == ' ' || c == '\t':
			endWord()
		case c == '\'':
			j := strings.IndexByte(script[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated '")
			}
			word.WriteString(script[i+1 : i+1+j])
			i += j + 1
			in = true
		case c == '"':
			i++
			for ; i < len(script) && script[i] != '"'; i++ {
				if script[i] == '\\' && i+1 < len(script) && strings.IndexByte(`"\$`+"`", script[i+1]) >= 0 {
					i++
				}
				word.WriteByte(script[i])
			}
			if i == len(script) {
				return nil, errors.New(`unterminated "`)
			}
			in = true
		default:
			word.WriteByte(c)
			in = true
		}
	}
	endCmd()

	var out []curlCommand
	for _, argv := range cmds {
		if argv[0] != "curl" {
			return nil, errors.New("not a curl command: " + argv[0])
		}
		var c curlCommand
		for i := 1; i < len(argv); i++ {
			switch a := argv[i]; a {
			case "-X", "-H", "-d":
				if i+1 == len(argv) {
					return nil, errors.New(a + " without a value")
				}
				i++
				switch a {
				case "-X":
					c.method = argv[i]
				case "-H":
					name, value, _ := strings.Cut(argv[i], ":")
					c.headers = append(c.headers, [2]string{name, strings.TrimSpace(value)})
				case "-d":
					d := argv[i]
					c.data = &d
				}
			default:
				if strings.HasPrefix(a, "-") {
					return nil, errors.New("unexpected curl option " + a)
				}
				c.url = a
			}
		}
		if c.method == "" {
			c.method = http.MethodGet
			if c.data != nil {
				c.method = http.MethodPost
			}
		}
		out = append(out, c)
	}
	return out, nil
}

// TestSeedWalkthrough runs the seed document's walkthrough (the seed
// document, docs/api.md part A): the three curl commands with their bodies byte for byte,
// then the actions its steps 3 and 4 describe.
func TestSeedWalkthrough(t *testing.T) {
	t.Parallel()
	s, c := startDev(t, Options{})

	cmds, err := parseCurl(seedScript(t, s.URL, s.Key))
	if err != nil {
		t.Fatal(err)
	}
	if len(cmds) != 3 {
		t.Fatalf("curl tab has %d commands, want 3", len(cmds))
	}
	var answers []map[string]any
	for i, cmd := range cmds {
		var body io.Reader
		if cmd.data != nil {
			body = strings.NewReader(*cmd.data)
		}
		req, err := http.NewRequest(cmd.method, cmd.url, body)
		if err != nil {
			t.Fatal(err)
		}
		if cmd.data != nil {
			// What curl -d sends unless a -H overrides it.
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		for _, h := range cmd.headers {
			req.Header.Set(h[0], h[1])
		}
		resp, err := SpecClient(t).Do(req) // the README's commands, checked against docs/openapi.yaml too
		if err != nil {
			t.Fatalf("curl command %d: %v", i+1, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		r := &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
		want := http.StatusCreated
		if cmd.method == http.MethodGet {
			want = http.StatusOK
		}
		answers = append(answers, wantStatus(t, r, want))
	}

	// 1. Tenant-wide policy.
	created := answers[0]
	wantField(t, created, "pii_protection", "policy_name")
	wantField(t, created, nil, "agent_id")
	wantField(t, created, "tenant", "scope")
	wantField(t, created, "created", "action")
	wantField(t, created, 1, "version")
	wantField(t, created, "Policy 'pii_protection' created", "message")
	// 2. Agent-scoped override.
	override := answers[1]
	wantField(t, override, "pii_protection", "policy_name")
	wantField(t, override, "billing-bot", "agent_id")
	wantField(t, override, "agent", "scope")
	wantField(t, override, "created", "action")
	wantField(t, override, 1, "version")
	// 3. Verify: the agent-scoped copy.
	got := answers[2]
	hasKeys(t, got, "name", "description", "source", "agent_id", "scope", "enabled", "version", "config", "created_at", "updated_at")
	wantField(t, got, "pii_protection", "name")
	wantField(t, got, "Block PII outright for billing-bot", "description")
	wantField(t, got, "billing-bot", "agent_id")
	wantField(t, got, "agent", "scope")
	wantField(t, got, true, "enabled")
	wantField(t, got, 1, "version")
	wantField(t, got, "(email|phone|ssn|passport|routing)", "config", "rules", 0, "match")
	wantField(t, got, "PII blocked for billing-bot: {match}", "config", "rules", 0, "reason")

	// get_policy is scope-aware: without agent_id, the tenant-wide copy.
	tw := wantStatus(t, c.Do(t, "GET", "/v1/control/policies/pii_protection", nil), 200)
	wantField(t, tw, "Warn on PII patterns", "description")
	wantField(t, tw, "tenant", "scope")
	wantField(t, tw, nil, "agent_id")

	// Step 3 of the walkthrough: billing-bot is blocked by its override.
	action := map[string]any{
		"action":   "slack.send_message",
		"params":   map[string]any{"channel": "#external", "text": "Customer email: alice@example.com"},
		"agent_id": "billing-bot",
	}
	res := wantStatus(t, c.Do(t, "POST", "/v1/actions", action), 200)
	wantField(t, res, "blocked", "status")
	wantField(t, res, "billing-bot", "agent_id")
	wantField(t, res, "slack.send_message", "action")
	wantField(t, res, "pii_protection", "policy_result", "triggered_policy")
	wantField(t, res, "critical", "policy_result", "severity")
	wantField(t, res, "PII blocked for billing-bot: email", "policy_result", "reason")
	wantField(t, res, "Action blocked: PII blocked for billing-bot: email", "message")
	wantField(t, res, "agent", "policy_result", "violations", 0, "scope")
	wantField(t, res, "email", "policy_result", "violations", 0, "match")
	wantField(t, res, []string{"pii_protection", "FinancialSafetyPolicy", "DataExfiltrationPolicy"}, "policy_result", "policies_evaluated")

	// Step 4: support-bot, and no agent at all, get the tenant-wide policy:
	// allowed, with one warning.
	for _, agent := range []any{"support-bot", nil} {
		a := map[string]any{"action": action["action"], "params": action["params"]}
		if agent != nil {
			a["agent_id"] = agent
		}
		res := wantStatus(t, c.Do(t, "POST", "/v1/actions", a), 200)
		wantField(t, res, "allowed", "status")
		wantField(t, res, agent, "agent_id")
		wantField(t, res, "Action permitted by policy evaluation", "message")
		warnings, _ := field(res, "policy_result", "warnings").([]any)
		if len(warnings) != 1 {
			t.Errorf("agent %v: %d warnings, want 1: %s", agent, len(warnings), mustJSON(field(res, "policy_result")))
			continue
		}
		wantField(t, warnings[0], "pii_protection", "policy")
		wantField(t, warnings[0], "tenant", "scope")
		wantField(t, warnings[0], "warn", "on_violation")
		wantField(t, warnings[0], "medium", "severity")
	}

	// list_policies(agent_id=billing-bot) shows the full effective set.
	list := wantStatus(t, c.Do(t, "GET", "/v1/control/policies?agent_id=billing-bot", nil), 200)
	var tenantWide, agentScoped map[string]any
	for _, p := range field(list, "policies").([]any) {
		switch field(p, "scope") {
		case "tenant":
			tenantWide = p.(map[string]any)
		case "agent":
			agentScoped = p.(map[string]any)
		}
	}
	wantField(t, tenantWide, false, "effective")
	wantField(t, agentScoped, true, "effective")
	wantField(t, agentScoped, "billing-bot", "agent_id")
}

// TestSeedCurlTab runs the curl tab itself with curl, when curl is
// installed: the strictest reading of "works verbatim".
func TestSeedCurlTab(t *testing.T) {
	t.Parallel()
	bash, errB := exec.LookPath("bash")
	_, errC := exec.LookPath("curl")
	if errB != nil || errC != nil {
		t.Skip("bash or curl not installed")
	}
	s, c := startDev(t, Options{})
	cmd := exec.Command(bash, "-e", "-c", seedScript(t, s.URL, s.Key))
	cmd.Env = Env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("curl tab: %v\n%s", err, stderr.String())
	}
	// curl prints the three answers back to back.
	dec := json.NewDecoder(&stdout)
	var answers []map[string]any
	for {
		var m map[string]any
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("curl output: %v", err)
		}
		answers = append(answers, m)
	}
	if len(answers) != 3 {
		t.Fatalf("curl printed %d JSON objects, want 3", len(answers))
	}
	wantField(t, answers[0], "created", "action")
	wantField(t, answers[1], "created", "action")
	wantField(t, answers[1], "billing-bot", "agent_id")
	wantField(t, answers[2], "billing-bot", "agent_id")
	wantField(t, answers[2], "Block PII outright for billing-bot", "description")

	res := wantStatus(t, c.Do(t, "POST", "/v1/actions", map[string]any{
		"action":   "slack.send_message",
		"params":   map[string]any{"channel": "#external", "text": "Customer email: alice@example.com"},
		"agent_id": "billing-bot",
	}), 200)
	wantField(t, res, "blocked", "status")
}
