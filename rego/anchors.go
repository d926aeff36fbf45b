package rego

import (
	"math/bits"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

// The built-ins' anchors: necessary conditions for their rules to fire,
// checked in Go so the engine can tell, before evaluating, whether a
// built-in could fire at all. Each condition here is implied by the Rego
// rule it mirrors firing (TestAnchorsAreNecessary checks it, rule by rule,
// over generated and corpus actions); a built-in whose condition fails is
// skipped through the engine's hints, never otherwise.
//
// Conditions on folded (the action text case-folded, text.folded) rest on
// the library's folding invariant: per rune, lower(upper(r)) is the same
// for every rune a case-insensitive regex literal matches, and runes that
// are not letters (quotes, white space, '_', '-', ':', '=') fold to
// themselves. So a match of a (?i) pattern in the text is, rune for rune,
// a match of its lower-cased literals in folded, at the same rune offsets.

var moneyWords = []string{"transfer", "wire", "payment", "payout", "refund", "withdraw", "charge", "invoice", "purchase"}

// exportAction is data_exfiltration's rule 5 action test, the same
// pattern OPA's regex.match runs with Go's regexp.
var exportAction = regexp.MustCompile(`(?i)(export|upload|dump|backup|sync)`)

// exportWords are exportAction's alternatives.
var exportWords = []string{"export", "upload", "dump", "backup", "sync"}

// exportLike is exportAction.MatchString(action). On an ASCII name a
// (?i) literal matches only its ASCII case variants, so it is an ASCII
// case-insensitive search for the words, without the backtracker's pass
// from every position (TestExportLike); other names use the regex.
func exportLike(action string) bool {
	for i := 0; i < len(action); i++ {
		if action[i] >= utf8.RuneSelf {
			return exportAction.MatchString(action)
		}
	}
	for _, w := range exportWords {
		for i := 0; i+len(w) <= len(action); i++ {
			if asciiFoldPrefix(action[i:], w) {
				return true
			}
		}
	}
	return false
}

// asciiFoldPrefix: s begins with lower (lower-case ASCII), ASCII case
// ignored.
func asciiFoldPrefix(s, lower string) bool {
	for j := 0; j < len(lower); j++ {
		c := s[j]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[j] {
			return false
		}
	}
	return true
}

// The secret detectors of rules 0-3, the library's patterns: OPA runs them
// with Go's regexp too, so these decide exactly what the Rego finds. Each
// runs only when its literal occurs (the same pre-check as the Rego), and
// each has a literal prefix, which Go's regexp searches for with
// strings.Index.
var (
	privateKeyRe = regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY-----`)
	awsKeyRe     = regexp.MustCompile(`AKIA[0-9A-Z]{16}`)
	githubRe     = regexp.MustCompile(`gh[pousr]_[A-Za-z0-9]{36}`)
	slackRe      = regexp.MustCompile(`xox[abprs]-[A-Za-z0-9-]{10,}`)
)

var githubPrefixes = []string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_"}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// literalSet finds, in one pass over a string, which of up to 64 literals
// (each at least three bytes long) occur in it. At each offset the sets of
// literals whose first, second and third bytes are the next three bytes
// are intersected (three table loads); only the literals left, not found
// yet, are compared. It replaces one strings.Contains scan per literal
// (the anchors test about 40 literals per decision).
type literalSet struct {
	lits []string
	at   [3][256]uint64 // at[k][c]: the literals whose byte k is c
}

func newLiteralSet(lits ...string) *literalSet {
	if len(lits) > 64 {
		panic("literalSet: more than 64 literals")
	}
	ls := &literalSet{lits: lits}
	for i, l := range lits {
		if len(l) < 3 {
			panic("literalSet: literal " + l + " shorter than three bytes")
		}
		for k := range ls.at {
			ls.at[k][l[k]] |= 1 << i
		}
	}
	return ls
}

// scan returns the set of the literals occurring in s: bit i is set when
// lits[i] does (strings.Contains(s, lits[i]); checkLiteralSets,
// FuzzLiteralSet).
func (ls *literalSet) scan(s string) uint64 {
	var found uint64
	all := uint64(1)<<len(ls.lits) - 1
	if len(ls.lits) == 64 {
		all = ^uint64(0)
	}
	for i := 0; i+2 < len(s) && found != all; i++ {
		c := ls.at[0][s[i]] & ls.at[1][s[i+1]] & ls.at[2][s[i+2]] &^ found
		for c != 0 {
			id := bits.TrailingZeros64(c)
			c &= c - 1
			if strings.HasPrefix(s[i:], ls.lits[id]) {
				found |= 1 << id
			}
		}
	}
	return found
}

// The literals the anchors test on folded, and on the (case-sensitive)
// text, each found by one scan; the constants name their bits.
var (
	foldedLits = newLiteralSet(slices.Concat(
		moneyWords, // bits 0-8, in order
		amountKeys, // bits 9-12
		[]string{"password", "secret", "apikey", "api_key", "api-key",
			"ssn", "social", "security", "card", "credit", "number", "passport",
			"customer", "list", "data", "records", "credentials", "passwords",
			"send", "sent", "export", "upload", "credential"},
		// bits 36-43: textLits folded (lower-cased), the gate of the text scan
		[]string{"private key-----", "akia"}, githubPrefixes, []string{"xox"},
	)...)
	textLits = newLiteralSet(slices.Concat([]string{"PRIVATE KEY-----", "AKIA"}, githubPrefixes, []string{"xox"})...)
)

const (
	litMoney      = 1<<9 - 1                // any money word
	litAmountKey  = (1<<13 - 1) &^ litMoney // any amount key
	litPassword   = 1 << 13
	litSecret     = 1 << 14
	litAPIKey     = 1<<15 | 1<<16 | 1<<17
	litSSN        = 1 << 18
	litSocial     = 1 << 19
	litSecurity   = 1 << 20
	litCard       = 1 << 21
	litCredit     = 1 << 22
	litNumber     = 1 << 23
	litPassport   = 1 << 24
	litCustomer   = 1 << 25
	litCustData   = 1<<26 | 1<<27 | 1<<28 // list, data, records
	litCredsPwds  = 1<<29 | 1<<30         // credentials, passwords
	litVerbs      = 0xf << 31             // send, sent, export, upload
	litCredential = 1 << 35
	litNouns      = litSecret | litCredential | litPassword
	// litSecretGate: textLits lower-cased. A literal of textLits in text
	// is (ASCII, contiguous) the same literal lower-cased in folded, so
	// without one of these exfilSecret cannot hold and text is not scanned.
	litSecretGate = 0xff << 36

	textPrivateKey = 1 << 0
	textAKIA       = 1 << 1
	textGitHub     = 0x1f << 2
	textSlack      = 1 << 7
)

// FinancialSafetyMayFire reports whether FinancialSafetyPolicy can fire on
// an action whose folded text is folded: its rules fire exactly when the
// text holds a money word, and a case-insensitive match of one is the word
// in folded. For a pure-ASCII text the condition is exact.
func FinancialSafetyMayFire(folded string) bool {
	return foldedLits.scan(folded)&litMoney != 0
}

// keywordRe is FinancialSafetyPolicy's _keyword_re, as OPA's regex.find_n
// runs it.
var keywordRe = regexp.MustCompile(`(?i)(transfer|wire|payment|payout|refund|withdraw|charge|invoice|purchase)`)

// amountKeys are FinancialSafetyPolicy's _amount_key_pre literals.
var amountKeys = []string{`"amount":`, `"value":`, `"total":`, `"sum":`}

// FinancialFacts computes, for an action with action text text, folded,
// what FinancialSafetyPolicy computes before anything else: the money
// word it reports (_keyword: the leftmost match of its regex, as written)
// and whether a quoted amount key occurs (_amount_key_pre). ok is false
// when no money word matches: the built-in cannot fire. The engine may
// hand both over as the hint data.gatehouse.hints.financial = {"keyword",
// "amount_key"}; the library computes the same without it
// (TestFinancialFactsMatchLibrary, FuzzFinancialFacts).
func FinancialFacts(text, folded string) (keyword string, amountKey, ok bool) {
	return financialFacts(text, folded, foldedLits.scan(folded))
}

// financialFacts is FinancialFacts given found, foldedLits.scan(folded).
func financialFacts(text, folded string, found uint64) (keyword string, amountKey, ok bool) {
	if found&litMoney == 0 {
		return "", false, false
	}
	amountKey = found&litAmountKey != 0
	if !isASCII(text) {
		keyword = keywordRe.FindString(text)
		return keyword, amountKey, keyword != ""
	}
	// ASCII: folded is text lower-cased byte for byte; no word is a
	// prefix of another, so the leftmost occurrence of any is the match.
	at, n := -1, 0
	for k, w := range moneyWords {
		if found&(1<<k) == 0 {
			continue
		}
		if i := strings.Index(folded, w); i >= 0 && (at < 0 || i < at) {
			at, n = i, len(w)
		}
	}
	return text[at : at+n], amountKey, true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// DataExfiltrationMayFire reports whether any DataExfiltrationPolicy rule
// can fire on an action named action with action text text, folded.
func DataExfiltrationMayFire(action, text, folded string) bool {
	return dataExfiltrationMayFire(action, text, folded, foldedLits.scan(folded))
}

// dataExfiltrationMayFire is DataExfiltrationMayFire given found,
// foldedLits.scan(folded).
func dataExfiltrationMayFire(action, text, folded string, found uint64) bool {
	return exfilSecret(text, found) ||
		exfilCredential(folded, found) ||
		exfilExport(action, found) ||
		exfilSending(folded, found)
}

// BuiltinFacts is FinancialFacts(text, folded) and
// DataExfiltrationMayFire(action, text, folded) from one scan of folded
// for every literal the two test (TestBuiltinFactsAreTheFunctions).
func BuiltinFacts(action, text, folded string) (keyword string, amountKey, financial, exfiltration bool) {
	found := foldedLits.scan(folded)
	keyword, amountKey, financial = financialFacts(text, folded, found)
	return keyword, amountKey, financial, dataExfiltrationMayFire(action, text, folded, found)
}

// exfilSecret is rules 0-3 exactly: a private-key header, an AWS access
// key id, a GitHub or a Slack token in the (case-sensitive) text. folded
// is foldedLits.scan(folded): text is scanned only when a literal of rules
// 0-3 occurs lower-cased in folded (litSecretGate).
func exfilSecret(text string, folded uint64) bool {
	if folded&litSecretGate == 0 {
		return false
	}
	found := textLits.scan(text)
	return found&textPrivateKey != 0 && privateKeyRe.MatchString(text) ||
		found&textAKIA != 0 && awsKeyRe.MatchString(text) ||
		found&textGitHub != 0 && githubRe.MatchString(text) ||
		found&textSlack != 0 && slackRe.MatchString(text)
}

// credentialNames are the folded spellings of _credential_re's group 1,
// (api[_-]?key|secret[_-]?key|client[_-]?secret|password).
var credentialNames = []string{
	"apikey", "api_key", "api-key",
	"secretkey", "secret_key", "secret-key",
	"clientsecret", "client_secret", "client-secret",
	"password",
}

// exfilCredential is a necessary condition for rule 4,
// (?i)(names)"?\s*[:=]\s*"?[^\s"]{8,}: some name in folded followed by an
// optional quote, white space, ':' or '=', white space, an optional quote
// and eight bytes that are neither white space nor a quote. Each step is
// forced (what may follow cannot match the previous element), so reading
// greedily finds a match if there is one; eight runes outside [\s"] take
// at least eight bytes outside it (bytes of multi-byte runes are ≥ 0x80).
func exfilCredential(folded string, found uint64) bool {
	if found&(litPassword|litSecret|litAPIKey) == 0 {
		return false
	}
	for _, name := range credentialNames {
		for i := 0; ; {
			j := strings.Index(folded[i:], name)
			if j < 0 {
				break
			}
			if assignment(folded[i+j+len(name):]) {
				return true
			}
			i += j + 1
		}
	}
	return false
}

// isSpace is RE2's \s: [\t\n\f\r ].
func isSpace(c byte) bool {
	return c == '\t' || c == '\n' || c == '\f' || c == '\r' || c == ' '
}

// assignment reports whether s starts with "?\s*[:=]\s*"?[^\s"]{8}.
func assignment(s string) bool {
	i := 0
	if i < len(s) && s[i] == '"' {
		i++
	}
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	if i >= len(s) || (s[i] != ':' && s[i] != '=') {
		return false
	}
	i++
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	if i < len(s) && s[i] == '"' {
		i++
	}
	if len(s)-i < 8 {
		return false
	}
	for _, c := range []byte(s[i : i+8]) {
		if isSpace(c) || c == '"' {
			return false
		}
	}
	return true
}

// exfilExport is a necessary condition for rule 5: an export-like action
// name (exact) and, in folded, every literal of one alternative of
// _sensitive_re, (ssn|social.security|credit.card|card.number|passport|
// customer.(list|data|records)|credentials|passwords); found is
// foldedLits.scan(folded).
func exfilExport(action string, found uint64) bool {
	has := func(bits uint64) bool { return found&bits != 0 }
	sensitive := has(litSSN) ||
		has(litSocial) && has(litSecurity) ||
		has(litCard) && has(litCredit|litNumber) ||
		has(litPassport) ||
		has(litCustomer) && has(litCustData) ||
		has(litCredsPwds)
	return sensitive && exportLike(action)
}

var (
	sendingVerbs = []string{"send", "sent", "export", "upload"}
	secretNouns  = []string{"secret", "credential", "password"}
)

// sendingGap is the most runes _sending_re allows between the end of the
// verb and the start of the noun: a suffix (s, ed, ing) and [^\n]{0,80}.
const sendingGap = 3 + 80

// exfilSending is a necessary condition for rule 6, (?i)\b(verbs)(?:s|ed|
// ing)?\b[^\n]{0,80}?\b(nouns)s?\b: in folded, a verb and, starting at
// most sendingGap runes after its end, a noun (folding keeps rune offsets).
// Each noun's next occurrence only moves forward, so the scan is linear.
func exfilSending(folded string, found uint64) bool {
	if found&litNouns == 0 || found&litVerbs == 0 {
		return false
	}
	next := make([]int, len(secretNouns)) // next occurrence of each noun at or after the scan point; -1 when none
	for _, verb := range sendingVerbs {
		for k := range next {
			next[k] = 0
		}
		for i := 0; ; {
			j := strings.Index(folded[i:], verb)
			if j < 0 {
				break
			}
			end := i + j + len(verb)
			nearest := -1
			for k, noun := range secretNouns {
				if next[k] >= 0 && next[k] < end {
					if n := strings.Index(folded[end:], noun); n >= 0 {
						next[k] = end + n
					} else {
						next[k] = -1
					}
				}
				if next[k] >= 0 && (nearest < 0 || next[k] < nearest) {
					nearest = next[k]
				}
			}
			if nearest < 0 {
				break // no noun after this verb, nor after any later one
			}
			if nearest-end <= utf8.UTFMax*sendingGap && utf8.RuneCountInString(folded[end:nearest]) <= sendingGap {
				return true
			}
			i += j + 1
		}
	}
	return false
}
