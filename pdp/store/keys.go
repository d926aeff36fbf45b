package store

import (
	"crypto/sha256"
	"encoding/hex"
)

// KeyPrefixLen is how many leading characters of a key are kept for display.
const KeyPrefixLen = 12

// HashAPIKey returns the hash an API key is stored and looked up by: the
// lower-case hex SHA-256 of the whole key. Keys are long random strings, so
// a fast unsalted hash is enough and allows lookup by equality.
func HashAPIKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// KeyPrefix returns the first KeyPrefixLen characters of key (all of a
// shorter key), kept so operators can recognise a key without storing it.
func KeyPrefix(key string) string {
	if len(key) <= KeyPrefixLen {
		return key
	}
	return key[:KeyPrefixLen]
}
