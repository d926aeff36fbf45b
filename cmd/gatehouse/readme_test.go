package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// readmeRow is one row of README's configuration table.
type readmeRow struct {
	line                 int
	flag, env, key, dflt string
}

var firstCode = regexp.MustCompile("`([^`]*)`")

// readmeConfigTable returns the rows of the table under "## Configuration"
// whose header is "| flag | env | file key | default |".
func readmeConfigTable(t *testing.T) []readmeRow {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var (
		rows             []readmeRow
		inSection, inTab bool
	)
	for i, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "## "):
			inSection, inTab = line == "## Configuration", false
		case !inSection:
		case strings.ReplaceAll(line, " ", "") == "|flag|env|filekey|default|":
			inTab = true
		case inTab && strings.HasPrefix(line, "|---"):
		case inTab && strings.HasPrefix(line, "|"):
			cells := splitRow(line)
			if len(cells) != 4 {
				t.Fatalf("README.md:%d: %d cells, want 4", i+1, len(cells))
			}
			code := func(c string) string {
				if m := firstCode.FindStringSubmatch(c); m != nil {
					return m[1]
				}
				return c
			}
			rows = append(rows, readmeRow{line: i + 1, flag: code(cells[0]), env: code(cells[1]), key: code(cells[2]), dflt: cells[3]})
		case inTab:
			inTab = false
		}
	}
	if len(rows) == 0 {
		t.Fatal("README.md: no configuration table under ## Configuration")
	}
	return rows
}

// splitRow splits a Markdown table row on the pipes that are not escaped.
func splitRow(line string) []string {
	line = strings.TrimSpace(line)
	line = strings.TrimSuffix(strings.TrimPrefix(line, "|"), "|")
	var cells []string
	var cur strings.Builder
	for i := 0; i < len(line); i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line) && line[i+1] == '|':
			cur.WriteByte('|')
			i++
		case line[i] == '|':
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(line[i])
		}
	}
	return append(cells, strings.TrimSpace(cur.String()))
}

// TestReadmeConfigTable: README's configuration table lists every setting
// of serve, in --help order, with its flag, variable, file key and
// default, so the documentation cannot drift from the binary. A missing
// row is printed ready to paste.
func TestReadmeConfigTable(t *testing.T) {
	rows := readmeConfigTable(t)
	if rows[0].flag != "--config" || rows[0].env != envConfig {
		t.Errorf("README.md:%d: the first row must be --config / %s", rows[0].line, envConfig)
	} else {
		rows = rows[1:]
	}
	def := Config{}.Defaults()
	byFlag := map[string]readmeRow{}
	var order []string
	for _, r := range rows {
		byFlag[r.flag] = r
		order = append(order, r.flag)
	}
	var want []string
	for _, s := range serveSettings {
		flag := "--" + s.flag
		want = append(want, flag)
		d := s.display(def)
		r, ok := byFlag[flag]
		if !ok {
			shown := "`" + d + "`"
			if d == "" {
				shown = "none"
			}
			t.Errorf("README.md lacks the row of %s:\n| `%s` | `%s` | `%s` | %s |", flag, flag, s.env, s.key, shown)
			continue
		}
		if r.env != s.env || r.key != s.key {
			t.Errorf("README.md:%d: %s: env %q, file key %q; the binary has %q, %q", r.line, flag, r.env, r.key, s.env, s.key)
		}
		if !defaultShown(r.dflt, d) {
			t.Errorf("README.md:%d: %s: default cell %q must begin with %s", r.line, flag, r.dflt, describe(d))
		}
	}
	for _, f := range order {
		if !slices.Contains(want, f) {
			t.Errorf("README.md:%d: %s is not a setting of serve", byFlag[f].line, f)
		}
	}
	if t.Failed() {
		return
	}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Errorf("README.md's rows are not in --help order:\n got %v\nwant %v", order, want)
	}
}

// defaultShown: the cell starts with the default — in backticks, or bare
// for booleans — or with "none" when there is none.
func defaultShown(cell, d string) bool {
	if d == "" {
		return cell == "none" || strings.HasPrefix(cell, "none:") || strings.HasPrefix(cell, "none;") || strings.HasPrefix(cell, "none ")
	}
	if strings.HasPrefix(cell, "`"+d+"`") {
		return true
	}
	rest, ok := strings.CutPrefix(cell, d)
	return ok && (rest == "" || strings.IndexByte(":; (", rest[0]) >= 0)
}

func describe(d string) string {
	if d == "" {
		return `"none"`
	}
	return "`" + d + "`"
}
