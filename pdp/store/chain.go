package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"golang.org/x/sync/errgroup"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// ErrChainBroken: a tenant's stored chain head does not agree with its
// entries (the head row is missing while entries exist, or entries stand
// past the head), so appending would either fork the chain or build on
// entries nobody can vouch for. Writes to that tenant's chain fail with
// it until an operator has looked (gatehouse audit verify says where).
var ErrChainBroken = errors.New("audit chain head does not match its entries")

// ChainHead is the last entry of a tenant's chain as a writer sees it.
type ChainHead struct {
	Seq  int64
	Hash string
}

// ResolveHead decides where a tenant's next entry goes from what a write
// transaction read: whether the tenant exists, its recorded head (nil if
// the row is missing) and the last stored entry (nil if there is none).
// Every driver calls it, so every driver refuses the same damage:
//
//   - no tenant: ErrNotFound;
//   - no head row: ErrChainBroken (every tenant has one from its creation;
//     a missing one was deleted, which would otherwise hide a truncation);
//   - entries past the head, or a last entry at the head's number with
//     another hash: ErrChainBroken (they were written behind the store's
//     back; chaining onto them would vouch for them);
//   - otherwise the recorded head, also when entries were removed from the
//     end: appends leave the gap verification reports instead of reusing
//     the numbers.
func ResolveHead(tenantID string, exists bool, head, tip *ChainHead) (ChainHead, error) {
	switch {
	case !exists:
		return ChainHead{}, fmt.Errorf("tenant %q: %w", tenantID, ErrNotFound)
	case head == nil:
		return ChainHead{}, fmt.Errorf("tenant %q has no recorded head: %w", tenantID, ErrChainBroken)
	case tip != nil && tip.Seq > head.Seq:
		return ChainHead{}, fmt.Errorf("tenant %q has entries up to %d past its recorded head %d: %w", tenantID, tip.Seq, head.Seq, ErrChainBroken)
	case tip != nil && tip.Seq == head.Seq && tip.Hash != head.Hash:
		return ChainHead{}, fmt.Errorf("tenant %q's entry %d is not the recorded head: %w", tenantID, head.Seq, ErrChainBroken)
	}
	return *head, nil
}

// Chains is the chain bookkeeping one group-committed batch shares: each
// tenant's head as the batch has extended it so far, what the running op
// changed (so a refused op can be undone without touching the others),
// and which heads to write back before COMMIT. Drivers load heads (Load)
// with their own SQL and store entries Append returns.
type Chains struct {
	heads map[string]*chainHead
	undo  map[string]chainHead
	now   func() time.Time
}

type chainHead struct {
	ChainHead
	moved bool
}

// NewChains returns empty bookkeeping; now stamps entries whose event has
// no timestamp.
func NewChains(now func() time.Time) *Chains {
	return &Chains{heads: map[string]*chainHead{}, undo: map[string]chainHead{}, now: now}
}

// Loaded reports whether the tenant's head is known to the batch.
func (c *Chains) Loaded(tenantID string) bool { return c.heads[tenantID] != nil }

// Load records the tenant's head as read at the start of its first write.
func (c *Chains) Load(tenantID string, h ChainHead) { c.heads[tenantID] = &chainHead{ChainHead: h} }

// StartOp begins a new op: later Undo calls put back only what it moved.
func (c *Chains) StartOp() { clear(c.undo) }

// Undo puts back the heads the running op moved.
func (c *Chains) Undo() {
	for t, h := range c.undo {
		*c.heads[t] = h
	}
	clear(c.undo)
}

// Append numbers, stamps and hashes evs (metadata canonical) after the
// tenant's head and moves the head past them. actionIDs[i] is evs[i]'s
// metadata.action_id or "" (the driver stores it for AuditTrail). The
// tenant's head must be loaded.
func (c *Chains) Append(tenantID string, evs ...AuditEvent) ([]AuditEntry, error) {
	h := c.heads[tenantID]
	if h == nil { // a driver appending to a chain it did not load: a bug
		return nil, fmt.Errorf("store: tenant %q's chain head is not loaded by this batch", tenantID)
	}
	if _, ok := c.undo[tenantID]; !ok {
		c.undo[tenantID] = *h
	}
	out := make([]AuditEntry, len(evs))
	for i, ev := range evs {
		ts := ev.Timestamp
		if ts.IsZero() {
			ts = c.now()
		}
		out[i] = NewAuditEntry(tenantID, h.Seq, h.Hash, ts, ev.Event, ev.Metadata)
		h.Seq, h.Hash, h.moved = out[i].SequenceNumber, out[i].EntryHash, true
	}
	return out, nil
}

// Heads calls fn with every head the batch loaded, as the batch left it:
// after COMMIT, what a driver may remember of its own writes (see
// sqlite's head cache).
func (c *Chains) Heads(fn func(tenantID string, h ChainHead)) {
	for t, h := range c.heads {
		fn(t, h.ChainHead)
	}
}

// Moved returns the heads the batch moved, to write back before COMMIT.
func (c *Chains) Moved() (tenants []string, heads []ChainHead) {
	for t, h := range c.heads {
		if h.moved {
			tenants, heads = append(tenants, t), append(heads, h.ChainHead)
		}
	}
	return tenants, heads
}

// CanonicalEvent checks ev and makes its metadata canonical with set's
// keys added; event fills an empty Event. Callers run it in their own
// goroutine, before queueing, so the committer only numbers, hashes and
// writes.
func CanonicalEvent(ev AuditEvent, event string, set map[string]any) (AuditEvent, error) {
	ev, err := checkEvent(ev, event)
	if err != nil {
		return AuditEvent{}, err
	}
	meta, err := MergeMetadata(ev.Metadata, set)
	if err != nil {
		return AuditEvent{}, err
	}
	ev.Metadata = meta
	return ev, nil
}

// checkEvent is CanonicalEvent's check of ev, with event filling an empty
// Event.
func checkEvent(ev AuditEvent, event string) (AuditEvent, error) {
	if ev.Event == "" {
		ev.Event = event
	}
	if err := ev.Validate(); err != nil {
		return AuditEvent{}, err
	}
	// Canonical metadata is valid UTF-8 without a raw NUL (encoding/json
	// replaces the one and escapes the other); the event name is the
	// caller's text.
	if err := CheckText(Text{"event", ev.Event}); err != nil {
		return AuditEvent{}, err
	}
	return ev, nil
}

// actionEventCanonical is CanonicalEvent(ev, event, {"action_id": id,
// MetaActionDigest: digest}) with the facts passed as strings
// (mergeStringFacts): the same entry, without a map per action.
func actionEventCanonical(ev AuditEvent, event, id, digest string) (AuditEvent, error) {
	ev, err := checkEvent(ev, event)
	if err != nil {
		return AuditEvent{}, err
	}
	meta, err := mergeStringFacts(ev.Metadata, "action_id", id, MetaActionDigest, digest)
	if err != nil {
		return AuditEvent{}, err
	}
	ev.Metadata = meta
	return ev, nil
}

// PrepareAppend makes AppendAudit's events canonical and returns them with
// each one's metadata.action_id.
func PrepareAppend(tenantID string, events []AuditEvent) ([]AuditEvent, error) {
	if tenantID == "" {
		return nil, pdp.Invalid("tenant_id", "required")
	}
	evs := make([]AuditEvent, len(events))
	for i, ev := range events {
		var err error
		if evs[i], err = CanonicalEvent(ev, "", nil); err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
	}
	return evs, nil
}

// PolicyFacts are the metadata keys the store sets on a policy write's
// entry (see AuditedWrites).
func PolicyFacts(p pdp.Policy) map[string]any {
	var agent any // null for a tenant-wide policy
	scope := "tenant"
	if p.AgentID != "" {
		agent, scope = p.AgentID, "agent"
	}
	return map[string]any{"policy_name": p.Name, "agent_id": agent, "scope": scope, "version": p.Version, "enabled": p.Enabled}
}

// PolicyEvent is the entry of policy write w: ev with its defaults (event,
// the policy's UpdatedAt) and PolicyFacts.
func PolicyEvent(w PolicyWrite, ev AuditEvent, event string) (AuditEvent, error) {
	if ev.Timestamp.IsZero() {
		ev.Timestamp = w.Policy.UpdatedAt
	}
	facts := PolicyFacts(w.Policy)
	// The version the write stored: what it did and a digest of its
	// content, so the chain vouches for the policy's history.
	if w.Version.Action != "" {
		facts["version_action"] = w.Version.Action
		facts["content_digest"] = ContentDigest(w.Policy)
		if w.Version.Actor != "" {
			facts["actor"] = w.Version.Actor
		}
		if w.Version.RolledBackFrom > 0 {
			facts["rolled_back_from"] = w.Version.RolledBackFrom
		}
	}
	return CanonicalEvent(ev, event, facts)
}

// MetaActionDigest is the metadata key the store sets, on an action's
// evaluation entry and on its decision entry, to ActionDigest of the
// action as that write left it. VerifyAudit compares every action with
// the latest entry about it that carries one, so the actions table's
// decision fields are covered by the chain too: editing blocked into
// allowed, a risk score, an approver, or removing the action, is found.
const MetaActionDigest = "action_digest"

// digestMention is how the drivers' SQL finds entries that may carry an
// action digest: the key, quoted, followed by a colon, anywhere in the
// metadata text.
var digestMention = []byte(`"` + MetaActionDigest + `":`)

// ActionDigest returns "sha256:" + hex(sha256(fields)) over every stored
// field of a, each as a big-endian uint32 length then its bytes, in this
// order: id, tenant_id, agent_id, action, connector, operation, params,
// step_type, status, decision, triggered_policy, severity, risk_score
// (the IEEE 754 bits, 8 bytes), violation_count (8 bytes), trace_id,
// created_at (Unix microseconds, 8 bytes), decided_at (the same, or 0
// bytes when undecided), approver_id, decision_reason. NULL JSON and empty
// JSON are the same, empty.
func ActionDigest(a ActionRecord) string {
	var buf [len(HashPrefix) + 2*sha256.Size]byte
	return string(appendActionDigest(buf[:0], a))
}

// digestBuffers hold appendActionDigest's gathered fields between calls.
// An action's params and decision alone are often over a kilobyte, so a
// buffer on the stack grew onto the heap on most requests (~1.7 KB per
// POST /v1/actions, a seventh of what a request allocates: garbage the
// collector runs for).
var digestBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooledDigest is the largest digest buffer put back for reuse: an
// action with huge params does not keep its buffer alive.
const maxPooledDigest = 64 << 10

// appendActionDigest appends ActionDigest(a) to dst. The fields are
// gathered into one pooled buffer and hashed at once: a hash.Hash fed
// field by field costs an allocation for the hash and one per string
// written to it.
func appendActionDigest(dst []byte, a ActionRecord) []byte {
	bp := digestBuffers.Get().(*[]byte)
	b := (*bp)[:0]
	str := func(s string) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	put := func(p []byte) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	num := func(n uint64) {
		b = binary.BigEndian.AppendUint32(b, 8)
		b = binary.BigEndian.AppendUint64(b, n)
	}
	str(a.ID)
	str(a.TenantID)
	str(a.AgentID)
	str(a.Action)
	str(a.Connector)
	str(a.Operation)
	put(a.Params)
	str(a.StepType)
	str(string(a.Status))
	put(a.Decision)
	str(a.TriggeredPolicy)
	str(string(a.Severity))
	num(math.Float64bits(a.RiskScore))
	num(uint64(a.ViolationCount))
	str(a.TraceID)
	num(uint64(a.CreatedAt.UnixMicro()))
	if a.DecidedAt != nil {
		num(uint64(a.DecidedAt.UnixMicro()))
	} else {
		put(nil)
	}
	str(a.ApproverID)
	str(a.DecisionReason)
	sum := sha256.Sum256(b)
	if cap(b) <= maxPooledDigest {
		*bp = b[:0]
		digestBuffers.Put(bp)
	}
	dst = append(dst, HashPrefix...)
	return hex.AppendEncode(dst, sum[:])
}

// ActionEvent is an action's evaluation entry: ev with its defaults (the
// event for a.Status, a.CreatedAt) and the facts the store sets
// (action_id, action_digest). a must be as it will be stored.
func ActionEvent(a ActionRecord, ev AuditEvent) (AuditEvent, error) {
	if ev.Timestamp.IsZero() {
		ev.Timestamp = a.CreatedAt
	}
	var buf [len(HashPrefix) + 2*sha256.Size]byte
	digest := appendActionDigest(buf[:0], a)
	// The digest is a view of buf: mergeStringFacts copies it into the
	// metadata and keeps no reference.
	return actionEventCanonical(ev, EventForStatus(a.Status), a.ID, unsafe.String(unsafe.SliceData(digest), len(digest)))
}

// DecisionEvent is a decision's entry: ev with its defaults (the event
// for a.Status, a.DecidedAt) and the facts the store sets (action_id,
// status, approver_id, action_digest). a is the action as decided.
func DecisionEvent(a ActionRecord, ev AuditEvent) (AuditEvent, error) {
	if ev.Timestamp.IsZero() && a.DecidedAt != nil {
		ev.Timestamp = *a.DecidedAt
	}
	return CanonicalEvent(ev, EventForStatus(a.Status), map[string]any{
		"action_id": a.ID, "status": a.Status, "approver_id": a.ApproverID, MetaActionDigest: ActionDigest(a),
	})
}

// VoteFacts are the metadata keys the store sets on a vote's entry.
func VoteFacts(v ApprovalVote) map[string]any {
	return map[string]any{"action_id": v.ActionID, "approver_id": v.ApproverID, "decision": v.Decision, "role": v.Role, "is_manager": v.IsManager}
}

// Tally counts the approving votes that count (counts nil: all of them)
// and says which final status the newest vote v reaches, "" for none: a
// counted deny decides at once, approvals decide at minApprovals
// (docs/api.md §A8).
func Tally(votes []ApprovalVote, v ApprovalVote, minApprovals int, counts func(ApprovalVote) bool) (approvals int, final pdp.Status) {
	if counts == nil {
		counts = func(ApprovalVote) bool { return true }
	}
	for _, x := range votes {
		if x.Decision == pdp.StatusApproved && counts(x) {
			approvals++
		}
	}
	switch {
	case v.Decision == pdp.StatusDenied && counts(v):
		final = pdp.StatusDenied
	case v.Decision == pdp.StatusApproved && approvals >= minApprovals:
		final = pdp.StatusApproved
	}
	return approvals, final
}

// ActionCheck compares a tenant's actions with its chain, for VerifyAudit.
// The latest entry carrying an action digest for an action is what the
// action must match; an action such an entry names that is gone (deleted,
// renamed) is as bad. Actions no entry vouches for (recorded by
// InsertAction or a bulk load, or before digests were recorded) are not
// checked. Drivers feed it entries with Entry (each action's entries
// consecutively, in sequence order) and Orphan; see ActionSource for the
// passes that do it without random reads on a large store.
type ActionCheck struct {
	checked int // actions compared with an entry
	decided int // of which approved or denied
	bad     *int64
	prev    string
	reason  string

	pending bool // the latest entry of the current action waits to be checked
	id      string
	seq     int64
	prevOf  string
	digest  string
	actual  string // ActionDigest of the stored action
}

// Entry feeds one entry numbered seq (prev_hash prev, metadata meta) about
// the stored action a.
func (c *ActionCheck) Entry(seq int64, prev string, meta []byte, a ActionRecord) {
	d, ok := metadataDigest(meta)
	if !ok {
		return // the key was nested, not the store's
	}
	if c.pending && c.id != a.ID {
		c.flush()
	}
	if !c.pending || c.id != a.ID {
		c.actual = ActionDigest(a)
		c.checked++
		if isFinal(a.Status) {
			c.decided++
		}
	}
	c.pending, c.id, c.seq, c.prevOf, c.digest = true, a.ID, seq, prev, d
}

// Orphan feeds an entry numbered seq about action id, which is not stored.
func (c *ActionCheck) Orphan(id string, seq int64, prev string, meta []byte) {
	if _, ok := metadataDigest(meta); ok {
		c.fail(seq, prev, fmt.Sprintf("%s: %q (entry %d)", ReasonNoAction, id, seq))
	}
}

// flush checks the current action against its latest entry.
func (c *ActionCheck) flush() {
	if c.pending && c.actual != c.digest {
		c.fail(c.seq, c.prevOf, fmt.Sprintf("%s: %q (entry %d)", ReasonAction, c.id, c.seq))
	}
	c.pending = false
}

func (c *ActionCheck) fail(seq int64, prev, reason string) {
	if c.bad == nil || seq < *c.bad {
		c.bad, c.prev, c.reason = &seq, prev, reason
	}
}

// Apply returns v (a valid chain's verification) made invalid at the
// first entry an action contradicts, if any.
func (c *ActionCheck) Apply(v AuditVerification) AuditVerification {
	c.flush()
	if c.bad == nil || !v.Valid {
		return v
	}
	v.Valid, v.FirstBadSequence, v.Reason = false, c.bad, c.reason
	v.LastSequence, v.LastHash = *c.bad-1, c.prev
	return v
}

// metadataDigest returns the top-level action_digest of canonical
// metadata. VerifyAudit calls it for every entry about an action, so it
// checks the text with json.Valid (which allocates nothing) and walks the
// top level itself (topLevelString); only text that walk cannot settle
// (escapes in a key or in the value) is decoded in full, as before.
func metadataDigest(meta []byte) (string, bool) {
	if !json.Valid(meta) {
		return "", false
	}
	if d, ok, sure := topLevelString(meta, MetaActionDigest); sure {
		return d, ok
	}
	return decodeDigest(meta)
}

// decodeDigest is metadataDigest by decoding the whole object.
func decodeDigest(meta []byte) (string, bool) {
	var m map[string]json.RawMessage // keys match exactly, unlike a struct's
	if json.Unmarshal(meta, &m) != nil {
		return "", false
	}
	var d string
	if json.Unmarshal(m[MetaActionDigest], &d) != nil {
		return "", false
	}
	return d, true
}

// topLevelString finds, in the valid JSON text b, the value of the last
// top-level member named key (as json.Unmarshal into a map keeps the last)
// and whether it is a string (or null, which decodes into one as "").
// sure is false when the answer needs a
// decoder: b is not an object, a key or the value has an escape, or the
// value is not valid UTF-8.
func topLevelString(b []byte, key string) (val string, ok, sure bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return "", false, false
	}
	i++
	for {
		i = skipSpace(b, i)
		if i >= len(b) {
			return "", false, false
		}
		if b[i] == '}' {
			return val, ok, true
		}
		if b[i] == ',' {
			i = skipSpace(b, i+1)
		}
		k, next, plain := jsonString(b, i)
		if !plain {
			return "", false, false
		}
		i = skipSpace(b, next)
		if i >= len(b) || b[i] != ':' {
			return "", false, false
		}
		i = skipSpace(b, i+1)
		end := skipValue(b, i)
		if end < 0 {
			return "", false, false
		}
		if string(k) == key {
			switch b[i] {
			case 'n': // null decodes into a string as ""
				val, ok = "", true
			default:
				val, ok = "", false
			case '"':
				v, _, plain := jsonString(b, i)
				if !plain || !utf8.Valid(v) { // the decoder replaces bad UTF-8
					return "", false, false
				}
				val, ok = string(v), true
			}
		}
		i = end
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// jsonString returns the contents of the string starting at b[i] and the
// index after it; plain is false when it is not a string or has escapes.
func jsonString(b []byte, i int) (s []byte, next int, plain bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			return nil, 0, false
		case '"':
			return b[i+1 : j], j + 1, true
		}
	}
	return nil, 0, false
}

// skipValue returns the index after the valid JSON value starting at
// b[i], or -1: strings are skipped with their escapes, and brackets
// counted outside them.
func skipValue(b []byte, i int) int {
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			j := i + 1
			for ; j < len(b) && b[j] != '"'; j++ {
				if b[j] == '\\' {
					j++
				}
			}
			if j >= len(b) {
				return -1
			}
			i = j
			if depth == 0 {
				return i + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i // the end of the enclosing object
			}
			if depth--; depth == 0 {
				return i + 1
			}
		case ',':
			if depth == 0 {
				return i
			}
		}
	}
	if depth == 0 {
		return i
	}
	return -1
}

// ActionSource is how VerifyChain compares a tenant's actions with its
// chain (ActionCheck) from a driver. Reading, for every action, the
// latest entry about it by index would be a random read per action, which
// on a large store takes minutes; so the check runs two passes that read
// in storage order and are complete when their count agrees with the
// chain's, and falls back to the exhaustive pass only when it does not
// (which, on an untampered store, is never).
type ActionSource struct {
	// Fast feeds c, through Entry, every undecided action that has an
	// evaluation entry (audit_seq), with that entry read by its sequence
	// number; and every decision entry (action_approved, action_denied)
	// carrying a digest, with its action.
	Fast func(ctx context.Context, c *ActionCheck) error
	// Vouched counts, in one pass over the chain, the distinct actions
	// named by entries whose metadata mentions an action digest, and how
	// many of those entries are decisions (action_approved,
	// action_denied). Every decided action has exactly one decision
	// entry, so a decided action that Fast compared with anything else
	// (its decision undone in the table) shows in the second count. It
	// is not called when no verified entry mentions the digest key (a
	// chain of AppendAudit events over bulk-loaded actions).
	Vouched func(ctx context.Context) (actions, decisions int, err error)
	// All feeds c every entry that names a stored action and mentions an
	// action digest, ordered by action ID and then sequence number, with
	// its action (Entry), then every such entry whose action is not stored
	// (Orphan).
	All func(ctx context.Context, c *ActionCheck) error
}

// check runs the passes of s into a fresh check and applies it to v.
// mentions is how many of the verified entries mention the digest key
// (ChainSegment.Digests): Vouched counts among a subset of those, so when
// there are none its pass over the whole chain is skipped, its answer
// known to be 0 and 0.
func (s ActionSource) check(ctx context.Context, v AuditVerification, mentions int) (AuditVerification, error) {
	var c ActionCheck
	if err := s.Fast(ctx, &c); err != nil {
		return AuditVerification{}, err
	}
	c.flush()
	var n, d int
	if mentions > 0 {
		var err error
		if n, d, err = s.Vouched(ctx); err != nil {
			return AuditVerification{}, err
		}
	}
	if n != c.checked || d != c.decided { // the fast passes missed what an entry vouches for
		c = ActionCheck{}
		if err := s.All(ctx, &c); err != nil {
			return AuditVerification{}, err
		}
	}
	return c.Apply(v), nil
}

// ChainSource is how VerifyChain reads one tenant's chain from a driver.
type ChainSource struct {
	// Head reads, from one snapshot, the recorded head (nil when its row
	// is missing) and the highest stored sequence number (0 for none).
	Head func(ctx context.Context) (head *ChainHead, top int64, err error)
	// Range streams the entries with lo ≤ seq < hi, in order, through a
	// ChainVerifier.
	Range func(ctx context.Context, lo, hi int64) (ChainSegment, error)
	// Actions compares the tenant's actions with the chain.
	Actions ActionSource
	// Rollups, when set, compares the tenant's rollups with its actions
	// (CheckRollups), from one snapshot: the first mismatch, or nil.
	Rollups func(ctx context.Context) (*RollupMismatch, error)
	// Checkpoint, when set, reads the tenant's pruning checkpoint (nil
	// when nothing was pruned).
	Checkpoint func(ctx context.Context) (*AuditCheckpoint, error)
	// Workers is how many Ranges may run at once, Segment the fewest
	// entries worth a worker.
	Workers int
	Segment int64
}

// VerifyChain is every driver's VerifyAudit: it reads the head and the
// highest sequence number, splits [1, highest] into one range per worker,
// verifies the ranges concurrently, joins them (JoinSegments), and
// compares a valid chain with the tenant's actions (ActionCheck). The
// ranges are read from different snapshots, which is sound because the
// store never changes an entry once written and the ranges end at the
// highest number read first; appends made meanwhile are not part of this
// verification. A valid chain whose actions match is then checked for
// its rollups (ChainSource.Rollups). A chain that cannot be read is not
// valid (Unreadable); only a cancelled ctx is an error.
func VerifyChain(ctx context.Context, tenantID string, src ChainSource) (AuditVerification, error) {
	v, err := verifyChain(ctx, src)
	if err != nil {
		if ctx.Err() != nil {
			return AuditVerification{}, fmt.Errorf("verify audit of %q: %w", tenantID, ctx.Err())
		}
		return Unreadable(fmt.Errorf("verify audit of %q: %w", tenantID, err)), nil
	}
	return v, nil
}

func verifyChain(ctx context.Context, src ChainSource) (AuditVerification, error) {
	// A prune that commits while the ranges are read would look like
	// entries missing from the start: read the checkpoint before and
	// after, and verify again when it moved (a prune is rare and bounded).
	for try := 0; ; try++ {
		cp, err := readCheckpoint(ctx, src)
		if err != nil {
			return AuditVerification{}, err
		}
		v, err := verifyFrom(ctx, src, cp)
		if err != nil || v.Valid || try == 2 {
			return v, err
		}
		again, err := readCheckpoint(ctx, src)
		if err != nil {
			return AuditVerification{}, err
		}
		if again.Head() == nil && cp.Head() == nil || again != nil && cp != nil && *again.Head() == *cp.Head() {
			return v, nil
		}
	}
}

func readCheckpoint(ctx context.Context, src ChainSource) (*AuditCheckpoint, error) {
	if src.Checkpoint == nil {
		return nil, nil
	}
	return src.Checkpoint(ctx)
}

func verifyFrom(ctx context.Context, src ChainSource, cp *AuditCheckpoint) (AuditVerification, error) {
	head, top, err := src.Head(ctx)
	if err != nil {
		return AuditVerification{}, err
	}
	// Below a segment's worth of entries per worker, splitting costs more
	// than it saves.
	workers := int(min(int64(max(src.Workers, 1)), max(top/max(src.Segment, 1), 1)))
	segs := make([]ChainSegment, workers)
	g, gctx := errgroup.WithContext(ctx)
	for i := range workers {
		lo, hi := 1+top*int64(i)/int64(workers), 1+top*int64(i+1)/int64(workers)
		if i == 0 {
			lo = math.MinInt64 // whatever precedes entry 1 is a problem too
		}
		g.Go(func() (err error) {
			segs[i], err = src.Range(gctx, lo, hi)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return AuditVerification{}, err
	}
	v := JoinSegmentsFrom(head, cp.Head(), segs...)
	v.Checkpoint = cp
	if !v.Valid {
		return v, nil
	}
	mentions := 0
	for _, s := range segs {
		mentions += s.Digests
	}
	if v, err = src.Actions.check(ctx, v, mentions); err != nil {
		return AuditVerification{}, err
	}
	return applyRollups(ctx, v, src.Rollups)
}

// Scanner is what a driver's row types share.
type Scanner interface {
	Scan(dest ...any) error
}

// ScanExtra scans a row whose leading columns a scan function reads (it
// passes their destinations) and whose trailing ones go into Extra.
type ScanExtra struct {
	Row   Scanner
	Extra []any
}

// Scan scans dest and then Extra.
func (s ScanExtra) Scan(dest ...any) error { return s.Row.Scan(append(dest, s.Extra...)...) }

// Qualified prefixes each of the comma-separated columns cols with table,
// for a query joining tables that share column names.
func Qualified(table, cols string) string {
	fs := strings.Split(cols, ",")
	for i, f := range fs {
		fs[i] = table + "." + strings.TrimSpace(f)
	}
	return strings.Join(fs, ", ")
}

// Rows is what *sql.Rows and pgx.Rows share.
type Rows interface {
	Scanner
	Next() bool
	Err() error
}

// Collect scans every row with scan, into a non-nil slice (an empty
// listing encodes as []). The caller closes rows.
func Collect[T any](rows Rows, scan func(Scanner) (T, error)) ([]T, error) {
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// Feed feeds c, through Entry, rows of an action's columns (read by scan)
// followed by an entry's seq, prev_hash and metadata. The caller closes
// rows.
func (c *ActionCheck) Feed(rows Rows, scan func(Scanner) (ActionRecord, error)) error {
	var (
		prev, meta string
		seq        int64
	)
	for rows.Next() {
		a, err := scan(ScanExtra{Row: rows, Extra: []any{&seq, &prev, &meta}})
		if err != nil {
			return err
		}
		c.Entry(seq, prev, []byte(meta), a)
	}
	return rows.Err()
}
