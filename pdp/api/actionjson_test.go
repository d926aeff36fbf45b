package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// actionBodySeeds are bodies of POST /v1/actions, plain and odd.
var actionBodySeeds = []string{
	`{"action":"slack.send_message","params":{"channel":"#general","text":"hi"},"agent_id":"bot","step_type":"ACTION"}`,
	` { "action" : "a" , "params" : { "n" : -1.5e+3 , "z" : 0 , "l" : [ 1 , true , false , null , "s" , { } , [ ] ] } } ` + "\n",
	`{"action":"a","params":null,"agent_id":null,"step_type":null}`,
	"{\"action\":\"é 日本 🙂\",\"params\":{\"ключ\":\"значение\",\"\x7f\":\"x\x7f\"}}",
	`{"action":"a","params":{"k":"v","k":"w"},"action":"b","params":{"x":1}}`,
	`{"action":"a","params":{"a":{"b":{"c":[[[1]]]}}},"extra":{"unknown":[1,2,{"x":null}]},"more":"x"}`,
	`{"action":"a","params":{"\u00e9":"x"}}`, `{"Action":"a"}`, `{"ACTION":"a","PARAMS":{}}`, `{"ſtep_type":"action"}`, `{"agent_\u0069d":"x"}`,
	`{"action":"tab\there"}`, `{"action":"esc\"aped"}`, `{"action":"bad` + "\xff" + `utf8"}`, `{"action":"ctl` + "\x01" + `"}`,
	`{"action":1}`, `{"action":"a","params":"str"}`, `{"action":"a","params":[1]}`, `{"agent_id":{}}`, `{"step_type":true}`,
	`{"action":"a","params":{"n":01}}`, `{"action":"a","params":{"n":1.}}`, `{"action":"a","params":{"n":-}}`, `{"action":"a","params":{"n":.5}}`,
	`{"action":"a","params":{"n":1e}}`, `{"action":"a","params":{"n":1E-7,"m":123456789012345678901234567890}}`,
	`{"action":"a",}`, `{"action":"a"`, `{"action" "a"}`, `{,}`, `{}`, `{} {}`, `{}x`, `[]`, `"x"`, `null`, ``, `   `, `nul`, `{"action":tru}`,
	`{"action":"a","params":{"x":truex}}`, `{"action":"a","params":{"x":[1,]}}`, `{"action":"a","params":{"x":[,1]}}`, `{"a":1,"a":2}`,
	"\ufeff{}", `{"action":"a","params":{}}` + "\x00",
	// params as the lifecycle encodes them, and near misses of it.
	`{"action":"a","params":{"a":[1,"x",{"b":null,"c":true}],"b":{},"c":[],"d":-0.5e+3}}`,
	`{"action":"a","params":{"b":1,"a":2}}`, `{"action":"a","params":{"a":1,"a":2}}`, `{"action":"a","params":{"a":1, "b":2}}`,
	`{"action":"a","params":{"a":[1, 2]}}`, `{"action":"a","params":{"a":{"y":1,"x":2}}}`, "{\"action\":\"a\",\"params\":{\"a\":\"\u2028\"}}",
	"{\"action\":\"a\",\"params\":{\"\u2029\":1}}", `{"action":"a","params":{"a":"<&>"}}`, `{"action":"a","params":{"é":1,"z":2}}`,
	`{"action":"a","params":{"a":1},"params":{"b":2,"a":1}}`, `{"action":"a","params":{"a":1},"params":null}`, `{"params":{"a":1} , "action":"a"}`,
}

// checkSame fails t unless decodeActionBody and decodeLenient agree on
// body: the same error text, or the same decoded value.
func checkSame(t testing.TB, body []byte) {
	var (
		wantBody  actionBody
		want, got actionFields
	)
	wantErr := decodeLenient(body, &wantBody)
	want.from(&wantBody)
	gotErr := decodeActionBody(body, &got)
	if fmt.Sprint(wantErr) != fmt.Sprint(gotErr) {
		t.Fatalf("%q: error %v, encoding/json's %v", body, gotErr, wantErr)
	}
	// ParamsText is the fast decoder's alone: when it is given, it must
	// be byte for byte what the lifecycle would encode the params as
	// (encoding/json without HTML escaping).
	if got.ParamsText != nil {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(got.Params); err != nil {
			t.Fatalf("%q: params text given for params encoding/json refuses: %v", body, err)
		}
		if enc := bytes.TrimSuffix(buf.Bytes(), []byte("\n")); !bytes.Equal(got.ParamsText, enc) {
			t.Fatalf("%q: params text %q, encoded %q", body, got.ParamsText, enc)
		}
	}
	got.ParamsText = nil
	if wantErr == nil && !reflect.DeepEqual(want, got) {
		t.Fatalf("%q:\n got %#v\nwant %#v", body, got, want)
	}
	wantP, wantErr := decodeParamsJSON(body, "")
	gotP, gotErr := decodeParams(body, "")
	if fmt.Sprint(wantErr) != fmt.Sprint(gotErr) {
		t.Fatalf("params %q: error %v, encoding/json's %v", body, gotErr, wantErr)
	}
	if !reflect.DeepEqual(wantP, gotP) {
		t.Fatalf("params %q:\n got %#v\nwant %#v", body, gotP, wantP)
	}
}

// TestDecodeActionBodyMatchesEncodingJSON: the fast decoder agrees with
// encoding/json on plain, odd and broken bodies, and on random bodies and
// their mutations; and it does decode the plain ones itself.
func TestDecodeActionBodyMatchesEncodingJSON(t *testing.T) {
	for _, s := range actionBodySeeds {
		checkSame(t, []byte(s))
	}
	for _, s := range actionBodySeeds[:5] {
		p := newFastParser([]byte(s))
		if !p.actionBody(&actionFields{}) {
			t.Errorf("%q: left to encoding/json", s)
		}
	}
	// Params as encoding/json writes them are taken as they are; any
	// other spelling is not.
	for s, exact := range map[string]bool{
		actionBodySeeds[0]: true, `{"action":"a","params":{"a":[1,"x",{"b":null,"c":true}],"b":{},"c":[],"d":-0.5e+3}}`: true,
		`{"params":{"a":1} , "action":"a"}`: true, `{"action":"a","params":{"é":1,"z":2}}`: false,
		`{"action":"a","params":{"b":1,"a":2}}`: false, `{"action":"a","params":{"a":1,"a":2}}`: false, `{"action":"a","params":{"a":1, "b":2}}`: false,
		`{"action":"a","params":{"a":{"y":1,"x":2}}}`: false, "{\"action\":\"a\",\"params\":{\"a\":\"\u2028\"}}": false,
		`{"action":"a","params":{"a":1},"params":{"b":2,"a":1}}`: false, `{"action":"a","params":{"a":1},"params":null}`: false,
	} {
		var f actionFields
		if err := decodeActionBody([]byte(s), &f); err != nil || (f.ParamsText != nil) != exact {
			t.Errorf("%q: params text %q (%v), want given: %v", s, f.ParamsText, err, exact)
		}
	}
	r := rand.New(rand.NewPCG(7, 8))
	for range 3000 {
		doc := map[string]any{"action": randString(r), "params": randValue(r, 0)}
		if r.IntN(3) == 0 {
			doc["agent_id"] = randString(r)
		}
		if r.IntN(5) == 0 {
			doc[randString(r)] = randValue(r, 1)
		}
		var buf strings.Builder
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(r.IntN(2) == 0)
		if err := enc.Encode(doc); err != nil {
			t.Fatal(err)
		}
		body := []byte(buf.String())
		if r.IntN(2) == 0 {
			body = []byte(strings.ReplaceAll(string(body), ",", " ,\n\t"))
		}
		checkSame(t, body)
		for range 3 {
			m := append([]byte(nil), body...)
			switch i := r.IntN(len(m)); r.IntN(3) {
			case 0:
				m[i] = ("{}[]\",:0-.eE+tfn\\ \x00\xff")[r.IntN(20)]
			case 1:
				m = m[:i]
			default:
				m = append(m[:i], append([]byte(`"x":1,`), m[i:]...)...)
			}
			checkSame(t, m)
		}
	}
}

func randString(r *rand.Rand) string {
	parts := []string{"a", "send", ".", "é", "日本", "🙂", " ", "<&>", "\u2028"}
	var b strings.Builder
	for range r.IntN(6) {
		b.WriteString(parts[r.IntN(len(parts))])
	}
	return b.String()
}

func randValue(r *rand.Rand, depth int) any {
	switch r.IntN(map[bool]int{true: 8, false: 5}[depth < 4]) {
	case 0:
		return nil
	case 1:
		return randString(r)
	case 2:
		return []float64{0, -1, 1.5, 1e-9, 2e30, 123456789}[r.IntN(6)]
	case 3:
		return r.IntN(2) == 0
	case 4:
		return json.Number([]string{"0", "-0", "12", "-3.5e-7", "1E+30", "123456789012345678901234567890"}[r.IntN(6)])
	case 5, 6:
		m := map[string]any{}
		for range r.IntN(5) {
			m[randString(r)] = randValue(r, depth+1)
		}
		return m
	default:
		a := make([]any, r.IntN(4))
		for i := range a {
			a[i] = randValue(r, depth+1)
		}
		return a
	}
}

func FuzzDecodeActionBody(f *testing.F) {
	for _, s := range actionBodySeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkSame(t, body) })
}

func BenchmarkDecodeActionBody(b *testing.B) {
	body := []byte(`{"action":"slack.send_message","params":{"channel":"#general","text":"Quarterly numbers attached, see the sheet","count":3,"urgent":false},"agent_id":"agent-007","step_type":"ACTION"}`)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var ab actionFields
			_ = decodeActionBody(body, &ab)
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var ab actionBody
			_ = decodeLenient(body, &ab)
		}
	})
}
