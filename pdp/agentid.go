package pdp

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// MaxAgentIDLen is the most characters an agent_id has (docs/api.md §A3).
const MaxAgentIDLen = 200

// AgentIDRule says what an agent_id may be, for messages.
var AgentIDRule = fmt.Sprintf("must be 1-%d printable characters (letters, digits, spaces, punctuation such as '/' — no control characters)", MaxAgentIDLen)

// ValidAgentID reports whether id is an agent_id: 1 to MaxAgentIDLen
// characters of valid UTF-8, each printable (unicode.IsPrint: letters,
// marks, numbers, punctuation, symbols and the ASCII space), as Novyx
// accepts any name an agent goes by. Control characters, other spaces
// (tabs, line and paragraph separators) and invalid UTF-8 are refused:
// an agent_id is shown in logs, consoles and CSV exports.
func ValidAgentID(id string) bool {
	if id == "" || !utf8.ValidString(id) || utf8.RuneCountInString(id) > MaxAgentIDLen {
		return false
	}
	for _, r := range id {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
