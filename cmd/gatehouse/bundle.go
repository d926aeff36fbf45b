package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/gatehouse-pdp/gatehouse/bundles"
)

const bundleUsage = `Usage: gatehouse bundle build --policies DIR --tenant T --out FILE [flags]

Builds the OPA bundle of one tenant from a directory of policy documents
(GitOps): the same bundle GET /v1/bundles/{tenant}.tar.gz serves, so
"opa run --server --bundle FILE", "opa test FILE tests/" and
"gatehouse serve --bundle FILE" decide as Gatehouse does.

  DIR/*.yaml|*.json                  tenant-wide policies, one per file
  DIR/agents/<agent_id>/*.yaml|json  that agent's policies

Every document is validated as the API validates it; each problem is
printed as "file: field: reason" and the command exits 1. On success one
JSON line {"out","tenant_id","revision","etag","bytes","signed"} goes to
stdout.

Flags:
  --policies dir
      the policy directory (required)
  --tenant id
      the tenant id the bundle is for (required)
  --out file
      where to write the bundle (required; written atomically)
  --signing-key file
      PEM private key to sign with (RSA: RS256, EC P-256: ES256)
  --signing-secret-file file
      file holding an HMAC secret (at least 32 bytes) to sign with instead
  --signing-alg alg
      signing algorithm (default: from the key; HS256 for a secret)
  --key-id id
      the signature's key id (default gatehouse)
  --config file
      YAML config file whose engine thresholds are used (env GATEHOUSE_CONFIG)
`

// bundleBuilt is the line `bundle build` prints on success.
type bundleBuilt struct {
	Out      string `json:"out"`
	TenantID string `json:"tenant_id"`
	Revision string `json:"revision"`
	ETag     string `json:"etag"`
	Bytes    int    `json:"bytes"`
	Signed   bool   `json:"signed"`
}

// cmdBundle runs `gatehouse bundle <subcommand>`.
func cmdBundle(ctx context.Context, args []string, s stdio) int {
	thresholds := []*setting{setHardLimit, setApprovalThreshold}
	if len(args) == 0 || args[0] != "build" {
		w, code := s.stderr, exitUsage
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			w, code = s.stdout, exitOK
		}
		fmt.Fprint(w, bundleUsage)
		printSettings(w, thresholds)
		return code
	}
	return cmdBundleBuild(ctx, args[1:], s, thresholds)
}

func cmdBundleBuild(_ context.Context, args []string, s stdio, thresholds []*setting) int {
	fs := flag.NewFlagSet("bundle build", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cf := bindConfig(fs, thresholds...)
	dir := fs.String("policies", "", "")
	tenantID := fs.String("tenant", "", "")
	out := fs.String("out", "", "")
	keyFile := fs.String("signing-key", "", "")
	secretFile := fs.String("signing-secret-file", "", "")
	alg := fs.String("signing-alg", "", "")
	keyID := fs.String("key-id", "", "")
	usage := func(w io.Writer) {
		fmt.Fprint(w, bundleUsage)
		printSettings(w, thresholds)
	}
	if code, done := parseFlags(fs, args, usage, s); done {
		return code
	}
	var problems []string
	for _, req := range []struct{ flag, v string }{{"policies", *dir}, {"tenant", *tenantID}, {"out", *out}} {
		if req.v == "" {
			problems = append(problems, "--"+req.flag+" is required")
		}
	}
	if *keyFile != "" && *secretFile != "" {
		problems = append(problems, "--signing-key and --signing-secret-file: give one, not both")
	}
	if (*alg != "" || *keyID != "") && *keyFile == "" && *secretFile == "" {
		problems = append(problems, "--signing-alg and --key-id need --signing-key or --signing-secret-file")
	}
	cfg, err := cf.load(s.lookupEnv)
	if err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		fmt.Fprintf(s.stderr, "gatehouse bundle build: %s\n\n", strings.Join(problems, "\ngatehouse bundle build: "))
		usage(s.stderr)
		return exitUsage
	}

	var opts []bundles.Option
	if *keyFile != "" || *secretFile != "" {
		key, err := readBuildKey(*keyFile, *secretFile, *alg, *keyID)
		if err != nil {
			fmt.Fprintf(s.stderr, "gatehouse bundle build: %v\n", err)
			return exitFail
		}
		opts = append(opts, bundles.WithSigningKey(key))
	}
	built, err := bundles.BuildFromDir(*dir, *tenantID, cfg.Engine.engineConfig().Defaults().ConfigData(), opts...)
	if err != nil {
		// One line per problem, each naming the file and the field.
		for _, line := range problemLines(err) {
			fmt.Fprintf(s.stderr, "gatehouse bundle build: %s\n", line)
		}
		return exitFail
	}
	// Read it back as `serve --bundle` will: restricted capabilities,
	// valid patterns, this tenant only.
	if err := bundles.Check(built); err != nil {
		fmt.Fprintf(s.stderr, "gatehouse bundle build: %v\n", err)
		return exitFail
	}
	if err := writeFileAtomic(*out, built.Bytes); err != nil {
		fmt.Fprintf(s.stderr, "gatehouse bundle build: %v\n", err)
		return exitFail
	}
	line, _ := json.Marshal(bundleBuilt{
		Out: *out, TenantID: built.TenantID, Revision: built.Revision, ETag: built.ETag,
		Bytes: len(built.Bytes), Signed: len(opts) > 0,
	})
	fmt.Fprintf(s.stdout, "%s\n", line)
	return exitOK
}

func readBuildKey(keyFile, secretFile, alg, keyID string) (*bundles.SigningKey, error) {
	if keyFile != "" {
		pem, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, fmt.Errorf("--signing-key: %w", err)
		}
		return bundles.NewSigningKey(alg, pem, keyID)
	}
	secret, err := readSecretFile(secretFile)
	if err != nil {
		return nil, fmt.Errorf("--signing-secret-file: %w", err)
	}
	if alg == "" {
		alg = "HS256"
	}
	return bundles.NewSigningKey(alg, secret, keyID)
}

// problemLines flattens joined errors into one line each.
func problemLines(err error) []string {
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		var out []string
		for _, e := range joined.Unwrap() {
			out = append(out, problemLines(e)...)
		}
		return out
	}
	return strings.Split(err.Error(), "\n")
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory, so a reader never sees half a bundle.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
