package image

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction: its keyword (upper case) and
// its arguments, continuation lines joined.
type instruction struct {
	keyword string
	args    string
	line    int
}

// parseDockerfile splits a Dockerfile into instructions: comment lines are
// dropped, lines ending in a backslash continue on the next.
func parseDockerfile(text string) []instruction {
	var (
		out   []instruction
		buf   strings.Builder
		start int
	)
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && buf.Len() == 0) {
			continue
		}
		if buf.Len() == 0 {
			start = i + 1
		}
		if cont, ok := strings.CutSuffix(strings.TrimRight(line, " \t"), `\`); ok {
			buf.WriteString(cont + " ")
			continue
		}
		buf.WriteString(line)
		kw, args, _ := strings.Cut(strings.TrimSpace(buf.String()), " ")
		out = append(out, instruction{keyword: strings.ToUpper(kw), args: strings.TrimSpace(args), line: start})
		buf.Reset()
	}
	return out
}

// dockerfile is what the tests need of the Dockerfile.
type dockerfile struct {
	froms      []string
	args       map[string]string // ARG defaults of the final stage
	build      instruction       // the RUN with go build
	user       string
	expose     []string
	volumes    []string
	entrypoint []string
	cmd        []string
	health     []string // HEALTHCHECK CMD, exec form
	labels     string
}

func readDockerfile(t *testing.T, root string) dockerfile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	d := dockerfile{args: map[string]string{}}
	builds := 0
	execForm := func(in instruction, s string) []string {
		var v []string
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			t.Fatalf("Dockerfile:%d: %s must be in exec form (a JSON array): %v", in.line, in.keyword, err)
		}
		return v
	}
	for _, in := range parseDockerfile(string(b)) {
		switch in.keyword {
		case "FROM":
			d.froms = append(d.froms, in.args)
			clear(d.args) // ARGs are per stage
		case "ARG":
			name, def, _ := strings.Cut(in.args, "=")
			d.args[name] = def
		case "RUN":
			if strings.Contains(in.args, "go build") {
				d.build = in
				builds++
			}
		case "USER":
			d.user = in.args
		case "EXPOSE":
			d.expose = append(d.expose, strings.Fields(in.args)...)
		case "VOLUME":
			d.volumes = append(d.volumes, strings.Fields(in.args)...)
		case "ENTRYPOINT":
			d.entrypoint = execForm(in, in.args)
		case "CMD":
			d.cmd = execForm(in, in.args)
		case "HEALTHCHECK":
			_, cmd, ok := strings.Cut(in.args, "CMD ")
			if !ok {
				t.Fatalf("Dockerfile:%d: HEALTHCHECK without CMD", in.line)
			}
			d.health = execForm(in, cmd)
		case "LABEL":
			d.labels += in.args + "\n"
		}
	}
	if builds != 1 {
		t.Fatalf("Dockerfile: %d RUN instructions with go build, want 1", builds)
	}
	return d
}

// shellWords splits a POSIX shell command line into words: quotes group,
// ${NAME} and $NAME expand from vars outside single quotes (without word
// splitting: the values a build line uses have no spaces). Anything a
// build line should not need (&&, ;, |, backquotes, $(...)) is an error.
func shellWords(s string, vars map[string]string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		in    bool // inside a word
		quote byte
	)
	expand := func(i int) (int, error) {
		j := i + 1
		var name string
		if j < len(s) && s[j] == '{' {
			k := strings.IndexByte(s[j:], '}')
			if k < 0 {
				return 0, fmt.Errorf("unterminated ${ in %q", s)
			}
			name, j = s[j+1:j+k], j+k+1
		} else {
			k := j
			for k < len(s) && (s[k] == '_' || s[k] >= 'A' && s[k] <= 'Z' || s[k] >= 'a' && s[k] <= 'z' || s[k] >= '0' && s[k] <= '9') {
				k++
			}
			if k == j {
				return 0, fmt.Errorf("unsupported $ in %q", s)
			}
			name, j = s[j:k], k
		}
		v, ok := vars[name]
		if !ok {
			return 0, fmt.Errorf("variable %s has no value", name)
		}
		cur.WriteString(v)
		return j, nil
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
			i++
		case c == '$':
			if i+1 < len(s) && s[i+1] == '(' {
				return nil, fmt.Errorf("command substitution in %q", s)
			}
			j, err := expand(i)
			if err != nil {
				return nil, err
			}
			in, i = true, j
		case quote == '"':
			switch {
			case c == '"':
				quote = 0
			case c == '\\' && i+1 < len(s) && strings.IndexByte(`"\$`+"`", s[i+1]) >= 0:
				i++
				cur.WriteByte(s[i])
			default:
				cur.WriteByte(c)
			}
			i++
		case c == '\'' || c == '"':
			quote, in = c, true
			i++
		case c == ' ' || c == '\t' || c == '\n':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
			i++
		case strings.IndexByte(";&|`<>()", c) >= 0:
			return nil, fmt.Errorf("shell operator %q in %q: keep the build one plain command", c, s)
		default:
			cur.WriteByte(c)
			in = true
			i++
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote in %q", s)
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

// goBuild is a go build command line: its environment assignments and the
// arguments after "go build".
type goBuild struct {
	env  map[string]string
	args []string
}

// parseGoBuild reads "[RUN flags] [NAME=value ...] go build args..." (the
// go command may be spelled $(GO) in the Makefile, expanded before).
func parseGoBuild(words []string) (goBuild, error) {
	b := goBuild{env: map[string]string{}}
	for len(words) > 0 && strings.HasPrefix(words[0], "--") { // RUN --mount=…
		words = words[1:]
	}
	for len(words) > 0 {
		name, value, ok := strings.Cut(words[0], "=")
		if !ok || name == "" || strings.ContainsAny(name, "-/.") {
			break
		}
		b.env[name] = value
		words = words[1:]
	}
	if len(words) < 2 || words[0] != "go" || words[1] != "build" {
		return goBuild{}, fmt.Errorf("want [NAME=value ...] go build ..., got %q", words)
	}
	b.args = words[2:]
	return b, nil
}

// withoutOutput returns args without "-o path", and the path.
func withoutOutput(args []string) ([]string, string) {
	var out []string
	var path string
	for i := 0; i < len(args); i++ {
		if args[i] == "-o" && i+1 < len(args) {
			path = args[i+1]
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out, path
}

// dockerBuild returns the Dockerfile's go build, with its build args
// given values: VERSION, and the target platform of the machine running
// the test.
func dockerBuild(t *testing.T, d dockerfile, version, goos, goarch string) goBuild {
	t.Helper()
	words, err := shellWords(strings.TrimSpace(d.build.args), map[string]string{
		"VERSION": version, "TARGETOS": goos, "TARGETARCH": goarch,
	})
	if err != nil {
		t.Fatalf("Dockerfile:%d: %v", d.build.line, err)
	}
	b, err := parseGoBuild(words)
	if err != nil {
		t.Fatalf("Dockerfile:%d: %v", d.build.line, err)
	}
	return b
}

// makeBuild returns the Makefile's build target's go build, with make's
// $(VAR)s expanded from the Makefile's own definitions.
func makeBuild(t *testing.T, root, version string) goBuild {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"GO": "go", "VERSION": version}
	var recipe string
	lines := strings.Split(string(b), "\n")
	for i, line := range lines {
		if name, value, ok := strings.Cut(line, ":="); ok && !strings.ContainsAny(strings.TrimSpace(name), " \t") && name != "" {
			if n := strings.TrimSpace(name); n == "LDFLAGS" {
				vars[n] = strings.TrimSpace(value)
			}
		}
		if strings.HasPrefix(line, "build:") {
			for _, r := range lines[i+1:] {
				if !strings.HasPrefix(r, "\t") {
					break
				}
				if strings.Contains(r, " build ") {
					recipe = strings.TrimSpace(r)
				}
			}
		}
	}
	if recipe == "" || vars["LDFLAGS"] == "" {
		t.Fatal("Makefile: no LDFLAGS := ... or no go build in the build target")
	}
	expandMake := func(s string) string {
		for range 4 { // variables in variables
			for name, value := range vars {
				s = strings.ReplaceAll(s, "$("+name+")", value)
			}
		}
		return s
	}
	if strings.Contains(expandMake(recipe), "$(") {
		t.Fatalf("Makefile: unexpanded variable in %q", expandMake(recipe))
	}
	words, err := shellWords(expandMake(recipe), nil)
	if err != nil {
		t.Fatalf("Makefile build: %v", err)
	}
	g, err := parseGoBuild(words)
	if err != nil {
		t.Fatalf("Makefile build: %v", err)
	}
	return g
}

// TestBuildFlagsAreTheMakefiles: the image's binary is built exactly as
// `make build` builds it (the same environment and flags; only the output
// path and the cross-compilation target differ).
func TestBuildFlagsAreTheMakefiles(t *testing.T) {
	root := repoRoot(t)
	d := readDockerfile(t, root)
	docker := dockerBuild(t, d, "v1.2.3", "linux", "amd64")
	mk := makeBuild(t, root, "v1.2.3")
	dArgs, _ := withoutOutput(docker.args)
	mArgs, _ := withoutOutput(mk.args)
	if !slices.Equal(dArgs, mArgs) {
		t.Errorf("go build arguments differ:\nDockerfile %q\nMakefile   %q", dArgs, mArgs)
	}
	dEnv := maps.Clone(docker.env)
	delete(dEnv, "GOOS")
	delete(dEnv, "GOARCH")
	if fmt.Sprint(dEnv) != fmt.Sprint(mk.env) {
		t.Errorf("go build environment differs: Dockerfile %v, Makefile %v", dEnv, mk.env)
	}
	if docker.env["CGO_ENABLED"] != "0" || !slices.Contains(dArgs, "-trimpath") {
		t.Errorf("the image needs a static, reproducible binary: CGO_ENABLED=0 and -trimpath (got %v %q)", docker.env, dArgs)
	}
	if i := slices.Index(dArgs, "-ldflags"); i < 0 || !strings.Contains(dArgs[i+1], "pdp.Version=v1.2.3") {
		t.Errorf("the version is not stamped: %q", dArgs)
	}
}

// TestDockerfileShape: the promises the README makes about the image.
func TestDockerfileShape(t *testing.T) {
	d := readDockerfile(t, repoRoot(t))
	if len(d.froms) != 2 || !strings.Contains(d.froms[0], "golang:1.26") || !strings.HasSuffix(d.froms[0], " AS build") ||
		d.froms[1] != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("stages %q: want golang:1.26 AS build, then gcr.io/distroless/static-debian12:nonroot", d.froms)
	}
	if d.user != "65532:65532" {
		t.Errorf("USER %q, want 65532:65532 (distroless nonroot)", d.user)
	}
	if !slices.Equal(d.entrypoint, []string{"/gatehouse"}) {
		t.Errorf("ENTRYPOINT %q", d.entrypoint)
	}
	if !slices.Equal(d.cmd, []string{"serve", "--addr", "0.0.0.0:8181", "--store", "sqlite:///data/gatehouse.db"}) {
		t.Errorf("CMD %q", d.cmd)
	}
	if !slices.Equal(d.health, []string{"/gatehouse", "healthcheck", "--addr", "127.0.0.1:8181"}) {
		t.Errorf("HEALTHCHECK CMD %q", d.health)
	}
	if !slices.Equal(d.expose, []string{"8181"}) || !slices.Equal(d.volumes, []string{"/data"}) {
		t.Errorf("EXPOSE %q VOLUME %q, want 8181 and /data", d.expose, d.volumes)
	}
	for _, l := range []string{"title", "description", "source", "version", "revision", "created"} {
		if !strings.Contains(d.labels, "org.opencontainers.image."+l+"=") {
			t.Errorf("no OCI label org.opencontainers.image.%s", l)
		}
	}
}

func TestShellWords(t *testing.T) {
	vars := map[string]string{"V": "1.0"}
	for in, want := range map[string][]string{
		`go build -ldflags "-s -w -X p.Version=${V}" ./cmd`: {"go", "build", "-ldflags", "-s -w -X p.Version=1.0", "./cmd"},
		`A=0 go build -ldflags '-X p.V=$V' x`:               {"A=0", "go", "build", "-ldflags", "-X p.V=$V", "x"},
		`a$V "q\"x"`:                                        {"a1.0", `q"x`},
	} {
		got, err := shellWords(in, vars)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%s: %q %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{`go build && rm -rf /`, `echo $(id)`, `"open`, `${NOPE}`} {
		if got, err := shellWords(bad, vars); err == nil {
			t.Errorf("%s: accepted as %q", bad, got)
		}
	}
}
