package api

import "testing"

// TestCSVCell: a cell a spreadsheet would run as a formula, or that
// begins with the quote that marks one, is written after a single quote;
// any other is written as it is, and stripping one leading quote from a
// cell that has one gives every value back.
func TestCSVCell(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"ops bot/eu", "ops bot/eu"},
		{"action_executed", "action_executed"},
		{"sha256:00ff", "sha256:00ff"},
		{`{"a":"=1"}`, `{"a":"=1"}`},
		{"2026-12-05T19:00:00Z", "2026-12-05T19:00:00Z"},
		{"a=1", "a=1"},
		{"=HYPERLINK(\"http://x\",\"y\")", "'=HYPERLINK(\"http://x\",\"y\")"},
		{"+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"},
		{"-2+3", "'-2+3"},
		{"@SUM(A1:A9)", "'@SUM(A1:A9)"},
		{"\t=1", "'\t=1"},
		{"\r=1", "'\r=1"},
		{"'quoted", "''quoted"},
		{"'", "''"},
	} {
		got := csvCell(c.in)
		if got != c.want {
			t.Errorf("csvCell(%q) = %q, want %q", c.in, got, c.want)
		}
		back := got
		if len(back) > 0 && back[0] == '\'' {
			back = back[1:]
		}
		if back != c.in {
			t.Errorf("csvCell(%q) = %q reads back as %q", c.in, got, back)
		}
	}
}
