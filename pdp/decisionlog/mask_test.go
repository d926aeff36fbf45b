package decisionlog

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestParsePointer(t *testing.T) {
	for _, tc := range []struct {
		in    string
		root  string
		parts []string
		err   string
	}{
		{in: "/input/params/password", root: "input", parts: []string{"params", "password"}},
		{in: "/result", root: "result", parts: []string{}},
		{in: "/input/a~1b/c~0d", root: "input", parts: []string{"a/b", "c~d"}},
		{in: "/result/violations/*/match", root: "result", parts: []string{"violations", "*", "match"}},
		{in: "", err: "empty"},
		{in: "input/x", err: "starts with /"},
		{in: "/labels/id", err: "must start with /input or /result"},
		{in: "/input/a~2", err: "~ must be followed"},
		{in: "/input/a~", err: "~ must be followed"},
		{in: "/" + strings.Repeat("a", maxMaskLen), err: "longer than"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			p, err := parsePointer(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.root != tc.root || !slices.Equal(p.parts, tc.parts) || p.text != tc.in {
				t.Errorf("got %+v", p)
			}
		})
	}
}

func TestApplyMasks(t *testing.T) {
	doc := `{"params":{"password":"hunter22","card":{"number":"4111","exp":"12/30"},"list":[1,2,3],"n":1.50},` +
		`"violations":[{"match":"a","policy":"p"},{"match":"b","policy":"q"}]}`
	for _, tc := range []struct {
		name   string
		ptrs   []string
		want   string
		erased []string
	}{
		{"key", []string{"/input/params/password"},
			`{"params":{"card":{"number":"4111","exp":"12/30"},"list":[1,2,3],"n":1.50},"violations":[{"match":"a","policy":"p"},{"match":"b","policy":"q"}]}`,
			[]string{"/input/params/password"}},
		{"nested and missing", []string{"/input/params/card/number", "/input/params/nope", "/input/nope/deeper"},
			`{"params":{"card":{"exp":"12/30"},"list":[1,2,3],"n":1.50,"password":"hunter22"},"violations":[{"match":"a","policy":"p"},{"match":"b","policy":"q"}]}`,
			[]string{"/input/params/card/number"}},
		{"array element", []string{"/input/params/list/1", "/input/params/list/9", "/input/params/list/x"},
			`{"params":{"card":{"exp":"12/30","number":"4111"},"list":[1,3],"n":1.50,"password":"hunter22"},"violations":[{"match":"a","policy":"p"},{"match":"b","policy":"q"}]}`,
			[]string{"/input/params/list/1"}},
		{"wildcard", []string{"/input/violations/*/match"},
			`{"params":{"card":{"exp":"12/30","number":"4111"},"list":[1,2,3],"n":1.50,"password":"hunter22"},"violations":[{"policy":"p"},{"policy":"q"}]}`,
			[]string{"/input/violations/*/match"}},
		{"wildcard on an object", []string{"/input/params/card/*"},
			`{"params":{"card":{},"list":[1,2,3],"n":1.50,"password":"hunter22"},"violations":[{"match":"a","policy":"p"},{"match":"b","policy":"q"}]}`,
			[]string{"/input/params/card/*"}},
		{"whole document", []string{"/input", "/input/params"}, `null`, []string{"/input"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := newMasker(tc.ptrs)
			if err != nil {
				t.Fatal(err)
			}
			var v any = json.RawMessage(doc)
			erased, err := apply(m.input, &v, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(v)
			if !jsonSame(t, string(got), tc.want) {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			if !slices.Equal(erased, tc.erased) {
				t.Errorf("erased %v, want %v", erased, tc.erased)
			}
		})
	}
}

// TestApplyLeavesCaller: masking works on a copy; the caller's value, which
// the API may still be encoding as its response, is never touched.
func TestApplyLeavesCaller(t *testing.T) {
	params := map[string]any{"password": "hunter22", "keep": 1}
	m, _ := newMasker([]string{"/input/params/password"})
	var v any = QueryInput{Input: map[string]any{"params": params}, TenantID: "acme"}
	if _, err := apply(m.input, &v, nil); err != nil {
		t.Fatal(err)
	}
	if params["password"] != "hunter22" {
		t.Errorf("the caller's params were modified: %v", params)
	}
	got, _ := json.Marshal(v)
	if !jsonSame(t, string(got), `{"params":{"keep":1},"tenant_id":"acme"}`) {
		t.Errorf("masked %s", got)
	}
}

func jsonSame(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	xs, _ := json.Marshal(x)
	ys, _ := json.Marshal(y)
	return string(xs) == string(ys)
}
