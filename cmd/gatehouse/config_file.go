package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"
)

// readConfigFile decodes the YAML (or JSON, which is YAML) file at path
// into c. Unknown and duplicate keys are refused so a typo never silently
// leaves a default, and every problem of the file is reported at once, in
// the file's own terms: its line, the dotted key as written
// (engine.eval_timeout), and what the value should look like, never the
// JSON the decoder converts YAML to on the way.
func readConfigFile(path string, c *Config) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("config file %s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var problems []string
	if len(doc.Content) > 0 {
		checkNode(doc.Content[0], reflect.TypeFor[Config](), "", &problems)
	}
	if len(problems) > 0 {
		return fmt.Errorf("config file %s:\n  %s", path, strings.Join(problems, "\n  "))
	}
	// Every key and value checked: decode for real.
	if err := yaml.UnmarshalStrict(b, c); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// checkNode appends a problem for every key of the mapping n that t has no
// field for, every duplicate key, and every value its field cannot take.
func checkNode(n *yamlv3.Node, t reflect.Type, prefix string, problems *[]string) {
	if n.Kind == yamlv3.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	if n.Kind == yamlv3.ScalarNode && n.Tag == "!!null" {
		return
	}
	where := func(line int, key string) string {
		if key == "" {
			return fmt.Sprintf("line %d", line)
		}
		return fmt.Sprintf("line %d: %s", line, key)
	}
	if n.Kind != yamlv3.MappingNode {
		*problems = append(*problems, fmt.Sprintf("%s: want a mapping of keys to values, got %s", where(n.Line, prefix), yamlKind(n)))
		return
	}
	fields := map[string]reflect.StructField{}
	for i := range t.NumField() {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" && name != "-" {
			fields[name] = f
		}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := k.Value
		if prefix != "" {
			key = prefix + "." + k.Value
		}
		if first, dup := seen[k.Value]; dup {
			*problems = append(*problems, fmt.Sprintf("%s: given twice (first on line %d)", where(k.Line, key), first))
			continue
		}
		seen[k.Value] = k.Line
		f, ok := fields[k.Value]
		if !ok {
			*problems = append(*problems, fmt.Sprintf("%s: unknown key%s", where(k.Line, key), suggestKey(k.Value, fields)))
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Struct && !reflect.PointerTo(ft).Implements(reflect.TypeFor[json.Unmarshaler]()) {
			checkNode(v, ft, key, problems)
			continue
		}
		if err := decodeValue(v, ft); err != nil {
			*problems = append(*problems, fmt.Sprintf("%s: %s", where(v.Line, key), err))
		}
	}
}

// decodeValue decodes one value node into a new value of type t, as the
// real decode will, and returns its error in YAML terms.
func decodeValue(v *yamlv3.Node, t reflect.Type) error {
	b, err := yamlv3.Marshal(v)
	if err != nil {
		return err
	}
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
	}
	err = json.Unmarshal(j, reflect.New(t).Interface())
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("want %s, got %s", describeType(t), yamlKind(v))
	}
	return err
}

// describeType says what a value of t looks like in YAML.
func describeType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list of " + strings.TrimPrefix(describeType(t.Elem()), "a ") + "s"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	}
	return t.String()
}

// yamlKind says what a node holds, in YAML's words.
func yamlKind(n *yamlv3.Node) string {
	switch n.Kind {
	case yamlv3.MappingNode:
		return "a mapping"
	case yamlv3.SequenceNode:
		return "a list"
	case yamlv3.AliasNode:
		return "an alias"
	}
	switch n.Tag {
	case "!!str":
		return fmt.Sprintf("the string %q", n.Value)
	case "!!int", "!!float":
		return "the number " + n.Value
	case "!!bool":
		return n.Value
	case "!!null":
		return "null"
	}
	return n.Value
}

// suggestKey names the known key closest to an unknown one, when it is
// one or two edits away: most unknown keys are typos.
func suggestKey(k string, fields map[string]reflect.StructField) string {
	best, bestD := "", 3
	for name := range fields {
		if d := editDistance(k, name); d < bestD || (d == bestD && name < best) {
			best, bestD = name, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
