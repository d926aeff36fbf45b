package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Key is an API key as GET /v1/keys shows it: its identity, never its
// secret.
type Key struct {
	KeyID     string     `json:"key_id"`
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	Scopes    []string   `json:"scopes"`
	AgentID   *string    `json:"agent_id"`
	StepTypes []string   `json:"step_types"`
	IsManager bool       `json:"is_manager"`
	Prefix    string     `json:"prefix"`
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy *string    `json:"created_by"`
	ExpiresAt *time.Time `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at"`
}

// NewKey describes a key to create. Scopes nil means the role's default;
// Role "" means member.
type NewKey struct {
	Name      string   `json:"name"`
	Role      string   `json:"role,omitempty"`
	Scopes    []string `json:"scopes,omitempty"`
	AgentID   string   `json:"agent_id,omitempty"`
	StepTypes []string `json:"step_types,omitempty"`
	IsManager bool     `json:"is_manager,omitempty"`
}

// CreatedKey is a new key with its secret, APIKey, which the server shows
// only once. RotatedKeyID and OldKeyExpiresAt are set by RotateKey.
type CreatedKey struct {
	KeyID           string     `json:"key_id"`
	APIKey          string     `json:"api_key"`
	Name            string     `json:"name"`
	Role            string     `json:"role"`
	Scopes          []string   `json:"scopes"`
	AgentID         *string    `json:"agent_id"`
	StepTypes       []string   `json:"step_types"`
	IsManager       bool       `json:"is_manager"`
	Prefix          string     `json:"prefix"`
	CreatedAt       time.Time  `json:"created_at"`
	RotatedKeyID    string     `json:"rotated_key_id,omitempty"`
	OldKeyExpiresAt *time.Time `json:"old_key_expires_at,omitempty"`
}

// CreateKey creates a key of the tenant (needs keys:manage). A key never
// creates one with more rights than its own: *Error with CodeForbidden.
func (c *Client) CreateKey(ctx context.Context, k NewKey) (*CreatedKey, error) {
	var out CreatedKey
	if err := c.do(ctx, http.MethodPost, "/v1/keys", nil, k, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListKeys lists the tenant's keys, revoked ones too (needs keys:manage).
func (c *Client) ListKeys(ctx context.Context) ([]Key, error) {
	var out struct {
		Keys []Key `json:"keys"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/keys", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Keys, nil
}

// RevokeKey revokes a key of the tenant at once (needs keys:manage).
func (c *Client) RevokeKey(ctx context.Context, keyID string) error {
	return c.do(ctx, http.MethodDelete, "/v1/keys/"+url.PathEscape(keyID), nil, nil, nil)
}

// RotateOptions choose what RotateKey rotates: KeyID "" is the client's
// own key (another needs keys:manage); Grace nil is the server's default
// grace period (24 h), during which the old secret keeps working.
type RotateOptions struct {
	KeyID string
	Grace *time.Duration
}

// RotateKey gives a key a new secret, returned once.
func (c *Client) RotateKey(ctx context.Context, o RotateOptions) (*CreatedKey, error) {
	body := map[string]any{}
	if o.KeyID != "" {
		body["key_id"] = o.KeyID
	}
	if o.Grace != nil {
		body["grace_period_seconds"] = int64(o.Grace.Seconds())
	}
	var out CreatedKey
	if err := c.do(ctx, http.MethodPost, "/v1/keys/rotate", nil, body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
