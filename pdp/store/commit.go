package store

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Group commit, shared by every driver. Every write that appends to an
// audit chain is an Op handed to one committer goroutine per store, which
// runs the ops queued meanwhile — of any tenants — in one transaction
// committed with one flush to disk: under load the cost of durability is
// shared by a whole batch instead of paid per write.
//
//   - A caller waits until its batch has committed (or failed) and gets
//     the result; a nil error means durable (the driver's Attempt returns
//     only after COMMIT did). Its context only matters before its op
//     starts: a cancelled op is skipped, a started one finishes, so an
//     error means "not written" (but see the driver for a connection lost
//     during COMMIT).
//   - Batches hold at most maxBatch ops. The committer never sleeps to
//     fill one: it takes what queued while the previous batch was
//     committing, after yielding the processor (runtime.Gosched; again
//     while a yield brought writes, up to fillRounds times), so goroutines
//     already running — deciding the actions they are about to write —
//     queue first. A lone write pays one transaction and no added
//     latency (nothing else is runnable), a saturated processor shares
//     each fsync among several writes instead of paying one per write
//     (BenchmarkSubmitAction on one CPU: about 10 writes per batch instead
//     of 4.6, 20% less CPU per request), and a caller's wait is bounded by
//     the batch before its own plus its own.
//   - An op that refuses before writing (not found, already decided, over
//     the limit) gets its error and the batch goes on. An attempt that
//     fails because of one op's write is run again without that op (the
//     culprit), which gets the error; the others are unaffected. A failure
//     the driver calls retryable (a deadlock) reruns the batch as is, a
//     few times.
//   - Close stops accepting ops, lets the committer drain the queue, and
//     returns once every queued op is answered; the driver then closes its
//     database.
//   - A driver may run housekeeping between batches (WithAfterBatch):
//     after a batch's callers are answered and before the next batch is
//     taken, so it delays no caller of the batch that made it necessary,
//     and nothing it does can interleave with a batch's transaction.
//
// The driver supplies Attempt: its transaction, its statements. B is the
// driver's batch state, handed to each op's Run.
type Committer[B any] struct {
	attempt   AttemptFunc[B]
	retryable func(error) bool
	queue     chan *Op[B]
	maxBatch  int
	obs       AuditBatchObserver // nil: batch sizes are not reported
	after     func()             // nil: nothing runs between batches

	// pool holds Ops with their done channels, reused once answered: a
	// caller's Do takes one and puts it back after reading its answer,
	// which is the committer's last touch of it (commit answers each op
	// of a batch once, after the batch, and never reads it again).
	pool sync.Pool

	mu     sync.RWMutex // guards closed against sends in flight
	closed bool
	done   chan struct{} // closed when the committer has exited

	batches, ops, reruns atomic.Int64
}

// Op is one write in a batch. Tenant is the chain it appends to ("" for
// none); Run executes inside the batch's transaction and must be safe to
// run again (an attempt that is rolled back runs its ops again).
type Op[B any] struct {
	Ctx    context.Context
	Tenant string
	Run    func(b B) error
	done   chan error // buffered: the committer never blocks on a caller
}

// AttemptFunc runs the live ops (indexes into ops) in one transaction and
// commits it. On success res[i] holds op i's own answer (nil, or a refusal
// that wrote nothing). Otherwise nothing was written, and culprit is the
// index of the op whose write failed, to leave out of the next attempt, or
// -1 when the failure is the batch's own (every live op gets err).
//
// ctx bounds the attempt (BatchTimeout). It is not any caller's: one
// caller giving up must not abort the others' statements, but a wedged
// database must not hold every writer forever either.
type AttemptFunc[B any] func(ctx context.Context, ops []*Op[B], live []int) (res []error, culprit int, err error)

// BatchTimeout bounds one attempt at a batch.
const BatchTimeout = time.Minute

// CommitStats reports how a group committer has batched so far.
type CommitStats struct {
	Batches int64 // batches taken from the queue and answered
	Ops     int64 // writes they held, failed ones included
	Reruns  int64 // attempts rolled back and run again without a failed write
}

// ErrClosed is returned for writes submitted after Close.
var ErrClosed = errors.New("store: database is closed")

// maxRetries is how often a batch whose failure is retryable is run again
// before its culprit is failed.
const maxRetries = 3

// CommitterOption configures NewCommitter.
type CommitterOption func(*committerOptions)

type committerOptions struct{ after func() }

// WithAfterBatch makes the committer goroutine call fn after every batch,
// once its callers are answered and before the next batch is taken. fn
// delays the next batch, so it should be short, and it must not queue
// writes on the committer (it would wait for itself).
func WithAfterBatch(fn func()) CommitterOption {
	return func(o *committerOptions) { o.after = fn }
}

// NewCommitter starts a committer of batches of at most maxBatch ops;
// retryable may be nil (nothing is retried).
func NewCommitter[B any](maxBatch int, obs AuditBatchObserver, attempt AttemptFunc[B], retryable func(error) bool, opts ...CommitterOption) *Committer[B] {
	if retryable == nil {
		retryable = func(error) bool { return false }
	}
	var o committerOptions
	for _, opt := range opts {
		opt(&o)
	}
	c := &Committer[B]{attempt: attempt, retryable: retryable, queue: make(chan *Op[B], 4*maxBatch), maxBatch: maxBatch, obs: obs, after: o.after, done: make(chan struct{})}
	go c.loop()
	return c
}

// Do queues run, which appends to tenant's chain ("" for none), and waits
// for its batch's outcome.
func (c *Committer[B]) Do(ctx context.Context, tenant string, run func(b B) error) error {
	o, _ := c.pool.Get().(*Op[B])
	if o == nil {
		o = &Op[B]{done: make(chan error, 1)}
	}
	o.Ctx, o.Tenant, o.Run = ctx, tenant, run
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		c.put(o)
		return ErrClosed
	}
	select {
	case c.queue <- o:
	case <-ctx.Done():
		c.mu.RUnlock()
		c.put(o)
		return ctx.Err()
	}
	c.mu.RUnlock()
	err := <-o.done // the committer answers every queued op, also when closing
	c.put(o)
	return err
}

// put returns an answered (or never queued) op to the pool, holding no
// caller's state.
func (c *Committer[B]) put(o *Op[B]) {
	o.Ctx, o.Tenant, o.Run = nil, "", nil
	c.pool.Put(o)
}

// Flush returns once every op queued before it is answered.
func (c *Committer[B]) Flush(ctx context.Context) error {
	return c.Do(ctx, "", func(B) error { return nil })
}

// Close stops accepting ops and waits until every queued one is answered.
func (c *Committer[B]) Close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.queue)
	}
	c.mu.Unlock()
	<-c.done
}

// Stats returns the counters; Ops/Batches is the mean batch size.
func (c *Committer[B]) Stats() CommitStats {
	return CommitStats{Batches: c.batches.Load(), Ops: c.ops.Load(), Reruns: c.reruns.Load()}
}

func (c *Committer[B]) loop() {
	defer close(c.done)
	ops := make([]*Op[B], 0, c.maxBatch)
	for {
		o, ok := <-c.queue
		if !ok {
			return
		}
		ops = append(ops[:0], o)
		// Let the goroutines that are running (deciding, about to queue
		// their writes) reach the queue before this batch is closed: on a
		// saturated processor a batch then holds what those goroutines
		// were about to write instead of one write per fsync; with
		// nothing else runnable, Gosched returns at once. Yield again
		// while a yield brought writes (the scheduler may run this
		// goroutine again before every runnable one has had its turn:
		// it serves the global run queue, where Gosched puts it, every
		// 61st time), at most fillRounds times.
		for round := 0; round < fillRounds && len(ops) < c.maxBatch; round++ {
			runtime.Gosched()
			if !c.take(&ops) {
				break
			}
		}
		c.commit(ops)
		clear(ops) // drop references to finished ops
		if c.after != nil {
			c.after()
		}
	}
}

// fillRounds bounds how often the committer yields to let writes queue
// before it takes a batch.
const fillRounds = 4

// take moves the ops queued now into ops, up to maxBatch, and reports
// whether there were any.
func (c *Committer[B]) take(ops *[]*Op[B]) bool {
	n := len(*ops)
	for len(*ops) < c.maxBatch {
		select {
		case o, ok := <-c.queue:
			if !ok {
				return len(*ops) > n
			}
			*ops = append(*ops, o)
		default:
			return len(*ops) > n
		}
	}
	return len(*ops) > n
}

// commit runs one batch, again without its culprits until it commits, and
// answers each of its ops.
func (c *Committer[B]) commit(ops []*Op[B]) {
	results := make([]error, len(ops))
	live := make([]int, 0, len(ops))
	for i, o := range ops {
		if err := o.Ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		live = append(live, i)
	}
	retries := 0
	for len(live) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), BatchTimeout)
		res, culprit, err := c.attempt(ctx, ops, live)
		cancel()
		if err == nil {
			for _, i := range live {
				results[i] = res[i]
			}
			break
		}
		if c.retryable(err) && retries < maxRetries {
			retries++
			continue
		}
		if culprit < 0 { // the batch itself failed: nothing of it was written
			for _, i := range live {
				results[i] = err
			}
			break
		}
		results[culprit] = err
		live = slices.DeleteFunc(live, func(i int) bool { return i == culprit })
		c.reruns.Add(1)
	}
	// Every batch taken from the queue counts, also one whose writes all
	// failed: the counters say how writes were grouped.
	c.batches.Add(1)
	c.ops.Add(int64(len(ops)))
	if c.obs != nil {
		c.obs.ObserveAuditBatch(len(ops))
	}
	for i, o := range ops {
		o.done <- results[i]
	}
}

// SafeRun runs one op, turning a panic into that op's error so the
// committer — every audited writer's only path to the database — survives
// it.
func SafeRun[B any](run func(B) error, b B) (err error, panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			err, panicked = fmt.Errorf("store: write panicked: %v", r), true
		}
	}()
	return run(b), false
}
