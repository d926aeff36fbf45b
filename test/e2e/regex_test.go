package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// TestRegexDialectAndCost runs the regex reproductions through the
// binary: the attacker's pattern is refused with 400 naming the field and
// the bound; patterns mean what Python's re.search(p, text, re.IGNORECASE)
// means (Unicode digits and spaces, i ~ ı); \b is refused by name; an
// action text over the bound is refused with 413, never truncated.
func TestRegexDialectAndCost(t *testing.T) {
	t.Parallel()
	_, c := startDev(t, Options{})

	t.Run("attacker pattern refused", func(t *testing.T) {
		var b strings.Builder
		for i := 0; ; i++ {
			branch := fmt.Sprintf(".{1000}%c", 'a'+rune(i%26))
			if b.Len()+len(branch)+1 > 1024 {
				break
			}
			if i > 0 {
				b.WriteByte('|')
			}
			b.WriteString(branch)
		}
		r := c.Do(t, "POST", "/v1/control/policies", doc("name", "evil", "rules", []any{rule(), rule("match", b.String())}))
		m := wantError(t, r, 400, "novyx_ram.v1.control.invalid_policy")
		msg, _ := m["message"].(string)
		if !strings.Contains(msg, "rules[1].match") || !strings.Contains(msg, "over the bound of 56 for a rule") {
			t.Errorf("message %q names neither the field nor the bound", msg)
		}
		wantStatus(t, c.Do(t, "GET", "/v1/control/policies/evil", nil), 404)
	})

	t.Run("word boundary refused by name", func(t *testing.T) {
		m := wantError(t, c.Do(t, "POST", "/v1/control/policies", doc("rules", []any{rule("match", `\bssn\b`)})), 400, "novyx_ram.v1.control.invalid_policy")
		if msg, _ := m["message"].(string); !strings.Contains(msg, `rules[0].match: word boundary \b is not supported`) {
			t.Errorf("message %q", msg)
		}
	})

	wantStatus(t, c.Do(t, "POST", "/v1/control/policies", map[string]any{"name": "python_re", "rules": []any{
		map[string]any{"match": `\d{3}-\d{2}-\d{4}`, "severity": "critical", "reason": "ssn {match}"},
		map[string]any{"match": `rm\s+-rf`, "severity": "critical", "reason": "rm {match}"},
		map[string]any{"match": `bitcoin`, "severity": "critical", "reason": "coin {match}"},
	}}), 201)
	for _, tc := range []struct{ name, text, reason string }{
		{"Arabic-Indic digits", "ssn ١٢٣-٤٥-٦٧٨٩", "ssn ١٢٣-٤٥-٦٧٨٩"},
		{"full-width digits", "ssn １２３-４５-６７８９", "ssn １２３-４５-６７８９"},
		{"no-break space", "rm\u00a0-rf /", "rm rm\u00a0-rf"},
		{"dotless i", "buy bıtcoın now", "coin bıtcoın"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := wantStatus(t, c.Do(t, "POST", "/v1/actions", map[string]any{"action": "shell.run", "params": map[string]any{"cmd": tc.text}}), 200)
			wantField(t, r, "blocked", "status")
			wantField(t, r, tc.reason, "policy_result", "reason")
		})
	}
	t.Run("zero-width space is not a space", func(t *testing.T) {
		r := c.Do(t, "POST", "/v1/actions", map[string]any{"action": "shell.run", "params": map[string]any{"cmd": "rm\u200b-rf"}})
		wantField(t, wantStatus(t, r, 200), "allowed", "status")
	})

	t.Run("action text over the bound", func(t *testing.T) {
		r := c.Do(t, "POST", "/v1/actions", map[string]any{"action": "a", "params": map[string]any{"t": strings.Repeat("x", 4096)}})
		m := wantError(t, r, 413, "PAYLOAD_TOO_LARGE")
		if msg, _ := m["message"].(string); !strings.Contains(msg, "must be at most 4096 bytes") {
			t.Errorf("message %q", msg)
		}
	})
}
