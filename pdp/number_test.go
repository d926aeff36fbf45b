package pdp

import (
	"encoding/json"
	"testing"
)

// ValidNumber accepts exactly the json.Number texts encoding/json writes
// (it refuses the others; the empty Number it writes as 0, which
// ValidNumber leaves to its callers).
func FuzzValidNumber(f *testing.F) {
	for _, s := range []string{"0", "-0", "1", "-12.5", "1e3", "1E+3", "2.5e-7", "01", "1.", ".5", "-", "1e", "1e+", "+1", " 1", "1 ", "0x10", "NaN", "1_000", "١"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if s == "" {
			if ValidNumber(s) {
				t.Fatal(`ValidNumber("") = true`)
			}
			return
		}
		_, err := json.Marshal(json.Number(s))
		if got, want := ValidNumber(s), err == nil; got != want {
			t.Fatalf("ValidNumber(%q) = %v; encoding/json writes it: %v", s, got, want)
		}
	})
}
