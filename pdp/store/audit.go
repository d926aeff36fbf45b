package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// AuditLog keeps each tenant's tamper-evident audit chain (docs/api.md §A10):
// entries numbered 1, 2, 3 … without gaps per tenant, each hashed over the
// previous entry's hash and its own canonical form (see
// CanonicalAuditEntry), so editing, removing or reordering a stored entry
// breaks every hash after it.
//
// Appends are durable when they return. Drivers are expected to group
// commit: appends from concurrent callers, of any tenants, are written by
// one transaction (one fsync) per batch, and each caller waits for its
// batch. Writes that must not exist without their entry (an action and its
// evaluation entry, a policy write, a decision) go through AuditedWrites
// and Approvals, which append in the same transaction as the write.
type AuditLog interface {
	// AppendAudit appends events, in order, to the tenant's chain and
	// returns the entries as stored. A zero Timestamp is set to now; Event
	// is required. Either every event is appended or none is. ErrNotFound if
	// the tenant does not exist.
	AppendAudit(ctx context.Context, tenantID string, events ...AuditEvent) ([]AuditEntry, error)
	// ListAudit returns one page of the tenant's entries matching q in
	// chain order (oldest first unless q.NewestFirst), and how many match q
	// in total. An unknown tenant has none.
	ListAudit(ctx context.Context, tenantID string, q AuditQuery) ([]AuditEntry, int, error)
	// AuditTrail returns the tenant's entries whose metadata.action_id is
	// actionID, in chain order (what explain shows). Another tenant's
	// action has none.
	AuditTrail(ctx context.Context, tenantID, actionID string) ([]AuditEntry, error)
	// VerifyAudit recomputes the tenant's chain in sequence order and
	// reports the first entry that does not check out (see
	// AuditVerification). An unknown tenant has an empty, valid chain.
	VerifyAudit(ctx context.Context, tenantID string) (AuditVerification, error)
	// FlushAudit returns once every append queued before the call has been
	// committed or has failed.
	FlushAudit(ctx context.Context) error
}

// AuditedWrites are writes that append their audit entry in the same
// transaction, so neither can exist without the other. Each takes an
// AuditEvent whose empty fields the store fills in (the event from what
// the write did, the timestamp from the write's time) and whose metadata
// it completes with the facts only it knows; keys the store sets replace
// any the caller gave.
type AuditedWrites interface {
	// InsertActionAudited is InsertAction plus the action's evaluation
	// entry. The entry's event defaults to EventForStatus(a.Status), its
	// timestamp to a.CreatedAt, and metadata.action_id is set to a.ID.
	InsertActionAudited(ctx context.Context, a ActionRecord, ev AuditEvent) (ActionRecord, AuditEntry, error)
	// PutPolicyAudited is PutPolicy plus its entry: policy_created or
	// policy_updated by default, at the policy's UpdatedAt, with metadata
	// policy_name, agent_id (null when tenant-wide), scope ("tenant" or
	// "agent"), version (after the write) and enabled set. A refused write
	// appends nothing.
	PutPolicyAudited(ctx context.Context, req PutPolicyRequest, ev AuditEvent) (PolicyWrite, AuditEntry, error)
	// DisablePolicyAudited is DisablePolicy plus its entry: policy_disabled
	// by default, as PutPolicyAudited otherwise.
	DisablePolicyAudited(ctx context.Context, key PolicyKey, ev AuditEvent) (PolicyWrite, AuditEntry, error)
}

// The audit event catalogue. Evaluation entries use the dashboard's event
// names (docs/api.md §A9).
const (
	EventPolicyCreated  = "policy_created"
	EventPolicyUpdated  = "policy_updated"
	EventPolicyDisabled = "policy_disabled"
	// A rollback (store.PutPolicyRequest.RollbackOf) is an update whose
	// entry names the version it restored.
	EventPolicyRolledBack = "policy_rolled_back"

	EventActionExecuted      = "action_executed"       // allowed (warn-only hits included)
	EventActionBlocked       = "action_blocked"        // blocked, also when evaluation failed
	EventActionPendingReview = "action_pending_review" // held for approval
	EventActionApproved      = "action_approved"       // a final approval
	EventActionDenied        = "action_denied"         // a final denial
	EventApprovalVote        = "approval_vote"         // one approver's vote in enterprise mode
)

// EventForStatus is the event recording an action in status st: the
// evaluation event for allowed, blocked and pending_review, the decision
// event for approved and denied. An unknown status has no event ("").
func EventForStatus(st pdp.Status) string {
	switch st {
	case pdp.StatusAllowed:
		return EventActionExecuted
	case pdp.StatusBlocked:
		return EventActionBlocked
	case pdp.StatusPendingReview:
		return EventActionPendingReview
	case pdp.StatusApproved:
		return EventActionApproved
	case pdp.StatusDenied:
		return EventActionDenied
	}
	return ""
}

// Bounds of an audit event.
const (
	MaxAuditEventLen      = 64
	MaxAuditMetadataBytes = 64 << 10
)

// AuditEvent is what a caller appends; the store numbers, stamps and
// hashes it into an AuditEntry.
type AuditEvent struct {
	// Event names what happened (one of the Event constants, or another
	// name of at most MaxAuditEventLen bytes). Audited writes fill in an
	// empty Event; AppendAudit requires one.
	Event string
	// Metadata is a JSON object, or nil for {}. It is stored canonical (see
	// CanonicalMetadata); numbers keep the text they were written with.
	Metadata json.RawMessage
	// Timestamp is when it happened; zero means the write's time. It is
	// stored in UTC at TimePrecision.
	Timestamp time.Time
}

// Validate checks an event whose Event is required.
func (e AuditEvent) Validate() error { return e.problems(true).Err() }

// problems lists what is wrong with e; audited writes fill in an empty
// Event, so only AppendAudit needs one.
func (e AuditEvent) problems(needEvent bool) pdp.ValidationErrors {
	var es pdp.ValidationErrors
	switch {
	case e.Event == "" && needEvent:
		es = append(es, invalid("event", "required"))
	case len(e.Event) > MaxAuditEventLen:
		es = append(es, invalid("event", "at most %d bytes", MaxAuditEventLen))
	case !utf8.ValidString(e.Event):
		es = append(es, invalid("event", "not valid UTF-8"))
	}
	if len(e.Metadata) > MaxAuditMetadataBytes {
		es = append(es, invalid("metadata", "at most %d bytes", MaxAuditMetadataBytes))
	}
	return es
}

// AuditEntry is one stored link of a tenant's chain.
type AuditEntry struct {
	TenantID       string
	SequenceNumber int64     // 1, 2, 3 … per tenant
	Timestamp      time.Time // UTC, TimePrecision
	Event          string
	Metadata       json.RawMessage // canonical JSON object
	PrevHash       string          // GenesisHash, or the previous entry's EntryHash
	EntryHash      string          // AuditEntryHash(PrevHash, CanonicalAuditEntry(…))
}

// AuditQuery selects a page of audit entries. The zero value selects all.
type AuditQuery struct {
	Since     time.Time // entries at or after, unless zero
	Until     time.Time // entries before, unless zero
	EventType string    // "" for every event
	// EventTypes, when not empty, selects entries whose event is any of
	// them (with EventType, if set, as one more).
	EventTypes  []string
	Limit       int // ≤ 0 for no limit; the API layer bounds it
	Offset      int
	NewestFirst bool // highest sequence number first
}

// Events returns the event names q selects, nil for every event.
func (q AuditQuery) Events() []string {
	var out []string
	if q.EventType != "" {
		out = append(out, q.EventType)
	}
	for _, e := range q.EventTypes {
		if e != "" && !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out
}

// AuditVerification is the result of recomputing a chain.
type AuditVerification struct {
	Valid bool
	// Entries is how many entries the tenant's chain holds.
	Entries int
	// FirstBadSequence is the first sequence number that does not check
	// out, nil when Valid: an entry whose hash does not match its content
	// (edited), a missing number (a gap, or entries removed from the end),
	// an entry whose prev_hash is not its predecessor's entry_hash. It is
	// nil too when the chain could not be read (ReasonUnreadable) or when
	// every entry checked out but a rollup does not match the actions
	// (ReasonRollup).
	FirstBadSequence *int64
	// LastSequence and LastHash name the last entry that checked out (0
	// and GenesisHash when none did, or the chain is empty). When entries
	// stand past the recorded head, they name the head.
	LastSequence int64
	LastHash     string
	// Reason says what is wrong, "" when Valid: one sentence, the same on
	// every driver (the Reason* constants, some with a sequence number or
	// action ID filled in).
	Reason string
	// RetainedFrom is the sequence number the retained chain starts at: 1,
	// or the one after the checkpoint when old entries were pruned
	// (AuditArchive.PruneAudit).
	RetainedFrom int64
	// Checkpoint is the last pruned entry, nil when none was pruned.
	Checkpoint *AuditCheckpoint
	// Cause is the error that kept the chain from being read, when that is
	// why it is not valid (Reason is ReasonUnreadable). It is for logs:
	// it may name tables and hosts, which a response must not show.
	Cause error
}

// Reasons a chain is not valid (AuditVerification.Reason).
const (
	ReasonGap         = "an entry is missing: the sequence numbers have a gap"
	ReasonLink        = "prev_hash is not the previous entry's entry_hash"
	ReasonHash        = "entry_hash does not match the entry's content"
	ReasonTruncated   = "entries were removed from the end of the chain: the recorded head is further"
	ReasonHeadHash    = "the last entry is not the one the recorded head names"
	ReasonPastHead    = "entries stand past the recorded head: they were not written by the store"
	ReasonNoHead      = "the chain's recorded head is missing, so removed entries at the end cannot be told"
	ReasonAction      = "an action does not match the latest audit entry about it"
	ReasonNoAction    = "an action the chain records is missing from the actions"
	ReasonRollup      = "a rollup does not match the actions it counts"
	ReasonUnreadable  = "the audit chain cannot be read"
	reasonBeforeFirst = "the first entry does not start the chain"
)

// GenesisHash is the prev_hash of a chain's first entry: 64 zeros.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// HashPrefix starts every entry_hash.
const HashPrefix = "sha256:"

// CanonicalMetadata returns raw, a JSON object (nil or empty for {}), in
// the canonical form entries are hashed and stored in: compact, object keys
// sorted by their UTF-8 bytes at every depth, strings escaped as Go's
// encoding/json does with HTML escaping off (`"` `\` and control
// characters escaped — \b \f \n \r \t, others as \u00XX — plus U+2028 and
// U+2029 as \u2028 \u2029; everything else literal UTF-8), numbers exactly
// as written. Duplicate keys keep the last value. Anything but an object is
// an error.
func CanonicalMetadata(raw json.RawMessage) (json.RawMessage, error) {
	if out, ok := mergeFlat(raw, nil); ok {
		return out, nil
	}
	m, err := decodeMetadata(raw)
	if err != nil {
		return nil, err
	}
	return encodeCanonical(m)
}

// MergeMetadata returns the canonical form of raw with set's keys added,
// replacing raw's keys of the same name. Values of set are encoded as
// encoding/json encodes them.
func MergeMetadata(raw json.RawMessage, set map[string]any) (json.RawMessage, error) {
	if out, ok := mergeFlat(raw, set); ok {
		return out, nil
	}
	m, err := decodeMetadata(raw)
	if err != nil {
		return nil, err
	}
	for k, v := range set {
		m[k] = v
	}
	return encodeCanonical(m)
}

func decodeMetadata(raw json.RawMessage) (map[string]any, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return map[string]any{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, invalid("metadata", "not valid JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, invalid("metadata", "unexpected data after the JSON object")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, invalid("metadata", "must be a JSON object")
	}
	return m, nil
}

func encodeCanonical(v any) (json.RawMessage, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil { // maps encode with sorted keys
		return nil, invalid("metadata", "cannot be encoded: %v", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// MetadataActionID returns metadata's "action_id" when it is a JSON
// string, else "": the key AuditTrail finds entries by. Keys match
// exactly (case-sensitively).
func MetadataActionID(metadata json.RawMessage) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(metadata, &m) != nil {
		return ""
	}
	var id string
	if json.Unmarshal(m["action_id"], &id) != nil {
		return ""
	}
	return id
}

// CanonicalAuditEntry appends to dst the canonical JSON of one entry, the
// text its hash covers:
//
//	{"event":<event>,"metadata":<metadata>,"sequence_number":<n>,"timestamp":"<ts>"}
//
// exactly these four keys in this (sorted) order, no whitespace; <event> a
// JSON string escaped as CanonicalMetadata escapes strings; <metadata> the
// canonical metadata object as stored, byte for byte; <n> the decimal
// sequence number; <ts> the timestamp in UTC as RFC 3339 with the
// fraction's trailing zeros removed (time.RFC3339Nano; at most microseconds
// are stored), e.g. "2025-06-01T12:00:00.1234Z" or "2025-06-01T12:00:00Z".
//
// This is the verification contract: anyone holding the entries (GET
// /v1/audit) recomputes entry_hash = "sha256:" + hex(sha256(prev_hash ||
// CanonicalAuditEntry)), where prev_hash is the stored string's bytes
// (GenesisHash for entry 1, else the previous entry's "sha256:…" hash).
func CanonicalAuditEntry(dst []byte, seq int64, ts time.Time, event string, metadata []byte) []byte {
	dst = append(dst, `{"event":`...)
	dst = appendJSONString(dst, event)
	dst = append(dst, `,"metadata":`...)
	dst = append(dst, metadata...)
	dst = append(dst, `,"sequence_number":`...)
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, `,"timestamp":"`...)
	dst = ts.UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, `"}`...)
}

// appendJSONString appends s as a JSON string, escaped as encoding/json
// escapes it without HTML escaping. Plain ASCII (event names) takes the
// fast path.
func appendJSONString(dst []byte, s string) []byte {
	plain := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			plain = false
			break
		}
	}
	if plain {
		dst = append(dst, '"')
		dst = append(dst, s...)
		return append(dst, '"')
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return append(dst, bytes.TrimSuffix(b.Bytes(), []byte("\n"))...)
}

// AuditEntryHash returns "sha256:" + hex(sha256(prevHash || canonical)).
func AuditEntryHash(prevHash string, canonical []byte) string {
	var stack [1024]byte
	return entryHash(append(append(stack[:0], prevHash...), canonical...))
}

// entryHash returns "sha256:" + hex(sha256(b)) with one allocation, the
// string's: a hash.Hash costs one for itself, one for the sum and one
// per string written to it.
func entryHash(b []byte) string {
	sum := sha256.Sum256(b)
	var out [len(HashPrefix) + 2*sha256.Size]byte
	return string(hex.AppendEncode(append(out[:0], HashPrefix...), sum[:]))
}

// NewAuditEntry numbers, stamps and hashes one event after the entry with
// sequence number prevSeq and hash prevHash (0 and GenesisHash for the
// first): what every driver stores. metadata must already be canonical;
// ts is stored in UTC at TimePrecision.
func NewAuditEntry(tenantID string, prevSeq int64, prevHash string, ts time.Time, event string, metadata json.RawMessage) AuditEntry {
	e := AuditEntry{
		TenantID:       tenantID,
		SequenceNumber: prevSeq + 1,
		Timestamp:      ts.UTC().Truncate(TimePrecision),
		Event:          event,
		Metadata:       metadata,
		PrevHash:       prevHash,
	}
	// AuditEntryHash(prevHash, CanonicalAuditEntry(…)), both in one buffer
	// on the stack unless the entry is large.
	var stack [1024]byte
	e.EntryHash = entryHash(CanonicalAuditEntry(append(stack[:0], prevHash...), e.SequenceNumber, e.Timestamp, e.Event, e.Metadata))
	return e
}

// ChainVerifier recomputes a run of one tenant's chain from its entries
// fed in sequence order, without holding them: drivers stream rows into
// Add. It allocates nothing per entry. A run may be the whole chain
// (Result) or one of several consecutive ranges verified in parallel and
// joined (Segment, JoinSegments): the first entry it sees is taken as
// given — its number and prev_hash are checked by whoever knows what came
// before — and every later one is checked against it.
type ChainVerifier struct {
	seg      ChainSegment
	h        hash.Hash
	prev     []byte // the previous entry's entry_hash
	canon    []byte
	sum      [sha256.Size]byte
	computed []byte
}

// ChainSegment is what a ChainVerifier saw of one run of entries.
type ChainSegment struct {
	Entries   int    // rows seen, after a failure too
	FirstSeq  int64  // the first row's sequence number (0 when none)
	FirstPrev string // the first row's prev_hash
	// Bad is the first sequence number inside the run that does not check
	// out: a missing number, a prev_hash that is not its predecessor's
	// entry_hash, an entry_hash that does not match the entry.
	Bad       *int64
	BadReason string // why Bad is bad
	LastSeq   int64  // the last entry that checked out (FirstSeq-1 if none)
	LastHash  string // its entry_hash ("" if none)
	// Digests counts the rows whose metadata mentions the action digest
	// key (`"action_digest":`, as the drivers' SQL matches it), after a
	// failure too: when no row of the chain does, no entry vouches for an
	// action and VerifyChain skips ActionSource.Vouched's pass.
	Digests int
}

// NewChainVerifier returns a verifier for a run of entries.
func NewChainVerifier() *ChainVerifier { return &ChainVerifier{h: sha256.New()} }

// Add checks the next stored entry. Once one failed, later ones are only
// counted: what follows a break cannot be trusted either.
func (v *ChainVerifier) Add(seq int64, ts time.Time, event, metadata, prevHash, entryHash []byte) {
	s := &v.seg
	s.Entries++
	if bytes.Contains(metadata, digestMention) {
		s.Digests++
	}
	switch {
	case s.Bad != nil:
		return
	case s.Entries == 1:
		s.FirstSeq, s.FirstPrev, s.LastSeq = seq, string(prevHash), seq-1
	case seq != s.LastSeq+1: // a gap (a repeat cannot pass a primary key)
		v.fail(s.LastSeq+1, ReasonGap)
		return
	case !bytes.Equal(prevHash, v.prev):
		v.fail(seq, ReasonLink)
		return
	}
	v.canon = CanonicalAuditEntry(v.canon[:0], seq, ts, string(event), metadata)
	v.h.Reset()
	v.h.Write(prevHash)
	v.h.Write(v.canon)
	v.computed = append(v.computed[:0], HashPrefix...)
	v.computed = hex.AppendEncode(v.computed, v.h.Sum(v.sum[:0]))
	if !bytes.Equal(v.computed, entryHash) {
		v.fail(seq, ReasonHash)
		return
	}
	v.prev = append(v.prev[:0], entryHash...)
	s.LastSeq = seq
}

func (v *ChainVerifier) fail(seq int64, reason string) { v.seg.Bad, v.seg.BadReason = &seq, reason }

// Segment returns what the verifier saw.
func (v *ChainVerifier) Segment() ChainSegment {
	s := v.seg
	if s.LastSeq >= s.FirstSeq && s.Entries > 0 {
		s.LastHash = string(v.prev)
	}
	return s
}

// Result verifies the run as a whole chain; see JoinSegments for head.
func (v *ChainVerifier) Result(head *ChainHead) AuditVerification {
	return JoinSegments(head, v.Segment())
}

// JoinSegments verifies a chain from the segments of consecutive sequence
// ranges, in order: each segment's first entry must follow the last good
// entry of the ones before it (entry 1 follows GenesisHash), and the first
// failure wins. Empty segments are skipped: the numbers they lack show as
// a gap where the chain resumes, or at the head.
//
// head is the head the store recorded with its last append, nil when its
// row is missing. The entries must end exactly at it: entries removed from
// the end leave a chain that checks out but stops short of it, entries
// added behind the store's back stand past it, and without a head removed
// entries could not be told, so a missing head with entries is not valid
// either (an unknown tenant has neither, and an empty, valid chain).
func JoinSegments(head *ChainHead, segs ...ChainSegment) AuditVerification {
	return JoinSegmentsFrom(head, nil, segs...)
}

// JoinSegmentsFrom is JoinSegments for a chain whose entries up to and
// including start were pruned (nil: none were): the first retained entry
// must be start.Seq+1 and its prev_hash start.Hash, the checkpoint
// recorded when they were removed.
func JoinSegmentsFrom(head, start *ChainHead, segs ...ChainSegment) AuditVerification {
	var (
		bad     *int64
		reason  string
		entries int
		next    = int64(1)
		prev    = GenesisHash
	)
	if start != nil {
		next, prev = start.Seq+1, start.Hash
	}
	first := next
	fail := func(seq int64, why string) { bad, reason = &seq, why }
	for _, s := range segs {
		entries += s.Entries
		switch {
		case bad != nil || s.Entries == 0:
		case s.FirstSeq != next:
			why := ReasonGap
			if s.FirstSeq < next {
				why = reasonBeforeFirst
			}
			fail(min(next, s.FirstSeq), why)
		case s.FirstPrev != prev:
			fail(s.FirstSeq, ReasonLink)
		default:
			if s.LastSeq >= s.FirstSeq { // its good prefix extends the chain
				next, prev = s.LastSeq+1, s.LastHash
			}
			if s.Bad != nil {
				fail(*s.Bad, s.BadReason)
			}
		}
	}
	last, lastHash := next-1, prev
	if last == 0 {
		lastHash = GenesisHash
	}
	if bad == nil {
		switch {
		case head == nil && entries > 0:
			fail(next, ReasonNoHead)
		case head == nil:
		case head.Seq >= next:
			fail(next, ReasonTruncated)
		case head.Seq == next-1 && head.Hash != prev:
			fail(head.Seq, ReasonHeadHash)
		case head.Seq < next-1:
			fail(head.Seq+1, ReasonPastHead)
			last, lastHash = head.Seq, head.Hash
			if head.Seq == 0 {
				lastHash = GenesisHash
			}
		}
	}
	return AuditVerification{Valid: bad == nil, Entries: entries, FirstBadSequence: bad, LastSequence: last, LastHash: lastHash, Reason: reason, RetainedFrom: first}
}

// Unreadable is the verification of a chain that could not be read: not
// valid, with ReasonUnreadable and the error as Cause.
func Unreadable(err error) AuditVerification {
	return AuditVerification{Reason: ReasonUnreadable, LastHash: GenesisHash, RetainedFrom: 1, Cause: err}
}

// String renders a verification for logs.
func (r AuditVerification) String() string {
	if r.Valid {
		return fmt.Sprintf("valid chain of %d entries", r.Entries)
	}
	if r.FirstBadSequence == nil && r.Cause == nil { // every entry verified, a rollup did not
		return fmt.Sprintf("invalid store, chain of %d entries verified: %s", r.Entries, r.Reason)
	}
	if r.FirstBadSequence == nil {
		return fmt.Sprintf("invalid chain of %d entries: %s (%v)", r.Entries, r.Reason, r.Cause)
	}
	return fmt.Sprintf("broken chain of %d entries, first bad sequence %d: %s", r.Entries, *r.FirstBadSequence, r.Reason)
}
