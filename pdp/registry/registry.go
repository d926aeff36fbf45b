package registry

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// publishTimeout bounds re-reading a tenant's snapshot after a write. The
// read runs detached from the caller's context: a client that hangs up
// after its write was committed must not leave the engine stale.
const publishTimeout = 10 * time.Second

// Registry manages tenants, keys and policies, and keeps the engine in step
// with the store. It is safe for concurrent use.
type Registry struct {
	st     store.Store
	eng    *engine.Engine
	log    *slog.Logger
	random io.Reader
	auth   *authCache
	// readOnly, when set, refuses policy writes and keeps the engine out
	// of the registry's hands (WithReadOnly); onPublish sees every
	// snapshot handed to the engine (WithPublishHook).
	readOnly  *ReadOnlyError
	onPublish func(tenantID string, revision uint64)
	// now is the clock of key expiry (rotation grace periods); grace is
	// the default grace period of a rotated key (keys.go).
	now   func() time.Time
	grace time.Duration

	// warming counts the compiles started in the background after a
	// publish by Watch (watch.go); Watch waits for them before it returns.
	warming sync.WaitGroup

	mu      sync.Mutex
	locks   map[string]*sync.Mutex // per tenant: publishing and tenant updates
	tenants map[string]store.Tenant
}

// Option configures a Registry.
type Option func(*options) error

type options struct {
	log       *slog.Logger
	random    io.Reader
	authTTL   time.Duration
	authItems int
	readOnly  *ReadOnlyError
	onPublish func(tenantID string, revision uint64)
	now       func() time.Time
	grace     time.Duration
}

// WithLogger sets where the registry logs (default: nowhere).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("registry: nil logger")
		}
		o.log = l
		return nil
	}
}

// WithAuthCacheTTL sets how long a successful key lookup is reused (default
// 5s, at most 5m). On a store whose key revocations do not bump the
// tenant's revision (SQLite) it is also the longest a key revoked by
// another process keeps working on this server; 0 turns the cache off.
func WithAuthCacheTTL(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 || d > 5*time.Minute {
			return fmt.Errorf("registry: auth cache TTL %s: must be between 0 and 5m", d)
		}
		o.authTTL = d
		return nil
	}
}

// WithAuthCacheSize bounds how many keys the auth cache holds (default
// 10000).
func WithAuthCacheSize(n int) Option {
	return func(o *options) error {
		if n < 1 || n > 1<<22 {
			return fmt.Errorf("registry: auth cache size %d: must be 1..4194304", n)
		}
		o.authItems = n
		return nil
	}
}

// WithNow sets the registry's clock (default time.Now): when a rotated
// key's grace period ends. Tests inject one to move through it.
func WithNow(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return errors.New("registry: nil clock")
		}
		o.now = now
		return nil
	}
}

// WithRotationGrace sets how long a rotated key keeps working by default
// (DefaultRotationGrace; 0..MaxRotationGrace).
func WithRotationGrace(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 || d > MaxRotationGrace {
			return fmt.Errorf("registry: key rotation grace %s: must be between 0 and %s", d, MaxRotationGrace)
		}
		o.grace = d
		return nil
	}
}

// WithRandom sets the source of API keys and IDs (default crypto/rand);
// for tests that need a failing or fixed source.
func WithRandom(r io.Reader) Option {
	return func(o *options) error {
		if r == nil {
			return errors.New("registry: nil random source")
		}
		o.random = r
		return nil
	}
}

// New returns a registry over st that publishes to eng. Call Load before
// serving so the engine knows every tenant.
func New(st store.Store, eng *engine.Engine, opts ...Option) (*Registry, error) {
	if st == nil || eng == nil {
		return nil, errors.New("registry: store and engine are required")
	}
	o := options{
		log:       slog.New(slog.DiscardHandler),
		random:    rand.Reader,
		authTTL:   5 * time.Second,
		authItems: 10000,
		now:       time.Now,
		grace:     DefaultRotationGrace,
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	auth := newAuthCache(o.authTTL, o.authItems)
	auth.now = o.now
	return &Registry{
		now:       o.now,
		grace:     o.grace,
		st:        st,
		eng:       eng,
		log:       o.log,
		random:    o.random,
		auth:      auth,
		readOnly:  o.readOnly,
		onPublish: o.onPublish,
		locks:     map[string]*sync.Mutex{},
		tenants:   map[string]store.Tenant{},
	}, nil
}

// Load publishes every tenant's policies to the engine and compiles them
// (Publish, then Warm). It fails if any tenant cannot be read: a server
// must not start deciding for some tenants with others unknown.
func (r *Registry) Load(ctx context.Context) error {
	ids, err := r.Publish(ctx)
	if err != nil {
		return err
	}
	r.Warm(ctx, ids, nil)
	return nil
}

// Publish publishes every stored tenant's policies to the engine, without
// compiling them, and returns the tenants' ids. It fails if any tenant
// cannot be read. `gatehouse serve` publishes before it listens and warms
// (Warm) while /health says warming.
func (r *Registry) Publish(ctx context.Context) ([]string, error) {
	ts, err := r.st.ListTenants(ctx)
	if err != nil {
		return nil, fmt.Errorf("load tenants: %w", err)
	}
	ids := make([]string, 0, len(ts))
	for _, t := range ts {
		r.remember(t)
		if err := r.publish(ctx, t.ID, t.Revision); err != nil {
			return nil, fmt.Errorf("load tenant %q: %w", t.ID, err)
		}
		ids = append(ids, t.ID)
	}
	r.log.InfoContext(ctx, "policies loaded", slog.Int("tenants", len(ts)))
	return ids, nil
}

// Warm compiles the prepared queries of tenants (engine.Warm), as many at
// once as the engine's compile pool runs, and calls progress (when not
// nil) after each tenant with the number done so far. A tenant whose
// compile fails is logged and counted as done: its decisions fail closed
// or compile on their own.
func (r *Registry) Warm(ctx context.Context, tenants []string, progress func(done int)) {
	next := make(chan string)
	var done atomic.Int64
	var wg sync.WaitGroup
	for range min(r.eng.CompileWorkers(), max(1, len(tenants))) {
		wg.Go(func() {
			for id := range next {
				r.warm(ctx, id)
				n := done.Add(1)
				if progress != nil {
					progress(int(n))
				}
			}
		})
	}
	for _, id := range tenants {
		if ctx.Err() != nil {
			break
		}
		next <- id
	}
	close(next)
	wg.Wait()
}

// lockFor returns the tenant's mutex, which serializes publishing (so the
// engine's revision only moves forward) and tenant updates.
func (r *Registry) lockFor(tenantID string) *sync.Mutex {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.locks[tenantID]
	if l == nil {
		l = &sync.Mutex{}
		r.locks[tenantID] = l
	}
	return l
}

// publish hands the engine the tenant's snapshot at revision atLeast or
// later (0: whatever is stored).
func (r *Registry) publish(ctx context.Context, tenantID string, atLeast uint64) error {
	l := r.lockFor(tenantID)
	l.Lock()
	defer l.Unlock()
	return r.publishLocked(ctx, tenantID, atLeast)
}

func (r *Registry) publishLocked(ctx context.Context, tenantID string, atLeast uint64) error {
	if r.readOnly != nil {
		return nil // the engine's policies come from bundles
	}
	if cur, ok := r.eng.Revision(tenantID); ok && atLeast > 0 && cur >= atLeast {
		return nil // a concurrent write already published this revision or a later one
	}
	// The tenant moved past what this server published, and not
	// necessarily only by this server's writes: one of the revisions in
	// between may be a key revoked on another replica (see watch.go).
	r.auth.forgetTenant(tenantID)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	tp, err := r.st.TenantPolicies(ctx, tenantID)
	if err != nil {
		// Fail closed: decisions for this tenant error out until it is
		// published again, rather than run on policies known to be stale.
		r.eng.RemoveTenant(tenantID)
		r.log.ErrorContext(ctx, "publish failed; tenant's decisions fail closed until republished",
			slog.String("tenant_id", tenantID), slog.Any("error", err))
		return fmt.Errorf("publish tenant %q: %w", tenantID, err)
	}
	if cur, ok := r.eng.Revision(tenantID); ok && cur >= tp.Revision {
		return nil
	}
	if err := r.eng.SetTenant(tp); err != nil {
		// The engine re-validates what the store holds; a policy that no
		// longer passes (written around the API, or by an older version)
		// makes this tenant fail closed until it is fixed.
		r.log.ErrorContext(ctx, "tenant holds an invalid policy; its decisions fail closed",
			slog.String("tenant_id", tenantID), slog.Any("error", err))
	}
	if r.onPublish != nil {
		r.onPublish(tp.TenantID, tp.Revision)
	}
	return nil
}

// warm compiles the tenant's prepared queries (engine.Warm) so that no
// decision pays for a compile: every write calls it before it returns, and
// Load for every tenant before a server reports ready. Publishes of other
// processes' writes (watch.go) warm in the background instead, so a slow
// compile never holds up the next notification (a key revoked elsewhere
// must stop working within the bound). A failure only moves the compile,
// and its error, to the first decision.
func (r *Registry) warm(ctx context.Context, tenantID string) {
	if r.readOnly != nil {
		return // the engine's tenants come from bundles
	}
	if _, ok := r.eng.Revision(tenantID); !ok {
		return // not published (failed closed): nothing to compile
	}
	if err := r.eng.Warm(ctx, tenantID); err != nil {
		r.log.WarnContext(ctx, "warming the tenant's prepared queries failed",
			slog.String("tenant_id", tenantID), slog.Any("error", err))
	}
}

// remember records t as the latest known state of the tenant unless a
// newer revision is already known.
func (r *Registry) remember(t store.Tenant) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.tenants[t.ID]; ok && old.Revision > t.Revision {
		return
	}
	r.tenants[t.ID] = t
}

func (r *Registry) known(id string) (store.Tenant, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.tenants[id]
	return t, ok
}

// freshTenant reads the tenant from the store (writes check the tier the
// store holds now, not a cached one).
func (r *Registry) freshTenant(ctx context.Context, id string) (store.Tenant, error) {
	t, err := r.st.GetTenant(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Tenant{}, fmt.Errorf("%w: %q", ErrTenantNotFound, id)
	}
	if err != nil {
		return store.Tenant{}, err
	}
	r.remember(t)
	return t, nil
}
