// Package lifecycle runs an action through its life, without HTTP: it
// validates a submitted action, decides it with the engine, records it
// durably (with its audit entry, group-committed) before answering, takes
// approvers' decisions on the held ones (docs/api.md §A8) and explains any of
// them. pdp/api authenticates and translates HTTP to these calls; every
// rule of the action path lives here, so it is tested and reusable
// without a server.
package lifecycle

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp/approval"
	"github.com/gatehouse-pdp/gatehouse/pdp/decisionlog"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// DefaultRecordTimeout bounds recording an action or a decision.
const DefaultRecordTimeout = 5 * time.Second

// Deps are the collaborators of a Service. Engine, Store and Registry are
// required.
type Deps struct {
	Engine   *engine.Engine
	Store    store.Store
	Registry *registry.Registry
	// DecisionLog, when set, is handed every recorded decision.
	DecisionLog *decisionlog.Logger
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Now is the clock of records and of the approval modes' waiting
	// times (default time.Now); tests inject one instead of sleeping.
	Now func() time.Time
	// Random is the source of action and trace IDs (default crypto/rand).
	Random io.Reader
	// Sleep waits d or until ctx is done (then its error): how Decide
	// holds an early solo-mode approval. Default: a timer. Tests inject
	// one that moves their clock.
	Sleep func(ctx context.Context, d time.Duration) error
	// RecordTimeout bounds a write after its decision (default
	// DefaultRecordTimeout). The write is detached from the caller's
	// context, so a client that hangs up cannot leave a decision
	// unrecorded. Recording an action shares its deadline with the
	// actions recorded around it (deadline.go): its bound is between
	// RecordTimeout minus a sixteenth and RecordTimeout.
	RecordTimeout time.Duration
}

// Service is the action lifecycle. It is safe for concurrent use.
type Service struct {
	eng     *engine.Engine
	st      store.Store
	gov     store.GovernanceStore // nil: the store keeps no audit chain
	reg     *registry.Registry
	dlog    *decisionlog.Logger
	log     *slog.Logger
	now     func() time.Time
	random  io.Reader
	rules   *approval.Rules
	timeout time.Duration
	// deadlines bound recording actions (deadline.go).
	deadlines *recordDeadlines
	sleep     func(ctx context.Context, d time.Duration) error
}

// New returns the service wired with deps.
func New(deps Deps) (*Service, error) {
	if deps.Engine == nil || deps.Store == nil || deps.Registry == nil {
		return nil, errors.New("lifecycle: Engine, Store and Registry are required")
	}
	if deps.RecordTimeout < 0 {
		return nil, fmt.Errorf("lifecycle: record timeout %s is negative", deps.RecordTimeout)
	}
	s := &Service{
		eng: deps.Engine, st: deps.Store, reg: deps.Registry, dlog: deps.DecisionLog,
		log: deps.Logger, now: deps.Now, random: deps.Random, timeout: deps.RecordTimeout, sleep: deps.Sleep,
	}
	if s.sleep == nil {
		s.sleep = sleepCtx
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.random == nil {
		s.random = rand.Reader
	}
	if s.timeout == 0 {
		s.timeout = DefaultRecordTimeout
	}
	s.deadlines = &recordDeadlines{timeout: s.timeout}
	s.rules = approval.New(s.now)
	if gs, ok := deps.Store.(store.GovernanceStore); ok {
		s.gov = gs
	}
	return s, nil
}

// sleepCtx waits d, or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Governed reports whether the store keeps approvals and the audit chain;
// without it, actions are still recorded (without entries) and the
// approval workflow answers ErrGovernanceUnavailable.
func (s *Service) Governed() bool { return s.gov != nil }

// ErrGovernanceUnavailable: the store keeps no approvals or audit chain.
var ErrGovernanceUnavailable = errors.New("the store keeps no approvals or audit chain")

// newActionID returns "act_" and 24 hex digits: the service clock's Unix
// milliseconds (12 digits, 48 bits) followed by 6 random bytes. A store's
// IDs then grow with time, so each insert lands on the last leaf of the
// indexes keyed by action ID (actions' unique id, audit_log_action)
// instead of a random one: a group commit writes one page of each for its
// whole batch, not one per action (BenchmarkActionWritePath in
// pdp/store/sqlite, one tenant: 5.8 WAL pages per action with random IDs,
// 3.9 with these). 48 random bits keep the IDs of one millisecond apart;
// an ID is no secret (every read of an action is tenant-scoped and
// authenticated), and a clash would be refused as a duplicate, not
// overwrite.
func (s *Service) newActionID() string {
	id, _ := s.newIDs(false)
	return id
}

// newIDs returns a new action ID (newActionID) and, when withTrace, a new
// trace ID (16 random bytes as hex, as RandomHex(16)), both substrings of
// one string: one allocation for the two.
func (s *Service) newIDs(withTrace bool) (id, traceID string) {
	const idLen = 4 + 2*12
	var b [12 + 16]byte
	ms := uint64(s.now().UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	n := 12
	if withTrace {
		n += 16
	}
	s.readRandom(b[6:n])
	var text [idLen + 32]byte
	copy(text[:], "act_")
	hex.Encode(text[4:], b[:n])
	both := string(text[:4+2*n])
	return both[:idLen], both[idLen:]
}

// RandomHex returns n random bytes as hex. crypto/rand does not fail on
// supported platforms (Go 1.24+ crashes the program instead), so there is
// no error to return.
func (s *Service) RandomHex(n int) string {
	if n > 32 {
		b := make([]byte, n)
		s.readRandom(b)
		return hex.EncodeToString(b)
	}
	var buf [32]byte
	var text [64]byte
	s.readRandom(buf[:n])
	hex.Encode(text[:], buf[:n])
	return string(text[:2*n])
}

// readRandom fills b from the service's random source. The default
// source is read by crypto/rand.Read directly: through the io.Reader
// interface b would escape, costing every action ID and trace ID a heap
// buffer; another source (tests inject one) is read into a buffer of
// its own.
func (s *Service) readRandom(b []byte) {
	if s.random == rand.Reader {
		_, _ = rand.Read(b) // never fails: Go 1.24+ crashes instead
		return
	}
	tmp := make([]byte, len(b)) // b itself would escape through the interface
	if _, err := io.ReadFull(s.random, tmp); err != nil {
		panic(fmt.Sprintf("random source failed: %v", err))
	}
	copy(b, tmp)
}
