package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// writeJSON sends v as JSON without HTML escaping (the action text and
// reasons must read back as they were written).
func writeJSON(c *gin.Context, status int, v any) {
	b, err := encodeJSON(v)
	if err != nil {
		// Only a bug can get here (every response is a plain struct or map).
		status = http.StatusInternalServerError
		b = (&apiError{Status: status, Code: pdp.CodeInternal, Message: "Internal server error"}).body()
	}
	c.Data(status, "application/json", append(b, '\n'))
}

// encodeJSON is json.Marshal without HTML escaping.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

// readBody reads the whole request body, at most the limit limitBody set.
func readBody(c *gin.Context) ([]byte, error) {
	if c.Request.Body == nil {
		return nil, nil
	}
	var limit int64
	if st := stateOf(c); st != nil {
		limit = st.bodyLimit
	}
	b, err := readAll(c.Request.Body, c.Request.ContentLength, limit)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, newError(http.StatusBadRequest, pdp.CodeValidation, "could not read the request body")
	}
	return b, nil
}

// readAll is io.ReadAll into a buffer of the announced length (one
// allocation for a body that says how long it is, instead of a slice
// grown from 512 bytes); the announced length is only a hint, capped so
// that a false one cannot reserve much. A body longer than limit (when
// limit is positive) is *http.MaxBytesError.
func readAll(r io.Reader, announced, limit int64) ([]byte, error) {
	tooLong := func(n int) bool { return limit > 0 && int64(n) > limit }
	if announced <= 0 || announced > 64<<10 {
		if limit > 0 {
			r = io.LimitReader(r, limit+1)
		}
		b, err := io.ReadAll(r)
		if err == nil && tooLong(len(b)) {
			return nil, &http.MaxBytesError{Limit: limit}
		}
		return b, err
	}
	b := make([]byte, 0, announced+1) // +1: room to see EOF without growing
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if tooLong(len(b)) {
			return nil, &http.MaxBytesError{Limit: limit}
		}
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // longer than announced: grow as ReadAll does
		}
	}
}

// decodeStrict decodes a JSON object body into v: numbers as json.Number,
// unknown fields rejected by name, nothing after the object. Problems are
// *pdp.ValidationError naming the field where there is one.
func decodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return &pdp.ValidationError{Reason: "the request body is empty; expected a JSON object"}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonProblem(err)
	}
	if !onlySpace(body[dec.InputOffset():]) {
		return &pdp.ValidationError{Reason: "unexpected data after the JSON object"}
	}
	return nil
}

// onlySpace reports whether b is JSON whitespace only: what follows the
// decoded value, checked in the body itself rather than by another read
// of the decoder (which grows its buffer).
func onlySpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// decodeLenient is decodeStrict without the refusal of unknown fields.
func decodeLenient(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return &pdp.ValidationError{Reason: "the request body is empty; expected a JSON object"}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return jsonProblem(err)
	}
	if !onlySpace(body[dec.InputOffset():]) {
		return &pdp.ValidationError{Reason: "unexpected data after the JSON object"}
	}
	return nil
}

// jsonProblem turns an encoding/json error into a *pdp.ValidationError.
func jsonProblem(err error) error {
	var (
		se *json.SyntaxError
		te *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &se):
		return &pdp.ValidationError{Reason: fmt.Sprintf("invalid JSON at byte %d: %s", se.Offset, se.Error())}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &pdp.ValidationError{Reason: "invalid JSON: unexpected end of input"}
	case errors.As(err, &te):
		if te.Field == "" {
			return &pdp.ValidationError{Reason: "the request body must be a JSON object"}
		}
		return &pdp.ValidationError{Field: te.Field, Reason: "must be " + jsonKindName(te.Type.Kind().String())}
	}
	// encoding/json has no type for this one: `json: unknown field "x"`.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if n, uerr := strconv.Unquote(name); uerr == nil {
			name = n
		}
		return &pdp.ValidationError{Field: truncate(name, 64), Reason: "unknown field"}
	}
	return &pdp.ValidationError{Reason: "invalid JSON: " + strings.TrimPrefix(err.Error(), "json: ")}
}

func jsonKindName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "an array"
	case "int", "int64", "float64":
		return "a number"
	}
	return "of another JSON type"
}

// timestamp formats t as RFC 3339 UTC with Z, at the store's microsecond
// precision, always with six fractional digits.
func timestamp(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000Z")
}

// optTimestamp is timestamp, or nil (JSON null) for a nil or zero time.
func optTimestamp(t *time.Time) any {
	if t == nil || t.IsZero() {
		return nil
	}
	return timestamp(*t)
}

// optString is s, or nil (JSON null) when s is empty.
func optString(s string) any {
	if s == "" {
		return nil
	}
	return s
}
