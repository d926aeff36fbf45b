package lifecycle

import (
	"context"
	"errors"
	"testing"
	"time"
)

type ctxKey struct{}

// TestRecordDeadline: a recording context keeps its request's values, not
// its cancellation, and ends within the record timeout (no sooner than a
// slice before it); contexts made within a slice share one deadline.
func TestRecordDeadline(t *testing.T) {
	const timeout = 5 * time.Second
	d := &recordDeadlines{timeout: timeout}
	req, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "v"))
	before := time.Now()
	a := d.detach(req)
	b := d.detach(req)
	after := time.Now()
	cancel()
	for _, c := range []context.Context{a, b} {
		if c.Value(ctxKey{}) != "v" {
			t.Errorf("value %v, want the request's", c.Value(ctxKey{}))
		}
		if c.Err() != nil {
			t.Errorf("cancelled with its request: %v", c.Err())
		}
		dl, ok := c.Deadline()
		if !ok || dl.Before(before.Add(timeout-timeout/deadlineSlices)) || dl.After(after.Add(timeout)) {
			t.Errorf("deadline %v (%v), want within %v of %v", dl, ok, timeout, before)
		}
	}
	if a.Done() != b.Done() {
		t.Error("two contexts of one slice do not share their deadline")
	}
	// A context derived from it ends with it, and its cancellation is its own.
	child, stop := context.WithCancel(a)
	stop()
	if child.Err() == nil || a.Err() != nil {
		t.Errorf("child %v, parent %v", child.Err(), a.Err())
	}
}

// TestRecordDeadlineExpires: the shared deadline ends the contexts that
// took it, with DeadlineExceeded, and a later one gets a new deadline.
func TestRecordDeadlineExpires(t *testing.T) {
	d := &recordDeadlines{timeout: 20 * time.Millisecond}
	a := d.detach(context.Background())
	select {
	case <-a.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the deadline did not end the context")
	}
	if !errors.Is(a.Err(), context.DeadlineExceeded) || !errors.Is(context.Cause(a), context.DeadlineExceeded) {
		t.Errorf("err %v cause %v", a.Err(), context.Cause(a))
	}
	if b := d.detach(context.Background()); b.Err() != nil {
		t.Errorf("a context made after the deadline is already done: %v", b.Err())
	}
}
