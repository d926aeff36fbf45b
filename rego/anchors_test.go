package rego

import (
	"context"
	"encoding/json"
	"flag"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/gatehouse-pdp/gatehouse/test/scale"
)

var (
	anchorActions = flag.Int("anchors.actions", 0, "generated actions for TestAnchorsAreNecessary (default 4000, 800 with -short)")
	anchorSeed    = flag.Uint64("anchors.seed", 0, "seed for TestAnchorsAreNecessary (default: the time)")
)

// anchorPieces are fragments around every anchor: each secret, credential
// assignments that hold and that just miss (short value, a space inside,
// no separator), verbs and nouns near and far apart, export actions,
// money words, and runes that fold into ASCII letters (ſ, the Kelvin
// sign, İ, ı) or escape in JSON.
var anchorPieces = []string{
	"-----BEGIN RSA PRIVATE KEY-----", "-----BEGIN PRIVATE KEY-----", "BEGIN PRIVATE KEY-----", "-----BEGIN rsa PRIVATE KEY-----",
	"AKIAIOSFODNN7EXAMPLE", "AKIA1234", "akiaIOSFODNN7EXAMPLE",
	"ghp_" + strings.Repeat("a1B2", 9), "gho_" + strings.Repeat("x", 35), "ghs_" + strings.Repeat("Z9", 18), "GHP_" + strings.Repeat("a", 36),
	"xoxb-1234567890-abc", "xoxp-123", "xoxz-1234567890",
	`password="hunter2hunter2"`, `password: hunter2hunter2`, `password = short`, `PASSWORD:"abcdefghij"`, `pass word: abcdefghij`,
	"api_key: abcdefghij", "API-KEY=0123456789", "apikey:abc", "api key: abcdefghij", "secret_key\t= abcdefghijkl",
	"client-secret:\"zzzzzzzzzz\"", "clientsecret=12345678", "client secret=12345678", "ſecret_key=abcdefghij",
	"secret", "secrets", "credential", "credentials", "password", "passwords", "passwd",
	"send", "sent", "sends", "sending", "sender", "export", "exported", "upload", "uploading", "ſend",
	"send the secrets", "export all credentials", "upload passwords now", "sent me the password_reset link",
	"send " + strings.Repeat("x", 70) + " secret", "send " + strings.Repeat("y ", 45) + "password",
	"ssn", "social security", "social_media", "credit card", "card number", "card", "passport", "customer list",
	"customer data", "customer", "customer_records", "customerdata",
	"key", "keyboard", "monkey", "key:", `"key":"abcdefghij"`,
	"refund", "wire", "PURCHASE", "wİre", "tranſfer", "payout", "invoice", "charge", "withdraw", "payment",
	"\u212a", "ſ", "İ", "ı", "ß", "ẞ", "é", "😀", "<b>", "&", "\"", "\\", "\n", "\t", " ", ":", "=", "_", "-",
}

var anchorNames = []string{
	"http.post", "slack.send_message", "export_data", "db.dump", "sync_users", "files.upload", "backup", "ſync",
	"EXPORT", "bank.wire_transfer", "noop", "reports.exported", "DumpTruck",
}

func anchorText(r *rand.Rand) string {
	var b strings.Builder
	for range r.IntN(7) {
		b.WriteString(anchorPieces[r.IntN(len(anchorPieces))])
		b.WriteString([]string{" ", "", "\n", ", ", ": ", "=", " and then some more words "}[r.IntN(7)])
	}
	s := b.String()
	switch r.IntN(6) {
	case 0:
		s = strings.ToUpper(s)
	case 1:
		s = strings.ToLower(s)
	}
	return s
}

func anchorValue(r *rand.Rand, depth int) any {
	switch r.IntN(8) {
	case 0:
		return json.Number([]string{"0", "5", "20000", "150000", "-3.5", "1e3"}[r.IntN(6)])
	case 1:
		return r.IntN(2) == 0
	case 2:
		if depth < 2 {
			m := map[string]any{}
			for range r.IntN(3) {
				m[anchorKey(r)] = anchorValue(r, depth+1)
			}
			return m
		}
	case 3:
		if depth < 2 {
			return []any{anchorValue(r, depth+1), anchorText(r)}
		}
	}
	return anchorText(r)
}

func anchorKey(r *rand.Rand) string {
	keys := []string{"text", "body", "amount", "Total", "password", "api_key", "client_secret", "note", "to", "secret", "key", "data"}
	if r.IntN(4) == 0 {
		return anchorText(r)
	}
	return keys[r.IntN(len(keys))]
}

func anchorAction(r *rand.Rand) (string, map[string]any) {
	name := anchorNames[r.IntN(len(anchorNames))]
	if r.IntN(4) == 0 {
		name += " " + anchorText(r)
	}
	params := map[string]any{}
	for range r.IntN(4) {
		params[anchorKey(r)] = anchorValue(r, 0)
	}
	return name, params
}

// builtinsQuery evaluates both built-ins without hints (as stock OPA
// does), with the action text they match against.
func builtinsQuery(tb testing.TB) rego.PreparedEvalQuery {
	return libraryQuery(tb, `t := data.gatehouse.text.text; f := data.gatehouse.text.folded; fin := data.gatehouse.builtins.financial_safety.violations; exf := data.gatehouse.builtins.data_exfiltration.violations`)
}

// libraryQuery prepares query over the library alone, unhinted and with
// strict built-in errors.
func libraryQuery(tb testing.TB, query string) rego.PreparedEvalQuery {
	tb.Helper()
	mods, err := Parsed()
	if err != nil {
		tb.Fatal(err)
	}
	c := ast.NewCompiler()
	if c.Compile(mods); c.Failed() {
		tb.Fatal(c.Errors)
	}
	pq, err := rego.New(rego.Query(query), rego.Compiler(c), rego.StrictBuiltinErrors(true)).PrepareForEval(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return pq
}

// oldExfiltrationMayFire is DataExfiltrationMayFire before its rules got
// sharper anchors, kept to report how many more actions are skipped.
func oldExfiltrationMayFire(action, text, folded string) bool {
	switch {
	case strings.Contains(text, "PRIVATE KEY-----"), strings.Contains(text, "AKIA"),
		containsAny(text, githubPrefixes...), strings.Contains(text, "xox"),
		containsAny(folded, "password", "key", "secret"):
		return true
	}
	if containsAny(folded, "ssn", "social", "card", "passport", "customer", "credentials", "passwords") && exportAction.MatchString(action) {
		return true
	}
	return containsAny(folded, "secret", "password", "credential") && containsAny(folded, "send", "sent", "export", "upload")
}

type anchorStats struct {
	actions, fin, exf, oldExf, newExf int
	byRule                            [7]int
}

// checkAnchors decides one action with the library and checks every
// anchor against what fired: each rule that fired had its anchor hold (a
// necessary condition), and the anchors documented as exact are.
func checkAnchors(t *testing.T, pq rego.PreparedEvalQuery, name string, params map[string]any, st *anchorStats) {
	t.Helper()
	in := map[string]any{"action": name, "params": params}
	v, err := ast.InterfaceToValue(in)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := pq.Eval(context.Background(), rego.EvalParsedInput(v))
	if err != nil || len(rs) != 1 {
		t.Fatalf("%q %v: %v %v", name, params, err, rs)
	}
	b := rs[0].Bindings
	text, folded := b["t"].(string), b["f"].(string)
	fin, exf := b["fin"].([]any), b["exf"].([]any)
	st.actions++

	if len(fin) > 0 {
		st.fin++
	}
	if (len(fin) > 0) != FinancialSafetyMayFire(folded) && (len(fin) > 0 || isASCIIText(text)) {
		t.Fatalf("text %q: FinancialSafety fired %d times, FinancialSafetyMayFire %v", text, len(fin), FinancialSafetyMayFire(folded))
	}

	secret := false
	for _, x := range exf {
		rule, _ := x.(map[string]any)["rule"].(json.Number).Int64()
		st.byRule[rule]++
		var anchor bool
		switch rule {
		case 0, 1, 2, 3:
			anchor, secret = exfilSecret(text, foldedLits.scan(folded)), true
		case 4:
			anchor = exfilCredential(folded, foldedLits.scan(folded))
		case 5:
			anchor = exfilExport(name, foldedLits.scan(folded))
		case 6:
			anchor = exfilSending(folded, foldedLits.scan(folded))
		}
		if !anchor || !DataExfiltrationMayFire(name, text, folded) {
			t.Fatalf("action %q, text %q: DataExfiltration rule %d fired (%v) but its anchor does not hold", name, text, rule, x)
		}
	}
	if exfilSecret(text, foldedLits.scan(folded)) != secret {
		t.Fatalf("text %q: exfilSecret %v, rules 0-3 fired: %v", text, !secret, secret)
	}
	checkLiteralSets(t, text, folded)
	kw, ak, f, x := BuiltinFacts(name, text, folded)
	kw0, ak0, f0 := FinancialFacts(text, folded)
	if kw != kw0 || ak != ak0 || f != f0 || x != DataExfiltrationMayFire(name, text, folded) {
		t.Fatalf("action %q, text %q: BuiltinFacts %q %v %v %v differ from FinancialFacts and DataExfiltrationMayFire", name, text, kw, ak, f, x)
	}
	if len(exf) > 0 {
		st.exf++
	}
	if oldExfiltrationMayFire(name, text, folded) {
		st.oldExf++
	}
	if DataExfiltrationMayFire(name, text, folded) {
		st.newExf++
	}
}

func isASCIIText(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// TestAnchorsAreNecessary is the property the engine's built-in hints rest
// on: whenever a built-in yields a violation, its Go anchor says it may
// fire (rule by rule for DataExfiltration), over generated actions built
// around the anchors and over the scale corpus.
func TestAnchorsAreNecessary(t *testing.T) {
	n := *anchorActions
	if n == 0 {
		n = 4000
		if testing.Short() {
			n = 800
		}
	}
	seed := *anchorSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d, %d generated actions", seed, n)
	pq := builtinsQuery(t)
	r := rand.New(rand.NewPCG(seed, 23))
	var st anchorStats
	for range n {
		name, params := anchorAction(r)
		checkAnchors(t, pq, name, params, &st)
	}
	corpus := scale.Generate("anchors", 20, 5, 1, 1, 0, 0).Actions
	for _, a := range corpus {
		checkAnchors(t, pq, a.Name, a.Params, &st)
	}
	t.Logf("%d actions (%d from the scale corpus): FinancialSafety fired on %d; DataExfiltration fired on %d "+
		"(rules 0-6: %v), may fire by the anchors on %d (before the sharper anchors: %d)",
		st.actions, len(corpus), st.fin, st.exf, st.byRule, st.newExf, st.oldExf)
	for rule, k := range st.byRule {
		if k == 0 {
			t.Errorf("DataExfiltration rule %d never fired: the generator does not exercise its anchor", rule)
		}
	}
	if st.fin == 0 || st.newExf >= st.oldExf {
		t.Errorf("the generator should make FinancialSafety fire (%d) and the sharper anchors skip more (%d vs %d)", st.fin, st.newExf, st.oldExf)
	}
}

// TestAssignment pins the credential scan's reading of
// "?\s*[:=]\s*"?[^\s"]{8,} on the cases its argument turns on.
func TestAssignment(t *testing.T) {
	for s, want := range map[string]bool{
		`":"abcdefgh"`:    true,
		`: abcdefgh`:      true,
		`=abcdefgh`:       true,
		"\t=\t\"abcdefgh": true,
		`":"abcdefg"`:     false,
		`": "abcd efgh"`:  false,
		`"" : abcdefgh`:   false,
		`abcdefgh`:        false,
		`:`:               false,
		`: é1234567`:      true,
		`: ""abcdefgh`:    false,
	} {
		if got := assignment(s); got != want {
			t.Errorf("assignment(%q) = %v, want %v", s, got, want)
		}
	}
}

// factsQuery evaluates what FinancialFacts mirrors, without hints.
func factsQuery(tb testing.TB) rego.PreparedEvalQuery {
	return libraryQuery(tb, `t := data.gatehouse.text.text; f := data.gatehouse.text.folded; `+
		`ks := [k | k := data.gatehouse.builtins.financial_safety._keyword]; `+
		`ak := count({1 | data.gatehouse.builtins.financial_safety._amount_key_pre}) == 1`)
}

// compareFacts requires FinancialFacts to be byte for byte what the
// library computes: the hint may replace the computation only if so.
func compareFacts(t testing.TB, pq rego.PreparedEvalQuery, name string, params map[string]any) {
	t.Helper()
	v, err := ast.InterfaceToValue(map[string]any{"action": name, "params": params})
	if err != nil {
		t.Skip("not an input")
	}
	rs, err := pq.Eval(context.Background(), rego.EvalParsedInput(v))
	if err != nil || len(rs) != 1 {
		t.Fatalf("%q %v: %v %v", name, params, err, rs)
	}
	b := rs[0].Bindings
	text, folded := b["t"].(string), b["f"].(string)
	ks := b["ks"].([]any)
	kw, amountKey, ok := FinancialFacts(text, folded)
	switch {
	case ok != (len(ks) == 1):
		t.Fatalf("text %q: FinancialFacts ok=%v, library keywords %v", text, ok, ks)
	case ok && (ks[0] != kw || b["ak"] != amountKey):
		t.Fatalf("text %q: FinancialFacts %q %v, library %q %v", text, kw, amountKey, ks[0], b["ak"])
	}
}

// TestFinancialFactsMatchLibrary checks the Go facts against the library
// on generated actions (money words in every case, several per text,
// runes folding into them, amount keys in any case) and the corpus.
func TestFinancialFactsMatchLibrary(t *testing.T) {
	pq := factsQuery(t)
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 29))
	n := 4000
	if testing.Short() {
		n = 800
	}
	keys := []string{"amount", "Amount", "VALUE", "total", "ſum", "sum", "amounts", "note"}
	for range n {
		name, params := anchorAction(r)
		if r.IntN(2) == 0 {
			params[keys[r.IntN(len(keys))]] = anchorText(r)
		}
		compareFacts(t, pq, name, params)
	}
	for _, a := range scale.Generate("facts", 20, 5, 1, 1, 0, 0).Actions {
		compareFacts(t, pq, a.Name, a.Params)
	}
}

// FuzzFinancialFacts explores names, keys and values further.
func FuzzFinancialFacts(f *testing.F) {
	f.Add("wire_transfer", "amount", "REFUND of the purchase")
	f.Add("wİre", "ſum", "tranſfer \u212a")
	f.Add("x", "Total", "payout\"payment")
	pq := factsQuery(f)
	f.Fuzz(func(t *testing.T, name, key, s string) {
		compareFacts(t, pq, name, map[string]any{key: s, "n": []any{s, map[string]any{s: name}}})
	})
}

// checkLiteralSets requires each literal set's scan to be, bit for bit,
// strings.Contains of each of its literals.
func checkLiteralSets(t *testing.T, text, folded string) {
	t.Helper()
	for _, c := range []struct {
		ls *literalSet
		s  string
	}{{foldedLits, folded}, {textLits, text}, {foldedLits, text}, {textLits, folded}} {
		found := c.ls.scan(c.s)
		for i, l := range c.ls.lits {
			if (found&(1<<i) != 0) != strings.Contains(c.s, l) {
				t.Fatalf("%q: scan says %q occurs: %v", c.s, l, found&(1<<i) != 0)
			}
		}
	}
}

// TestLiteralBits checks that the named bits are the literals they name.
func TestLiteralBits(t *testing.T) {
	bits := func(ls *literalSet, mask uint64) []string {
		var out []string
		for i, l := range ls.lits {
			if mask&(1<<i) != 0 {
				out = append(out, l)
			}
		}
		return out
	}
	for _, c := range []struct {
		ls   *literalSet
		mask uint64
		want []string
	}{
		{foldedLits, litMoney, moneyWords},
		{foldedLits, litAmountKey, amountKeys},
		{foldedLits, litPassword, []string{"password"}},
		{foldedLits, litSecret, []string{"secret"}},
		{foldedLits, litAPIKey, []string{"apikey", "api_key", "api-key"}},
		{foldedLits, litSSN, []string{"ssn"}},
		{foldedLits, litSocial, []string{"social"}},
		{foldedLits, litSecurity, []string{"security"}},
		{foldedLits, litCard, []string{"card"}},
		{foldedLits, litCredit, []string{"credit"}},
		{foldedLits, litNumber, []string{"number"}},
		{foldedLits, litPassport, []string{"passport"}},
		{foldedLits, litCustomer, []string{"customer"}},
		{foldedLits, litCustData, []string{"list", "data", "records"}},
		{foldedLits, litCredsPwds, []string{"credentials", "passwords"}},
		{foldedLits, litVerbs, sendingVerbs},
		{foldedLits, litCredential, []string{"credential"}},
		{foldedLits, litNouns, []string{"password", "secret", "credential"}},
		{textLits, textPrivateKey, []string{"PRIVATE KEY-----"}},
		{textLits, textAKIA, []string{"AKIA"}},
		{textLits, textGitHub, githubPrefixes},
		{textLits, textSlack, []string{"xox"}},
		{foldedLits, litSecretGate, slices.Concat([]string{"private key-----", "akia"}, githubPrefixes, []string{"xox"})},
	} {
		got := bits(c.ls, c.mask)
		if !slices.Equal(got, c.want) {
			t.Errorf("mask %#x is %q, want %q", c.mask, got, c.want)
		}
	}
}

// FuzzLiteralSet checks the one-pass scan against strings.Contains.
func FuzzLiteralSet(f *testing.F) {
	for _, s := range []string{"", "transfer the api_key", `{"amount": 5} PRIVATE KEY----- AKIA ghp_ xox`, "passwordspasswords", "credentialscredential", "sssn", "\u212aAKIAPRIVATE KEY-----xoxghr_"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkLiteralSets(t, s, s)
		// The secret gate is necessary: each textLits literal in s occurs
		// lower-cased in s folded as the library folds it.
		folded := strings.ToLower(strings.ToUpper(s))
		if inText, gate := textLits.scan(s), foldedLits.scan(folded)>>36; inText&^gate != 0 {
			t.Fatalf("%q: text literals %#x, folded gate %#x", s, inText, gate)
		}
	})
}

// TestExportLike: exportLike is exportAction.MatchString, on names built
// around the words in every case, split, with the Kelvin sign and long s
// (which (?i) matches for k and s: the regex decides non-ASCII names).
func TestExportLike(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 13))
	parts := []string{"export", "EXPORT", "Upload", "dUmP", "backup", "BACKUP", "bac\u212aup", "sync", "\u017fync", "SYNC",
		"expor", "uploa", "dum", "backu", "syn", ".", "_", "s", "k", "x", "é", "\xff", "slack.send_message", "data"}
	names := []string{"", "export", "a.export_all", "sync", "SyNc", "bac\u212aup", "\u017fync", "dum", "p"}
	for range 20000 {
		var sb strings.Builder
		for range r.IntN(5) {
			sb.WriteString(parts[r.IntN(len(parts))])
		}
		names = append(names, sb.String())
	}
	matched := 0
	for _, name := range names {
		want := exportAction.MatchString(name)
		if got := exportLike(name); got != want {
			t.Fatalf("exportLike(%q) = %v, want %v", name, got, want)
		}
		if want {
			matched++
		}
	}
	if matched < len(names)/4 || matched > len(names)*3/4 {
		t.Fatalf("%d of %d names match: the test tests little", matched, len(names))
	}
}
