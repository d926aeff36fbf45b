package adapter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"strconv"
	"strings"
	"unicode/utf8"

	goyaml "go.yaml.in/yaml/v2"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// MaxDocumentBytes is the largest policy document callers should hand to
// Decode. Decode does not enforce it: the caller limits what it reads (the
// API answers 413 before the body is parsed).
const MaxDocumentBytes = 1 << 20

// Format is the encoding of a policy document.
type Format int

// Formats. YAML has the same schema as JSON (docs/api.md §A3).
const (
	FormatJSON Format = iota
	FormatYAML
)

// String returns "json" or "yaml".
func (f Format) String() string {
	if f == FormatYAML {
		return "yaml"
	}
	return "json"
}

// FormatFromContentType maps a Content-Type header to a Format:
// application/yaml, application/x-yaml, text/yaml and text/x-yaml (any case,
// any parameters) are YAML; anything else, including an empty or malformed
// header, is JSON.
func FormatFromContentType(ct string) Format {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mt, _, _ = strings.Cut(ct, ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
	}
	switch mt {
	case "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml":
		return FormatYAML
	}
	return FormatJSON
}

// Document is a policy document as the user wrote it. A nil pointer or slice
// is a field the document left out (or set to null); Policy turns a Document
// into a validated, normalized pdp.Policy. The tags use omitzero so that
// encoding a Document keeps an empty list ("[]" is an error for step_types,
// absent is the default) apart from a missing one.
type Document struct {
	Name               *string        `json:"name,omitzero"`
	Description        *string        `json:"description,omitzero"`
	AgentID            *string        `json:"agent_id,omitzero"`
	StepTypes          []string       `json:"step_types,omitzero"`
	WhitelistedDomains []string       `json:"whitelisted_domains,omitzero"`
	Rules              []RuleDocument `json:"rules,omitzero"`
	Enabled            *bool          `json:"enabled,omitzero"`
	Mode               *string        `json:"mode,omitzero"`
}

// RuleDocument is one rule of a Document as the user wrote it.
type RuleDocument struct {
	Match           *string  `json:"match,omitzero"`
	Severity        *string  `json:"severity,omitzero"`
	OnViolation     *string  `json:"on_violation,omitzero"`
	Reason          *string  `json:"reason,omitzero"`
	ContextRequires *string  `json:"context_requires,omitzero"`
	Confidence      *float64 `json:"confidence,omitzero"`
}

// Decode parses a policy document in format f. It checks shape only —
// values are checked by Document.Policy — and rejects, with the path of the
// offending field: unknown fields at any depth (`rules[0]: unknown field
// "sevrity"`), a field given twice, a value of the wrong JSON type
// (`rules[0].severity: must be a string`), strings that are not valid UTF-8,
// a document that is not an object, and anything after the document
// (trailing JSON, or a second YAML document). JSON null counts as absent.
// Every shape problem is returned at once as pdp.ValidationErrors; a syntax
// error is a single *pdp.ValidationError with an empty Field.
//
// Field names are matched exactly. encoding/json would match "Name" to
// "name" and keep the last of two "severity" keys, and its unknown-field
// error does not say where the field was; the hand-written walk below has
// none of these gaps, so DisallowUnknownFields is not used.
func Decode(data []byte, f Format) (*Document, error) {
	if f == FormatYAML {
		j, err := yamlToJSON(data)
		if err != nil {
			return nil, err
		}
		data = j
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, jsonSyntaxError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &pdp.ValidationError{Reason: "unexpected data after the policy document"}
	}
	if jsonKind(raw) != '{' {
		return nil, &pdp.ValidationError{Reason: "the policy document must be an object"}
	}
	var d Document
	w := &docWalker{}
	w.object(raw, "", documentFields(&d))
	if err := w.errs.Err(); err != nil {
		return nil, err
	}
	return &d, nil
}

// yamlToJSON converts one YAML document to JSON. sigs.k8s.io/yaml reads only
// the first document of a stream, so a decoder first makes sure there is no
// second one: a policy must not carry text that is silently ignored.
func yamlToJSON(data []byte) ([]byte, error) {
	dec := goyaml.NewDecoder(bytes.NewReader(data))
	dec.SetStrict(true)
	var first, second any
	if err := dec.Decode(&first); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &pdp.ValidationError{Reason: "the policy document is empty"}
		}
		return nil, yamlError(err)
	}
	if err := dec.Decode(&second); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, yamlError(err)
		}
		return nil, &pdp.ValidationError{Reason: "unexpected data after the policy document: only one YAML document is allowed"}
	}
	// Strict: a key given twice in one mapping is an error, not "last wins".
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, yamlError(err)
	}
	return j, nil
}

func yamlError(err error) error {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	msg = strings.TrimPrefix(msg, "error converting YAML to JSON: ")
	msg = strings.TrimPrefix(msg, "yaml: ")
	return &pdp.ValidationError{Reason: "invalid YAML: " + msg}
}

func jsonSyntaxError(err error) error {
	if errors.Is(err, io.EOF) {
		return &pdp.ValidationError{Reason: "the policy document is empty"}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return &pdp.ValidationError{Reason: "invalid JSON: unexpected end of input"}
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return &pdp.ValidationError{Reason: fmt.Sprintf("invalid JSON at byte %d: %s", se.Offset, se.Error())}
	}
	return &pdp.ValidationError{Reason: "invalid JSON: " + strings.TrimPrefix(err.Error(), "json: ")}
}

// fieldSetter decodes one member's raw value into its Go field, reporting
// shape problems to w under path.
type fieldSetter func(w *docWalker, raw json.RawMessage, path string)

// documentFields and ruleFields are the schema: the only keys Decode accepts.
// TestDecodeSchemaMatchesTags keeps them in step with the json tags.
func documentFields(d *Document) map[string]fieldSetter {
	return map[string]fieldSetter{
		"name":                func(w *docWalker, raw json.RawMessage, p string) { d.Name = w.str(raw, p) },
		"description":         func(w *docWalker, raw json.RawMessage, p string) { d.Description = w.str(raw, p) },
		"agent_id":            func(w *docWalker, raw json.RawMessage, p string) { d.AgentID = w.str(raw, p) },
		"step_types":          func(w *docWalker, raw json.RawMessage, p string) { d.StepTypes = w.strs(raw, p) },
		"whitelisted_domains": func(w *docWalker, raw json.RawMessage, p string) { d.WhitelistedDomains = w.strs(raw, p) },
		"rules":               func(w *docWalker, raw json.RawMessage, p string) { d.Rules = w.rules(raw, p) },
		"enabled":             func(w *docWalker, raw json.RawMessage, p string) { d.Enabled = w.boolean(raw, p) },
		"mode":                func(w *docWalker, raw json.RawMessage, p string) { d.Mode = w.str(raw, p) },
	}
}

func ruleFields(r *RuleDocument) map[string]fieldSetter {
	return map[string]fieldSetter{
		"match":            func(w *docWalker, raw json.RawMessage, p string) { r.Match = w.str(raw, p) },
		"severity":         func(w *docWalker, raw json.RawMessage, p string) { r.Severity = w.str(raw, p) },
		"on_violation":     func(w *docWalker, raw json.RawMessage, p string) { r.OnViolation = w.str(raw, p) },
		"reason":           func(w *docWalker, raw json.RawMessage, p string) { r.Reason = w.str(raw, p) },
		"context_requires": func(w *docWalker, raw json.RawMessage, p string) { r.ContextRequires = w.str(raw, p) },
		"confidence":       func(w *docWalker, raw json.RawMessage, p string) { r.Confidence = w.number(raw, p) },
	}
}

// docWalker walks syntactically valid JSON (dec.Decode has checked it) and
// collects shape problems.
type docWalker struct {
	errs pdp.ValidationErrors
}

func (w *docWalker) fail(path, format string, args ...any) {
	w.errs = append(w.errs, &pdp.ValidationError{Field: path, Reason: fmt.Sprintf(format, args...)})
}

// object reads the members of the object raw (at path) in order, rejecting
// unknown and repeated keys, and hands each known one to its setter.
func (w *docWalker) object(raw json.RawMessage, path string, fields map[string]fieldSetter) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // '{'
		w.fail(path, "must be an object")
		return
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		key, ok := tok.(string)
		if err != nil || !ok {
			w.fail(path, "must be an object")
			return
		}
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			w.fail(path, "must be an object")
			return
		}
		set, known := fields[key]
		switch {
		case !known:
			// Strict on purpose (docs/api.md §A3): a misspelt
			// context_requires or on_violation would otherwise silently
			// weaken the policy.
			w.fail(path, "unknown field %q (policies are strict: a misspelt field would silently weaken the policy)", shorten(key))
		case seen[key]:
			w.fail(path, "duplicate field %q", key)
		default:
			seen[key] = true
			set(w, val, joinPath(path, key))
		}
	}
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// shorten bounds user text echoed in a message.
func shorten(s string) string {
	const limit = 64
	if utf8.RuneCountInString(s) <= limit {
		return s
	}
	return string([]rune(s)[:limit]) + "…"
}

func (w *docWalker) str(raw json.RawMessage, path string) *string {
	switch jsonKind(raw) {
	case 'n':
		return nil
	case '"':
	default:
		w.fail(path, "must be a string")
		return nil
	}
	if !jsonStringIsUTF8(raw) {
		w.fail(path, "must be valid UTF-8")
		return nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		w.fail(path, "must be a string")
		return nil
	}
	return &s
}

// strs decodes an array of strings. An empty array stays a non-nil empty
// slice so Policy can tell "[]" from "absent".
func (w *docWalker) strs(raw json.RawMessage, path string) []string {
	elems, ok := w.array(raw, path)
	if !ok {
		return nil
	}
	out := make([]string, 0, len(elems))
	for i, e := range elems {
		p := fmt.Sprintf("%s[%d]", path, i)
		if jsonKind(e) == 'n' {
			w.fail(p, "must be a string")
			continue
		}
		if s := w.str(e, p); s != nil {
			out = append(out, *s)
		}
	}
	return out
}

func (w *docWalker) rules(raw json.RawMessage, path string) []RuleDocument {
	elems, ok := w.array(raw, path)
	if !ok {
		return nil
	}
	out := make([]RuleDocument, len(elems))
	for i, e := range elems {
		p := fmt.Sprintf("%s[%d]", path, i)
		if jsonKind(e) != '{' {
			w.fail(p, "must be an object")
			continue
		}
		w.object(e, p, ruleFields(&out[i]))
	}
	return out
}

func (w *docWalker) array(raw json.RawMessage, path string) ([]json.RawMessage, bool) {
	switch jsonKind(raw) {
	case 'n':
		return nil, false
	case '[':
	default:
		w.fail(path, "must be an array")
		return nil, false
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		w.fail(path, "must be an array")
		return nil, false
	}
	return elems, true
}

// number decodes a JSON number. A number too large for float64 becomes ±Inf
// and is then rejected by validation as out of range.
func (w *docWalker) number(raw json.RawMessage, path string) *float64 {
	switch jsonKind(raw) {
	case 'n':
		return nil
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
	default:
		w.fail(path, "must be a number")
		return nil
	}
	f, err := strconv.ParseFloat(string(bytes.TrimSpace(raw)), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		w.fail(path, "must be a number")
		return nil
	}
	return &f
}

func (w *docWalker) boolean(raw json.RawMessage, path string) *bool {
	switch jsonKind(raw) {
	case 'n':
		return nil
	case 't', 'f':
	default:
		w.fail(path, "must be a boolean")
		return nil
	}
	b := jsonKind(raw) == 't'
	return &b
}

// jsonKind returns the first byte of a JSON value: '{', '[', '"', 't', 'f',
// 'n', or the first character of a number; 0 for empty input.
func jsonKind(raw []byte) byte {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

// jsonStringIsUTF8 reports whether the JSON string literal raw decodes
// without loss. encoding/json silently replaces invalid UTF-8 bytes and
// unpaired surrogate escapes (\ud800) with U+FFFD; a policy must not be
// changed behind its author's back, so both are rejected instead.
func jsonStringIsUTF8(raw []byte) bool {
	if !utf8.Valid(raw) {
		return false
	}
	s := string(raw)
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		i++
		if i >= len(s) || s[i] != 'u' {
			continue // a two-character escape such as \" or \\
		}
		r, ok := hex4(s, i+1)
		if !ok {
			return false
		}
		i += 4
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return false // low surrogate with no high surrogate before it
		case r >= 0xD800 && r <= 0xDBFF:
			if i+2 >= len(s) || s[i+1] != '\\' || s[i+2] != 'u' {
				return false
			}
			lo, ok := hex4(s, i+3)
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return false
			}
			i += 6
		}
	}
	return true
}

func hex4(s string, at int) (rune, bool) {
	if at+4 > len(s) {
		return 0, false
	}
	v, err := strconv.ParseUint(s[at:at+4], 16, 32)
	return rune(v), err == nil
}
