package store

import "context"

// RevisionNotifier is an optional capability of a store that several
// Gatehouse processes share (the PostgreSQL driver): it tells a process
// about every tenant revision written by any process, moments after the
// write commits, so replicas do not have to poll for one another's writes.
//
// A driver that has it bumps a tenant's revision on every write another
// process must act on — policy writes and tenant updates as every driver
// does, and also key revocations, so a revoked key is forgotten by every
// replica's authentication cache through the same channel.
//
// Delivery is best effort: a notification can be lost while the driver is
// reconnecting. Every reconnection is therefore announced with a change
// whose Resync is set, after which the subscriber should compare every
// tenant's revision itself (registry.Refresh), and a subscriber must keep a
// periodic comparison as a fallback in any case.
type RevisionNotifier interface {
	// SubscribeRevisions delivers revision changes until ctx ends, then
	// closes the channel. The first change is a Resync, sent once the
	// subscription is live: a write committed after it is received is
	// notified. A slow reader delays delivery, never loses it, while the
	// subscription's connection holds.
	SubscribeRevisions(ctx context.Context) (<-chan RevisionChange, error)
}

// RevisionChange is one notification: TenantID's revision is now Revision
// (or later); or, with Resync, "notifications may have been missed"; or,
// with Err, "the subscription lost its connection and is reconnecting".
// Exactly one of the three is set.
type RevisionChange struct {
	TenantID string
	Revision uint64
	// Resync is set on the first change of a subscription and after every
	// reconnection.
	Resync bool
	// Err says why the subscription is down; a Resync follows once it is
	// back. Until then only the periodic comparison sees other writes.
	Err error
}

// RevisionsOf returns the RevisionNotifier of s, looking through wrappers
// such as Traced that implement Unwrap() Store, or false if the store has
// none (SQLite: processes sharing a file poll instead).
func RevisionsOf(s Store) (RevisionNotifier, bool) {
	for s != nil {
		if n, ok := s.(RevisionNotifier); ok {
			return n, true
		}
		u, ok := s.(interface{ Unwrap() Store })
		if !ok {
			return nil, false
		}
		s = u.Unwrap()
	}
	return nil, false
}

// Unwrap returns the store Traced wraps, so optional capabilities that are
// not traced calls (a long-lived subscription) can be found through it.
func (t *traced) Unwrap() Store { return t.s }
