package engine

import (
	"bytes"
	"encoding/json"
	"regexp"
	"testing"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/test/scale"
)

// BenchmarkActionText is the action text of scale M's corpus written by
// the walk of params (walk) and from the params' encoding as the
// lifecycle hands it over (params-json: pdp.Action.ParamsJSON).
func BenchmarkActionText(b *testing.B) {
	s := scale.M()
	actions := make([]pdp.Action, len(s.Actions))
	for i, a := range s.Actions {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(a.Params); err != nil {
			b.Fatal(err)
		}
		a.ParamsJSON = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
		actions[i] = a
	}
	b.Run("walk", func(b *testing.B) {
		i := 0
		for b.Loop() {
			a := &actions[i%len(actions)]
			if _, err := actionText(a.Name, a.Params); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("params-json", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, err := actionTextOf(&actions[i%len(actions)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// BenchmarkBoundaryRegex is the translated SSN rule, (?:^|\W)\d{3}-..., on
// scale M's action texts: Go's regexp as OPA runs it (regexp) and goRegex
// trying the anchored pattern at boundaries only (boundary).
func BenchmarkBoundaryRegex(b *testing.B) {
	pattern, err := adapter.Translate(`(?:^|\W)\d{3}-\d{2}-\d{4}(?:\W|\Z)`)
	if err != nil {
		b.Fatal(err)
	}
	g, err := compileGoRegex(pattern)
	if err != nil || g.bndClass == nil {
		b.Fatal("no boundary fast path", err)
	}
	re := regexp.MustCompile(pattern)
	var texts, folded []string
	for _, a := range scale.M().Actions {
		text, err := actionText(a.Name, a.Params)
		if err != nil {
			b.Fatal(err)
		}
		if isASCII(text) {
			texts, folded = append(texts, text), append(folded, foldText(text))
		}
	}
	b.Run("regexp", func(b *testing.B) {
		i := 0
		for b.Loop() {
			re.FindAllString(texts[i%len(texts)], 1)
			i++
		}
	})
	b.Run("boundary", func(b *testing.B) {
		i := 0
		for b.Loop() {
			g.find(texts[i%len(texts)], folded[i%len(texts)], true)
			i++
		}
	})
}
