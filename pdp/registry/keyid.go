package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// KeyID returns the ID of an API key that Authenticate accepted: who acted,
// as approvals and the audit chain record it (never the key itself). It is
// answered from the auth cache when the key was seen recently, which
// Authenticate just did, else from the store. ErrUnauthorized for a key it
// does not know.
func (r *Registry) KeyID(ctx context.Context, key string) (string, error) {
	if !strings.HasPrefix(key, KeyPrefix) || len(key) > maxKeyLen {
		return "", ErrUnauthorized
	}
	sum := sha256.Sum256([]byte(key))
	if e, ok := r.auth.get(sum); ok && e.keyID != "" {
		return e.keyID, nil
	}
	_, k, err := r.st.TenantByKeyHash(ctx, hex.EncodeToString(sum[:]))
	if errors.Is(err, store.ErrNotFound) {
		return "", ErrUnauthorized
	}
	if err != nil {
		return "", fmt.Errorf("key id: %w", err)
	}
	return k.ID, nil
}
