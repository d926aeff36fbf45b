package api

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// The tenant's audit chain (docs/api.md §A10): every policy write, evaluation
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

// queryTimeLayouts are what since and until accept (docs/api.md §A1): RFC
// 3339 with an offset, then, read as UTC, a naive ISO 8601 time (with or
// without seconds and a fraction, "T" or a space) and a date (midnight).
var queryTimeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02 15:04",
	time.DateOnly,
}

// parseQueryTime reads a since/until value in one of queryTimeLayouts.
func parseQueryTime(raw string) (time.Time, bool) {
	for _, layout := range queryTimeLayouts {
		if t, err := time.Parse(layout, raw); err == nil {
			return t.UTC(), true // a layout without a zone parses as UTC
		}
	}
	return time.Time{}, false
}

// queryTime reads an optional time query parameter (an empty one is not
// given); a bad one is added to es under its name.
func queryTime(c *gin.Context, name string, es *pdp.ValidationErrors) time.Time {
	raw := c.Query(name)
	if raw == "" {
		return time.Time{}
	}
	t, ok := parseQueryTime(raw)
	if !ok {
		*es = append(*es, &pdp.ValidationError{Field: name, Reason: fmt.Sprintf("must be an RFC 3339 timestamp such as %s, a naive ISO time (UTC) or a date such as 2025-06-01 (got %q)", timeExample, truncate(raw, 64))})
		return time.Time{}
	}
	return t
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
	events := queryEvents(c, &es)
	if err := es.Err(); err != nil {
		fail(c, err)
		return
	}
	// Newest first, as Novyx lists it (docs/api.md §A10).
	entries, total, err := s.gov.st.ListAudit(c.Request.Context(), tenant(c).ID, store.AuditQuery{
		Since: since, Until: until, EventTypes: events, Limit: limit, Offset: offset, NewestFirst: true,
	})
	if err != nil {
		fail(c, err)
		return
	}
	writeJSON(c, http.StatusOK, gin.H{"entries": viewEntries(entries), "total": total, "limit": limit, "offset": offset})
}

// maxEventTypes bounds event_type's comma-separated list.
const maxEventTypes = 20

// queryEvents reads event_type: one event or a comma-separated list
// (spaces around the commas and empty items ignored); nil for every event.
func queryEvents(c *gin.Context, es *pdp.ValidationErrors) []string {
	raw := c.Query("event_type")
	if raw == "" {
		return nil
	}
	var out []string
	for _, e := range strings.Split(raw, ",") {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		if !eventTypePattern.MatchString(e) {
			*es = append(*es, &pdp.ValidationError{Field: "event_type", Reason: "each event must be 1-64 letters, digits, '_', '.', ':' or '-' (e.g. action_blocked,action_pending_review)"})
			return nil
		}
		out = append(out, e)
	}
	if len(out) > maxEventTypes {
		*es = append(*es, &pdp.ValidationError{Field: "event_type", Reason: fmt.Sprintf("at most %d events", maxEventTypes)})
		return nil
	}
	return out
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
	// RetainedFromSequence is where the retained chain starts: 1, or the
	// entry after the checkpoint when retention pruned older ones.
	RetainedFromSequence int64 `json:"retained_from_sequence"`
	// Checkpoint is the last pruned entry the first retained one links
	// to, null when nothing was pruned.
	Checkpoint *checkpointView `json:"checkpoint"`
}

// checkpointView is a pruned chain's checkpoint.
type checkpointView struct {
	SequenceNumber int64  `json:"sequence_number"`
	EntryHash      string `json:"entry_hash"`
	PrunedAt       string `json:"pruned_at"`
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
		RetainedFromSequence: max(r.RetainedFrom, 1),
		Checkpoint:           viewCheckpoint(r.Checkpoint),
	})
}

func viewCheckpoint(cp *store.AuditCheckpoint) *checkpointView {
	if cp == nil {
		return nil
	}
	return &checkpointView{SequenceNumber: cp.Seq, EntryHash: cp.Hash, PrunedAt: timestamp(cp.PrunedAt)}
}

// verifyTimeout bounds one verification; a chain of a million entries
// takes well under a second (see the README).
const verifyTimeout = 2 * time.Minute
