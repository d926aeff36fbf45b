package lifecycle

import (
	"bytes"
	"encoding/json"
)

// encodeJSON is json.Marshal without HTML escaping: action text and
// reasons must read back as they were written.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

// encodeDecision encodes a policy_result as it is stored and answered.
func encodeDecision(d any) ([]byte, error) { return encodeJSON(d) }
