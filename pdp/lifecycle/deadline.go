package lifecycle

import (
	"context"
	"sync/atomic"
	"time"
)

// Recording an action is detached from its request (a client that hangs
// up cannot leave a decision unrecorded) and bounded by the record
// timeout. A context.WithTimeout per action costs a timer, its context
// and a WithoutCancel wrapper for every request; the bound is the same
// for every action, so the actions recorded within one slice of time
// share one deadline instead: recordDeadlines starts a timeout context at
// most once per slice (timeout/deadlineSlices), and each action's context
// takes its deadline from the current one and its values from its
// request. An action's bound is then between timeout minus one slice and
// timeout after it was decided.

// deadlineSlices is how many slices a timeout is cut into.
const deadlineSlices = 16

// recordDeadlines hands out the shared deadline contexts.
type recordDeadlines struct {
	timeout time.Duration
	cur     atomic.Pointer[sharedDeadline]
}

// sharedDeadline is one timeout context and when a newer one is due.
type sharedDeadline struct {
	ctx     context.Context
	cancel  context.CancelFunc // released by the timeout itself; kept for vet
	renewAt time.Time
}

// detach returns a context with ctx's values, not its cancellation, and a
// deadline between timeout minus a slice and timeout from now.
func (d *recordDeadlines) detach(ctx context.Context) context.Context {
	now := time.Now()
	s := d.cur.Load()
	if s == nil || !now.Before(s.renewAt) {
		// Two callers may both renew; one context is then unused, and
		// ends with its timer.
		c, cancel := context.WithTimeout(context.Background(), d.timeout)
		s = &sharedDeadline{ctx: c, cancel: cancel, renewAt: now.Add(d.timeout / deadlineSlices)}
		d.cur.Store(s)
	}
	return &recordCtx{Context: s.ctx, values: ctx}
}

// recordCtx is a shared deadline context (Deadline, Done, Err) with one
// request's values.
type recordCtx struct {
	context.Context
	values context.Context
}

// Value asks the deadline context first: it knows only the context
// package's own key, which makes a context derived from this one a child
// of the shared deadline (no goroutine to watch it), and nil for every
// other key, which the request's context then answers.
func (c *recordCtx) Value(key any) any {
	if v := c.Context.Value(key); v != nil {
		return v
	}
	return c.values.Value(key)
}
