package api

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// The tenant's audit chain (CONTRACT A10): every policy write, evaluation
// and approval decision appended by the store in the transaction of the
// write itself. GET /v1/audit pages through it in chain order; GET
// /v1/audit/verify recomputes it.

// Bounds of the audit listing.
const (
	defaultAuditLimit = 50
	maxAuditLimit     = 1000
)

// eventTypePattern bounds event_type: event names are short snake_case
// words (store.Event*), so anything else can only match nothing.
var eventTypePattern = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)

// timeExample shows the expected timestamp format in messages.
const timeExample = "2025-06-01T00:00:00Z"

// queryTime reads an optional RFC 3339 query parameter; a bad one is
// added to es under its name.
func queryTime(c *gin.Context, name string, es *pdp.ValidationErrors) time.Time {
	raw, ok := c.GetQuery(name)
	if !ok || raw == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		*es = append(*es, &pdp.ValidationError{Field: name, Reason: fmt.Sprintf("must be an RFC 3339 timestamp such as %s (got %q)", timeExample, truncate(raw, 64))})
		return time.Time{}
	}
	return t.UTC()
}

// checkWindow adds a problem under "until" when both bounds are set and
// until is not after since.
func checkWindow(since, until time.Time, es *pdp.ValidationErrors) {
	if !since.IsZero() && !until.IsZero() && !until.After(since) {
		*es = append(*es, &pdp.ValidationError{Field: "until", Reason: "must be after since"})
	}
}

func (s *server) listAudit(c *gin.Context) {
	var es pdp.ValidationErrors
	limit := queryInt(c, "limit", defaultAuditLimit, 1, maxAuditLimit, &es)
	offset := queryInt(c, "offset", 0, 0, maxListOffset, &es)
	since := queryTime(c, "since", &es)
	until := queryTime(c, "until", &es)
	checkWindow(since, until, &es)
	event := c.Query("event_type")
	if event != "" && !eventTypePattern.MatchString(event) {
		es = append(es, &pdp.ValidationError{Field: "event_type", Reason: "must be 1-64 letters, digits, '_', '.', ':' or '-' (e.g. action_blocked)"})
	}
	if err := es.Err(); err != nil {
		fail(c, err)
		return
	}
	entries, total, err := s.gov.st.ListAudit(c.Request.Context(), tenant(c).ID, store.AuditQuery{
		Since: since, Until: until, EventType: event, Limit: limit, Offset: offset,
	})
	if err != nil {
		fail(c, err)
		return
	}
	writeJSON(c, http.StatusOK, gin.H{"entries": viewEntries(entries), "total": total, "limit": limit, "offset": offset})
}

// verification is GET /v1/audit/verify.
type verification struct {
	Valid            bool   `json:"valid"`
	Entries          int    `json:"entries"`
	FirstBadSequence *int64 `json:"first_bad_sequence"`
	Timestamp        string `json:"timestamp"`
	// The last entry that checked out (0 and the genesis hash when none).
	LastVerifiedSequence int64  `json:"last_verified_sequence"`
	LastVerifiedHash     string `json:"last_verified_hash"`
	// Reason says what is wrong when the chain is not valid (the store's
	// Reason* sentences; never the cause of a read failure).
	Reason string `json:"reason,omitempty"`
}

func (s *server) verifyAudit(c *gin.Context) {
	t := tenant(c)
	// Concurrent verifications of one tenant share one pass over its
	// chain: it is the most expensive read the API offers.
	v, err, _ := s.gov.verifying.Do(t.ID, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), verifyTimeout)
		defer cancel()
		return s.gov.st.VerifyAudit(ctx, t.ID)
	})
	if err != nil {
		fail(c, err)
		return
	}
	r := v.(store.AuditVerification)
	writeJSON(c, http.StatusOK, verification{
		Valid:                r.Valid,
		Entries:              r.Entries,
		FirstBadSequence:     r.FirstBadSequence,
		Timestamp:            timestamp(s.gov.now()),
		LastVerifiedSequence: r.LastSequence,
		LastVerifiedHash:     r.LastHash,
		Reason:               r.Reason,
	})
}

// verifyTimeout bounds one verification; a chain of a million entries
// takes well under a second (see the README).
const verifyTimeout = 2 * time.Minute
