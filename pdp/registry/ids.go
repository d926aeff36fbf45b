package registry

import (
	"encoding/hex"
	"fmt"
	"io"
)

// KeyPrefix starts every API key (docs/api.md §A1).
const KeyPrefix = "nram_"

// keyRandomChars is how many base62 characters follow the prefix: 40 of
// them carry about 238 bits.
const keyRandomChars = 40

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// newAPIKey returns "nram_" and keyRandomChars base62 characters drawn
// without modulo bias (bytes ≥ 248 are rejected and redrawn).
func (r *Registry) newAPIKey() (string, error) {
	out := make([]byte, 0, len(KeyPrefix)+keyRandomChars)
	out = append(out, KeyPrefix...)
	buf := make([]byte, 64)
	for len(out) < cap(out) {
		if _, err := io.ReadFull(r.random, buf); err != nil {
			return "", fmt.Errorf("generate API key: %w", err)
		}
		for _, b := range buf {
			if b >= 248 || len(out) == cap(out) {
				continue
			}
			out = append(out, base62[b%62])
		}
	}
	return string(out), nil
}

// newID returns prefix and n random bytes in hex.
func (r *Registry) newID(prefix string, n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(r.random, b); err != nil {
		return "", fmt.Errorf("generate %s ID: %w", prefix, err)
	}
	return prefix + hex.EncodeToString(b), nil
}
