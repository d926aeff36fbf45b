package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/sync/singleflight"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// Governance: the approvals queue (approvals.go), the audit chain
// (audit.go) and the dashboard (dashboard.go), docs/api.md §A8–A10. They need
// a store that keeps an audit chain (store.GovernanceStore); on one that
// does not, every action is still recorded (without its entry) and these
// routes answer 501 governance_unavailable rather than pretend.

// governance is what those handlers share.
type governance struct {
	st        store.GovernanceStore // nil: the store keeps no audit chain
	now       func() time.Time
	verifying *singleflight.Group // GET /v1/audit/verify, by tenant
}

func newGovernance(deps Deps) governance {
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	g := governance{now: now, verifying: &singleflight.Group{}}
	if gs, ok := deps.Store.(store.GovernanceStore); ok {
		g.st = gs
	}
	return g
}

// governanceRoutes registers the routes of docs/api.md §A8–A10.
func (s *server) governanceRoutes(v1 *gin.RouterGroup) {
	approvals := v1.Group("/approvals", s.authenticate, s.needGovernance)
	approvals.GET("", s.listApprovals)
	approvals.POST("/:id/decision", s.decideApproval)

	audit := v1.Group("/audit", s.authenticate, s.needGovernance)
	audit.GET("", s.listAudit)
	audit.GET("/verify", s.verifyAudit)
	audit.GET("/export", s.exportAudit)

	// Beside the policy routes under /control, without their
	// invalid_policy validation code: these have codes of their own.
	control := v1.Group("/control", s.authenticate, s.needGovernance)
	control.GET("/dashboard", s.dashboard)
	control.GET("/agents/:agent_id/violations", s.agentViolations)
}

// needGovernance refuses the governance routes on a store without a chain.
func (s *server) needGovernance(c *gin.Context) {
	if s.gov.st == nil {
		fail(c, newError(http.StatusNotImplemented, pdp.CodeGovernanceUnavailable,
			"The %s store does not keep approvals, the audit chain or the dashboard yet; use the SQLite store", s.st.Backend()))
		return
	}
	c.Next()
}

// Gin context key of the memoized key ID.
const ctxKeyID = "gatehouse.key_id"

// keyID returns the ID of the API key the request authenticated with ("" if
// it cannot be told): the default approver_id and the key_id of audit
// entries. Only routes behind authenticate call it.
func (s *server) keyID(c *gin.Context) string {
	if id, ok := identityOf(c); ok {
		return id.KeyID
	}
	if id, ok := c.Get(ctxKeyID); ok {
		s, _ := id.(string)
		return s
	}
	id := ""
	if key, ok := bearer(c.GetHeader("Authorization")); ok {
		id, _ = s.reg.KeyID(c.Request.Context(), key) // authenticate accepted the key a moment ago
	}
	c.Set(ctxKeyID, id)
	return id
}

// entryView is one audit entry as the API shows it. timestamp is exactly
// the text the entry's hash covers (RFC 3339, UTC, trailing zeros of the
// fraction removed) and metadata the canonical JSON as stored, so a client
// can recompute every entry_hash from GET /v1/audit alone.
//
// operation, agent_id, artifact_id and content_hash are Novyx's names for
// what the entry already holds (docs/api.md §A10): the event, the
// metadata's agent_id, its action_id or policy_name, and the SHA-256 of
// the entry's canonical form alone (entry_hash also covers prev_hash).
type entryView struct {
	SequenceNumber int64   `json:"sequence_number"`
	Timestamp      string  `json:"timestamp"`
	Event          string  `json:"event"`
	Operation      string  `json:"operation"`
	AgentID        *string `json:"agent_id"`
	ArtifactID     *string `json:"artifact_id"`
	ContentHash    string  `json:"content_hash"`
	Metadata       any     `json:"metadata"`
	PrevHash       string  `json:"prev_hash"`
	EntryHash      string  `json:"entry_hash"`
}

func viewEntry(e store.AuditEntry) entryView {
	var meta any = e.Metadata
	if len(e.Metadata) == 0 {
		meta = map[string]any{}
	}
	facts := entryFactsOf(e)
	return entryView{
		SequenceNumber: e.SequenceNumber,
		Timestamp:      e.Timestamp.UTC().Format(time.RFC3339Nano),
		Event:          e.Event,
		Operation:      e.Event,
		AgentID:        facts.agentID,
		ArtifactID:     facts.artifactID,
		ContentHash:    facts.contentHash,
		Metadata:       meta,
		PrevHash:       e.PrevHash,
		EntryHash:      e.EntryHash,
	}
}

// entryFacts are the Novyx-named fields derived from an entry.
type entryFacts struct {
	agentID, artifactID *string
	contentHash         string
}

func entryFactsOf(e store.AuditEntry) entryFacts {
	var m struct {
		AgentID    *string `json:"agent_id"`
		ActionID   *string `json:"action_id"`
		PolicyName *string `json:"policy_name"`
	}
	_ = json.Unmarshal(e.Metadata, &m) // stored canonical; anything else names nothing
	f := entryFacts{agentID: m.AgentID, artifactID: m.ActionID}
	if f.artifactID == nil {
		f.artifactID = m.PolicyName
	}
	sum := sha256.Sum256(store.CanonicalAuditEntry(nil, e.SequenceNumber, e.Timestamp, e.Event, e.Metadata))
	f.contentHash = store.HashPrefix + hex.EncodeToString(sum[:])
	return f
}

func viewEntries(es []store.AuditEntry) []entryView {
	out := make([]entryView, len(es))
	for i, e := range es {
		out[i] = viewEntry(e)
	}
	return out
}
