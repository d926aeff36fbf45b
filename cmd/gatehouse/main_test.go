package main

import (
	"strings"
	"testing"

	opaversion "github.com/open-policy-agent/opa/v1/version"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// runCmd runs the CLI in-process.
func runCmd(t *testing.T, vars map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut strings.Builder
	code = run(t.Context(), args, stdio{stdout: &out, stderr: &errOut, lookupEnv: env(vars)})
	return code, out.String(), errOut.String()
}

func TestRunDispatch(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{nil, exitUsage, "", "Usage:"},
		{[]string{"frobnicate"}, exitUsage, "", `unknown command "frobnicate"`},
		{[]string{"help"}, exitOK, "gatehouse tenant create", ""},
		{[]string{"--help"}, exitOK, "gatehouse healthcheck", ""},
		{[]string{"help", "serve"}, exitOK, "GATEHOUSE_ADDR", ""},
		{[]string{"help", "tenant"}, exitOK, "--tier", ""},
		{[]string{"help", "healthcheck"}, exitOK, "--timeout", ""},
		{[]string{"serve", "--nope"}, exitUsage, "", "flag provided but not defined: -nope"},
		{[]string{"serve", "extra"}, exitUsage, "", `unexpected argument "extra"`},
		{[]string{"tenant"}, exitUsage, "", "tenant create"},
		{[]string{"tenant", "delete"}, exitUsage, "", "tenant create"},
		{[]string{"version", "extra"}, exitUsage, "", "Usage: gatehouse version"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errOut := runCmd(t, nil, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.inStdout) || !strings.Contains(errOut, tc.inStderr) {
				t.Errorf("exit %d (want %d)\nstdout %q (want %q)\nstderr %q (want %q)", code, tc.code, out, tc.inStdout, errOut, tc.inStderr)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCmd(t, nil, "version")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"gatehouse " + pdp.Version, "go1.", "opa       " + opaversion.Version} {
		if !strings.Contains(out, want) {
			t.Errorf("version output lacks %q:\n%s", want, out)
		}
	}
}
