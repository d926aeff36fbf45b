package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// What a policy write did to its policy, as its version records it.
const (
	VersionCreated    = "created"
	VersionUpdated    = "updated"
	VersionDisabled   = "disabled"
	VersionEnabled    = "enabled"     // an update that re-enabled a disabled policy
	VersionRolledBack = "rolled_back" // an update whose content is an earlier version's
	VersionImported   = "imported"    // a policy stored before history was kept
)

// PolicyVersion is a policy exactly as one write left it. Every write of
// a policy — create, update, disable, re-enable, rollback — stores one, in
// the write's transaction, so history and policy never disagree.
type PolicyVersion struct {
	// Policy is the whole policy after the write: content, Enabled,
	// Version, CreatedAt (of the policy) and UpdatedAt (of this write).
	Policy pdp.Policy
	// Action is one of the Version constants.
	Action string
	// Actor names who wrote it (the API key's ID), or "".
	Actor string
	// RolledBackFrom is the version whose content a rolled_back version
	// restored, else 0.
	RolledBackFrom int
}

// CreatedAt is when the version was written.
func (v PolicyVersion) CreatedAt() time.Time { return v.Policy.UpdatedAt }

// PolicyVersions reads policies' history.
type PolicyVersions interface {
	// PolicyVersions returns every version of one policy, newest first;
	// ErrNotFound if it has none (it never existed at that scope).
	PolicyVersions(ctx context.Context, key PolicyKey) ([]PolicyVersion, error)
	// PolicyVersion returns one version of one policy, or ErrNotFound.
	PolicyVersion(ctx context.Context, key PolicyKey, version int) (PolicyVersion, error)
}

// ContentDigest is "sha256:" + hex(sha256) of the JSON of p's content,
// enabled flag and mode (name, description, agent_id, step_types,
// whitelisted_domains, rules, enabled, mode when shadow; not its version
// or timestamps): two
// versions with the same digest decide alike. Each policy write's audit
// entry carries the digest of the version it wrote, so the chain vouches
// for the history.
func ContentDigest(p pdp.Policy) string {
	NormalizePolicy(&p)
	c := struct {
		Name        string     `json:"name"`
		Description string     `json:"description"`
		AgentID     string     `json:"agent_id"`
		Steps       []string   `json:"step_types"`
		Domains     []string   `json:"whitelisted_domains"`
		Rules       []pdp.Rule `json:"rules"`
		Enabled     bool       `json:"enabled"`
		Mode        string     `json:"mode,omitempty"`
	}{p.Name, p.Description, p.AgentID, p.StepTypes, p.WhitelistedDomains, p.Rules, p.Enabled, ""}
	if p.Shadow() { // enforcing policies keep the digest they had before modes
		c.Mode = string(pdp.PolicyShadow)
	}
	b, _ := json.Marshal(c) // strings, bools and numbers only: cannot fail
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// DecodeMode reads a stored policy mode: "shadow", or anything else
// (stored "enforce") as the default, "".
func DecodeMode(s string) pdp.PolicyMode {
	if s == string(pdp.PolicyShadow) {
		return pdp.PolicyShadow
	}
	return ""
}

// metadataString returns the string under key of a JSON object, or "".
func metadataString(md json.RawMessage, key string) string {
	if len(md) == 0 {
		return ""
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(md, &m) != nil {
		return ""
	}
	var s string
	if json.Unmarshal(m[key], &s) != nil {
		return ""
	}
	return s
}
